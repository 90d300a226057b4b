// swarmfs invite: the invite of a disk's volume, again.
import { resolve } from 'node:path'
import type { Command } from 'commander'
import { inviteFor, readConfig } from '../../node/disk.js'
import { diskOption } from '../options.js'

export function addInviteCommand (program: Command): void {
  program.command('invite')
    .description('print the invite of the volume of a disk (what "swarmfs join" takes; it holds the volume key)')
    .addOption(diskOption())
    .action((opts: { disk: string }) => {
      process.stdout.write(`${inviteFor(readConfig(resolve(opts.disk)))}\n`)
    })
}

// swarmfs status: the volume, the node and its disk (lib/cli/status.ts reads and formats it).
import { resolve } from 'node:path'
import type { Command } from 'commander'
import { readConfig } from '../../node/disk.js'
import { diskOption, setup } from '../options.js'
import { formatStatus, statusOf } from '../status.js'

export function addStatusCommand (program: Command): void {
  program.command('status')
    .description('show the volume, the node and its disk')
    .addOption(diskOption())
    .option('--json', 'print JSON')
    .option('-v, --verbose', 'log details to stderr')
    .action(async (opts: { disk: string, json?: boolean, verbose?: boolean }) => {
      setup(opts)
      const disk = resolve(opts.disk)
      readConfig(disk)
      const status = await statusOf(disk)
      process.stdout.write(opts.json === true ? JSON.stringify(status, null, 2) + '\n' : formatStatus(status))
    })
}

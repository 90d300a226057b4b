// swarmfs init: a new volume on a disk directory; its invite is printed, then the node runs.
import fs from 'node:fs'
import { resolve } from 'node:path'
import type { Command } from 'commander'
import { createConfig, inviteFor, readConfig, writeConfig } from '../../node/disk.js'
import { SwarmNode } from '../../node/node.js'
import { checkMountPoint } from '../../fuse/mount.js'
import { parsePeerFlag } from '../numbers.js'
import { checkReserve, chosenAddress, diskOption, networkOptions, reserveOption, saveReserve, setup, type NetworkOptions } from '../options.js'
import { runNode } from '../run-node.js'

export function addInitCommand (program: Command): void {
  reserveOption(networkOptions(program.command('init')))
    .description('create a new volume on a disk directory, print its invite, and run the node')
    .argument('<name>', 'volume name (letters, digits, . _ -)')
    .addOption(diskOption())
    .option('--mount <dir>', 'where to mount the volume (empty directory; created if missing)')
    .option('--no-start', 'only create the volume; start it later with "swarmfs start"')
    .option('-v, --verbose', 'log details to stderr')
    .action(async (name: string, opts: NetworkOptions & { disk: string, mount?: string, start: boolean, verbose?: boolean, reserve?: string }) => {
      const log = setup(opts)
      const address = chosenAddress(opts)
      for (const p of opts.peer ?? []) parsePeerFlag(p)
      if (opts.reserve !== undefined) checkReserve(opts.reserve, resolve(opts.disk))
      const disk = resolve(opts.disk)
      if (opts.mount !== undefined) checkMountPoint(opts.mount, disk)
      const config = createConfig(disk, name, opts.mount ?? null)
      try {
        await SwarmNode.initVolume(disk, log)
      } catch (err) {
        fs.rmSync(disk, { recursive: true, force: true })
        throw err
      }
      saveReserve(disk, opts.reserve)
      // Kept for later starts, as join keeps them.
      if ((opts.peer ?? []).length > 0 || address !== undefined) writeConfig(disk, { ...readConfig(disk), peers: opts.peer, address })
      process.stdout.write(`swarmfs: created volume "${name}" on ${disk}\ninvite: ${inviteFor(config)}\n`)
      if (opts.start) await runNode(disk, undefined, log)
    })
}

// swarmfs start: the node of a disk directory, in the foreground.
import { resolve } from 'node:path'
import type { Command } from 'commander'
import { lockDisk } from '../../node/disk.js'
import { chosenAddress, diskOption, networkOptions, reserveOption, saveReserve, setup, type NetworkOptions } from '../options.js'
import { checkStart, runNode } from '../run-node.js'

export function addStartCommand (program: Command): void {
  reserveOption(networkOptions(program.command('start')))
    .description('run the node of a disk directory in the foreground, mounting its volume')
    .addOption(diskOption())
    .option('--mount <dir>', 'mount here instead of the mount point given at init')
    .option('--no-mount', 'run without a mount')
    .option('-v, --verbose', 'log details to stderr')
    .action(async (opts: NetworkOptions & { disk: string, mount?: string | false, verbose?: boolean, reserve?: string }) => {
      const log = setup(opts)
      const disk = resolve(opts.disk)
      const mountPoint = opts.mount === false ? null : typeof opts.mount === 'string' ? resolve(opts.mount) : undefined
      const net = { peers: opts.peer, address: chosenAddress(opts) }
      // Everything that can refuse the start is asked before --reserve is written to node.json.
      checkStart(disk, mountPoint, net, opts.reserve)
      // The disk is taken before the write, so no other start can come between the check and it.
      const unlock = lockDisk(disk)
      try {
        saveReserve(disk, opts.reserve)
        await runNode(disk, mountPoint, log, net)
      } finally {
        unlock()
      }
    })
}

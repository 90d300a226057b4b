// swarmfs volume: the settings every node of the volume agrees on (copy target, grace period).
import { resolve } from 'node:path'
import type { Command } from 'commander'
import type { ReplicationStatus } from '../../replicate/replicator.js'
import { callLocalNode } from '../local-node.js'
import { parseNumberFlag } from '../numbers.js'
import { COPIES, diskOption, GRACE, setup } from '../options.js'

export function addVolumeCommand (program: Command): void {
  program.command('volume')
    .description('show or change the settings of the volume (every node agrees on them): its copy target and grace period')
    .addOption(diskOption())
    .option('--copies <n>', 'keep every file on this many disks (1 to 16)')
    .option('--grace-period <seconds>', 'how long a node may be gone before its files are copied elsewhere')
    .option('--json', 'print JSON')
    .option('-v, --verbose', 'log details to stderr')
    .action(async (opts: { disk: string, copies?: string, gracePeriod?: string, json?: boolean, verbose?: boolean }) => {
      setup(opts)
      const disk = resolve(opts.disk)
      const change: { copies?: number, graceMs?: number } = {}
      if (opts.copies !== undefined) change.copies = parseNumberFlag(opts.copies, COPIES)
      if (opts.gracePeriod !== undefined) change.graceMs = Math.round(parseNumberFlag(opts.gracePeriod, GRACE) * 1000)
      const settings = await callLocalNode(disk, 'POST', '/volume', change) as { copies: number, graceMs: number }
      process.stdout.write(opts.json === true
        ? JSON.stringify(settings) + '\n'
        : `copies: ${settings.copies}\ngrace period: ${settings.graceMs / 1000} s\n`)
      if (change.graceMs === 0) process.stderr.write('swarmfs: note: with a grace period of 0 s, the files of a node that is only restarting are copied to other disks at once (and the extra copies dropped when it is back)\n')
      // A target more disks than there are is kept (disks may join later), but said.
      if (change.copies !== undefined) {
        const r = await callLocalNode(disk, 'GET', '/replication') as ReplicationStatus
        const disks = r.nodes.filter(n => n.up && !n.retiring).length
        if (disks < settings.copies) process.stderr.write(`swarmfs: note: ${disks} ${disks === 1 ? 'disk is' : 'disks are'} running; files stay under the target of ${settings.copies} until ${settings.copies - disks} more join (swarmfs join <invite> --disk <dir>)\n`)
      }
    })
}

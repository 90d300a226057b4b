// swarmfs retire: a disk is drained (each of its files copied elsewhere up to the target), then its
// node stops; the command follows it to the end.
import { resolve } from 'node:path'
import type { Command } from 'commander'
import { UserError } from '../../core/errors.js'
import { lockHolder, readConfig } from '../../node/disk.js'
import { formatBytes } from '../../replicate/plan.js'
import type { ReplicationStatus } from '../../replicate/replicator.js'
import { callLocalNode } from '../local-node.js'
import { diskOption, setup } from '../options.js'
import { progressBar, progressLine } from '../status.js'

export function addRetireCommand (program: Command): void {
  program.command('retire')
    .description('drain a disk: copy each of its files to other disks until the volume holds the target number elsewhere, then stop its node')
    .addOption(diskOption())
    .option('-v, --verbose', 'log details to stderr')
    .action(async (opts: { disk: string, verbose?: boolean }) => {
      setup(opts)
      const disk = resolve(opts.disk)
      await retire(disk)
    })
}

/** Asks the node of a disk to retire and follows it until every file has its copies elsewhere and the node stopped. */
async function retire (disk: string): Promise<void> {
  const progress = progressLine()
  let status = await callLocalNode(disk, 'POST', '/retire') as ReplicationStatus
  const startBytes = Math.max(1, status.retireRemainingBytes ?? 0)
  for (;;) {
    const left = status.retireRemainingBytes ?? 0
    progress.show(`swarmfs: retiring: ${status.retireRemaining ?? '?'} files (${formatBytes(left)}) still need copies elsewhere ${progressBar(1 - left / startBytes)}`)
    if (lockHolder(disk) === null) break
    await new Promise(resolve => setTimeout(resolve, 1000))
    try {
      status = await callLocalNode(disk, 'GET', '/replication', undefined, 5000) as ReplicationStatus
    } catch (err) {
      // Once drained, the node marks the disk retired and stops itself: a retired disk or a
      // refused connection then is the end, not an error.
      if (lockHolder(disk) === null || readConfig(disk).retired === true) break
      throw err
    }
  }
  progress.end()
  const config = readConfig(disk)
  if (config.retired !== true) throw new UserError(`the node of ${disk} stopped before it was drained; start it again and run "swarmfs retire --disk ${disk}" again`)
  const stopBy = Date.now() + RETIRED_STOP_WAIT_MS
  while (lockHolder(disk) !== null && Date.now() < stopBy) await new Promise(resolve => setTimeout(resolve, 200))
  const node = lockHolder(disk) === null ? 'its node has stopped' : 'its node is stopping'
  process.stdout.write(`swarmfs: retired ${disk}: every file it held has ${status.copies} copies on other disks; ${node}\n`)
}

/** How long `retire` waits for the node of a drained disk to finish stopping. */
const RETIRED_STOP_WAIT_MS = 60_000

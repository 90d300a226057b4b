// A node in the foreground: what may refuse its start is asked first, then it runs until a signal
// (or its own request: a retired disk, a mount unmounted from outside) and stops cleanly.
import type { Logger } from '../core/log.js'
import { lockHolder, readConfig, retiredMessage } from '../node/disk.js'
import { SwarmNode } from '../node/node.js'
import { checkMountPoint } from '../fuse/mount.js'
import { parsePeerFlag } from './numbers.js'
import { checkReserve, ourAddresses } from './options.js'
import { UserError } from '../core/errors.js'

/**
 * What refuses a start, asked before anything is written or started: a disk that is not one, a
 * retired disk, a node already running on it, an address, a peer or a reserve that cannot be, a
 * mount point that cannot be one.
 */
export function checkStart (disk: string, mountPoint: string | null | undefined, net: { peers?: string[], address?: string }, reserve?: string): void {
  const config = readConfig(disk)
  if (config.retired === true) throw new UserError(retiredMessage(disk, config.volumeName))
  const holder = lockHolder(disk)
  if (holder !== null && holder !== process.pid) throw new UserError(`${disk} is in use by a running node (pid ${holder}); stop it first`)
  if (net.address === undefined && config.address !== undefined && !ourAddresses().includes(config.address)) {
    throw new UserError(`${config.address}, the address this disk was given with --address, is not an address of this machine now; start it with --address <one of ${ourAddresses().join(', ')}>`)
  }
  for (const p of net.peers ?? []) parsePeerFlag(p)
  if (reserve !== undefined) checkReserve(reserve, disk)
  const mountAt = mountPoint === undefined ? config.mountPoint : mountPoint
  if (mountAt !== null) checkMountPoint(mountAt, disk)
}

/** Runs a node in the foreground until SIGINT or SIGTERM (or the node asks: a retired disk), then stops it cleanly. */
export async function runNode (disk: string, mountPoint: string | null | undefined, log: Logger, net: { peers?: string[], address?: string } = {}): Promise<void> {
  checkStart(disk, mountPoint, net)
  const config = readConfig(disk)
  // A request to stop may come while the node still starts (a drained disk): it is kept for then.
  let onStopRequested: ((why: 'retired' | 'unmounted') => void) | null = null
  let requestedEarly: 'retired' | 'unmounted' | null = null
  const node = await SwarmNode.start({
    disk,
    mountPoint,
    log,
    peers: [...new Set([...(config.peers ?? []), ...(net.peers ?? [])])],
    address: net.address ?? config.address,
    onStopRequested: why => {
      if (onStopRequested !== null) onStopRequested(why)
      else requestedEarly ??= why
    }
  })
  const mounted = mountPoint === undefined ? node.config.mountPoint : mountPoint
  const where = mounted === null ? 'no mount' : `mounted at ${mounted}`
  process.stdout.write(`swarmfs: volume "${node.config.volumeName}" running (${where}); Ctrl-C stops it\n`)
  await new Promise<void>(done => {
    let signals = 0
    const onSignal = (sig: NodeJS.Signals): void => {
      if (++signals > 1) {
        process.stderr.write(`swarmfs: ${sig} again, exiting without a clean stop\n`)
        process.exit(130)
      }
      process.stderr.write(`swarmfs: stopping (finishing writes${mounted !== null ? ', unmounting' : ''})...\n`)
      node.stop().then(done, err => {
        process.stderr.write(`swarmfs: stop failed: ${(err as Error).message}\n`)
        process.exit(1)
      })
    }
    process.on('SIGINT', onSignal)
    process.on('SIGTERM', onSignal)
    onStopRequested = why => {
      signals++
      if (why === 'unmounted') process.stderr.write(`swarmfs: ${mounted ?? 'the mount'} was unmounted; stopping (finishing writes)...\n`)
      node.stop().then(done, err => {
        process.stderr.write(`swarmfs: stop failed: ${(err as Error).message}\n`)
        process.exit(1)
      })
    }
    if (requestedEarly !== null) onStopRequested(requestedEarly)
  })
}

// What this machine's CLI asks over the node's socket (<disk>/node.sock, mode 0600): status,
// replication, scrub, the volume's settings, retire. The only way to change the disk or the volume.
import { SwarmError } from '../core/errors.js'
import type { ApiAnswer, ApiCall } from './json-api.js'

export interface LocalRouteParts {
  status: () => unknown
  /** The replicator, once it runs (null while the node starts). */
  replicator: () => { status: () => unknown } | null
  scrub: { start: () => Promise<unknown>, status: () => unknown }
  /** Changes the volume's settings; throws an EINVAL FsError for a value out of range. */
  setVolumeSettings: (change: { copies?: number, graceMs?: number }) => unknown
  /** Starts retiring this disk; throws SWARMFS_CONFLICT when the volume cannot do without it. */
  retire: () => Promise<unknown>
}

export function localRoutes (parts: LocalRouteParts): (call: ApiCall) => Promise<ApiAnswer | null> {
  return async call => {
    const route = `${call.method} ${call.path}`
    if (route === 'GET /status') return { status: 200, body: parts.status() }
    const replicator = parts.replicator()
    if (replicator === null) throw new SwarmError('SWARMFS_STOPPING', 'the node is starting')
    switch (route) {
      case 'GET /replication': return { status: 200, body: replicator.status() }
      case 'POST /scrub': return { status: 200, body: await parts.scrub.start() }
      case 'GET /scrub': return { status: 200, body: parts.scrub.status() }
      case 'POST /volume': {
        const body = (typeof call.body === 'object' && call.body !== null ? call.body : {}) as Record<string, unknown>
        return { status: 200, body: parts.setVolumeSettings({ copies: body.copies as number | undefined, graceMs: body.graceMs as number | undefined }) }
      }
      case 'POST /retire': return { status: 200, body: await parts.retire() }
      default: return null
    }
  }
}

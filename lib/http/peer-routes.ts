// What peers may ask of a node besides git, notices and status: its holdings, and checks of bad
// pieces. Nothing here changes the disk or the volume (that is the local routes', over the
// owner's socket).
import { SwarmError } from '../core/errors.js'
import { parseBadPiece } from '../replicate/bad-pieces.js'
import type { ApiAnswer, ApiCall } from './json-api.js'

export interface PeerRouteParts {
  /** The replicator, once it runs (null while the node starts). */
  replicator: () => { holdings: (have: string | null, delta: boolean) => Promise<unknown> } | null
  /** Checks this disk's copy of one piece a peer found bad. */
  checkPiece: (infohash: string, piece: number) => Promise<unknown>
}

export function peerRoutes (parts: PeerRouteParts): (call: ApiCall) => Promise<ApiAnswer | null> {
  return async call => {
    const replicator = parts.replicator()
    if (replicator === null) throw new SwarmError('SWARMFS_STOPPING', 'the node is starting')
    if (call.path === '/holdings' && call.method === 'GET') return { status: 200, body: await replicator.holdings(call.query.get('have'), call.query.get('delta') === '1') }
    if (call.path === '/bad-piece' && call.method === 'POST') {
      const report = parseBadPiece(call.body)
      if (typeof report === 'string') throw new SwarmError('SWARMFS_BAD_INPUT', report)
      return { status: 200, body: { copy: await parts.checkPiece(report.infohash, report.piece) } }
    }
    return null
  }
}

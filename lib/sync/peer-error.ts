// What a call to a peer fails with, by code, and where a peer is reached. Its own module so the
// fetch worker's pool (fetch-pool.ts) can rebuild a worker's PeerError without importing the
// client that uses the pool (peer-client.ts).
import { SwarmError } from '../core/errors.js'

export type PeerErrorCode =
  | 'SWARMFS_PEER_KEY_REFUSED'
  | 'SWARMFS_PEER_UNREACHABLE'
  | 'SWARMFS_PEER_TIMEOUT'
  | 'SWARMFS_PEER_BAD_RESPONSE'
  | 'SWARMFS_PEER_INVALID'

export class PeerError extends SwarmError {
  constructor (code: PeerErrorCode, message: string, data: Record<string, unknown> = {}) {
    super(code, message, data)
  }
}

export interface PeerAddress { host: string, port: number, key: string }

// Every use of webtorrent 2.8.5's private fields, in one place (the version is pinned in
// package.json; webtorrent.d.ts types them). Each accessor says why the public API does not do.
import type net from 'node:net'
import type WebTorrent from 'webtorrent'
import type { Torrent, Wire } from 'webtorrent'
import { SwarmError } from '../core/errors.js'

/** The fields of webtorrent's ConnPool we use. */
export interface ConnPool {
  /** null once the client is destroyed. */
  tcpServer: net.Server | null
  _onTCPConnectionBound: (conn: net.Socket) => void
}

/**
 * The client's TCP connection pool. The public API has no hook for the transport: incoming
 * sockets must be taken over there to wrap them in TLS before webtorrent sees them (secure-wires.ts).
 */
export function connPoolOf (client: WebTorrent): ConnPool {
  const pool = client._connPool
  if (pool === null) throw new SwarmError('SWARMFS_INTERNAL', 'webtorrent has no TCP connection pool')
  return pool
}

/** ConnPool's own listener for accepted sockets: what secureIncoming hands the sockets that proved the key. */
export function incomingRoute (pool: ConnPool): (conn: net.Socket) => void {
  return pool._onTCPConnectionBound
}

export interface OutgoingPeer {
  addr: string
  conn: net.Socket | null
  retries: number
  source: string
  destroyed: boolean
  onConnect: () => void
  destroy: (err?: Error) => void
  startConnectTimeout: () => void
}

/** The fields of a webtorrent Torrent a replacement of its _drain uses. */
export interface DrainingTorrent {
  destroyed: boolean
  done: boolean
  paused: boolean
  client: { maxConns: number }
  _numConns: number
  _queue: OutgoingPeer[]
  _drain: () => void
  _addPeer: (addr: string, type: string, source: string) => OutgoingPeer | null
}

/**
 * Replaces how a torrent connects out. Torrent#_drain makes the connection with `net.connect` and
 * no option changes that; secure-wires.ts's copy makes a TLS connection instead.
 */
export function replaceDrain (torrent: Torrent, drain: (this: DrainingTorrent) => void): void {
  (torrent as unknown as DrainingTorrent)._drain = drain
}

/**
 * Selects pieces `from`..`to` at `priority` as a selection of its own. The public `select()`
 * merges overlapping selections (so ours could not be removed alone later) and `critical()`
 * alone does not make webtorrent fetch anything; stream selections (isStreamSelection), as its
 * own file streams use, are never merged. `tag` identifies the selection (removeSelection).
 */
export function selectPieces (torrent: Torrent, from: number, to: number, priority: number, tag: () => void): void {
  torrent._select(from, to, priority, tag, true)
}

/**
 * Removes exactly the selection made with `tag` (webtorrent drops completed ones itself). The
 * public `deselect()` removes every selection with the same range, a concurrent read's too.
 */
export function removeSelection (torrent: Torrent, tag: () => void): void {
  const items = torrent._selections._items
  const i = items.findIndex(s => s.notify === tag)
  if (i < 0) return
  items.splice(i, 1)
  torrent._updateSelections()
}

/**
 * Marks a verified piece missing again (its bytes are about to be punched out of the file). No
 * public call takes a piece back: without this the torrent would serve and count it.
 */
export function markUnverified (torrent: Torrent, index: number): void {
  torrent._markUnverified(index)
}

/** The fields of bittorrent-protocol's Wire (pinned through webtorrent 2.8.5) that its _write uses. */
export interface WireInternals {
  _write: (data: Uint8Array, cb: (err: Error | null) => void) => void
  _buffer: Uint8Array[]
  _bufferSize: number
  _parserSize: number
  _parser: (buf: Uint8Array) => void
  _cryptoSyncPattern: Uint8Array | null
  _encryptionMethod: number | null
}

/**
 * A wire's message parser state, to replace its _write (wire-reassembly.ts): the wire copies all it
 * holds on every chunk of a large message, and nothing public changes how it buffers. Null when
 * the wire is not shaped as expected (the replacement is then skipped; the wire works as it is).
 */
export function wireInternals (wire: Wire): WireInternals | null {
  const w = wire as unknown as WireInternals
  return typeof w._write === 'function' && Array.isArray(w._buffer) ? w : null
}

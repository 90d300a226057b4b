// What the parts of the torrent service share (torrents.ts composes them): its options, the active
// torrents (Entry, one per content in the client) and the maps every part reads. Passed to each
// part explicitly; no part reaches another's state but through this.
import { join } from 'node:path'
import type { Torrent, TorrentBitfield } from 'webtorrent'
import type { Logger } from '../core/log.js'
import type { TorrentInfo } from '../core/torrent-info.js'
import type { PieceFile } from './piece-file.js'
import type { SpaceGuard } from './space-guard.js'

export interface TorrentServiceOptions {
  /** Complete contents by infohash (ContentStore.contentDir). */
  contentDir: string
  /** Partial contents: sparse files and their bitfields (ContentStore.partialDir). Same filesystem as contentDir (a rename moves a completed one). */
  partialDir: string
  /** Every info this service accepts has this name. */
  volumeId: string
  /** TCP port for BitTorrent; 0 picks a free one (see `port`). */
  listenPort: number
  /** The address to listen on (every interface when absent). */
  listenHost?: string
  /** The volume key: wires are TLS with a key derived from it (transport/volume-tls.ts). */
  volumeKey: string
  log: Logger
  /** Torrents kept in the client at once (LRU). Default 64. */
  maxActive?: number
  /** Largest read-ahead window of a sequential reader. Default 32 MiB. */
  maxReadAheadBytes?: number
  /** The info of a content this node holds but was not given to seed() (for peers asking for it). */
  lookupInfo?: (infohash: string) => TorrentInfo | null
  /** Called when a partial content has become complete in contentDir; `byReads` unless it was fetched whole (fetch()). */
  onComplete?: (infohash: string, info: TorrentInfo, byReads: boolean) => void
  /** Called when a piece a peer sent failed its hash check (the peer's copy of it may be bad). */
  onHashFailure?: (infohash: string, piece: number) => void
  /** Called when checkPiece or checkCopy found this disk's complete copy bad: it is a partial content now. */
  onCopyDamaged?: (infohash: string, info: TorrentInfo, badPieces: number[]) => void
  /**
   * The disk's space: each fetched piece is claimed from `guard` (ENOSPC below the metadata's
   * room), and reads keep `floor(disk size)` bytes free, evicting cached pieces to stay above.
   */
  space?: {
    guard: SpaceGuard
    floor: (total: number) => number
    /** Called when reads need room below the floor (nothing cached is left to evict). */
    short?: () => void
    /** Bytes short() could give back: copies on this disk the volume holds beyond its target. */
    reclaimable?: () => number
  }
}

/** What a check of this disk's copy of a content found. */
export type CopyCheck = 'not held' | 'intact' | 'damaged'

export interface TorrentStats {
  port: number
  /** Infohashes of the torrents in the client, least recently used first. */
  active: string[]
  /** Bytes received from / sent to peers (BitTorrent wire bytes, protocol included). */
  downloaded: number
  uploaded: number
  /** Pieces received from peers and verified. */
  piecesFetched: number
  /** Pieces received whose hash did not match (discarded). */
  hashFailures: number
  /** Connections that did not prove the volume key in their TLS handshake. */
  refused: number
}

export type Kind = 'seed' | 'partial'

export interface Selection {
  from: number
  to: number
  /** Identifies our selection item among webtorrent's (its `notify`). */
  tag: () => void
}

/** One active torrent. */
export class Entry {
  torrent: Torrent | null = null
  store: PieceFile | null = null
  bitfield: TorrentBitfield | null = null
  ready!: Promise<Torrent>
  /** Reads in progress: the entry is not evicted while > 0. */
  pins = 0
  closed = false
  shutdown: Promise<void> | null = null
  /** Readers waiting for a piece, by piece index. */
  readonly waiters = new Map<number, Set<(index: number) => void>>()
  readonly onClose = new Set<() => void>()
  started = false
  // Partial contents: bitfield persistence, completion. All disk steps run in this chain.
  dirty = false
  persistTimer: NodeJS.Timeout | null = null
  chain: Promise<void> = Promise.resolve()
  completing = false
  hashFailures = 0
  /** Pieces verified since the last fdatasync, then those synced but still in the page cache. */
  unsynced: number[] = []
  cachedSynced: number[] = []
  // Read-ahead.
  lastStart = -1
  lastEnd = -1
  readAheadBytes = 0
  readAhead: Selection | null = null
  lastUploadTouch = 0
  /** Reads in progress, by their first and last piece: none of these pieces is evicted. */
  readonly reads = new Set<{ first: number, last: number }>()
  /** Fetched whole (a copy): no piece of it is evicted. */
  keepAll = false
  /** Pieces being punched out (punchBehind): a read looks at the bitfield only once they are gone. */
  punching: Promise<void> | null = null
  /** A read was served from it while active (its bitfield's mtime is then moved to its deactivation). */
  read = false

  constructor (readonly infohash: string, readonly info: TorrentInfo, public kind: Kind, readonly pieces: number) {}
}

/** The state the parts share. */
export class SwarmState {
  readonly log: Logger
  /** Active torrents, least recently used first. */
  readonly active = new Map<string, Entry>()
  /** Complete contents given to seed(): activated again when a peer asks. */
  readonly known = new Map<string, TorrentInfo>()
  /** Shutdowns under way: a new activation of the same content waits for them (they touch its files). */
  readonly closing = new Map<string, Promise<void>>()
  readonly counters = { downloaded: 0, uploaded: 0, piecesFetched: 0, hashFailures: 0, refused: 0 }
  destroyed = false

  constructor (readonly opts: TorrentServiceOptions) {
    this.log = opts.log
  }

  contentPath (ih: string): string { return join(this.opts.contentDir, ih) }
  partialPath (ih: string): string { return join(this.opts.partialDir, ih) }
  bitfieldPath (ih: string): string { return join(this.opts.partialDir, `${ih}.bitfield`) }

  /** The info of a content this node holds, given to seed() or known to the metadata. */
  infoOf (infohash: string): TorrentInfo | null {
    return this.known.get(infohash) ?? this.opts.lookupInfo?.(infohash) ?? null
  }

  /** Moves an active entry to the most recently used end. */
  touch (entry: Entry): void {
    if (this.active.get(entry.infohash) !== entry) return
    this.active.delete(entry.infohash)
    this.active.set(entry.infohash, entry)
  }
}

/** Runs of consecutive indices in an ascending list, as [first, last] pairs. */
export function pieceRuns (sorted: number[]): Array<[number, number]> {
  const runs: Array<[number, number]> = []
  for (const i of sorted) {
    const run = runs[runs.length - 1]
    if (run !== undefined && i === run[1] + 1) run[1] = i
    else runs.push([i, i])
  }
  return runs
}

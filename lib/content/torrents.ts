// Contents between nodes, as BitTorrent torrents: one webtorrent client per node that seeds the
// contents this disk holds completely and fetches, piece by piece, the parts of other contents that
// reads need.
//
// Nothing internet-facing (read from webtorrent 2.8.5's source): `dht: false` (no DHT in the client,
// and torrent-discovery gets `dht: false`), `tracker: false` (torrent-discovery makes no tracker
// client), `lsd: false` (no BEP14 multicast), `natUpnp`/`natPmp: false` (no NatAPI object at all),
// `webSeeds: false` (BEP19 URLs ignored), `utPex: false` (no peer exchange: peers come only from the
// cluster), `utp: false` (no uTP server on UDP: utp-native is installed here and would otherwise be
// used; TCP only). Our info dicts carry no `announce`, `url-list` or `xs`, so nothing is fetched.
//
// Which peers may talk to us: those that prove the volume key on the connection itself. Every wire
// is TLS with the volume's pre-shared key, both ways (secure-wires.ts), so a host without the key
// never gets a BitTorrent handshake, and nothing of a piece crosses the network in clear. The
// client listens only on the node's address when it was given one.
//
// Active torrents: webtorrent handles tens of torrents well and thousands badly, so at most
// `maxActive` are in the client, in LRU order (a read, a seed, an upload to a peer count as a use;
// torrents with a read in progress are never evicted). An inactive torrent is activated
//   - by a read on this node (read() activates it, then connects to the cluster's peers);
//   - by a peer asking for it: ConnPool routes an incoming handshake with `client.get(infoHash)`;
//     that one method of our client is wrapped so that an infohash this node holds (complete, or
//     partial with a bitfield) but has not active is activated, and the connection is handed to
//     it once ready (a few milliseconds; the peer waits up to 25 s for our handshake);
//   - by seed(), which the node calls when a content is written, so new contents stay active
//     while they are likely to be read elsewhere.
// Seeding torrents never connect out (a seeder has nothing to fetch); a partial torrent connects
// to the cluster's peers only while a read waits for pieces. Two seeders of a content close the
// wire between them (dropIfBothSeed).
//
// Reads of a content this disk does not hold completely: the torrent's storage is a sparse file
// <partialDir>/<infohash> plus <partialDir>/<infohash>.bitfield (written at most once a second,
// after an fdatasync of the data, so it never names bytes that are not on the disk). The pieces a
// read covers get a selection of their own at priority 1 and are marked critical (webtorrent may
// then take a block away from a slow peer); sequential reads add a read-ahead window (priority 0,
// doubling up to `maxReadAheadBytes`) that moves with the reader, and a seek drops it. Each read
// waits for exactly its pieces, verified by SHA-1 (webtorrent hashes every received piece and puts
// only those that match), until its deadline, then fails with EIO. When every piece is there the
// file is fsynced and renamed to <contentDir>/<infohash>: an ordinary complete content, seeded.
//
// Room on the disk: fetched pieces are a cache, and never take the room the disk keeps free (the
// node's reserve; the metadata's room is guarded at each write, space-guard.ts). A read that
// needs room first evicts partial contents no read uses, least recently used first; then, in a
// content too large to complete in the room there is (a film larger than the free space), the
// pieces readers have left behind (punched out of the sparse file, the bitfield first). Contents
// fetched whole (a copy, a copy-on-write) keep every piece. Still short, it asks the replicator
// to drop a copy the volume holds beyond its target (files earlier reads completed here) and may
// take the reserve meanwhile, never the metadata's room: there it fails with ENOSPC. Read-ahead
// windows shrink to the room above the reserve.
//
// Latency and throughput on a LAN: sockets get TCP_NODELAY (webtorrent leaves Nagle on, and a
// request then waits for a delayed ACK) and write a turn's messages at once (socket-tuning.ts);
// blocks are 128 KiB (vendor/torrent-piece); each wire's measured speed has a floor, so an idle
// wire asks a whole piece at once instead of two blocks per round trip (see MIN_WIRE_SPEED). A
// seeding file keeps the last two pieces it read for a second, so a peer's block requests for a
// piece cost one read (piece-file.ts).
//
// webtorrent internals used (version pinned; see webtorrent.d.ts): `_select` with isStreamSelection
// (selections that are never merged, as its own file streams use), removal of exactly our
// selection from `_selections._items`, `_connPool`, `_peers`, and the `client.get` wrapper above.
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import net from 'node:net'
import { join } from 'node:path'
import WebTorrent, { type Torrent, type TorrentBitfield, type Wire } from 'webtorrent'
import { FsError } from '../core/errors.js'
import type { Logger } from '../core/log.js'
import { bitfieldLength, clearPiece, hasPiece, readBitfield, writeBitfield } from './bitfield.js'
import { reserveHeapHeadroom } from './heap-headroom.js'
import { failingPresentPieces, intactPieces, pieceIsIntact } from './piece-check.js'
import { eio, PieceFile, readLocal } from './piece-file.js'
import { syncDir } from '../core/durable.js'
import { constructListeningOn, secureIncoming, secureOutgoing } from './secure-wires.js'
import { tuneSocket } from './socket-tuning.js'
import { reassembleMessagesOnce } from './wire-reassembly.js'
import type { SpaceGuard } from './space-guard.js'
import { volumeTls, type VolumeTls } from '../transport/volume-tls.js'
import { encodeInfo, infoHash, isInfoHash, isValidInfo, pieceBytes, pieceCount, type TorrentInfo } from '../core/torrent-info.js'

const DEFAULT_MAX_ACTIVE = 64
const DEFAULT_MAX_READ_AHEAD = 32 << 20
/** How often, at most, a partial content's bitfield is written while pieces arrive. */
const PERSIST_INTERVAL_MS = 1_000
const PRIORITY_READ = 1
/**
 * webtorrent sizes a wire's request pipeline from its measured download speed (2 + speed / block
 * length blocks in flight): an idle wire gets 2, so a random read's 1 MiB piece takes 4 round trips. Our
 * peers are on the LAN: each wire's speed reads at least this, so a whole piece is asked at once.
 */
const MIN_WIRE_SPEED = 4 << 20
const PRIORITY_READ_AHEAD = 0
/** Room a read that evicts asks for beyond its own pieces, so the next reads find some. */
const EVICT_BATCH = 16 << 20
/** How long a read on a disk without room waits for the replicator to drop a copy. */
const ROOM_WAIT_MS = 3_000
const ROOM_POLL_MS = 100
/** A read this late past its deadline is not filled (see access()). */
const LATE_READ_MS = 1_000

export interface TorrentServiceOptions {
  /** Complete contents by infohash (ContentStore.contentDir). */
  contentDir: string
  /** Partial contents: sparse files and their bitfields. Same filesystem as contentDir (a rename moves a completed one). */
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


// ---------------------------------------------------------------------------------------------

type Kind = 'seed' | 'partial'

interface Selection {
  from: number
  to: number
  /** Identifies our selection item among webtorrent's (its `notify`). */
  tag: () => void
}

/** One active torrent. */
class Entry {
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


function peerAddr (host: string, port: number): string {
  return net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`
}

/** The .torrent file of an info: exactly our bencoded info inside `d4:info...e`, so the infohash webtorrent computes is ours. */
function torrentFile (info: TorrentInfo): Uint8Array {
  return Buffer.concat([Buffer.from('d4:info'), encodeInfo(info), Buffer.from('e')])
}

export class TorrentService {
  /** The TCP port peers connect to. */
  port = 0
  private readonly client: WebTorrent
  private readonly log: Logger
  private readonly maxActive: number
  private readonly maxReadAhead: number
  /** Active torrents, least recently used first. */
  private readonly active = new Map<string, Entry>()
  /** Complete contents given to seed(): activated again when a peer asks. */
  private readonly known = new Map<string, TorrentInfo>()
  private readonly tls: VolumeTls
  /** Infos already checked against their infohash. */
  private readonly checked = new WeakMap<TorrentInfo, string>()
  /** Peers of the cluster ("ip:port"), and peers known to hold a given content. */
  private readonly clusterPeers = new Set<string>()
  private readonly holders = new Map<string, Set<string>>()
  /** Shutdowns under way: a new activation of the same content waits for them (they touch its files). */
  private readonly closing = new Map<string, Promise<void>>()
  /** Callers of completed() waiting for a partial content to become complete, by infohash. */
  private readonly completeWaiters = new Map<string, Set<() => void>>()
  /** checkPiece calls in flight, by infohash: one check of a copy at a time. */
  private readonly checking = new Map<string, Promise<CopyCheck>>()
  private destroyed = false
  private destroying: Promise<void> | null = null
  /** The eviction under way (makeRoom). */
  private evicting: Promise<void> = Promise.resolve()
  private readonly counters = { downloaded: 0, uploaded: 0, piecesFetched: 0, hashFailures: 0, refused: 0 }

  private constructor (private readonly opts: TorrentServiceOptions) {
    this.log = opts.log
    this.maxActive = Math.max(1, opts.maxActive ?? DEFAULT_MAX_ACTIVE)
    this.maxReadAhead = Math.max(0, opts.maxReadAheadBytes ?? DEFAULT_MAX_READ_AHEAD)
    fs.mkdirSync(opts.contentDir, { recursive: true })
    fs.mkdirSync(opts.partialDir, { recursive: true })
    // A bitfield's temporary (writeBitfield) outlives only a crash; nothing renames it now.
    for (const name of fs.readdirSync(opts.partialDir)) {
      if (name.endsWith('.tmp')) fs.rmSync(join(opts.partialDir, name), { force: true })
    }
    this.tls = volumeTls(opts.volumeKey)
    this.client = constructListeningOn(opts.listenHost, () => new WebTorrent({
      torrentPort: opts.listenPort,
      dht: false,
      tracker: false,
      lsd: false,
      utPex: false,
      natUpnp: false,
      natPmp: false,
      webSeeds: false,
      utp: false,
      seedOutgoingConnections: false
    }))
    this.guardConnections()
    this.client.on('error', (err: Error) => this.log.error('webtorrent client error', { err }))
    this.client.on('download', (n: number) => { this.counters.downloaded += n })
    this.client.on('upload', (n: number) => { this.counters.uploaded += n })
  }

  /** Starts the client; resolves once it listens (`port` is then the bound port). */
  static async create (opts: TorrentServiceOptions): Promise<TorrentService> {
    reserveHeapHeadroom()
    const service = new TorrentService(opts)
    try {
      await new Promise<void>((resolve, reject) => {
        const client = service.client
        if (client.listening) return resolve()
        const onError = (err: Error): void => { client.removeListener('listening', onListening); reject(err) }
        const onListening = (): void => { client.removeListener('error', onError); resolve() }
        client.once('error', onError)
        client.once('listening', onListening)
      })
    } catch (err) {
      await service.destroy().catch(() => {})
      throw err
    }
    service.port = service.client.address()?.port ?? 0
    service.log.info('bittorrent listening', { port: service.port })
    return service
  }

  // -------------------------------------------------------------------------------------------
  // Peers

  private guardConnections (): void {
    const pool = this.client._connPool
    if (pool === null) throw new Error('webtorrent has no TCP connection pool')
    secureIncoming(pool, this.tls, {
      admitted: socket => tuneSocket(socket),
      refused: (address, err) => {
        this.counters.refused++
        this.log.warn('refused a BitTorrent connection that did not prove the volume key', { address, err: err.message })
      }
    })
    // An incoming handshake is routed by client.get(infoHash): activate what we hold but have not active.
    const get = this.client.get.bind(this.client)
    this.client.get = async (id: unknown): Promise<Torrent | null> => {
      const found = await get(id)
      if (found !== null || typeof id !== 'string' || !isInfoHash(id)) return found
      return await this.activateForPeer(id)
    }
  }

  /** Every wire of every torrent: checked again (a second line behind the two above), and given a pipeline floor. */
  private readonly onWire = (wire: Wire, entry: Entry): void => {
    reassembleMessagesOnce(wire)
    // Once webtorrent has handled the message (it records the peer's pieces), outside its handlers;
    // only a complete copy here can have nothing to trade.
    const check = (): void => { if (entry.kind === 'seed') setImmediate(() => dropIfBothSeed(entry, wire)) }
    wire.on('bitfield', check)
    wire.on('have', check)
    wire.on('have-all', check)
    // A peer's pieces shrink only by a don't-have (BEP 54): then they are looked at again.
    wire.lt_donthave?.on('donthave', () => heldUpTo.delete(wire))
    // The same meter records received bytes (called with a count): pass those through.
    const meter = wire.downloadSpeed
    wire.downloadSpeed = (delta?: number) => delta === undefined ? Math.max(meter(), MIN_WIRE_SPEED) : meter(delta)
  }

  /**
   * A peer to fetch from. With an infohash: a holder of that content; with null: a node of the
   * cluster, asked for any content this node reads. Partial torrents connect to them while a read
   * waits for pieces. Whoever is there must still prove the volume key on the connection.
   */
  addPeer (infohash: string | null, host: string, port: number): void {
    if (this.destroyed) return
    if (infohash !== null && !isInfoHash(infohash)) throw new FsError('EINVAL', `EINVAL: not an infohash: ${JSON.stringify(infohash)}`)
    if (net.isIP(host) === 0 || !Number.isInteger(port) || port <= 0 || port > 65535) throw new FsError('EINVAL', `EINVAL: not a peer address: ${host}:${port}`)
    const addr = peerAddr(host, port)
    if (infohash === null) {
      this.clusterPeers.add(addr)
    } else {
      let set = this.holders.get(infohash)
      if (set === undefined) this.holders.set(infohash, set = new Set())
      set.add(addr)
    }
    for (const entry of this.active.values()) {
      if ((infohash === null || entry.infohash === infohash) && entry.pins > 0) this.connectPeers(entry, [addr])
    }
  }

  /** Forgets a peer (it left the cluster): no new connections to it, and ours to it are closed. */
  removePeer (host: string, port: number): void {
    const addr = peerAddr(host, port)
    this.clusterPeers.delete(addr)
    for (const [ih, set] of this.holders) {
      set.delete(addr)
      if (set.size === 0) this.holders.delete(ih)
    }
    for (const entry of this.active.values()) {
      const t = entry.torrent
      if (t !== null && !t.destroyed) t.removePeer(addr)
    }
  }

  private peersFor (entry: Entry): string[] {
    return [...this.clusterPeers, ...(this.holders.get(entry.infohash) ?? [])]
  }

  /** Connects a partial torrent to peers (an address already queued or connected is ignored by webtorrent). */
  private connectPeers (entry: Entry, addrs: string[]): void {
    const t = entry.torrent
    if (!entry.started || t === null || t.destroyed || t.done || entry.kind !== 'partial') return
    for (const addr of addrs) t.addPeer(addr)
  }

  // -------------------------------------------------------------------------------------------
  // Activation

  private checkInfo (infohash: string, info: TorrentInfo): void {
    if (this.checked.get(info) === infohash) return
    // An equal copy of an info checked before (callers may pass a fresh object per read).
    const ref = this.active.get(infohash)?.info ?? this.known.get(infohash)
    if (ref !== undefined && ref.name === info.name && ref.length === info.length && ref.pieceLength === info.pieceLength && ref.pieces === info.pieces) {
      this.checked.set(info, infohash)
      return
    }
    if (!isInfoHash(infohash)) throw new FsError('EINVAL', `EINVAL: not an infohash: ${JSON.stringify(infohash)}`)
    if (!isValidInfo(info)) throw eio(`malformed torrent info for ${infohash}`)
    if (info.name !== this.opts.volumeId) throw eio(`torrent info of another volume for ${infohash}`)
    if (infoHash(info) !== infohash) throw eio(`torrent info does not hash to ${infohash}`)
    this.checked.set(info, infohash)
  }

  private contentPath (ih: string): string { return join(this.opts.contentDir, ih) }
  private partialPath (ih: string): string { return join(this.opts.partialDir, ih) }
  private bitfieldPath (ih: string): string { return join(this.opts.partialDir, `${ih}.bitfield`) }

  private touch (entry: Entry): void {
    if (this.active.get(entry.infohash) !== entry) return
    this.active.delete(entry.infohash)
    this.active.set(entry.infohash, entry)
  }

  /** The active entry of a content, made and started if needed (the caller awaits entry.ready). */
  private activate (infohash: string, info: TorrentInfo): Entry {
    const existing = this.active.get(infohash)
    if (existing !== undefined) {
      this.touch(existing)
      return existing
    }
    // Starts as partial; start() looks at the disk (after any shutdown of the same content).
    const entry = new Entry(infohash, info, 'partial', pieceCount(info.length, info.pieceLength))
    this.active.set(infohash, entry)
    entry.ready = this.start(entry)
    entry.ready.catch(err => {
      this.log.warn('could not activate a torrent', { infohash, err })
      void this.deactivate(entry)
    })
    this.evict()
    return entry
  }

  private evict (): void {
    if (this.active.size <= this.maxActive) return
    for (const entry of [...this.active.values()]) {
      if (this.active.size <= this.maxActive) break
      if (entry.pins > 0 || entry.completing) continue
      this.log.debug('deactivating a torrent (least recently used)', { infohash: entry.infohash })
      void this.deactivate(entry)
    }
  }

  private async start (entry: Entry): Promise<Torrent> {
    const ih = entry.infohash
    await this.closing.get(ih)?.catch(() => {})
    if (entry.closed || this.destroyed) throw eio('torrent deactivated while starting')
    const seeding = await fsp.access(this.contentPath(ih)).then(() => true, () => false)
    entry.kind = seeding ? 'seed' : 'partial'
    const store = await PieceFile.open(seeding ? this.contentPath(ih) : this.partialPath(ih), entry.info, !seeding, bytes => this.claimPiece(bytes))
    entry.store = store
    let bits: Uint8Array | undefined
    if (!seeding) bits = (await readBitfield(this.bitfieldPath(ih), entry.pieces)) ?? new Uint8Array(bitfieldLength(entry.pieces))
    if (entry.closed || this.destroyed) throw eio('torrent deactivated while starting')
    // A complete content is trusted as it is (skipVerify: no hashing of the whole file at start).
    // A partial one passes its bitfield: webtorrent then hashes one present piece as a spot check
    // (all of them only if that one fails) and never hashes the holes; an all-zero bitfield (never
    // absent) keeps it from hashing a fresh sparse file.
    const torrent = this.client.add(torrentFile(entry.info), {
      preloadedStore: store,
      storeCacheSlots: 0,
      deselect: true,
      skipVerify: seeding,
      bitfield: bits,
      strategy: 'sequential',
      alwaysChokeSeeders: true,
      path: this.opts.partialDir
    })
    secureOutgoing(torrent, this.tls, socket => tuneSocket(socket), this.log)
    entry.torrent = torrent
    torrent.on('error', (err: Error) => {
      this.log.error('torrent error', { infohash: ih, err })
      void this.deactivate(entry)
    })
    torrent.on('warning', (err: Error) => {
      if (/failed verification/.test(err.message)) {
        this.counters.hashFailures++
        entry.hashFailures++
        // A corrupt holder sends the same bad piece again and again: log the first and then rarely.
        if ((entry.hashFailures & (entry.hashFailures - 1)) === 0) this.log.warn('a piece from a peer failed its hash check (discarded)', { infohash: ih, message: err.message, failures: entry.hashFailures })
        const piece = /Piece (\d+) failed/.exec(err.message)
        if (piece !== null) this.opts.onHashFailure?.(ih, Number(piece[1]))
      } else {
        this.log.debug('torrent warning', { infohash: ih, err })
      }
    })
    torrent.on('verified', (index: number) => {
      if (entry.started) {
        this.counters.piecesFetched++
        entry.unsynced.push(index)
        entry.dirty = true
        this.schedulePersist(entry)
      }
      const waiting = entry.waiters.get(index)
      if (waiting !== undefined) {
        entry.waiters.delete(index)
        for (const f of waiting) f(index)
      }
    })
    torrent.on('done', () => { if (entry.kind === 'partial') this.complete(entry) })
    torrent.on('wire', (wire: Wire) => this.onWire(wire, entry))
    torrent.on('upload', () => {
      const now = Date.now()
      if (now - entry.lastUploadTouch > 1_000) {
        entry.lastUploadTouch = now
        this.touch(entry)
      }
    })
    await new Promise<void>((resolve, reject) => {
      if (torrent.ready) return resolve()
      const onReady = (): void => { torrent.removeListener('close', onClose); resolve() }
      const onClose = (): void => { torrent.removeListener('ready', onReady); reject(eio('torrent closed while starting')) }
      torrent.once('ready', onReady)
      torrent.once('close', onClose)
    })
    if (torrent.infoHash !== ih) throw eio(`webtorrent computed infohash ${torrent.infoHash} for ${ih}`)
    entry.bitfield = torrent.bitfield
    entry.started = true
    if (bits !== undefined && !Buffer.from(bits).equals(Buffer.from(torrent.bitfield.buffer.subarray(0, bits.length)))) {
      // The spot check found a claimed piece missing and rescanned: keep what it found.
      entry.dirty = true
      this.schedulePersist(entry)
    }
    this.log.debug('torrent active', { infohash: ih, kind: entry.kind, active: this.active.size })
    return torrent
  }

  private async activateForPeer (infohash: string): Promise<Torrent | null> {
    if (this.destroyed) return null
    let entry = this.active.get(infohash)
    if (entry === undefined) {
      let info: TorrentInfo | null
      try {
        info = this.infoOf(infohash)
        if (info === null) return null
        this.checkInfo(infohash, info)
      } catch (err) {
        this.log.warn('no usable info for a torrent a peer asked for', { infohash, err })
        return null
      }
      if (!fs.existsSync(this.contentPath(infohash)) && !fs.existsSync(this.bitfieldPath(infohash))) return null
      this.log.debug('activating a torrent a peer asked for', { infohash })
      entry = this.activate(infohash, info)
    } else {
      this.touch(entry)
    }
    try {
      return await entry.ready
    } catch {
      return null
    }
  }

  /**
   * Removes a torrent from the client; its files stay (a partial one's bitfield is written first),
   * unless `dropPartial`: a partial content's files are then removed before a new activation of
   * it can open them.
   */
  private deactivate (entry: Entry, dropPartial = false): Promise<void> {
    if (entry.shutdown !== null) return entry.shutdown
    entry.closed = true
    if (this.active.get(entry.infohash) === entry) this.active.delete(entry.infohash)
    for (const f of [...entry.onClose]) f()
    if (entry.persistTimer !== null) clearTimeout(entry.persistTimer)
    entry.persistTimer = null
    const destroyTorrent = async (): Promise<void> => {
      const t = entry.torrent
      if (t !== null && !t.destroyed) await new Promise<void>(resolve => t.destroy(() => resolve()))
    }
    entry.shutdown = (async () => {
      await destroyTorrent()
      await entry.ready.catch(() => {})
      await destroyTorrent()
      this.enqueue(entry, () => this.persistNow(entry))
      await entry.chain
      await entry.store?.release().catch(err => this.log.warn('closing a content file failed', { infohash: entry.infohash, err }))
      if (entry.kind === 'partial' && (dropPartial || (entry.bitfield !== null && entry.bitfield.buffer.every(b => b === 0)))) {
        // Evicted, or nothing was fetched (a read that failed): leave no empty sparse file behind.
        await fsp.rm(this.partialPath(entry.infohash), { force: true }).catch(() => {})
        await fsp.rm(this.bitfieldPath(entry.infohash), { force: true }).catch(() => {})
      } else if (entry.kind === 'partial' && entry.read) {
        // Inactive partial contents are evicted oldest bitfield first (idlePartials): one read
        // again from the disk, with nothing fetched and so no bitfield written, is as recent as a
        // fetch, or a film watched again would be the first to go.
        const now = new Date()
        await fsp.utimes(this.bitfieldPath(entry.infohash), now, now).catch(() => {})
      }
    })()
    const shutdown = entry.shutdown
    this.closing.set(entry.infohash, shutdown)
    shutdown.catch(err => this.log.error('deactivating a torrent failed', { infohash: entry.infohash, err })).then(() => {
      if (this.closing.get(entry.infohash) === shutdown) this.closing.delete(entry.infohash)
    }, () => {})
    return shutdown
  }

  // -------------------------------------------------------------------------------------------
  // Partial contents on the disk

  private enqueue (entry: Entry, step: () => Promise<void>): void {
    entry.chain = entry.chain.then(step).catch(err => this.log.error('partial content bookkeeping failed', { infohash: entry.infohash, err }))
  }

  private schedulePersist (entry: Entry): void {
    if (entry.persistTimer !== null || entry.kind !== 'partial' || entry.closed) return
    entry.persistTimer = setTimeout(() => {
      entry.persistTimer = null
      this.enqueue(entry, () => this.persistNow(entry))
    }, PERSIST_INTERVAL_MS)
  }

  private async persistNow (entry: Entry): Promise<void> {
    if (entry.kind !== 'partial' || !entry.dirty || entry.bitfield === null || entry.store === null) return
    entry.dirty = false
    // Snapshot first: every piece it names was written before now, so the fdatasync covers it.
    const bits = Uint8Array.from(entry.bitfield.buffer.subarray(0, bitfieldLength(entry.pieces)))
    const synced = entry.unsynced.splice(0)
    await entry.store.fdatasync()
    await writeBitfield(this.bitfieldPath(entry.infohash), bits)
    entry.cachedSynced.push(...synced)
    await this.dropBehindReader(entry, entry.store)
  }

  /**
   * Drops the synced pieces behind this node's last read of the content (all of them when nothing
   * reads it here: a copy being made) from the page cache (PieceFile.dropCached says why). The ones
   * at or after it are kept: a sequential reader is about to read its read-ahead window.
   */
  private async dropBehindReader (entry: Entry, store: PieceFile): Promise<void> {
    const pl = entry.info.pieceLength
    const readerPiece = entry.lastStart < 0 ? Infinity : Math.floor(entry.lastStart / pl)
    const behind = entry.cachedSynced.filter(i => i < readerPiece).sort((x, y) => x - y)
    if (behind.length === 0) return
    entry.cachedSynced = entry.cachedSynced.filter(i => i >= readerPiece)
    for (const [first, last] of pieceRuns(behind)) {
      await store.dropCached(first * pl, (last - first + 1) * pl).catch(err => this.log.debug('dropping cached pages failed', { infohash: entry.infohash, err }))
    }
  }

  /** Every piece is here: the partial file becomes the complete content (then seeded as such). */
  private complete (entry: Entry): void {
    if (entry.completing || entry.kind !== 'partial') return
    entry.completing = true
    if (entry.persistTimer !== null) clearTimeout(entry.persistTimer)
    entry.persistTimer = null
    this.enqueue(entry, async () => {
      const ih = entry.infohash
      try {
        if (entry.store === null) return
        await entry.store.fsync()
        entry.cachedSynced.push(...entry.unsynced.splice(0))
        await this.dropBehindReader(entry, entry.store)
        const from = this.partialPath(ih)
        const to = this.contentPath(ih)
        try {
          await fsp.rename(from, to)
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err
          await fsp.copyFile(from, to)
          await fsp.rm(from, { force: true })
        }
        await syncDir(this.opts.contentDir)
        entry.kind = 'seed'
        setImmediate(() => { for (const wire of [...entry.torrent?.wires ?? []]) dropIfBothSeed(entry, wire) })
        await fsp.rm(this.bitfieldPath(ih), { force: true })
        this.known.set(ih, entry.info)
        this.log.info('content complete', { infohash: ih, length: entry.info.length })
        try {
          this.opts.onComplete?.(ih, entry.info, !entry.keepAll)
        } catch (err) {
          this.log.error('onComplete threw', { infohash: ih, err })
        }
        for (const wake of this.completeWaiters.get(ih) ?? []) wake()
      } finally {
        entry.completing = false
      }
    })
  }

  // -------------------------------------------------------------------------------------------
  // Room on the disk

  /** Bytes fetched pieces may still take on this disk (Infinity without a space guard). */
  private room (): number {
    const space = this.opts.space
    return space === undefined ? Infinity : space.guard.room(space.floor)
  }

  /**
   * Room for `bytes` of pieces `entry` is about to fetch, made when the disk has too little by
   * evicting cached pieces (and a batch more, so the next reads find some). One eviction at a
   * time: concurrent reads would evict for the same need. ENOSPC when nothing gives room in time.
   */
  private async makeRoom (entry: Entry, bytes: number, deadline: number): Promise<void> {
    const space = this.opts.space
    if (space === undefined || this.room() >= bytes) return
    await this.evictInTurn(entry, bytes + EVICT_BATCH, false)
    if (this.room() >= bytes) return
    // Still short: the replicator is asked to drop a copy the volume holds beyond its target
    // (complete contents earlier reads left here), and meanwhile the read may take the reserve,
    // down to the metadata's room. There it waits a little for the drop (each read on its own,
    // within its deadline), then punches whatever readers have left behind, then fails.
    space.short?.()
    if (await this.roomWithin(() => space.guard.room(() => 0) >= bytes, Math.min(deadline, Date.now() + ROOM_WAIT_MS))) return
    await this.evictInTurn(entry, bytes, true)
    const aboveMetadata = space.guard.room(() => 0)
    if (aboveMetadata >= bytes) return
    throw new FsError('ENOSPC', 'ENOSPC: this disk has no room for the pieces this read needs (nothing cached is left to evict; free some space or add a disk)',
      { infohash: entry.infohash, need: bytes, room: aboveMetadata })
  }

  /** Whether `enough()` holds by `giveUp`, asking the replicator for room meanwhile and reading the free space again each time. */
  private async roomWithin (enough: () => boolean, giveUp: number): Promise<boolean> {
    const space = this.opts.space
    for (;;) {
      if (enough()) return true
      if (space === undefined || Date.now() >= giveUp || this.destroyed) return false
      space.short?.()
      await new Promise(resolve => setTimeout(resolve, ROOM_POLL_MS))
      space.guard.stale()
    }
  }

  private async evictInTurn (entry: Entry, want: number, punchAll: boolean): Promise<void> {
    const evicting = this.evicting.then(() => this.evictFor(entry, want, punchAll))
    this.evicting = evicting.catch(() => {})
    await evicting
  }

  /**
   * Room for a piece about to be written, above the metadata's. Pieces a read asked for before
   * the room ran short still arrive: such a piece waits a little for the replicator to drop a
   * copy, since a failed write ends the torrent (webtorrent destroys it) and every read of it.
   */
  private async claimPiece (bytes: number): Promise<void> {
    const space = this.opts.space
    if (space === undefined) return
    const claimed = (): boolean => {
      try {
        space.guard.claim(bytes)
        return true
      } catch {
        return false
      }
    }
    if (claimed()) return
    // The cache gives room before the replicator is asked to drop a copy (as a read's makeRoom
    // does): otherwise pieces arriving after the room ran out had a copy the volume keeps here
    // dropped while a partial content nothing uses stayed.
    await this.evictInactivePartials(bytes + EVICT_BATCH)
    if (await this.roomWithin(claimed, Date.now() + ROOM_WAIT_MS)) return
    space.guard.claim(bytes)
  }

  /**
   * Evicts cached pieces until `want` bytes are free above the floor: partial contents no read
   * uses first; then pieces readers have left behind, in contents too large to complete in the
   * room there is and the copies the replicator could drop (punched, such a content never
   * completes here), or in any with `punchAll`.
   */
  private async evictFor (entry: Entry, want: number, punchAll: boolean): Promise<void> {
    const space = this.opts.space
    if (space === undefined || this.room() >= want) return
    if (await this.evictUntil(await this.idlePartials(entry), want)) return
    const reclaimable = space.reclaimable?.() ?? 0
    for (const e of [entry, ...[...this.active.values()].filter(e => e !== entry)]) {
      if (!punchAll && this.missingBytes(e) <= Math.max(0, this.room()) + reclaimable) continue
      const freed = await this.punchBehind(e)
      space.guard.stale()
      if (freed > 0) this.log.debug('punched pieces readers have left behind to make room', { infohash: e.infohash, bytes: freed })
      if (this.room() >= want) return
    }
  }

  /** Bytes of a partial content not on this disk yet. */
  private missingBytes (entry: Entry): number {
    const t = entry.torrent
    if (t === null || entry.kind !== 'partial') return 0
    let bytes = 0
    for (let i = 0; i < entry.pieces; i++) if (!t.bitfield.get(i)) bytes += pieceBytes(entry.info, i)
    return bytes
  }

  /**
   * Partial contents whose pieces nothing needs now, least recently used first: those not active,
   * then active ones no read or copy uses.
   */
  private async idlePartials (except: Entry): Promise<string[]> {
    const idle = [...this.active.values()].filter(e => e !== except && e.kind === 'partial' && e.pins === 0 && !e.completing && !e.keepAll)
    return [...await this.inactivePartials(), ...idle.map(e => e.infohash)]
  }

  /**
   * Partial contents with no torrent, least recently used first: by their bitfield's mtime (when it
   * was last written, or when the content was last deactivated after a read).
   */
  private async inactivePartials (): Promise<string[]> {
    const names = await fsp.readdir(this.opts.partialDir).catch(() => [] as string[])
    const inactive: Array<{ ih: string, at: number }> = []
    for (const name of names) {
      const ih = name.endsWith('.bitfield') ? name.slice(0, -'.bitfield'.length) : ''
      if (!isInfoHash(ih) || this.active.has(ih)) continue
      const st = await fsp.stat(join(this.opts.partialDir, name)).catch(() => null)
      if (st !== null) inactive.push({ ih, at: st.mtimeMs })
    }
    return inactive.sort((x, y) => x.at - y.at).map(x => x.ih)
  }

  /**
   * Evicts partial contents with no torrent until `want` bytes are free above the floor. For a
   * piece being written: it waits for no torrent (one closing may be waiting for that very write).
   */
  private async evictInactivePartials (want: number): Promise<void> {
    await this.evictUntil(await this.inactivePartials(), want, ih => this.active.has(ih) || this.closing.has(ih))
  }

  /** Evicts the partial contents `ihs` in turn (but those `skip` names now) until `want` bytes are free above the floor; whether they are. */
  private async evictUntil (ihs: string[], want: number, skip: (ih: string) => boolean = () => false): Promise<boolean> {
    const space = this.opts.space
    if (space === undefined) return true
    for (const ih of ihs) {
      if (this.room() >= want) return true
      if (skip(ih)) continue
      const freed = await this.evictPartial(ih)
      space.guard.stale()
      if (freed > 0) this.log.info('evicted a cached partial content to make room', { infohash: ih, bytes: freed })
    }
    return this.room() >= want
  }

  /** Removes a partial content's files (deactivating it first); the bytes its file took. */
  private async evictPartial (ih: string): Promise<number> {
    const path = this.partialPath(ih)
    const bytes = await fsp.stat(path).then(st => st.blocks * 512, () => 0)
    const entry = this.active.get(ih)
    if (entry !== undefined) {
      if (entry.kind !== 'partial' || entry.pins > 0 || entry.completing || entry.keepAll) return 0
      await this.deactivate(entry, true)
      return bytes
    }
    await this.closing.get(ih)?.catch(() => {})
    // Checked and removed in one turn of the event loop: an activation starting now would open them.
    if (this.active.has(ih)) return 0
    fs.rmSync(path, { force: true })
    fs.rmSync(this.bitfieldPath(ih), { force: true })
    return bytes
  }

  /**
   * Punches the pieces readers have left behind out of a partial content's file (not its first
   * and last pieces, which players come back to for container indexes; not those a read in
   * progress covers, nor the one just before the last read, which FUSE may still ask for). The
   * bitfield stops naming them, on the disk too, before their bytes go. The bytes freed.
   */
  private async punchBehind (entry: Entry): Promise<number> {
    const t = entry.torrent
    const store = entry.store
    if (entry.kind !== 'partial' || !entry.started || entry.closed || entry.completing || entry.keepAll || entry.punching !== null || entry.lastStart < 0 || t === null || store === null || t.destroyed) return 0
    const pl = entry.info.pieceLength
    let below = Math.min(entry.pieces - 1, Math.floor(entry.lastStart / pl) - 1)
    for (const r of entry.reads) below = Math.min(below, r.first)
    const gone: number[] = []
    for (let i = 1; i < below; i++) if (t.bitfield.get(i)) gone.push(i)
    if (gone.length === 0) return 0
    for (const i of gone) t._markUnverified(i)
    const goneSet = new Set(gone)
    entry.unsynced = entry.unsynced.filter(i => !goneSet.has(i))
    entry.cachedSynced = entry.cachedSynced.filter(i => !goneSet.has(i))
    entry.dirty = true
    let freed = 0
    let punched!: () => void
    entry.punching = new Promise<void>(resolve => { punched = resolve })
    await new Promise<void>(resolve => this.enqueue(entry, async () => {
      try {
        await this.persistNow(entry)
        for (const [first, last] of pieceRuns(gone)) {
          const length = Math.min(entry.info.length, (last + 1) * pl) - first * pl
          await store.punch(first * pl, length)
          freed += length
        }
      } finally {
        entry.punching = null
        punched()
        resolve()
      }
    }))
    return freed
  }

  // -------------------------------------------------------------------------------------------
  // Seeding

  /**
   * Makes a complete local content (<contentDir>/<infohash>) available to peers, without hashing
   * it (its pieces are the ones its info was built from), and remembers it, so that a peer asking
   * for it later activates it again. Resolves once the torrent is active.
   */
  async seed (infohash: string, info: TorrentInfo): Promise<void> {
    this.checkInfo(infohash, info)
    if (this.destroyed) throw eio('torrent service stopped')
    const st = await fsp.stat(this.contentPath(infohash))
    if (st.size !== info.length) throw eio(`content ${infohash} has ${st.size} bytes, its info says ${info.length}`)
    this.known.set(infohash, info)
    const existing = this.active.get(infohash)
    if (existing !== undefined && existing.kind === 'partial' && !existing.completing && existing.pins === 0) {
      // The bytes arrived by other means (written here): the partial copy is redundant.
      await this.deactivate(existing)
      await fsp.rm(this.partialPath(infohash), { force: true })
      await fsp.rm(this.bitfieldPath(infohash), { force: true })
    }
    await this.activate(infohash, info).ready
  }

  /** Checks this disk's complete copy of a content at one piece, which a peer's read found bad; a bad one is checked whole (checkCopy). */
  async checkPiece (infohash: string, index: number): Promise<CopyCheck> {
    const info = this.infoOf(infohash)
    if (info === null || !Number.isSafeInteger(index) || index < 0 || index >= pieceCount(info.length, info.pieceLength)) return 'not held'
    const running = this.checking.get(infohash)
    if (running !== undefined) return await running
    try {
      if (await pieceIsIntact(this.contentPath(infohash), info, index)) return 'intact'
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'not held'
      throw err
    }
    return await this.checkCopy(infohash)
  }

  /**
   * Checks every piece of this disk's complete copy of a content (swarmfs scrub, or a piece found
   * bad). A copy that fails is no longer one: the file goes back to the partial contents with a
   * bitfield of the pieces that are still right (so nothing right is lost), and it is neither
   * seeded nor held as complete until the bad pieces are fetched again from another holder.
   * Peers that had it open lose their connection (BitTorrent cannot take back a piece once
   * announced) and learn the new bitfield when they connect again.
   */
  async checkCopy (infohash: string, onBytes?: (n: number) => void): Promise<CopyCheck> {
    const info = this.infoOf(infohash)
    if (info === null) return 'not held'
    const running = this.checking.get(infohash)
    if (running !== undefined) return await running
    const result = this.checkWhole(infohash, info, onBytes)
    this.checking.set(infohash, result)
    try {
      return await result
    } finally {
      this.checking.delete(infohash)
    }
  }

  private infoOf (infohash: string): TorrentInfo | null {
    return this.known.get(infohash) ?? this.opts.lookupInfo?.(infohash) ?? null
  }

  private async checkWhole (infohash: string, info: TorrentInfo, onBytes?: (n: number) => void): Promise<CopyCheck> {
    const path = this.contentPath(infohash)
    let found: { bits: Uint8Array, bad: number[] }
    try {
      found = await intactPieces(path, info, onBytes)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'not held'
      throw err
    }
    if (found.bad.length === 0) return 'intact'
    if (this.destroyed) throw eio('torrent service stopped')
    // A torrent started meanwhile (a peer asking) opens the partial file, never the bad copy as a seed.
    await this.whileClosed(infohash, async () => {
      await fsp.rename(path, this.partialPath(infohash))
      await writeBitfield(this.bitfieldPath(infohash), found.bits)
      await syncDir(this.opts.contentDir)
      await syncDir(this.opts.partialDir)
    })
    const { bad } = found
    this.log.warn('this disk\'s copy of a content has pieces that fail their hash check: kept as a partial content until they are fetched again', { infohash, bad: bad.length, pieces: pieceCount(info.length, info.pieceLength), first: bad[0] })
    this.opts.onCopyDamaged?.(infohash, info, bad)
    return 'damaged'
  }

  /**
   * The partial contents on this disk (pieces kept from reads, copies under way) whose info is
   * known, each with the bytes of the pieces its bitfield says it holds: what scrub checks of them.
   */
  async partialContents (): Promise<Array<{ infohash: string, bytes: number }>> {
    const names = await fsp.readdir(this.opts.partialDir).catch(() => [] as string[])
    const found: Array<{ infohash: string, bytes: number }> = []
    for (const name of names) {
      const ih = name.endsWith('.bitfield') ? name.slice(0, -'.bitfield'.length) : ''
      const info = isInfoHash(ih) ? this.infoOf(ih) : null
      if (info === null) continue
      const pieces = pieceCount(info.length, info.pieceLength)
      const bits = this.active.get(ih)?.bitfield?.buffer ?? await readBitfield(this.bitfieldPath(ih), pieces)
      if (bits === null) continue
      let bytes = 0
      for (let i = 0; i < pieces; i++) if (hasPiece(bits, i)) bytes += pieceBytes(info, i)
      if (bytes > 0) found.push({ infohash: ih, bytes })
    }
    return found
  }

  /**
   * Checks the pieces a partial content holds (swarmfs scrub). They were checked when they
   * arrived, but a disk can rot them since, and a read serves them as they are. A bad one is
   * dropped from the bitfield, so the next read of it fetches it again from a holder. A content
   * that a read, a copy or its completion is using is left alone ('in use'): taking it away from
   * them would fail their reads; a later scrub checks it.
   */
  async checkPartial (infohash: string, onBytes?: (n: number) => void): Promise<CopyCheck | 'in use'> {
    const info = this.infoOf(infohash)
    if (info === null || this.checking.has(infohash)) return 'not held'
    if (this.destroyed) throw eio('torrent service stopped')
    const entry = this.active.get(infohash)
    if (entry !== undefined && (entry.kind !== 'partial' || entry.pins > 0 || entry.completing || entry.keepAll)) return entry.kind === 'partial' ? 'in use' : 'not held'
    // An activation meanwhile (a read, a peer asking) opens the bitfield the check leaves.
    const bad = await this.whileClosed(infohash, async (): Promise<number[] | null> => {
      const bits = await readBitfield(this.bitfieldPath(infohash), pieceCount(info.length, info.pieceLength))
      if (bits === null) return null
      let failing: number[]
      try {
        failing = await failingPresentPieces(this.partialPath(infohash), info, bits, onBytes)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
        throw err
      }
      if (failing.length === 0) return failing
      for (const i of failing) clearPiece(bits, i)
      await writeBitfield(this.bitfieldPath(infohash), bits)
      return failing
    })
    if (bad === null) return 'not held'
    if (bad.length === 0) return 'intact'
    this.log.warn('pieces kept from reads fail their hash check: dropped, to be fetched again when read', { infohash, bad: bad.length, first: bad[0] })
    return 'damaged'
  }

  /**
   * Runs `work` on a content's files with no torrent of it open: its active torrent is deactivated
   * first (or a closing under way awaited), and `work` is registered as the content's closing, so
   * an activation meanwhile (a read, a peer asking) waits for it and opens what it leaves.
   */
  private async whileClosed<T> (infohash: string, work: () => Promise<T>): Promise<T> {
    const entry = this.active.get(infohash)
    const before = entry !== undefined ? this.deactivate(entry) : this.closing.get(infohash)
    const running = (async () => {
      await before?.catch(() => {})
      return await work()
    })()
    const closing = running.then(() => {}, () => {})
    this.closing.set(infohash, closing)
    try {
      return await running
    } finally {
      if (this.closing.get(infohash) === closing) this.closing.delete(infohash)
    }
  }

  /** Stops seeding or fetching a content and forgets it (a removed content). With dropPartial, its partial files go too. */
  async forget (infohash: string, opts: { dropPartial?: boolean } = {}): Promise<void> {
    this.known.delete(infohash)
    this.holders.delete(infohash)
    const entry = this.active.get(infohash)
    if (entry !== undefined) await this.deactivate(entry)
    if (opts.dropPartial === true && isInfoHash(infohash)) {
      await fsp.rm(this.partialPath(infohash), { force: true })
      await fsp.rm(this.bitfieldPath(infohash), { force: true })
    }
  }

  // -------------------------------------------------------------------------------------------
  // Reading

  /**
   * `length` bytes at `offset` of a content (fewer at its end). A content complete on this disk is
   * read from it; otherwise from its partial file, after fetching the pieces the range covers from
   * peers, first. Rejects with an FsError of code EIO when they are not all there `deadlineMs`
   * milliseconds from now: never returns bytes that are not verified.
   */
  async read (infohash: string, info: TorrentInfo, offset: number, length: number, deadlineMs: number, into?: Buffer): Promise<Buffer> {
    if (into !== undefined && into.length < length) throw new FsError('EINVAL', `EINVAL: a buffer of ${into.length} bytes for ${length}`)
    return (await this.access(infohash, info, offset, length, deadlineMs, into ?? null)) ?? Buffer.alloc(0)
  }

  /** Fetches the pieces `length` bytes at `offset` cover onto this disk (a read that returns nothing); same deadline and errors as read(). */
  async fetch (infohash: string, info: TorrentInfo, offset: number, length: number, deadlineMs: number): Promise<void> {
    await this.access(infohash, info, offset, length, deadlineMs, 'none')
  }

  private async access (infohash: string, info: TorrentInfo, offset: number, length: number, deadlineMs: number, into: Buffer | null | 'none'): Promise<Buffer | null> {
    this.checkInfo(infohash, info)
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) throw new FsError('EINVAL', `EINVAL: bad range ${offset}+${length}`)
    const end = Math.min(info.length, offset + length)
    if (end <= offset) return Buffer.alloc(0)
    const deadline = Date.now() + Math.max(0, deadlineMs)
    // An active torrent reads through its open file (complete or partial); otherwise a complete
    // content is read straight from the disk, without activating anything.
    if (this.active.get(infohash)?.started !== true) {
      if (into === 'none') {
        if (await fsp.access(this.contentPath(infohash)).then(() => true, () => false)) return null
      } else {
        const local = await readLocal(this.contentPath(infohash), offset, end - offset, into ?? undefined)
        if (local !== null) return local
      }
    }
    if (this.destroyed) throw eio('torrent service stopped')

    const pl = info.pieceLength
    const span = { first: Math.floor(offset / pl), last: Math.floor((end - 1) / pl) }
    const { first, last } = span
    const entry = this.activate(infohash, info)
    entry.pins++
    entry.reads.add(span)
    if (into === 'none') entry.keepAll = true
    try {
      const torrent = await withDeadline(entry.ready, deadline, () => eio(`torrent ${infohash} did not start in time`, { infohash }))
      // A piece being punched reads as zeros until its bytes are fetched again.
      while (entry.punching !== null) await entry.punching
      const missing: number[] = []
      for (let i = first; i <= last; i++) if (!torrent.bitfield.get(i)) missing.push(i)
      const missingBytes = missing.reduce((sum, i) => sum + pieceBytes(info, i), 0)
      let selection: Selection | null = null
      if (missing.length > 0) {
        await this.makeRoom(entry, missingBytes, deadline)
        if (torrent.destroyed) throw eio(`torrent ${infohash} was deactivated during a read`, { infohash })
        selection = this.select(torrent, first, last, PRIORITY_READ)
        torrent.critical(first, last)
        this.connectPeers(entry, this.peersFor(entry))
      }
      this.moveReadAhead(entry, torrent, offset, end, this.room() - missingBytes)
      if (missing.length > 0) {
        try {
          await this.waitPieces(entry, missing, deadline)
        } finally {
          this.unselect(torrent, selection)
        }
      }
      if (entry.store === null) throw eio(`content ${infohash} has no storage`)
      if (into === 'none') return null
      entry.read = true
      // Well past the deadline the caller (a FUSE request) may have been answered already, and its
      // buffer freed: every wait above ends by the deadline, so only a stalled eviction gets here.
      if (into !== null && Date.now() > deadline + LATE_READ_MS) throw eio(`a read of ${infohash} outlived its deadline`)
      return await entry.store.readAt(offset, end - offset, into ?? undefined)
    } finally {
      entry.pins--
      entry.reads.delete(span)
    }
  }

  private select (torrent: Torrent, from: number, to: number, priority: number): Selection {
    const tag = (): void => {}
    torrent._select(from, to, priority, tag, true)
    return { from, to, tag }
  }

  /** Removes exactly our selection (webtorrent drops completed ones itself). */
  private unselect (torrent: Torrent, selection: Selection | null): void {
    if (selection === null || torrent.destroyed) return
    const items = torrent._selections._items
    const i = items.findIndex(s => s.notify === selection.tag)
    if (i < 0) return
    items.splice(i, 1)
    torrent._updateSelections()
  }

  /**
   * Sequential readers (a read starting after the previous one's start and at most a piece past
   * its end: FUSE may deliver a stream's reads slightly out of order; a read of the same offset
   * again is not a sign of streaming) get a
   * window of pieces after the read, fetched at a lower priority than reads, doubling while the
   * reader stays sequential. A seek drops the window; the next sequential read starts a new one.
   */
  private moveReadAhead (entry: Entry, torrent: Torrent, offset: number, end: number, room: number): void {
    const pl = entry.info.pieceLength
    const sequential = entry.lastEnd >= 0 && offset > entry.lastStart && offset <= entry.lastEnd + pl
    entry.lastStart = offset
    entry.lastEnd = end
    if (!sequential || this.maxReadAhead === 0) {
      entry.readAheadBytes = 0
      this.unselect(torrent, entry.readAhead)
      entry.readAhead = null
      return
    }
    entry.readAheadBytes = Math.min(Math.max(this.maxReadAhead, pl), Math.max(2 * pl, entry.readAheadBytes * 2))
    // Half the disk's room at most: the window's pieces are claimed only as they arrive.
    const windowPieces = Math.min(Math.ceil(entry.readAheadBytes / pl), Math.floor(Math.max(0, room / 2) / pl))
    const from = Math.floor((end - 1) / pl) + 1
    const to = Math.min(entry.pieces - 1, from + windowPieces - 1)
    if (entry.readAhead !== null && entry.readAhead.from === from && entry.readAhead.to === to) return
    this.unselect(torrent, entry.readAhead)
    entry.readAhead = null
    if (from > to) return
    let start = from
    while (start <= to && torrent.bitfield.get(start)) start++
    if (start > to) return
    const selection = this.select(torrent, start, to, PRIORITY_READ_AHEAD)
    entry.readAhead = { from, to, tag: selection.tag }
  }

  private waitPieces (entry: Entry, pieces: number[], deadline: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const pending = new Set(pieces.filter(i => entry.bitfield?.get(i) !== true))
      if (pending.size === 0) return resolve()
      const onPiece = (index: number): void => {
        pending.delete(index)
        if (pending.size === 0) finish(null)
      }
      const onClose = (): void => finish(eio(`torrent ${entry.infohash} was deactivated during a read`, { infohash: entry.infohash }))
      const timer = setTimeout(() => {
        const t = entry.torrent
        finish(eio(`pieces ${[...pending].slice(0, 8).join(',')}${pending.size > 8 ? ',...' : ''} of ${entry.infohash} did not arrive in time`,
          { infohash: entry.infohash, missing: pending.size, peers: t?.numPeers ?? 0 }))
      }, Math.max(0, deadline - Date.now()))
      const finish = (err: Error | null): void => {
        clearTimeout(timer)
        entry.onClose.delete(onClose)
        for (const i of pieces) {
          const set = entry.waiters.get(i)
          if (set === undefined) continue
          set.delete(onPiece)
          if (set.size === 0) entry.waiters.delete(i)
        }
        if (err === null) resolve()
        else reject(err)
      }
      entry.onClose.add(onClose)
      for (const i of pending) {
        let set = entry.waiters.get(i)
        if (set === undefined) entry.waiters.set(i, set = new Set())
        set.add(onPiece)
      }
    })
  }

  /**
   * Resolves true once the content is complete in contentDir (at once if it is already), false
   * after `timeoutMs`: a fetch of its last piece returns before the file is synced and moved there.
   */
  async completed (infohash: string, timeoutMs: number): Promise<boolean> {
    if (fs.existsSync(this.contentPath(infohash))) return true
    return await new Promise<boolean>(resolve => {
      const waiters = this.completeWaiters.get(infohash) ?? new Set<() => void>()
      this.completeWaiters.set(infohash, waiters)
      const done = (result: boolean): void => {
        clearTimeout(timer)
        waiters.delete(wake)
        if (waiters.size === 0 && this.completeWaiters.get(infohash) === waiters) this.completeWaiters.delete(infohash)
        resolve(result)
      }
      const wake = (): void => done(true)
      const timer = setTimeout(() => done(fs.existsSync(this.contentPath(infohash))), timeoutMs)
      waiters.add(wake)
    })
  }

  /**
   * Which pieces of a content this disk holds: all of them for a complete content; for a partial
   * one, its bitfield (BitTorrent's layout, a copy); null when it holds none.
   */
  async progress (infohash: string, info: TorrentInfo): Promise<{ complete: boolean, pieces: number, bitfield: Uint8Array } | null> {
    this.checkInfo(infohash, info)
    const pieces = pieceCount(info.length, info.pieceLength)
    const entry = this.active.get(infohash)
    if (entry?.started === true && entry.bitfield !== null) {
      const bitfield = Uint8Array.from(entry.bitfield.buffer.subarray(0, bitfieldLength(pieces)))
      return { complete: entry.kind === 'seed', pieces, bitfield }
    }
    if (await fsp.access(this.contentPath(infohash)).then(() => true, () => false)) {
      const bitfield = new Uint8Array(bitfieldLength(pieces))
      for (let i = 0; i < pieces; i++) bitfield[i >> 3] |= 128 >> (i & 7)
      return { complete: true, pieces, bitfield }
    }
    const bitfield = await readBitfield(this.bitfieldPath(infohash), pieces)
    return bitfield === null ? null : { complete: false, pieces, bitfield }
  }

  // -------------------------------------------------------------------------------------------

  stats (): TorrentStats {
    return { port: this.port, active: [...this.active.keys()], ...this.counters }
  }

  /** Stops every torrent (partial bitfields are written) and the client. */
  destroy (): Promise<void> {
    this.destroying ??= (async () => {
      this.destroyed = true
      await Promise.all([...this.active.values()].map(e => this.deactivate(e)))
      if (!this.client.destroyed) await new Promise<void>(resolve => this.client.destroy(() => resolve()))
    })()
    return this.destroying
  }
}



/** Runs of consecutive indices in an ascending list, as [first, last] pairs. */
function pieceRuns (sorted: number[]): Array<[number, number]> {
  const runs: Array<[number, number]> = []
  for (const i of sorted) {
    const run = runs[runs.length - 1]
    if (run !== undefined && i === run[1] + 1) run[1] = i
    else runs.push([i, i])
  }
  return runs
}

function withDeadline<T> (promise: Promise<T>, deadline: number, error: () => Error): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(error()), Math.max(0, deadline - Date.now()))
    promise.then(v => { clearTimeout(timer); resolve(v) }, err => { clearTimeout(timer); reject(err instanceof FsError ? err : eio((err as Error).message)) })
  })
}

/**
 * Two seeders of a content have nothing to trade: their wire goes, as BitTorrent clients do, and
 * with it the socket and the TLS buffers it holds (a holder that had served 2,000 contents kept a
 * wire open for each of its 64 active torrents). A peer that later lacks pieces connects again.
 */
function dropIfBothSeed (entry: Entry, wire: Wire): void {
  if (entry.kind === 'seed' && entry.torrent?.done === true && !wire.destroyed && peerHoldsEvery(wire, entry.pieces)) wire.destroy()
}

/** How far each wire's pieces are known to be all there: a peer's pieces only grow (haves), so each is looked at once. */
const heldUpTo = new WeakMap<Wire, number>()

/**
 * The peer has every piece, by the pieces it announced. (Not webtorrent's wire.isSeeder: it is set
 * when a wire's piece map is still empty and is never cleared, so peers with a few pieces pass.)
 */
function peerHoldsEvery (wire: Wire, pieces: number): boolean {
  let i = heldUpTo.get(wire) ?? 0
  while (i < pieces && wire.peerPieces.get(i)) i++
  heldUpTo.set(wire, i)
  return i === pieces
}

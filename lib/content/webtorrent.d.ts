// The part of webtorrent 2.8.5 that lib/content/torrents.ts uses (the package ships no types).
// Members starting with `_` are webtorrent internals, read from its source (lib/torrent.js,
// lib/conn-pool.js); the version is pinned in package.json, so they cannot move under us.
declare module 'webtorrent' {
  import type { EventEmitter } from 'node:events'
  import type { Server, Socket } from 'node:net'

  export interface Wire extends EventEmitter {
    remoteAddress?: string
    remotePort?: number
    destroyed: boolean
    /** The pieces the peer announced (its bitfield, then its haves). */
    peerPieces: { get (index: number): boolean }
    /** BEP 54: emits 'donthave' when the peer no longer has a piece. */
    lt_donthave?: EventEmitter
    destroy (): void
    /** A `throughput` meter: records `delta` received bytes, or without one returns bytes per second lately; webtorrent sizes request pipelines with it. */
    downloadSpeed: (delta?: number) => number
  }

  export interface TorrentBitfield {
    buffer: Uint8Array
    get (index: number): boolean
  }

  export interface Torrent extends EventEmitter {
    infoHash: string
    ready: boolean
    done: boolean
    destroyed: boolean
    length: number
    pieceLength: number
    bitfield: TorrentBitfield
    wires: Wire[]
    numPeers: number
    received: number
    uploaded: number
    addPeer (addr: string): boolean
    removePeer (addr: string): void
    critical (start: number, end: number): void
    destroy (cb?: (err?: Error | null) => void): void
    /** Inserts a selection; with isStreamSelection true it is never merged with another one. */
    _select (from: number, to: number, priority: number, notify?: () => void, isStreamSelection?: boolean): void
    /** The piece is missing again (bitfield cleared; with `deselect`, not selected): it is neither served nor counted, and can be fetched again. */
    _markUnverified (index: number): void
    _selections: { _items: Array<{ from: number, to: number, priority: number, notify?: () => void }> }
    _updateSelections (): void
    /** Peers by id ("ip:port" for TCP ones), each with its socket once connected. */
    _peers: Map<string, { conn: { setNoDelay?: (on: boolean) => void } | null }> | null
  }

  export interface ChunkStore {
    chunkLength: number
    put (index: number, buf: Uint8Array, cb?: (err?: Error | null) => void): void
    get (index: number, opts: { offset?: number, length?: number } | null, cb: (err: Error | null, buf?: Uint8Array) => void): void
    close (cb?: (err?: Error | null) => void): void
    destroy (cb?: (err?: Error | null) => void): void
  }

  export interface TorrentOptions {
    preloadedStore?: ChunkStore
    storeCacheSlots?: number
    deselect?: boolean
    skipVerify?: boolean
    bitfield?: Uint8Array
    strategy?: 'sequential' | 'rarest'
    alwaysChokeSeeders?: boolean
    path?: string
  }

  export interface ClientOptions {
    torrentPort?: number
    dht?: boolean
    tracker?: boolean
    lsd?: boolean
    utPex?: boolean
    natUpnp?: boolean
    natPmp?: boolean
    webSeeds?: boolean
    utp?: boolean
    seedOutgoingConnections?: boolean
    maxConns?: number
  }

  export default class WebTorrent extends EventEmitter {
    constructor (opts?: ClientOptions)
    static UTP_SUPPORT: boolean
    destroyed: boolean
    listening: boolean
    torrentPort: number
    torrents: Torrent[]
    _connPool: { tcpServer: Server | null, _onTCPConnectionBound: (conn: Socket) => void } | null
    add (torrentId: Uint8Array, opts?: TorrentOptions): Torrent
    /** Hashes a file and seeds it (the content benchmark's plain-webtorrent baseline only). */
    seed (input: string, opts: Record<string, unknown>, onseed: (torrent: Torrent & { torrentFile: Uint8Array }) => void): Torrent
    get (torrentId: unknown): Promise<Torrent | null>
    address (): { port: number } | null
    destroy (cb?: (err?: Error | null) => void): void
  }
}

// The webtorrent client of a node and who may talk to it.
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
// Seeding torrents never connect out (a seeder has nothing to fetch); a partial torrent connects
// to the cluster's peers only while a read waits for pieces. Two seeders of a content close the
// wire between them (dropIfBothSeed).
//
// Latency and throughput on a LAN: sockets get TCP_NODELAY (webtorrent leaves Nagle on, and a
// request then waits for a delayed ACK) and write a turn's messages at once (socket-tuning.ts);
// blocks are 128 KiB (vendor/torrent-piece); each wire's measured speed has a floor, so an idle
// wire asks a whole piece at once instead of two blocks per round trip (see MIN_WIRE_SPEED).
import net from 'node:net'
import WebTorrent, { type Torrent, type TorrentOptions, type Wire } from 'webtorrent'
import { FsError } from '../core/errors.js'
import { encodeInfo, isInfoHash, type TorrentInfo } from '../core/torrent-info.js'
import { volumeTls, type VolumeTls } from '../transport/volume-tls.js'
import { constructListeningOn, secureIncoming, secureOutgoing } from './secure-wires.js'
import { tuneSocket } from './socket-tuning.js'
import type { Entry, SwarmState } from './swarm-state.js'
import { connPoolOf } from './webtorrent-internals.js'
import { reassembleMessagesOnce } from './wire-reassembly.js'

/**
 * webtorrent sizes a wire's request pipeline from its measured download speed (2 + speed / block
 * length blocks in flight): an idle wire gets 2, so a random read's 1 MiB piece takes 4 round trips. Our
 * peers are on the LAN: each wire's speed reads at least this, so a whole piece is asked at once.
 */
const MIN_WIRE_SPEED = 4 << 20

export class SwarmClient {
  readonly client: WebTorrent
  private readonly tls: VolumeTls
  /** Peers of the cluster ("ip:port"), and peers known to hold a given content. */
  private readonly clusterPeers = new Set<string>()
  private readonly holders = new Map<string, Set<string>>()

  /** `activateForPeer`: the torrent of a content this node holds but has not active, for a peer's handshake (null: not ours). */
  constructor (private readonly state: SwarmState, activateForPeer: (infohash: string) => Promise<Torrent | null>) {
    const { opts } = state
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
    this.guardConnections(activateForPeer)
    this.client.on('error', (err: Error) => state.log.error('webtorrent client error', { err }))
    this.client.on('download', (n: number) => { state.counters.downloaded += n })
    this.client.on('upload', (n: number) => { state.counters.uploaded += n })
  }

  /** Resolves once the client listens. */
  async listening (): Promise<number> {
    const client = this.client
    await new Promise<void>((resolve, reject) => {
      if (client.listening) return resolve()
      const onError = (err: Error): void => { client.removeListener('listening', onListening); reject(err) }
      const onListening = (): void => { client.removeListener('error', onError); resolve() }
      client.once('error', onError)
      client.once('listening', onListening)
    })
    return client.address()?.port ?? 0
  }

  private guardConnections (activateForPeer: (infohash: string) => Promise<Torrent | null>): void {
    secureIncoming(connPoolOf(this.client), this.tls, {
      admitted: socket => tuneSocket(socket),
      refused: (address, err) => {
        this.state.counters.refused++
        this.state.log.warn('refused a BitTorrent connection that did not prove the volume key', { address, err: err.message })
      }
    })
    // An incoming handshake is routed by client.get(infoHash): activate what we hold but have not active.
    const get = this.client.get.bind(this.client)
    this.client.get = async (id: unknown): Promise<Torrent | null> => {
      const found = await get(id)
      if (found !== null || typeof id !== 'string' || !isInfoHash(id)) return found
      return await activateForPeer(id)
    }
  }

  /** Adds a torrent of `info` to the client; it connects out over TLS only. */
  add (info: TorrentInfo, options: TorrentOptions): Torrent {
    const torrent = this.client.add(torrentFile(info), options)
    secureOutgoing(torrent, this.tls, socket => tuneSocket(socket), this.state.log)
    return torrent
  }

  /** Every wire of every torrent: checked again (a second line behind the two above), and given a pipeline floor. */
  readonly onWire = (wire: Wire, entry: Entry): void => {
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
    if (this.state.destroyed) return
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
    for (const entry of this.state.active.values()) {
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
    for (const entry of this.state.active.values()) {
      const t = entry.torrent
      if (t !== null && !t.destroyed) t.removePeer(addr)
    }
  }

  /** A removed content's holders are no longer asked for it. */
  forgetHolders (infohash: string): void {
    this.holders.delete(infohash)
  }

  /** Connects a partial torrent to every peer that may have its pieces. */
  connectAll (entry: Entry): void {
    this.connectPeers(entry, [...this.clusterPeers, ...(this.holders.get(entry.infohash) ?? [])])
  }

  /** Connects a partial torrent to peers (an address already queued or connected is ignored by webtorrent). */
  private connectPeers (entry: Entry, addrs: string[]): void {
    const t = entry.torrent
    if (!entry.started || t === null || t.destroyed || t.done || entry.kind !== 'partial') return
    for (const addr of addrs) t.addPeer(addr)
  }

  async destroy (): Promise<void> {
    if (!this.client.destroyed) await new Promise<void>(resolve => this.client.destroy(() => resolve()))
  }
}

function peerAddr (host: string, port: number): string {
  return net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`
}

/** The .torrent file of an info: exactly our bencoded info inside `d4:info...e`, so the infohash webtorrent computes is ours. */
function torrentFile (info: TorrentInfo): Uint8Array {
  return Buffer.concat([Buffer.from('d4:info'), encodeInfo(info), Buffer.from('e')])
}

/**
 * Two seeders of a content have nothing to trade: their wire goes, as BitTorrent clients do, and
 * with it the socket and the TLS buffers it holds (a holder that had served 2,000 contents kept a
 * wire open for each of its 64 active torrents). A peer that later lacks pieces connects again.
 */
export function dropIfBothSeed (entry: Entry, wire: Wire): void {
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

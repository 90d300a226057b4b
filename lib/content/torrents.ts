// Contents between nodes, as BitTorrent torrents: one webtorrent client per node that seeds the
// contents this disk holds completely and fetches, piece by piece, the parts of other contents that
// reads need. This class is the service's face; its parts, each with one concern:
//   swarm-client.ts  the client (nothing internet-facing) and who may talk to it (peers, TLS wires)
//   activation.ts    the LRU of torrents in the client: start, deactivate, activation for a peer
//   piece-reads.ts   reads: piece priority, deadlines, read-ahead for sequential readers
//   room.ts          room on the disk: eviction of partial contents, hole punching, the reserve
//   integrity.ts     checks of this disk's copies (scrub, bad pieces)
//   partial-files.ts     a partial content's bitfield on the disk, and its completion
// They share a SwarmState (swarm-state.ts: the options, the active entries, the known infos).
// webtorrent's internals they use are all in webtorrent-internals.ts.
//
// A seeding file keeps the last two pieces it read for a second, so a peer's block requests for a
// piece cost one read (piece-file.ts).
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import { join } from 'node:path'
import { FsError } from '../core/errors.js'
import { isInfoHash, type TorrentInfo } from '../core/torrent-info.js'
import { Activation } from './activation.js'
import { PartialFiles } from './partial-files.js'
import { reserveHeapHeadroom } from './heap-headroom.js'
import { Integrity, serviceStopped } from './integrity.js'
import { eio } from './piece-file.js'
import { PieceReads } from './piece-reads.js'
import { Room } from './room.js'
import { SwarmClient } from './swarm-client.js'
import { SwarmState, type CopyCheck, type TorrentServiceOptions, type TorrentStats } from './swarm-state.js'

export type { CopyCheck, TorrentServiceOptions, TorrentStats } from './swarm-state.js'

export class TorrentService {
  /** The TCP port peers connect to. */
  port = 0
  private readonly state: SwarmState
  private readonly swarm: SwarmClient
  private readonly partials: PartialFiles
  private readonly room: Room
  private readonly activation: Activation
  private readonly reads: PieceReads
  private readonly integrity: Integrity
  private destroying: Promise<void> | null = null

  private constructor (opts: TorrentServiceOptions) {
    fs.mkdirSync(opts.contentDir, { recursive: true })
    fs.mkdirSync(opts.partialDir, { recursive: true })
    // A bitfield's temporary (writeBitfield) outlives only a crash; nothing renames it now.
    for (const name of fs.readdirSync(opts.partialDir)) {
      if (name.endsWith('.tmp')) fs.rmSync(join(opts.partialDir, name), { force: true })
    }
    const state = this.state = new SwarmState(opts)
    // The parts are made in the order they need each other; room and the client reach activation
    // (made after them) through these closures only.
    this.swarm = new SwarmClient(state, ih => this.activation.activateForPeer(ih))
    this.partials = new PartialFiles(state)
    this.room = new Room(state, this.partials, (entry, dropPartial) => this.activation.deactivate(entry, dropPartial))
    this.activation = new Activation(state, this.swarm, this.partials, bytes => this.room.claimPiece(bytes))
    this.reads = new PieceReads(state, this.activation, this.room, this.swarm)
    this.integrity = new Integrity(state, this.activation)
  }

  /** Starts the client; resolves once it listens (`port` is then the bound port). */
  static async create (opts: TorrentServiceOptions): Promise<TorrentService> {
    reserveHeapHeadroom()
    const service = new TorrentService(opts)
    try {
      service.port = await service.swarm.listening()
    } catch (err) {
      await service.destroy().catch(() => {})
      throw err
    }
    opts.log.info('bittorrent listening', { port: service.port })
    return service
  }

  /**
   * A peer to fetch from. With an infohash: a holder of that content; with null: a node of the
   * cluster, asked for any content this node reads. Partial torrents connect to them while a read
   * waits for pieces. Whoever is there must still prove the volume key on the connection.
   */
  addPeer (infohash: string | null, host: string, port: number): void {
    this.swarm.addPeer(infohash, host, port)
  }

  /** Forgets a peer (it left the cluster): no new connections to it, and ours to it are closed. */
  removePeer (host: string, port: number): void {
    this.swarm.removePeer(host, port)
  }

  /**
   * Makes a complete local content (<contentDir>/<infohash>) available to peers, without hashing
   * it (its pieces are the ones its info was built from), and remembers it, so that a peer asking
   * for it later activates it again. Resolves once the torrent is active.
   */
  async seed (infohash: string, info: TorrentInfo): Promise<void> {
    const { state, activation } = this
    activation.checkInfo(infohash, info)
    if (state.destroyed) throw serviceStopped()
    const st = await fsp.stat(state.contentPath(infohash))
    if (st.size !== info.length) throw eio(`content ${infohash} has ${st.size} bytes, its info says ${info.length}`)
    state.known.set(infohash, info)
    const existing = state.active.get(infohash)
    if (existing !== undefined && existing.kind === 'partial' && !existing.completing && existing.pins === 0) {
      // The bytes arrived by other means (written here): the partial copy is redundant.
      await activation.deactivate(existing)
      await fsp.rm(state.partialPath(infohash), { force: true })
      await fsp.rm(state.bitfieldPath(infohash), { force: true })
    }
    await activation.activate(infohash, info).ready
  }

  /** Checks this disk's complete copy of a content at one piece, which a peer's read found bad; a bad one is checked whole (checkCopy). */
  async checkPiece (infohash: string, index: number): Promise<CopyCheck> {
    return await this.integrity.checkPiece(infohash, index)
  }

  /** Checks every piece of this disk's complete copy of a content; a damaged one becomes a partial content (integrity.ts). */
  async checkCopy (infohash: string, onBytes?: (n: number) => void): Promise<CopyCheck> {
    return await this.integrity.checkCopy(infohash, onBytes)
  }

  /** The partial contents on this disk whose info is known, with the bytes their bitfields name. */
  async partialContents (): Promise<Array<{ infohash: string, bytes: number }>> {
    return await this.integrity.partialContents()
  }

  /** Checks the pieces a partial content holds; bad ones are dropped from its bitfield (integrity.ts). */
  async checkPartial (infohash: string, onBytes?: (n: number) => void): Promise<CopyCheck | 'in use'> {
    return await this.integrity.checkPartial(infohash, onBytes)
  }

  /** Stops seeding or fetching a content and forgets it (a removed content). With dropPartial, its partial files go too. */
  async forget (infohash: string, opts: { dropPartial?: boolean } = {}): Promise<void> {
    const { state } = this
    state.known.delete(infohash)
    this.swarm.forgetHolders(infohash)
    const entry = state.active.get(infohash)
    if (entry !== undefined) await this.activation.deactivate(entry)
    if (opts.dropPartial === true && isInfoHash(infohash)) {
      await fsp.rm(state.partialPath(infohash), { force: true })
      await fsp.rm(state.bitfieldPath(infohash), { force: true })
    }
  }

  /**
   * `length` bytes at `offset` of a content (fewer at its end). A content complete on this disk is
   * read from it; otherwise from its partial file, after fetching the pieces the range covers from
   * peers, first. Rejects with an FsError of code EIO when they are not all there `deadlineMs`
   * milliseconds from now: never returns bytes that are not verified.
   */
  async read (infohash: string, info: TorrentInfo, offset: number, length: number, deadlineMs: number, into?: Buffer): Promise<Buffer> {
    if (into !== undefined && into.length < length) throw new FsError('EINVAL', `EINVAL: a buffer of ${into.length} bytes for ${length}`)
    return (await this.reads.access(infohash, info, offset, length, deadlineMs, into ?? null)) ?? Buffer.alloc(0)
  }

  /** Fetches the pieces `length` bytes at `offset` cover onto this disk (a read that returns nothing); same deadline and errors as read(). */
  async fetch (infohash: string, info: TorrentInfo, offset: number, length: number, deadlineMs: number): Promise<void> {
    await this.reads.access(infohash, info, offset, length, deadlineMs, 'none')
  }

  /**
   * Resolves true once the content is complete in contentDir (at once if it is already), false
   * after `timeoutMs`: a fetch of its last piece returns before the file is synced and moved there.
   */
  async completed (infohash: string, timeoutMs: number): Promise<boolean> {
    return await this.partials.completed(infohash, timeoutMs)
  }

  /**
   * Which pieces of a content this disk holds: all of them for a complete content; for a partial
   * one, its bitfield (BitTorrent's layout, a copy); null when it holds none.
   */
  async progress (infohash: string, info: TorrentInfo): Promise<{ complete: boolean, pieces: number, bitfield: Uint8Array } | null> {
    return await this.reads.progress(infohash, info)
  }

  stats (): TorrentStats {
    return { port: this.port, active: [...this.state.active.keys()], ...this.state.counters }
  }

  /** Stops every torrent (partial bitfields are written) and the client. */
  destroy (): Promise<void> {
    this.destroying ??= (async () => {
      this.state.destroyed = true
      await Promise.all([...this.state.active.values()].map(e => this.activation.deactivate(e)))
      await this.swarm.destroy()
    })()
    return this.destroying
  }
}

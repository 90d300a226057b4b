// Active torrents: webtorrent handles tens of torrents well and thousands badly, so at most
// `maxActive` are in the client, in LRU order (a read, a seed, an upload to a peer count as a use;
// torrents with a read in progress are never evicted). An inactive torrent is activated
//   - by a read on this node (read() activates it, then connects to the cluster's peers);
//   - by a peer asking for it: ConnPool routes an incoming handshake with `client.get(infoHash)`;
//     that one method of our client is wrapped (swarm-client.ts) so that an infohash this node
//     holds (complete, or partial with a bitfield) but has not active is activated, and the
//     connection is handed to it once ready (a few milliseconds; the peer waits up to 25 s for
//     our handshake);
//   - by seed(), which the node calls when a content is written, so new contents stay active
//     while they are likely to be read elsewhere.
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import type { Torrent, Wire } from 'webtorrent'
import { FsError, SwarmError } from '../core/errors.js'
import { infoHash, isInfoHash, isValidInfo, pieceCount, type TorrentInfo } from '../core/torrent-info.js'
import { bitfieldLength, readBitfield } from './bitfield.js'
import type { PartialFiles } from './partial-files.js'
import { eio, PieceFile } from './piece-file.js'
import type { SwarmClient } from './swarm-client.js'
import { Entry, type SwarmState } from './swarm-state.js'

const DEFAULT_MAX_ACTIVE = 64

export class Activation {
  private readonly maxActive: number
  /** Infos already checked against their infohash. */
  private readonly checked = new WeakMap<TorrentInfo, string>()

  /** `claimPiece`: room for a piece about to be written (room.ts). */
  constructor (
    private readonly state: SwarmState,
    private readonly swarm: SwarmClient,
    private readonly partials: PartialFiles,
    private readonly claimPiece: (bytes: number) => Promise<void>
  ) {
    this.maxActive = Math.max(1, state.opts.maxActive ?? DEFAULT_MAX_ACTIVE)
  }

  checkInfo (infohash: string, info: TorrentInfo): void {
    if (this.checked.get(info) === infohash) return
    // An equal copy of an info checked before (callers may pass a fresh object per read).
    const ref = this.state.active.get(infohash)?.info ?? this.state.known.get(infohash)
    if (ref !== undefined && ref.name === info.name && ref.length === info.length && ref.pieceLength === info.pieceLength && ref.pieces === info.pieces) {
      this.checked.set(info, infohash)
      return
    }
    if (!isInfoHash(infohash)) throw new FsError('EINVAL', `EINVAL: not an infohash: ${JSON.stringify(infohash)}`)
    if (!isValidInfo(info)) throw eio(`malformed torrent info for ${infohash}`)
    if (info.name !== this.state.opts.volumeId) throw eio(`torrent info of another volume for ${infohash}`)
    if (infoHash(info) !== infohash) throw eio(`torrent info does not hash to ${infohash}`)
    this.checked.set(info, infohash)
  }

  /** The active entry of a content, made and started if needed (the caller awaits entry.ready). */
  activate (infohash: string, info: TorrentInfo): Entry {
    const { active } = this.state
    const existing = active.get(infohash)
    if (existing !== undefined) {
      this.state.touch(existing)
      return existing
    }
    // Starts as partial; start() looks at the disk (after any shutdown of the same content).
    const entry = new Entry(infohash, info, 'partial', pieceCount(info.length, info.pieceLength))
    active.set(infohash, entry)
    entry.ready = this.start(entry)
    entry.ready.catch(err => {
      this.state.log.warn('could not activate a torrent', { infohash, err })
      void this.deactivate(entry)
    })
    this.evict()
    return entry
  }

  private evict (): void {
    const { active } = this.state
    if (active.size <= this.maxActive) return
    for (const entry of [...active.values()]) {
      if (active.size <= this.maxActive) break
      if (entry.pins > 0 || entry.completing) continue
      this.state.log.debug('deactivating a torrent (least recently used)', { infohash: entry.infohash })
      void this.deactivate(entry)
    }
  }

  private async start (entry: Entry): Promise<Torrent> {
    const { state, partials } = this
    const ih = entry.infohash
    await state.closing.get(ih)?.catch(() => {})
    if (entry.closed || state.destroyed) throw stopped('torrent deactivated while starting')
    const seeding = await fsp.access(state.contentPath(ih)).then(() => true, () => false)
    entry.kind = seeding ? 'seed' : 'partial'
    const store = await PieceFile.open(seeding ? state.contentPath(ih) : state.partialPath(ih), entry.info, !seeding, bytes => this.claimPiece(bytes))
    entry.store = store
    let bits: Uint8Array | undefined
    if (!seeding) bits = (await readBitfield(state.bitfieldPath(ih), entry.pieces)) ?? new Uint8Array(bitfieldLength(entry.pieces))
    if (entry.closed || state.destroyed) throw stopped('torrent deactivated while starting')
    // A complete content is trusted as it is (skipVerify: no hashing of the whole file at start).
    // A partial one passes its bitfield: webtorrent then hashes one present piece as a spot check
    // (all of them only if that one fails) and never hashes the holes; an all-zero bitfield (never
    // absent) keeps it from hashing a fresh sparse file.
    const torrent = this.swarm.add(entry.info, {
      preloadedStore: store,
      storeCacheSlots: 0,
      deselect: true,
      skipVerify: seeding,
      bitfield: bits,
      strategy: 'sequential',
      alwaysChokeSeeders: true,
      path: state.opts.partialDir
    })
    entry.torrent = torrent
    torrent.on('error', (err: Error) => {
      state.log.error('torrent error', { infohash: ih, err })
      void this.deactivate(entry)
    })
    torrent.on('warning', (err: Error) => {
      if (/failed verification/.test(err.message)) {
        state.counters.hashFailures++
        entry.hashFailures++
        // A corrupt holder sends the same bad piece again and again: log the first and then rarely.
        if ((entry.hashFailures & (entry.hashFailures - 1)) === 0) state.log.warn('a piece from a peer failed its hash check (discarded)', { infohash: ih, message: err.message, failures: entry.hashFailures })
        const piece = /Piece (\d+) failed/.exec(err.message)
        if (piece !== null) state.opts.onHashFailure?.(ih, Number(piece[1]))
      } else {
        state.log.debug('torrent warning', { infohash: ih, err })
      }
    })
    torrent.on('verified', (index: number) => {
      if (entry.started) {
        state.counters.piecesFetched++
        entry.unsynced.push(index)
        entry.dirty = true
        partials.schedulePersist(entry)
      }
      const waiting = entry.waiters.get(index)
      if (waiting !== undefined) {
        entry.waiters.delete(index)
        for (const f of waiting) f(index)
      }
    })
    torrent.on('done', () => { if (entry.kind === 'partial') partials.complete(entry) })
    torrent.on('wire', (wire: Wire) => this.swarm.onWire(wire, entry))
    torrent.on('upload', () => {
      const now = Date.now()
      if (now - entry.lastUploadTouch > 1_000) {
        entry.lastUploadTouch = now
        state.touch(entry)
      }
    })
    await new Promise<void>((resolve, reject) => {
      if (torrent.ready) return resolve()
      const onReady = (): void => { torrent.removeListener('close', onClose); resolve() }
      const onClose = (): void => { torrent.removeListener('ready', onReady); reject(stopped('torrent closed while starting')) }
      torrent.once('ready', onReady)
      torrent.once('close', onClose)
    })
    if (torrent.infoHash !== ih) throw new SwarmError('SWARMFS_INTERNAL', `webtorrent computed infohash ${torrent.infoHash} for ${ih}`)
    entry.bitfield = torrent.bitfield
    entry.started = true
    if (bits !== undefined && !Buffer.from(bits).equals(Buffer.from(torrent.bitfield.buffer.subarray(0, bits.length)))) {
      // The spot check found a claimed piece missing and rescanned: keep what it found.
      entry.dirty = true
      partials.schedulePersist(entry)
    }
    state.log.debug('torrent active', { infohash: ih, kind: entry.kind, active: state.active.size })
    return torrent
  }

  /** The torrent of a content a peer's handshake names: activated when this disk holds it; null otherwise. */
  async activateForPeer (infohash: string): Promise<Torrent | null> {
    const { state } = this
    if (state.destroyed) return null
    let entry = state.active.get(infohash)
    if (entry === undefined) {
      let info: TorrentInfo | null
      try {
        info = state.infoOf(infohash)
        if (info === null) return null
        this.checkInfo(infohash, info)
      } catch (err) {
        state.log.warn('no usable info for a torrent a peer asked for', { infohash, err })
        return null
      }
      if (!fs.existsSync(state.contentPath(infohash)) && !fs.existsSync(state.bitfieldPath(infohash))) return null
      state.log.debug('activating a torrent a peer asked for', { infohash })
      entry = this.activate(infohash, info)
    } else {
      state.touch(entry)
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
  deactivate (entry: Entry, dropPartial = false): Promise<void> {
    const { state, partials } = this
    if (entry.shutdown !== null) return entry.shutdown
    entry.closed = true
    if (state.active.get(entry.infohash) === entry) state.active.delete(entry.infohash)
    for (const f of [...entry.onClose]) f()
    partials.cancelPersist(entry)
    const destroyTorrent = async (): Promise<void> => {
      const t = entry.torrent
      if (t !== null && !t.destroyed) await new Promise<void>(resolve => t.destroy(() => resolve()))
    }
    entry.shutdown = (async () => {
      await destroyTorrent()
      await entry.ready.catch(() => {})
      await destroyTorrent()
      partials.enqueue(entry, () => partials.persistNow(entry))
      await entry.chain
      await entry.store?.release().catch(err => state.log.warn('closing a content file failed', { infohash: entry.infohash, err }))
      if (entry.kind === 'partial' && (dropPartial || (entry.bitfield !== null && entry.bitfield.buffer.every(b => b === 0)))) {
        // Evicted, or nothing was fetched (a read that failed): leave no empty sparse file behind.
        await fsp.rm(state.partialPath(entry.infohash), { force: true }).catch(() => {})
        await fsp.rm(state.bitfieldPath(entry.infohash), { force: true }).catch(() => {})
      } else if (entry.kind === 'partial' && entry.read) {
        // Inactive partial contents are evicted oldest bitfield first (room.ts, idlePartials): one
        // read again from the disk, with nothing fetched and so no bitfield written, is as recent
        // as a fetch, or a film watched again would be the first to go.
        const now = new Date()
        await fsp.utimes(state.bitfieldPath(entry.infohash), now, now).catch(() => {})
      }
    })()
    const shutdown = entry.shutdown
    state.closing.set(entry.infohash, shutdown)
    shutdown.catch(err => state.log.error('deactivating a torrent failed', { infohash: entry.infohash, err })).then(() => {
      if (state.closing.get(entry.infohash) === shutdown) state.closing.delete(entry.infohash)
    }, () => {})
    return shutdown
  }

  /**
   * Runs `work` on a content's files with no torrent of it open: its active torrent is deactivated
   * first (or a closing under way awaited), and `work` is registered as the content's closing, so
   * an activation meanwhile (a read, a peer asking) waits for it and opens what it leaves.
   */
  async whileClosed<T> (infohash: string, work: () => Promise<T>): Promise<T> {
    const { state } = this
    const entry = state.active.get(infohash)
    const before = entry !== undefined ? this.deactivate(entry) : state.closing.get(infohash)
    const running = (async () => {
      await before?.catch(() => {})
      return await work()
    })()
    const closing = running.then(() => {}, () => {})
    state.closing.set(infohash, closing)
    try {
      return await running
    } finally {
      if (state.closing.get(infohash) === closing) state.closing.delete(infohash)
    }
  }
}

/** A torrent that went away under a start: the node is stopping, or the torrent was evicted (a read's withDeadline makes it its EIO). */
function stopped (message: string): SwarmError {
  return new SwarmError('SWARMFS_STOPPING', message)
}

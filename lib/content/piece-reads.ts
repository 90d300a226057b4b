// Reads of a content this disk does not hold completely. The pieces a read covers get a selection
// of their own at priority 1 and are marked critical (webtorrent may then take a block away from a
// slow peer); sequential reads add a read-ahead window (priority 0, doubling up to
// `maxReadAheadBytes`) that moves with the reader, and a seek drops it. Each read waits for
// exactly its pieces, verified by SHA-1 (webtorrent hashes every received piece and puts only
// those that match), until its deadline, then fails with EIO.
import fsp from 'node:fs/promises'
import type { Torrent } from 'webtorrent'
import { FsError } from '../core/errors.js'
import { pieceBytes, pieceCount, type TorrentInfo } from '../core/torrent-info.js'
import type { Activation } from './activation.js'
import { bitfieldLength, readBitfield } from './bitfield.js'
import { eio, readLocal } from './piece-file.js'
import type { Room } from './room.js'
import type { SwarmClient } from './swarm-client.js'
import type { Entry, Selection, SwarmState } from './swarm-state.js'
import { removeSelection, selectPieces } from './webtorrent-internals.js'

const DEFAULT_MAX_READ_AHEAD = 32 << 20
const PRIORITY_READ = 1
const PRIORITY_READ_AHEAD = 0
/** A read this late past its deadline is not filled (see access()). */
const LATE_READ_MS = 1_000

export class PieceReads {
  private readonly maxReadAhead: number

  constructor (
    private readonly state: SwarmState,
    private readonly activation: Activation,
    private readonly room: Room,
    private readonly swarm: SwarmClient
  ) {
    this.maxReadAhead = Math.max(0, state.opts.maxReadAheadBytes ?? DEFAULT_MAX_READ_AHEAD)
  }

  /**
   * The bytes `length` at `offset` cover, into `into` (a new buffer when null), or, with 'none',
   * only fetched onto this disk. See TorrentService.read and fetch.
   */
  async access (infohash: string, info: TorrentInfo, offset: number, length: number, deadlineMs: number, into: Buffer | null | 'none'): Promise<Buffer | null> {
    const { state, activation, room } = this
    activation.checkInfo(infohash, info)
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) throw new FsError('EINVAL', `EINVAL: bad range ${offset}+${length}`)
    const end = Math.min(info.length, offset + length)
    if (end <= offset) return Buffer.alloc(0)
    const deadline = Date.now() + Math.max(0, deadlineMs)
    // An active torrent reads through its open file (complete or partial); otherwise a complete
    // content is read straight from the disk, without activating anything. The caller (vfs) read
    // the local file already, but the content may have completed since (the last piece of a
    // read-ahead, a copy), and reading it here costs no activation.
    if (state.active.get(infohash)?.started !== true) {
      if (into === 'none') {
        if (await fsp.access(state.contentPath(infohash)).then(() => true, () => false)) return null
      } else {
        const local = await readLocal(state.contentPath(infohash), offset, end - offset, into ?? undefined)
        if (local !== null) return local
      }
    }
    if (state.destroyed) throw eio('torrent service stopped')

    const pl = info.pieceLength
    const span = { first: Math.floor(offset / pl), last: Math.floor((end - 1) / pl) }
    const { first, last } = span
    const entry = activation.activate(infohash, info)
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
        await room.makeRoom(entry, missingBytes, deadline)
        if (torrent.destroyed) throw eio(`torrent ${infohash} was deactivated during a read`, { infohash })
        selection = select(torrent, first, last, PRIORITY_READ)
        torrent.critical(first, last)
        this.swarm.connectAll(entry)
      }
      this.moveReadAhead(entry, torrent, offset, end, room.room() - missingBytes)
      if (missing.length > 0) {
        try {
          await waitPieces(entry, missing, deadline)
        } finally {
          unselect(torrent, selection)
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
      unselect(torrent, entry.readAhead)
      entry.readAhead = null
      return
    }
    entry.readAheadBytes = Math.min(Math.max(this.maxReadAhead, pl), Math.max(2 * pl, entry.readAheadBytes * 2))
    // Half the disk's room at most: the window's pieces are claimed only as they arrive.
    const windowPieces = Math.min(Math.ceil(entry.readAheadBytes / pl), Math.floor(Math.max(0, room / 2) / pl))
    const from = Math.floor((end - 1) / pl) + 1
    const to = Math.min(entry.pieces - 1, from + windowPieces - 1)
    if (entry.readAhead !== null && entry.readAhead.from === from && entry.readAhead.to === to) return
    unselect(torrent, entry.readAhead)
    entry.readAhead = null
    if (from > to) return
    let start = from
    while (start <= to && torrent.bitfield.get(start)) start++
    if (start > to) return
    const selection = select(torrent, start, to, PRIORITY_READ_AHEAD)
    entry.readAhead = { from, to, tag: selection.tag }
  }

  /**
   * Which pieces of a content this disk holds: all of them for a complete content; for a partial
   * one, its bitfield (BitTorrent's layout, a copy); null when it holds none.
   */
  async progress (infohash: string, info: TorrentInfo): Promise<{ complete: boolean, pieces: number, bitfield: Uint8Array } | null> {
    const { state } = this
    this.activation.checkInfo(infohash, info)
    const pieces = pieceCount(info.length, info.pieceLength)
    const entry = state.active.get(infohash)
    if (entry?.started === true && entry.bitfield !== null) {
      const bitfield = Uint8Array.from(entry.bitfield.buffer.subarray(0, bitfieldLength(pieces)))
      return { complete: entry.kind === 'seed', pieces, bitfield }
    }
    if (await fsp.access(state.contentPath(infohash)).then(() => true, () => false)) {
      const bitfield = new Uint8Array(bitfieldLength(pieces))
      for (let i = 0; i < pieces; i++) bitfield[i >> 3] |= 128 >> (i & 7)
      return { complete: true, pieces, bitfield }
    }
    const bitfield = await readBitfield(state.bitfieldPath(infohash), pieces)
    return bitfield === null ? null : { complete: false, pieces, bitfield }
  }
}

function select (torrent: Torrent, from: number, to: number, priority: number): Selection {
  const tag = (): void => {}
  selectPieces(torrent, from, to, priority, tag)
  return { from, to, tag }
}

/** Removes exactly our selection (webtorrent drops completed ones itself). */
function unselect (torrent: Torrent, selection: Selection | null): void {
  if (selection === null || torrent.destroyed) return
  removeSelection(torrent, selection.tag)
}

function waitPieces (entry: Entry, pieces: number[], deadline: number): Promise<void> {
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

function withDeadline<T> (promise: Promise<T>, deadline: number, error: () => Error): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(error()), Math.max(0, deadline - Date.now()))
    promise.then(v => { clearTimeout(timer); resolve(v) }, err => { clearTimeout(timer); reject(err instanceof FsError ? err : eio((err as Error).message)) })
  })
}

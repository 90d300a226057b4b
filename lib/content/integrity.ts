// Checks of this disk's copies against their pieces' hashes (swarmfs scrub, or a peer telling of a
// bad piece). A complete copy that fails goes back to the partial contents with a bitfield of the
// pieces still right; a partial one's bad pieces are dropped from its bitfield. Each check runs
// with no torrent of the content open (Activation.whileClosed).
import fsp from 'node:fs/promises'
import { syncDir } from '../core/durable.js'
import { SwarmError } from '../core/errors.js'
import { isInfoHash, pieceBytes, pieceCount, type TorrentInfo } from '../core/torrent-info.js'
import type { Activation } from './activation.js'
import { clearPiece, hasPiece, readBitfield, writeBitfield } from './bitfield.js'
import { failingPresentPieces, intactPieces, pieceIsIntact } from './piece-check.js'
import type { CopyCheck, SwarmState } from './swarm-state.js'

export class Integrity {
  /** checkPiece calls in flight, by infohash: one check of a copy at a time. */
  private readonly checking = new Map<string, Promise<CopyCheck>>()

  constructor (private readonly state: SwarmState, private readonly activation: Activation) {}

  /** Checks this disk's complete copy of a content at one piece, which a peer's read found bad; a bad one is checked whole (checkCopy). */
  async checkPiece (infohash: string, index: number): Promise<CopyCheck> {
    const info = this.state.infoOf(infohash)
    if (info === null || !Number.isSafeInteger(index) || index < 0 || index >= pieceCount(info.length, info.pieceLength)) return 'not held'
    const running = this.checking.get(infohash)
    if (running !== undefined) return await running
    try {
      if (await pieceIsIntact(this.state.contentPath(infohash), info, index)) return 'intact'
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
    const info = this.state.infoOf(infohash)
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

  private async checkWhole (infohash: string, info: TorrentInfo, onBytes?: (n: number) => void): Promise<CopyCheck> {
    const { state } = this
    const path = state.contentPath(infohash)
    let found: { bits: Uint8Array, bad: number[] }
    try {
      found = await intactPieces(path, info, onBytes)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'not held'
      throw err
    }
    if (found.bad.length === 0) return 'intact'
    if (state.destroyed) throw serviceStopped()
    // A torrent started meanwhile (a peer asking) opens the partial file, never the bad copy as a seed.
    await this.activation.whileClosed(infohash, async () => {
      await fsp.rename(path, state.partialPath(infohash))
      await writeBitfield(state.bitfieldPath(infohash), found.bits)
      await syncDir(state.opts.contentDir)
      await syncDir(state.opts.partialDir)
    })
    const { bad } = found
    state.log.warn('this disk\'s copy of a content has pieces that fail their hash check: kept as a partial content until they are fetched again', { infohash, bad: bad.length, pieces: pieceCount(info.length, info.pieceLength), first: bad[0] })
    state.opts.onCopyDamaged?.(infohash, info, bad)
    return 'damaged'
  }

  /**
   * The partial contents on this disk (pieces kept from reads, copies under way) whose info is
   * known, each with the bytes of the pieces its bitfield says it holds: what scrub checks of them.
   */
  async partialContents (): Promise<Array<{ infohash: string, bytes: number }>> {
    const { state } = this
    const names = await fsp.readdir(state.opts.partialDir).catch(() => [] as string[])
    const found: Array<{ infohash: string, bytes: number }> = []
    for (const name of names) {
      const ih = name.endsWith('.bitfield') ? name.slice(0, -'.bitfield'.length) : ''
      const info = isInfoHash(ih) ? state.infoOf(ih) : null
      if (info === null) continue
      const pieces = pieceCount(info.length, info.pieceLength)
      const bits = state.active.get(ih)?.bitfield?.buffer ?? await readBitfield(state.bitfieldPath(ih), pieces)
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
    const { state } = this
    const info = state.infoOf(infohash)
    if (info === null || this.checking.has(infohash)) return 'not held'
    if (state.destroyed) throw serviceStopped()
    const entry = state.active.get(infohash)
    if (entry !== undefined && (entry.kind !== 'partial' || entry.pins > 0 || entry.completing || entry.keepAll)) return entry.kind === 'partial' ? 'in use' : 'not held'
    // An activation meanwhile (a read, a peer asking) opens the bitfield the check leaves.
    const bad = await this.activation.whileClosed(infohash, async (): Promise<number[] | null> => {
      const bits = await readBitfield(state.bitfieldPath(infohash), pieceCount(info.length, info.pieceLength))
      if (bits === null) return null
      let failing: number[]
      try {
        failing = await failingPresentPieces(state.partialPath(infohash), info, bits, onBytes)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
        throw err
      }
      if (failing.length === 0) return failing
      for (const i of failing) clearPiece(bits, i)
      await writeBitfield(state.bitfieldPath(infohash), bits)
      return failing
    })
    if (bad === null) return 'not held'
    if (bad.length === 0) return 'intact'
    state.log.warn('pieces kept from reads fail their hash check: dropped, to be fetched again when read', { infohash, bad: bad.length, first: bad[0] })
    return 'damaged'
  }
}

export function serviceStopped (): SwarmError {
  return new SwarmError('SWARMFS_STOPPING', 'EIO: torrent service stopped')
}

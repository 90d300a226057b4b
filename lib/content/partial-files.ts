// A partial content on the disk: the torrent's storage is a sparse file <partialDir>/<infohash>
// plus <partialDir>/<infohash>.bitfield, written at most once a second, after an fdatasync of the
// data, so it never names bytes that are not on the disk. When every piece is there the file is
// fsynced and renamed to <contentDir>/<infohash>: an ordinary complete content, seeded. Every
// disk step of one content runs in its entry's chain, in order.
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import { syncDir } from '../core/durable.js'
import { bitfieldLength, writeBitfield } from './bitfield.js'
import type { PieceFile } from './piece-file.js'
import { dropIfBothSeed } from './swarm-client.js'
import { pieceRuns, type Entry, type SwarmState } from './swarm-state.js'

/** How often, at most, a partial content's bitfield is written while pieces arrive. */
const PERSIST_INTERVAL_MS = 1_000

export class PartialFiles {
  /** Callers of completed() waiting for a partial content to become complete, by infohash. */
  private readonly completeWaiters = new Map<string, Set<() => void>>()

  constructor (private readonly state: SwarmState) {}

  /** Runs `step` after the content's earlier disk steps. */
  enqueue (entry: Entry, step: () => Promise<void>): void {
    entry.chain = entry.chain.then(step).catch(err => this.state.log.error('partial content bookkeeping failed', { infohash: entry.infohash, err }))
  }

  /** A piece was verified (or the bitfield changed): it is written within PERSIST_INTERVAL_MS. */
  schedulePersist (entry: Entry): void {
    if (entry.persistTimer !== null || entry.kind !== 'partial' || entry.closed) return
    entry.persistTimer = setTimeout(() => {
      entry.persistTimer = null
      this.enqueue(entry, () => this.persistNow(entry))
    }, PERSIST_INTERVAL_MS)
  }

  cancelPersist (entry: Entry): void {
    if (entry.persistTimer !== null) clearTimeout(entry.persistTimer)
    entry.persistTimer = null
  }

  async persistNow (entry: Entry): Promise<void> {
    if (entry.kind !== 'partial' || !entry.dirty || entry.bitfield === null || entry.store === null) return
    entry.dirty = false
    // Snapshot first: every piece it names was written before now, so the fdatasync covers it.
    const bits = Uint8Array.from(entry.bitfield.buffer.subarray(0, bitfieldLength(entry.pieces)))
    const synced = entry.unsynced.splice(0)
    await entry.store.fdatasync()
    await writeBitfield(this.state.bitfieldPath(entry.infohash), bits)
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
      await store.dropCached(first * pl, (last - first + 1) * pl).catch(err => this.state.log.debug('dropping cached pages failed', { infohash: entry.infohash, err }))
    }
  }

  /** Every piece is here: the partial file becomes the complete content (then seeded as such). */
  complete (entry: Entry): void {
    if (entry.completing || entry.kind !== 'partial') return
    entry.completing = true
    this.cancelPersist(entry)
    const { state } = this
    this.enqueue(entry, async () => {
      const ih = entry.infohash
      try {
        if (entry.store === null) return
        await entry.store.fsync()
        entry.cachedSynced.push(...entry.unsynced.splice(0))
        await this.dropBehindReader(entry, entry.store)
        const from = state.partialPath(ih)
        const to = state.contentPath(ih)
        try {
          await fsp.rename(from, to)
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err
          await fsp.copyFile(from, to)
          await fsp.rm(from, { force: true })
        }
        await syncDir(state.opts.contentDir)
        entry.kind = 'seed'
        setImmediate(() => { for (const wire of [...entry.torrent?.wires ?? []]) dropIfBothSeed(entry, wire) })
        await fsp.rm(state.bitfieldPath(ih), { force: true })
        state.known.set(ih, entry.info)
        state.log.info('content complete', { infohash: ih, length: entry.info.length })
        try {
          state.opts.onComplete?.(ih, entry.info, !entry.keepAll)
        } catch (err) {
          state.log.error('onComplete threw', { infohash: ih, err })
        }
        for (const wake of this.completeWaiters.get(ih) ?? []) wake()
      } finally {
        entry.completing = false
      }
    })
  }

  /**
   * Resolves true once the content is complete in contentDir (at once if it is already), false
   * after `timeoutMs`: a fetch of its last piece returns before the file is synced and moved there.
   */
  async completed (infohash: string, timeoutMs: number): Promise<boolean> {
    const path = this.state.contentPath(infohash)
    if (fs.existsSync(path)) return true
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
      const timer = setTimeout(() => done(fs.existsSync(path)), timeoutMs)
      waiters.add(wake)
    })
  }
}

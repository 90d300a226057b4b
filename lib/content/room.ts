// Room on the disk: fetched pieces are a cache, and never take the room the disk keeps free (the
// node's reserve; the metadata's room is guarded at each write, space-guard.ts). A read that
// needs room first evicts partial contents no read uses, least recently used first; then, in a
// content too large to complete in the room there is (a film larger than the free space), the
// pieces readers have left behind (punched out of the sparse file, the bitfield first). Contents
// fetched whole (a copy, a copy-on-write) keep every piece. Still short, it asks the replicator
// to drop a copy the volume holds beyond its target (files earlier reads completed here) and may
// take the reserve meanwhile, never the metadata's room: there it fails with ENOSPC. Read-ahead
// windows shrink to the room above the reserve.
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import { join } from 'node:path'
import { FsError } from '../core/errors.js'
import { isInfoHash, pieceBytes } from '../core/torrent-info.js'
import type { PartialFiles } from './partial-files.js'
import { pieceRuns, type Entry, type SwarmState } from './swarm-state.js'
import { markUnverified } from './webtorrent-internals.js'

/** Room a read that evicts asks for beyond its own pieces, so the next reads find some. */
const EVICT_BATCH = 16 << 20
/** How long a read on a disk without room waits for the replicator to drop a copy. */
const ROOM_WAIT_MS = 3_000
const ROOM_POLL_MS = 100

export class Room {
  /** The eviction under way (makeRoom). */
  private evicting: Promise<void> = Promise.resolve()

  /** `deactivate`: takes a torrent out of the client (activation.ts), its partial files too with `dropPartial`. */
  constructor (
    private readonly state: SwarmState,
    private readonly partials: PartialFiles,
    private readonly deactivate: (entry: Entry, dropPartial: boolean) => Promise<void>
  ) {}

  /** Bytes fetched pieces may still take on this disk (Infinity without a space guard). */
  room (): number {
    const space = this.state.opts.space
    return space === undefined ? Infinity : space.guard.room(space.floor)
  }

  /**
   * Room for `bytes` of pieces `entry` is about to fetch, made when the disk has too little by
   * evicting cached pieces (and a batch more, so the next reads find some). One eviction at a
   * time: concurrent reads would evict for the same need. ENOSPC when nothing gives room in time.
   */
  async makeRoom (entry: Entry, bytes: number, deadline: number): Promise<void> {
    const space = this.state.opts.space
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
    const space = this.state.opts.space
    for (;;) {
      if (enough()) return true
      if (space === undefined || Date.now() >= giveUp || this.state.destroyed) return false
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
  async claimPiece (bytes: number): Promise<void> {
    const space = this.state.opts.space
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
    const space = this.state.opts.space
    if (space === undefined || this.room() >= want) return
    if (await this.evictUntil(await this.idlePartials(entry), want)) return
    const reclaimable = space.reclaimable?.() ?? 0
    for (const e of [entry, ...[...this.state.active.values()].filter(e => e !== entry)]) {
      if (!punchAll && missingBytes(e) <= Math.max(0, this.room()) + reclaimable) continue
      const freed = await this.punchBehind(e)
      space.guard.stale()
      if (freed > 0) this.state.log.debug('punched pieces readers have left behind to make room', { infohash: e.infohash, bytes: freed })
      if (this.room() >= want) return
    }
  }

  /**
   * Partial contents whose pieces nothing needs now, least recently used first: those not active,
   * then active ones no read or copy uses.
   */
  private async idlePartials (except: Entry): Promise<string[]> {
    const idle = [...this.state.active.values()].filter(e => e !== except && e.kind === 'partial' && e.pins === 0 && !e.completing && !e.keepAll)
    return [...await this.inactivePartials(), ...idle.map(e => e.infohash)]
  }

  /**
   * Partial contents with no torrent, least recently used first: by their bitfield's mtime (when it
   * was last written, or when the content was last deactivated after a read).
   */
  private async inactivePartials (): Promise<string[]> {
    const { partialDir } = this.state.opts
    const names = await fsp.readdir(partialDir).catch(() => [] as string[])
    const inactive: Array<{ ih: string, at: number }> = []
    for (const name of names) {
      const ih = name.endsWith('.bitfield') ? name.slice(0, -'.bitfield'.length) : ''
      if (!isInfoHash(ih) || this.state.active.has(ih)) continue
      const st = await fsp.stat(join(partialDir, name)).catch(() => null)
      if (st !== null) inactive.push({ ih, at: st.mtimeMs })
    }
    return inactive.sort((x, y) => x.at - y.at).map(x => x.ih)
  }

  /**
   * Evicts partial contents with no torrent until `want` bytes are free above the floor. For a
   * piece being written: it waits for no torrent (one closing may be waiting for that very write).
   */
  private async evictInactivePartials (want: number): Promise<void> {
    await this.evictUntil(await this.inactivePartials(), want, ih => this.state.active.has(ih) || this.state.closing.has(ih))
  }

  /** Evicts the partial contents `ihs` in turn (but those `skip` names now) until `want` bytes are free above the floor; whether they are. */
  private async evictUntil (ihs: string[], want: number, skip: (ih: string) => boolean = () => false): Promise<boolean> {
    const space = this.state.opts.space
    if (space === undefined) return true
    for (const ih of ihs) {
      if (this.room() >= want) return true
      if (skip(ih)) continue
      const freed = await this.evictPartial(ih)
      space.guard.stale()
      if (freed > 0) this.state.log.info('evicted a cached partial content to make room', { infohash: ih, bytes: freed })
    }
    return this.room() >= want
  }

  /** Removes a partial content's files (deactivating it first); the bytes its file took. */
  private async evictPartial (ih: string): Promise<number> {
    const { state } = this
    const path = state.partialPath(ih)
    const bytes = await fsp.stat(path).then(st => st.blocks * 512, () => 0)
    const entry = state.active.get(ih)
    if (entry !== undefined) {
      if (entry.kind !== 'partial' || entry.pins > 0 || entry.completing || entry.keepAll) return 0
      await this.deactivate(entry, true)
      return bytes
    }
    await state.closing.get(ih)?.catch(() => {})
    // Checked and removed in one turn of the event loop: an activation starting now would open them.
    if (state.active.has(ih)) return 0
    fs.rmSync(path, { force: true })
    fs.rmSync(state.bitfieldPath(ih), { force: true })
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
    for (const i of gone) markUnverified(t, i)
    const goneSet = new Set(gone)
    entry.unsynced = entry.unsynced.filter(i => !goneSet.has(i))
    entry.cachedSynced = entry.cachedSynced.filter(i => !goneSet.has(i))
    entry.dirty = true
    let freed = 0
    let punched!: () => void
    entry.punching = new Promise<void>(resolve => { punched = resolve })
    await new Promise<void>(resolve => this.partials.enqueue(entry, async () => {
      try {
        await this.partials.persistNow(entry)
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
}

/** Bytes of a partial content not on this disk yet. */
function missingBytes (entry: Entry): number {
  const t = entry.torrent
  if (t === null || entry.kind !== 'partial') return 0
  let bytes = 0
  for (let i = 0; i < entry.pieces; i++) if (!t.bitfield.get(i)) bytes += pieceBytes(entry.info, i)
  return bytes
}

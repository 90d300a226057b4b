// This node's own holdings as peers get them (GET /holdings), kept up to date as things change
// rather than taken again whole every round: the lists (complete, cached, dropping, copying) are
// sets changed in place, every change gets a generation of its own, and a bounded log of recent
// changes lets a peer that has an older generation get only what changed since (a delta). The
// small figures (space, transfers under way) travel whole in every answer; a change of them makes
// a new generation too, but only when it is one a peer plans on (free space in MiB, a transfer's
// progress in steps of 16 MiB), so an idle node keeps answering `unchanged`.
//
// An answer always shows the sets as they are at that moment, which drops.ts's rule rests on: a
// drop announced is in every answer from then until the drop is done, and a content dropped is in
// none after.
import { SET_NAMES, type CopyProgress, type Holdings, type HoldingsDelta, type SetName, type Unchanged } from './holdings.js'

/** Changes kept for deltas; a peer further behind gets the whole document. */
const DEFAULT_LOG_LIMIT = 262_144

export interface SmallFigures {
  total: number
  free: number
  reserve: number
  retiring: boolean
  /** Transfers under way (started), with their progress. */
  progress: CopyProgress[]
}

interface Change { gen: number, set: SetName, ih: string, add: boolean }

export class OwnHoldings {
  readonly sets: Record<SetName, Set<string>> = { complete: new Set(), cached: new Set(), dropping: new Set(), copying: new Set() }
  /** Distinguishes this run's generations from a previous run's (a restarted node counts from 0 again). */
  private readonly epoch: string
  private gen = 0
  private readonly log: Change[] = []
  /** log[head] is the oldest change kept (entries before it are spent, removed in batches). */
  private head = 0
  /** A delta can be made from this generation on: every change after it is in the log. */
  private oldest = 0
  /**
   * No generation of this run has been shown to anyone yet, so no peer can ask for the changes
   * since one: changes are not logged until then. A start fills the lists with everything the
   * disk holds, and logging that would keep up to logLimit changes (~17 MB at a million
   * contents) that only a whole document can answer.
   */
  private unseen = true
  private small: SmallFigures = { total: 0, free: 0, reserve: 0, retiring: false, progress: [] }
  private smallKey = ''
  /** Known copy lengths, for the whole document's `copying` entries of announced copies. */
  private readonly lengthOf: (ih: string) => number

  constructor (private readonly nodeId: string, opts: { epoch: string, lengthOf: (ih: string) => number, logLimit?: number }) {
    this.epoch = opts.epoch
    this.lengthOf = opts.lengthOf
    this.logLimit = opts.logLimit ?? DEFAULT_LOG_LIMIT
  }

  private readonly logLimit: number

  get generation (): string {
    this.unseen = false
    return `${this.epoch}.${this.gen}`
  }

  /** Adds or removes `ih` in one of the lists; true when that changed it. */
  set (set: SetName, ih: string, present: boolean): boolean {
    const s = this.sets[set]
    if (s.has(ih) === present) return false
    if (present) s.add(ih)
    else s.delete(ih)
    if (this.unseen) {
      this.oldest = ++this.gen
      return true
    }
    this.log.push({ gen: ++this.gen, set, ih, add: present })
    if (this.log.length - this.head > this.logLimit) this.trim()
    return true
  }

  has (set: SetName, ih: string): boolean {
    return this.sets[set].has(ih)
  }

  /** The small figures now; a new generation when they changed in a way peers plan on. */
  setSmall (small: SmallFigures): void {
    this.small = small
    const key = JSON.stringify([small.total, Math.floor(small.free / 2 ** 20), small.reserve, small.retiring, small.progress.map(c => [c.infohash, Math.floor(c.done / 2 ** 24)])])
    if (key === this.smallKey) return
    this.smallKey = key
    this.gen++
  }

  get figures (): SmallFigures {
    return this.small
  }

  private trim (): void {
    // Drop the oldest half of what is kept at once, so trimming costs O(1) per change.
    const keep = Math.floor(this.logLimit / 2)
    const end = this.log.length - keep
    this.oldest = this.log[end - 1].gen
    this.head = end
    if (this.head > this.log.length / 2) {
      this.log.splice(0, this.head)
      this.head = 0
    }
  }

  /** The whole document (what old nodes, and peers too far behind, get). */
  whole (): Holdings {
    const { total, free, reserve, retiring, progress } = this.small
    const started = new Map(progress.map(p => [p.infohash, p]))
    const copying: CopyProgress[] = []
    for (const ih of this.sets.copying) copying.push(started.get(ih) ?? { infohash: ih, done: 0, total: this.lengthOf(ih), started: false })
    return {
      v: 1,
      nodeId: this.nodeId,
      generation: this.generation,
      total,
      free,
      reserve,
      complete: [...this.sets.complete],
      cached: [...this.sets.cached],
      copying,
      dropping: [...this.sets.dropping],
      retiring
    }
  }

  /** The changes since generation `have`, or null when this run's log no longer reaches back to it. */
  delta (have: string): HoldingsDelta | null {
    const dot = have.lastIndexOf('.')
    if (dot < 0 || have.slice(0, dot) !== this.epoch) return null
    const from = Number(have.slice(dot + 1))
    if (!Number.isSafeInteger(from) || from < this.oldest || from >= this.gen) return null
    // The first change after `from` (the log is in generation order).
    let lo = this.head
    let hi = this.log.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (this.log[mid].gen <= from) lo = mid + 1
      else hi = mid
    }
    // Net effect per (list, content): one that was added and removed again since is no change.
    const net = new Map<string, { set: SetName, ih: string, first: boolean, last: boolean }>()
    for (let i = lo; i < this.log.length; i++) {
      const c = this.log[i]
      const key = c.set + c.ih
      const seen = net.get(key)
      if (seen === undefined) net.set(key, { set: c.set, ih: c.ih, first: c.add, last: c.add })
      else seen.last = c.add
    }
    const add = emptyChanges()
    const remove = emptyChanges()
    for (const n of net.values()) {
      // Adds and removes alternate for one content, so the first says what it was before.
      if (n.first && n.last) add[n.set].push(n.ih)
      else if (!n.first && !n.last) remove[n.set].push(n.ih)
    }
    const { total, free, reserve, retiring, progress } = this.small
    return { v: 1, delta: true, nodeId: this.nodeId, from: have, generation: this.generation, total, free, reserve, retiring, progress, add, remove }
  }

  /**
   * What a peer asking with `have` gets: `unchanged`, a delta when it can take one (`delta`) and
   * one is smaller than the whole document, else the whole document.
   */
  answer (have: string | null, delta: boolean): Holdings | HoldingsDelta | Unchanged {
    if (have === this.generation) return { v: 1, unchanged: true, generation: this.generation }
    if (delta && have !== null) {
      const d = this.delta(have)
      if (d !== null && changesIn(d) <= Math.max(1024, this.sets.complete.size / 2)) return d
    }
    return this.whole()
  }
}

function emptyChanges (): Record<SetName, string[]> {
  return { complete: [], cached: [], dropping: [], copying: [] }
}

function changesIn (d: HoldingsDelta): number {
  let n = 0
  for (const name of SET_NAMES) n += d.add[name].length + d.remove[name].length
  return n
}

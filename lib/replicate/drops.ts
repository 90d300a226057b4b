// Which copies this node may let go, and when: for room (its disk below its reserve, or reads
// wanting room) or as an extra copy it made itself (two nodes raced for one copy). A pure function
// of the views, like plan.ts, plus the node's own drop announcements.
//
// A drop is announced before it is made: the content appears in the node's holdings as `dropping`.
// The node drops it only when holders it heard in this very round (live now, not merely within the
// grace period), asked after its announcement was in its holdings, hold it completely, are not
// retiring and do not announce a drop of it themselves, at least `copies` of them. That rule alone
// keeps every content at the target whatever the views' delays: if N and M both dropped X, each
// counting the other, N asked M after N's announcement and M was not announcing then, so M
// announced later than N did; and symmetrically N announced later than M, which cannot be. (A
// node's announcement stays in its holdings from the moment it first shows until the drop is done,
// and its holdings stop listing the content as complete from then on: replicator.ts.)
//
// Announcing is what lets the rule make progress: a node announces a drop only while it is among
// the first (by priority: short of room first, then the lowest rendezvous rank, the same on every
// node) of as many holders as there are copies beyond the target, counting the holders that
// announce a drop of it and those that would; a node behind them withdraws, and the others then
// see it as a holder that stays.
import { rank, type ContentNeed, type NodeView } from './plan.js'

/** Drops announced at once: enough to free room in one go, few enough to keep holdings small. */
export const MAX_DROPPING = 64

export interface DropInput {
  self: string
  contents: ContentNeed[]
  /** Every node's view, this node's own among them. */
  nodes: NodeView[]
  copies: number
  /** This node's drop announcements: infohash → when its holdings first showed it (null: not yet). */
  announced: ReadonlyMap<string, number | null>
  /** Copies this node made for the target: the only ones it lets go as extra copies. */
  made: ReadonlySet<string>
}

export interface DropPlan {
  /** Contents to announce (or keep announcing) a drop of, in the order they would go. */
  announce: string[]
  /** Announced contents whose drop is confirmed now: enough other live holders stay. */
  drop: string[]
}

const pressed = (n: NodeView): boolean => n.free < n.reserve

/** Where `me` stands among those who may drop `ih`: short of room first, then the lowest rank. */
function place (ih: string, me: NodeView, rivals: NodeView[]): number {
  const mine = rank(ih, me.nodeId)
  return rivals.filter(n => n !== me && (pressed(n) !== pressed(me) ? pressed(n) : rank(ih, n.nodeId) < mine)).length
}

export function planDrops (input: DropInput): DropPlan {
  const { self, nodes, copies, announced, made } = input
  const me = nodes.find(n => n.nodeId === self)
  if (me === undefined || me.retiring) return { announce: [], drop: [] }
  const short = pressed(me)
  const want: Array<{ ih: string, length: number, drop: boolean }> = []
  for (const c of input.contents) {
    const ih = c.infohash
    if (!me.complete.has(ih)) continue
    const live = nodes.filter(n => n.live && !n.retiring && n.complete.has(ih))
    // For room any copy may go; as an extra only one this node made, while nobody holding the
    // content is short of room (they drop first), and with copies cached by reads not counted: a
    // reader's cache is the copy to go when its disk wants room, so trimming a copy made for the
    // target in its favour would leave the reader holding one it can no longer drop.
    let kept: NodeView[]
    if (short) kept = live
    else if (made.has(ih) && !live.some(pressed)) kept = live.filter(n => !n.cached.has(ih))
    else continue
    if (!kept.includes(me)) continue
    const at = announced.get(ih)
    const stay = kept.filter(n => n !== me && !n.dropping.has(ih) && typeof at === 'number' && n.heardAt > at)
    const drop = typeof at === 'number' && stay.length >= copies
    const extra = kept.length - copies
    if (!drop && extra <= 0) continue
    // Who may announce it: those who do, and those who would (short of room too; for a trim any
    // holder), so that nodes seeing the same facts announce no more drops than there are extras.
    const rivals = kept.filter(n => n !== me && (n.dropping.has(ih) || !short || pressed(n)))
    if (drop || place(ih, me, rivals) < extra) want.push({ ih, length: c.length, drop })
  }
  // Largest first for room (fewest drops for the bytes), then by infohash so the choice is stable;
  // for room, only as many as the disk is short of (the first one at least).
  want.sort((a, b) => b.length - a.length || (a.ih < b.ih ? -1 : 1))
  const chosen = short ? upTo(want, me.reserve - me.free) : want.slice(0, MAX_DROPPING)
  return { announce: chosen.map(w => w.ih), drop: (short ? upTo(chosen.filter(w => w.drop), me.reserve - me.free) : chosen.filter(w => w.drop)).map(w => w.ih) }
}

/** The first of `list` until their lengths reach `bytes` (one at least, MAX_DROPPING at most). */
function upTo<T extends { length: number }> (list: T[], bytes: number): T[] {
  let sum = 0
  let n = 0
  while (n < list.length && n < MAX_DROPPING && (n === 0 || sum < bytes)) sum += list[n++].length
  return list.slice(0, n)
}

/**
 * This node's drop announcements and when they first showed in its holdings. Drives the rule's
 * one assumption: an announcement shows continuously from then until its drop is done.
 */
export class DropAnnouncements {
  private readonly at = new Map<string, number | null>()

  get map (): ReadonlyMap<string, number | null> {
    return this.at
  }

  /** What the holdings list now. */
  list (): string[] {
    return [...this.at.keys()]
  }

  /** The plan's choice: new ones added (not shown yet), the rest withdrawn; `keep` (a drop under way) stays. */
  update (announce: string[], keep?: string): boolean {
    const wanted = new Set(announce)
    let changed = false
    for (const ih of [...this.at.keys()]) {
      if (!wanted.has(ih) && ih !== keep) changed = this.at.delete(ih) || changed
    }
    for (const ih of wanted) {
      if (this.at.has(ih)) continue
      this.at.set(ih, null)
      changed = true
    }
    return changed
  }

  /** Holdings listing every announcement made so far are what peers get from `now` on. */
  shown (now: number): void {
    for (const [ih, at] of this.at) if (at === null) this.at.set(ih, now)
  }

  /** Dropped (or its drop failed: it is announced anew should it still be wanted). */
  done (ih: string): void {
    this.at.delete(ih)
  }

  clear (): void {
    this.at.clear()
  }
}

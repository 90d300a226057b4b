// Which node copies which content, and which copies may go: a pure function of what every node
// last said it holds, so that nodes looking at the same facts make the same choice and two of them
// do not race to make the same copy.
//
// Holders of a content: nodes whose word still counts (heard from, or gone for less than the grace
// period), not retiring, holding it completely. When holders fall short of the target, the missing
// copies go first to nodes that already announced they are copying it (ranked among themselves by
// a rendezvous hash of (content, node), the same on every node), then to the nodes that are up,
// not retiring, without the content and with room for it above their reserve: most free space
// first (in steps of FREE_STEP, so two nodes' slightly different readings of a disk that is being
// written do not change the order), then the rendezvous hash, which spreads contents evenly over
// equal disks. A node announces a copy before it starts it (replicator.ts), so when two nodes
// chose the same copy from different views, both see the two announcements and the same one
// of them goes ahead. Which copies may go is drops.ts's: a drop needs holders live now, a copy
// needs holders that count.
import { createHash } from 'node:crypto'

/** Free space is compared in steps of this many bytes. */
export const FREE_STEP = 1 << 30

export interface NodeView {
  nodeId: string
  /** Its disk, as it last reported it. */
  total: number
  free: number
  /** Bytes it keeps free: it takes no copy that would go below. */
  reserve: number
  /** Contents it holds completely. */
  complete: ReadonlySet<string>
  /** Those of `complete` that reads there fetched: a cache, which never makes a copy made for the target extra. */
  cached: ReadonlySet<string>
  /** Contents it announced it will copy, or is copying. */
  copying: ReadonlySet<string>
  /** Those of `copying` whose transfer has started. */
  fetching: ReadonlySet<string>
  retiring: boolean
  /** Heard from in the last rounds: it can take a copy. */
  up: boolean
  /** Up, or gone for less than the grace period: what it holds still counts. */
  counts: boolean
  /** Contents it announced it will drop. */
  dropping: ReadonlySet<string>
  /** Answered in this round: live now (what a drop needs, drops.ts). */
  live: boolean
  /** When the request its last answer came from was sent (this node's monotonic clock, ms). */
  heardAt: number
}

export interface ContentNeed {
  infohash: string
  length: number
}

export interface Plan {
  /** Contents this node should copy (or keep copying), in order (largest shortfall first, then infohash). */
  copy: string[]
  /** Contents with fewer complete copies (on nodes that count, retiring ones excluded) than the target. */
  underTarget: number
  /** Contents nobody that counts holds completely. */
  lost: number
}

/** Deterministic rank of a node for a content (rendezvous hashing): higher is preferred. */
export function rank (infohash: string, nodeId: string): string {
  return createHash('sha1').update(infohash).update('\0').update(nodeId).digest('hex')
}

function holders (ih: string, nodes: NodeView[]): number {
  let n = 0
  for (const v of nodes) if (v.counts && !v.retiring && v.complete.has(ih)) n++
  return n
}

/**
 * Whether `self` is among the first `short` candidates for a new copy of `c`: a transfer under way
 * first (it cannot be called back), then announcements by rank, then the nodes with room, most
 * free space first (in steps), then the rendezvous hash. Ranks are computed only when the order
 * among more candidates than there are copies to make decides (once per candidate then).
 */
export function chosen (self: string, c: ContentNeed, nodes: NodeView[], short: number): boolean {
  const copiers: NodeView[] = []
  const others: NodeView[] = []
  let mine = false
  for (const n of nodes) {
    if (!n.up || n.retiring || n.complete.has(c.infohash)) continue
    if (n.copying.has(c.infohash)) copiers.push(n)
    else if (n.free - n.reserve >= c.length) others.push(n)
    else continue
    if (n.nodeId === self) mine = true
  }
  if (!mine) return false
  if (copiers.length + others.length <= short) return true
  const byRank = (a: { r: string }, b: { r: string }): number => a.r < b.r ? 1 : a.r > b.r ? -1 : 0
  const order: NodeView[] = []
  if (copiers.length > 0) {
    order.push(...copiers.map(n => ({ n, started: n.fetching.has(c.infohash) ? 1 : 0, r: rank(c.infohash, n.nodeId) }))
      .sort((a, b) => b.started - a.started || byRank(a, b)).map(x => x.n))
  }
  if (order.length < short) {
    order.push(...others.map(n => ({ n, step: Math.floor(n.free / FREE_STEP), r: rank(c.infohash, n.nodeId) }))
      .sort((a, b) => b.step - a.step || byRank(a, b)).map(x => x.n))
  }
  for (let i = 0; i < short && i < order.length; i++) if (order[i].nodeId === self) return true
  return false
}

/** The copies `self` should make of one content that `have` nodes that count hold (short of `copies`). */
export function wants (self: string, c: ContentNeed, nodes: NodeView[], have: number, copies: number): boolean {
  // Nobody that counts holds it: there is nothing to copy from (and this node may simply not
  // have heard from the holders yet).
  return have > 0 && have < copies && chosen(self, c, nodes, copies - have)
}

/** The whole plan over every content (replicator.ts plans incrementally, tally.ts; this is its reference). */
export function plan (self: string, contents: Iterable<ContentNeed>, nodes: NodeView[], copies: number): Plan {
  const wanted: Array<{ ih: string, short: number }> = []
  let underTarget = 0
  let lost = 0
  for (const c of contents) {
    const have = holders(c.infohash, nodes)
    if (have === 0) lost++
    if (have < copies) underTarget++
    if (wants(self, c, nodes, have, copies)) wanted.push({ ih: c.infohash, short: copies - have })
  }
  wanted.sort((a, b) => b.short - a.short || (a.ih < b.ih ? -1 : a.ih > b.ih ? 1 : 0))
  return { copy: wanted.map(w => w.ih), underTarget, lost }
}

/**
 * What a retiring node still waits for: contents it holds completely that do not yet have
 * `copies` complete copies on other nodes that are live now, not retiring and not announcing a
 * drop of them (its leaving takes its copies away as a drop does: drops.ts).
 */
export function retireRemaining (self: string, contents: ContentNeed[], nodes: NodeView[], copies: number): ContentNeed[] {
  const me = nodes.find(n => n.nodeId === self)
  if (me === undefined) return []
  return contents.filter(c => me.complete.has(c.infohash) &&
    nodes.filter(n => n.nodeId !== self && n.live && !n.retiring && n.complete.has(c.infohash) && !n.dropping.has(c.infohash)).length < copies)
}

/** Why a node cannot retire now (null when it can try): too few other nodes, or too little room on them. */
export function retireObstacle (self: string, contents: ContentNeed[], nodes: NodeView[], copies: number): string | null {
  const others = nodes.filter(n => n.nodeId !== self && n.up && !n.retiring)
  if (others.length < copies) {
    return `the volume keeps ${copies} ${copies === 1 ? 'copy' : 'copies'} of every file and only ${others.length} other ${others.length === 1 ? 'node is' : 'nodes are'} running: ` +
      `add a disk first (swarmfs join <invite> --disk <dir>), or lower the target (swarmfs volume --copies <n>)`
  }
  const missing = retireRemaining(self, contents, nodes, copies)
  let needed = 0
  for (const c of missing) {
    const have = others.filter(n => n.complete.has(c.infohash)).length
    needed += (copies - have) * c.length
  }
  const room = others.reduce((sum, n) => sum + Math.max(0, n.free - n.reserve), 0)
  if (needed > room) {
    return `the other nodes have ${formatBytes(room)} free above their reserve and the files of this disk need ${formatBytes(needed)} more: add a disk first`
  }
  return null
}

export function formatBytes (n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB']
  let v = n
  let u = 0
  while (Math.abs(v) >= 1024 && u < units.length - 1) {
    v /= 1024
    u++
  }
  return `${u === 0 ? v : v.toFixed(1)} ${units[u]}`
}

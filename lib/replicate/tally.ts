// How many nodes that count hold each content, kept as holdings change (a peer's delta, this
// disk's own changes, a node whose word stops or starts counting), so that a round with nothing
// changed plans over nothing: the contents of the tree under the target sit in buckets by their
// number of holders, those above it in a set of their own (the only ones a drop may take). The
// plan itself is plan.ts's rule, asked of these contents only.
//
// Holders of a content, as in plan.ts: nodes whose word counts (up, or gone for less than the
// grace period), not retiring, holding it completely. The replicator tells the tally each change
// of a holder's contribution (`held`), and of the tree (`treeAdd`, `treeRemove`).

export class Tally {
  /** Holders that count, by content (any content some holder holds, in the tree or not). */
  private readonly count = new Map<string, number>()
  /** The tree's contents: infohash → length. */
  readonly tree = new Map<string, number>()
  /** under[n]: contents of the tree with n holders (n below the target). */
  private under: Array<Set<string>> = []
  /** Contents of the tree with more holders than the target. */
  readonly over = new Set<string>()

  constructor (private copies: number) {
    this.under = Array.from({ length: Math.max(0, copies) }, () => new Set<string>())
  }

  get target (): number {
    return this.copies
  }

  holders (ih: string): number {
    return this.count.get(ih) ?? 0
  }

  /** One holder more (+1) or less (-1) of `ih`. */
  held (ih: string, by: 1 | -1): void {
    const before = this.count.get(ih) ?? 0
    const after = before + by
    if (after <= 0) this.count.delete(ih)
    else this.count.set(ih, after)
    if (this.tree.has(ih)) this.move(ih, before, Math.max(0, after))
  }

  treeAdd (ih: string, length: number): void {
    if (this.tree.has(ih)) {
      this.tree.set(ih, length)
      return
    }
    this.tree.set(ih, length)
    this.place(ih, this.holders(ih))
  }

  treeRemove (ih: string): void {
    if (!this.tree.delete(ih)) return
    const n = this.holders(ih)
    if (n < this.copies) this.under[n].delete(ih)
    else if (n > this.copies) this.over.delete(ih)
  }

  private place (ih: string, n: number): void {
    if (n < this.copies) this.under[n].add(ih)
    else if (n > this.copies) this.over.add(ih)
  }

  private move (ih: string, from: number, to: number): void {
    if (from < this.copies) this.under[from].delete(ih)
    else if (from > this.copies) this.over.delete(ih)
    this.place(ih, to)
  }

  /** A new target: every content is placed again, in slices of `slice` with `pause` between them. */
  async setTarget (copies: number, pause: () => Promise<void>, slice = 20_000): Promise<void> {
    if (copies === this.copies) return
    this.copies = copies
    this.under = Array.from({ length: Math.max(0, copies) }, () => new Set<string>())
    this.over.clear()
    let i = 0
    for (const ih of this.tree.keys()) {
      this.place(ih, this.holders(ih))
      if (++i % slice === 0) await pause()
    }
  }

  /** Contents of the tree under the target: those with the fewest holders (at least one) first. */
  underTarget (): number {
    let n = 0
    for (const s of this.under) n += s.size
    return n
  }

  /** Contents of the tree no holder that counts holds. */
  lost (): number {
    return this.under[0]?.size ?? 0
  }

  /** The buckets of contents under the target that have holders to copy from, fewest holders first. */
  shortBuckets (): Array<{ holders: number, contents: ReadonlySet<string> }> {
    return this.under.slice(1).map((contents, i) => ({ holders: i + 1, contents }))
  }
}

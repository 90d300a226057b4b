// The incremental tally (tally.ts) against the whole plan (plan.ts), on random views changing
// step by step: holders joining and leaving, contents added to and removed from the tree, nodes
// whose word stops counting, the target moving. After every step the tally's counts, its
// buckets and what `wants` picks from them are what the whole plan says.
import t from 'tap'
import { plan, wants, type NodeView } from '../../lib/replicate/plan.js'
import { Tally } from '../../lib/replicate/tally.js'
import { prng } from '../helpers/volume.js'

const GiB = 2 ** 30
const ih = (n: number): string => n.toString(16).padStart(40, '0')
const ids = ['a000000000000001', 'b000000000000002', 'c000000000000003', 'd000000000000004']

function view (nodeId: string): NodeView & { complete: Set<string>, copying: Set<string> } {
  return { nodeId, total: 100 * GiB, free: 50 * GiB, reserve: GiB, up: true, counts: true, live: true, heardAt: 1, retiring: false, complete: new Set(), cached: new Set(), copying: new Set(), fetching: new Set(), dropping: new Set() }
}

t.test('the tally follows every change as the whole plan sees it', async t => {
  for (const seed of [1, 2, 3, 4]) {
    const rnd = prng(seed)
    const views = ids.map(view)
    const tree = new Map<string, number>()
    let copies = 2
    const tally = new Tally(copies)
    const contributes = (v: NodeView): boolean => v.counts && !v.retiring
    for (let step = 0; step < 300; step++) {
      const r = rnd()
      const v = views[Math.floor(rnd() * views.length)]
      const x = ih(1 + Math.floor(rnd() * 60))
      if (r < 0.45) {
        const had = v.complete.has(x)
        if (had) v.complete.delete(x)
        else v.complete.add(x)
        if (contributes(v)) tally.held(x, had ? -1 : 1)
      } else if (r < 0.7) {
        if (tree.has(x)) {
          tree.delete(x)
          tally.treeRemove(x)
        } else {
          const length = 1 + Math.floor(rnd() * 3) * GiB
          tree.set(x, length)
          tally.treeAdd(x, length)
        }
      } else if (r < 0.8) {
        // A node's word stops or starts counting (its grace period), or it retires.
        const before = contributes(v)
        if (rnd() < 0.5) {
          v.counts = !v.counts
          v.up = v.counts
        } else v.retiring = !v.retiring
        if (contributes(v) !== before) for (const y of v.complete) tally.held(y, contributes(v) ? 1 : -1)
      } else if (r < 0.85) {
        copies = 1 + Math.floor(rnd() * 3)
        await tally.setTarget(copies, async () => {}, 7)
      } else if (r < 0.95) {
        if (v.copying.has(x)) v.copying.delete(x)
        else v.copying.add(x)
      } else {
        v.free = Math.floor(rnd() * 4) * GiB
      }
      const contents = [...tree].map(([infohash, length]) => ({ infohash, length }))
      const whole = plan(ids[0], contents, views, copies)
      const inBuckets = tally.shortBuckets().flatMap(b => [...b.contents].map(c => ({ c, holders: b.holders })))
      const picked = inBuckets.filter(({ c, holders }) => wants(ids[0], { infohash: c, length: tree.get(c) ?? 0 }, views, holders, copies)).map(x => x.c).sort()
      const holdersOf = (c: string): number => views.filter(n => contributes(n) && n.complete.has(c)).length
      if (tally.underTarget() !== whole.underTarget || tally.lost() !== whole.lost || picked.join() !== [...whole.copy].sort().join() ||
          contents.some(c => tally.holders(c.infohash) !== holdersOf(c.infohash)) ||
          [...tally.over].sort().join() !== contents.filter(c => holdersOf(c.infohash) > copies).map(c => c.infohash).sort().join()) {
        t.fail(`seed ${seed}, step ${step}: the tally and the whole plan differ`, { tally: { under: tally.underTarget(), lost: tally.lost(), picked }, whole })
        return
      }
    }
    t.pass(`seed ${seed}: 300 steps, the tally agreed with the whole plan after each`)
  }
})

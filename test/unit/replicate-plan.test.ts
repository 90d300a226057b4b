// The replication plan is a pure function of what the nodes said they hold: these check its rules
// (who copies, who may drop, when retiring can end or cannot start) on made-up views.
import t from 'tap'
import { planDrops } from '../../lib/replicate/drops.js'
import { parseHoldings } from '../../lib/replicate/holdings.js'
import { plan, rank, retireObstacle, retireRemaining, FREE_STEP, type ContentNeed, type NodeView } from '../../lib/replicate/plan.js'

const GiB = 2 ** 30
const ih = (n: number): string => n.toString(16).padStart(40, '0')

function node (nodeId: string, over: Partial<Omit<NodeView, 'complete' | 'cached' | 'copying' | 'fetching' | 'dropping'>> & { complete?: string[], cached?: string[], copying?: string[], fetching?: string[], dropping?: string[] } = {}): NodeView {
  return {
    nodeId,
    total: 100 * GiB,
    free: 50 * GiB,
    reserve: GiB,
    up: true,
    counts: true,
    live: true,
    heardAt: 10,
    retiring: false,
    ...over,
    dropping: new Set(over.dropping ?? []),
    complete: new Set([...(over.complete ?? []), ...(over.cached ?? [])]),
    cached: new Set(over.cached ?? []),
    copying: new Set([...(over.copying ?? []), ...(over.fetching ?? [])]),
    fetching: new Set(over.fetching ?? [])
  }
}

const ids = ['a000000000000001', 'b000000000000002', 'c000000000000003', 'd000000000000004']
const [A, B, C, D] = ids
const contents: ContentNeed[] = Array.from({ length: 40 }, (_, i) => ({ infohash: ih(i + 1), length: 1000 + i }))
const all = contents.map(c => c.infohash)

/** Every node's own plan over the same views: who copies each content. */
function copiers (views: NodeView[], copies: number): Map<string, string[]> {
  const out = new Map<string, string[]>()
  for (const v of views) {
    for (const x of plan(v.nodeId, contents, views, copies).copy) out.set(x, [...(out.get(x) ?? []), v.nodeId])
  }
  return out
}

t.test('one holder, target 2: exactly one other node copies each content, spread over equal disks', async t => {
  const views = [node(A, { complete: all }), node(B), node(C)]
  const who = copiers(views, 2)
  t.equal(who.size, contents.length, 'every content is copied')
  t.ok([...who.values()].every(list => list.length === 1 && list[0] !== A), 'by exactly one node, never the holder')
  const byB = [...who.values()].filter(l => l[0] === B).length
  t.ok(byB > 8 && byB < 32, `spread between B and C (B takes ${byB} of ${contents.length})`)
  t.equal(plan(B, contents, [node(B), node(C)], 2).copy.length, 0, 'no holder heard from: nothing to copy from, nothing copied')
  const p = plan(A, contents, views, 2)
  t.equal(p.underTarget, contents.length, 'every content is under target')
  t.equal(p.lost, 0, 'none is lost')
})

t.test('more free space wins (in steps); the same step falls to the rendezvous hash', async t => {
  const views = [node(A, { complete: all }), node(B, { free: 10 * GiB }), node(C, { free: 90 * GiB })]
  t.same(plan(C, contents, views, 2).copy.length, contents.length, 'the emptier disk takes every copy')
  const near = [node(A, { complete: all }), node(B, { free: 20 * GiB + 5 }), node(C, { free: 20 * GiB + FREE_STEP / 2 })]
  const who = copiers(near, 2)
  t.ok([...who.values()].some(l => l[0] === B) && [...who.values()].some(l => l[0] === C), 'free space within one step does not decide')
})

t.test('an announced copy is ranked first: two nodes that chose the same copy settle on one', async t => {
  const x = contents[0].infohash
  const better = rank(x, B) > rank(x, C) ? B : C
  const worse = better === B ? C : B
  const views = [node(A, { complete: all }), node(B, { copying: [x] }), node(C, { copying: [x] })]
  t.ok(plan(better, contents, views, 2).copy.includes(x), 'the higher-ranked announcer keeps its copy')
  t.notOk(plan(worse, contents, views, 2).copy.includes(x), 'the other withdraws')
  // An announcer goes ahead even when another node has more room.
  const announcedByWorse = [node(A, { complete: all }), node(worse, { copying: [x], free: 2 * GiB }), node(better, { free: 90 * GiB })]
  t.ok(plan(worse, contents, announcedByWorse, 2).copy.includes(x), 'an announced copy is not taken over by a node with more room')
  t.notOk(plan(better, contents, announcedByWorse, 2).copy.includes(x), '... which does not copy it too')
  // A transfer already under way (started from a view that lacked the other node) goes first.
  const started = [node(A, { complete: all }), node(worse, { fetching: [x] }), node(better, { copying: [x] })]
  t.ok(plan(worse, contents, started, 2).copy.includes(x), 'a started transfer keeps its copy')
  t.notOk(plan(better, contents, started, 2).copy.includes(x), '... and a higher-ranked announcer withdraws')
})

t.test('no room above the reserve, retiring, or down: not a candidate', async t => {
  const views = [node(A, { complete: all }), node(B, { free: GiB + 500 }), node(C, { retiring: true }), node(D, { up: false, counts: true })]
  const who = copiers(views, 2)
  t.equal(who.size, 0, 'nobody can take a copy')
  t.equal(plan(A, contents, views, 2).underTarget, contents.length)
})

t.test('holders that count: gone within the grace period yes, after it no, retiring no', async t => {
  const inGrace = [node(A, { complete: all }), node(B, { complete: all, up: false, counts: true }), node(C)]
  t.equal(plan(C, contents, inGrace, 2).copy.length, 0, 'a holder gone within the grace period still counts')
  const gone = [node(A, { complete: all }), node(B, { complete: all, up: false, counts: false }), node(C)]
  t.equal(plan(C, contents, gone, 2).copy.length, contents.length, 'after it, its contents are copied again')
  const retiring = [node(A, { complete: all }), node(B, { complete: all, retiring: true }), node(C)]
  t.equal(plan(C, contents, retiring, 2).copy.length, contents.length, 'a retiring holder does not count')
  const none = [node(A, { up: false, counts: false, complete: all }), node(C)]
  t.equal(plan(C, contents, none, 2).lost, contents.length, 'contents nobody that counts holds are lost')
})

/** What each node would announce, and drop, over the same views, with the drops of `announced` shown at time 0. */
function drops (views: NodeView[], copies: number, announced: Record<string, string[]> = {}, made: string[] = all): { announce: Map<string, string[]>, drop: Map<string, string[]> } {
  const announce = new Map<string, string[]>()
  const drop = new Map<string, string[]>()
  for (const v of views) {
    const p = planDrops({ self: v.nodeId, contents, nodes: views, copies, announced: new Map((announced[v.nodeId] ?? []).map(x => [x, 0])), made: new Set(made) })
    for (const x of p.announce) announce.set(x, [...(announce.get(x) ?? []), v.nodeId])
    for (const x of p.drop) drop.set(x, [...(drop.get(x) ?? []), v.nodeId])
  }
  return { announce, drop }
}

t.test('beyond the target, holders short of room announce a drop first, as many as there are extra copies', async t => {
  const tight = { free: GiB / 2, reserve: 200 * GiB }
  const roomy = [node(A, { complete: all }), node(B, { complete: all }), node(C, { complete: all })]
  t.equal(drops(roomy, 2, {}, []).announce.size, 0, 'nobody short of room and no copy made here: nothing is announced')
  const oneTight = [node(A, { complete: all }), node(B, { complete: all, ...tight }), node(C, { complete: all })]
  const byB = drops(oneTight, 2)
  t.equal(byB.announce.size, contents.length, 'the node short of room announces a drop of each copy beyond the target')
  t.ok([...byB.announce.values()].every(l => l.length === 1 && l[0] === B), '... only it (the others do not trim while it is short)')
  t.equal(byB.drop.size, 0, 'nothing is dropped before it is announced')
  const allTight = [node(A, { complete: all, ...tight }), node(B, { complete: all, ...tight }), node(C, { complete: all, ...tight })]
  const who = drops(allTight, 2)
  t.ok(who.announce.size === contents.length && [...who.announce.values()].every(l => l.length === 1), 'all short of room, one extra copy: exactly one node announces each drop')
  t.equal(drops(allTight, 3).announce.size, 0, 'at the target nothing is announced')
  const four = [...allTight, node(D, { complete: all, ...tight })]
  t.ok([...drops(four, 2).announce.values()].every(l => l.length === 2), 'two extra copies: two announce')
  const alone = planDrops({ self: B, contents, nodes: [node(A, { complete: all }), node(B, { complete: all, free: 0 })], copies: 2, announced: new Map(), made: new Set() })
  t.same(alone.announce.length, 0, 'a disk short of room with no copy beyond the target announces nothing')
  const few = planDrops({ self: B, contents, nodes: oneTight.map(v => v.nodeId === B ? node(B, { complete: all, free: GiB / 2, reserve: GiB / 2 + 500 }) : v), copies: 2, announced: new Map(), made: new Set() })
  t.equal(few.announce.length, 1, 'short of less than its largest copy: it announces one drop')
  t.equal(few.announce[0], contents[contents.length - 1].infohash, '... the largest')
})

t.test('an announced drop goes ahead only once enough other holders, heard live since, stay', async t => {
  const tight = { free: GiB / 2, reserve: 200 * GiB }
  const x = contents[0].infohash
  const three = (over: Partial<Pick<NodeView, 'heardAt' | 'live' | 'up' | 'counts' | 'retiring'>> = {}, dropping: string[] = []): NodeView[] => [node(A, { complete: all, ...over, dropping }), node(B, { complete: all, ...tight, dropping: [x] }), node(C, { complete: all })]
  const mayDrop = (views: NodeView[], at: number | null = 0): boolean => planDrops({ self: B, contents, nodes: views, copies: 2, announced: new Map([[x, at]]), made: new Set() }).drop.includes(x)
  t.ok(mayDrop(three()), 'A and C heard after the announcement, neither dropping it: B drops')
  t.notOk(mayDrop(three(), null), 'not before its holdings show the announcement')
  t.notOk(mayDrop(three({ heardAt: 0 })), 'not when A\'s answer was asked for before the announcement showed (an older view)')
  t.notOk(mayDrop(three({ live: false, up: true, counts: true })), 'not when A did not answer in this round, though it is within the grace period')
  t.notOk(mayDrop(three({}, [x])), 'not when A announces a drop of it too')
  t.notOk(mayDrop(three({ retiring: true })), 'not when A is retiring')
  t.notOk(mayDrop([node(A, { complete: all.slice(1) }), ...three().slice(1)]), 'not when A holds it only in part')
  // Two announcers with one extra copy: the one ranked first keeps its announcement, the other withdraws.
  const both = [node(A, { complete: all, ...tight, dropping: [x] }), node(B, { complete: all, ...tight, dropping: [x] }), node(C, { complete: all })]
  const first = rank(x, A) < rank(x, B) ? A : B
  const keeps = (self: string): boolean => planDrops({ self, contents, nodes: both, copies: 2, announced: new Map([[x, 0]]), made: new Set() }).announce.includes(x)
  t.ok(keeps(first), 'of two announcers, the lower-ranked keeps its announcement')
  t.notOk(keeps(first === A ? B : A), '... and the other withdraws')
  t.notOk(planDrops({ self: first, contents, nodes: both, copies: 2, announced: new Map([[x, 0]]), made: new Set() }).drop.includes(x), 'neither drops while both announce')
  const pressedFirst = [node(A, { complete: all, dropping: [x] }), node(B, { complete: all, ...tight, dropping: [x] }), node(C, { complete: all })]
  t.ok(planDrops({ self: B, contents, nodes: pressedFirst, copies: 2, announced: new Map([[x, 0]]), made: new Set() }).announce.includes(x), 'a holder short of room goes before one trimming an extra copy')
})

t.test('extra copies: only a copy this node made goes, and a copy cached by reads never makes one extra', async t => {
  const roomy = [node(A, { complete: all }), node(B, { complete: all }), node(C, { complete: all })]
  const trimmers = drops(roomy, 2).announce
  t.ok(trimmers.size === contents.length && [...trimmers.values()].every(l => l.length === 1), 'an extra copy: exactly one holder (the lowest-ranked) announces its trim')
  t.equal(drops(roomy, 2, {}, []).announce.size, 0, 'copies none of them made (written there) are not trimmed')
  t.equal(drops(roomy, 3).announce.size, 0, 'at the target nothing is trimmed')
  const x = contents[0].infohash
  const everyone = roomy.map(v => node(v.nodeId, { complete: all, dropping: [x] }))
  t.same(drops(everyone, 2, { [A]: [x], [B]: [x], [C]: [x] }).drop.get(x), undefined, 'every holder announcing: nobody drops')
  const onlyA = roomy.map(v => node(v.nodeId, { complete: all, dropping: v.nodeId === A ? [x] : [] }))
  t.same(drops(onlyA, 2, { [A]: [x] }).drop.get(x), [A], 'one announcing, heard since by the others: it drops')
  // B read everything (a cache on a disk with room to spare): A and C keep theirs.
  const read = [node(A, { complete: all }), node(B, { cached: all }), node(C, { complete: all })]
  t.equal(drops(read, 2).announce.size, 0, 'a reader\'s cache and two copies made for the target: nobody trims, the reader drops nothing')
  t.equal(drops(read, 2, { [A]: all }).drop.size, 0, '... and a trim announced before does not go ahead')
  const readTight = [node(A, { complete: all }), node(B, { cached: all, free: GiB / 2, reserve: 200 * GiB }), node(C, { complete: all })]
  const who = drops(readTight, 2)
  t.ok(who.announce.size === contents.length && [...who.announce.values()].every(l => l.length === 1 && l[0] === B), 'the reader short of room announces a drop of its cached copies, nobody else')
  const four = [node(A, { complete: all }), node(B, { cached: all }), node(C, { complete: all }), node(D, { complete: all })]
  const trims = drops(four, 2).announce
  t.ok(trims.size === contents.length && [...trims.values()].every(l => l.length === 1 && l[0] !== B), 'three copies made for the target besides a cache: exactly one of the three trims, never the reader')
  // The cached copy still counts as a holder: nothing is copied while it is there.
  const cacheOnly = [node(A, { complete: all }), node(B, { cached: all }), node(C)]
  t.equal(plan(C, contents, cacheOnly, 2).copy.length, 0, 'a cache counts toward the target: no new copy is made')
})

t.test('holdings: the list of cached contents is optional and checked', async t => {
  const base = { v: 1, nodeId: A, generation: '1.1', total: 10, free: 5, reserve: 1, complete: [ih(1)], copying: [], retiring: false }
  const old = parseHoldings(base)
  t.ok(typeof old === 'object' && 'complete' in old && old.cached?.length === 0, 'holdings of an older node (no list) read as nothing cached')
  const withList = parseHoldings({ ...base, cached: [ih(1)] })
  t.ok(typeof withList === 'object' && 'complete' in withList && withList.cached?.[0] === ih(1), 'a list of infohashes is read')
  t.equal(parseHoldings({ ...base, cached: ['nothex'] }), 'bad list of cached contents', 'a malformed list refuses the whole document')
  t.equal(parseHoldings({ ...base, cached: 'x' }), 'bad list of cached contents', '... as does a list that is not one')
  t.ok(typeof old === 'object' && 'complete' in old && old.dropping?.length === 0, 'holdings of an older node (no drops listed) read as no drop announced')
  const dropping = parseHoldings({ ...base, dropping: [ih(1)] })
  t.ok(typeof dropping === 'object' && 'complete' in dropping && dropping.dropping?.[0] === ih(1), 'a list of drops is read')
  t.equal(parseHoldings({ ...base, dropping: Array.from({ length: 1025 }, (_, i) => ih(i)) }), 'bad list of drops', 'a list of drops longer than any node announces refuses the document')
  t.equal(parseHoldings({ ...base, dropping: [42] }), 'bad list of drops', '... as does one that is not of infohashes')
})

t.test('retire: what remains, and when it cannot start', async t => {
  const half = all.slice(0, 20)
  const views = [node(A, { complete: all }), node(B, { complete: half }), node(C)]
  t.equal(retireRemaining(A, contents, views, 2).length, 40, 'nothing of A has 2 copies elsewhere yet')
  const done = [node(A, { complete: all }), node(B, { complete: all }), node(C, { complete: all })]
  t.equal(retireRemaining(A, contents, done, 2).length, 0, 'with B and C holding everything, A is drained')
  t.equal(retireObstacle(A, contents, views, 2), null, 'two other nodes with room: A can retire')
  t.match(retireObstacle(A, contents, [node(A, { complete: all }), node(B)], 2), /only 1 other node is running/, 'one other node for a target of 2: refused')
  const full = [node(A, { complete: all }), node(B, { free: GiB }), node(C, { free: GiB })]
  t.match(retireObstacle(A, contents, full, 2), /free above their reserve/, 'no room on the others: refused')
})

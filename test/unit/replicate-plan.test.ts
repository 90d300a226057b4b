// The replication plan is a pure function of what the nodes said they hold: these check its rules
// (who copies, who may drop, when retiring can end or cannot start) on made-up views.
import t from 'tap'
import { parseHoldings } from '../../lib/replicate/holdings.js'
import { plan, rank, retireObstacle, retireRemaining, FREE_STEP, type ContentNeed, type NodeView } from '../../lib/replicate/plan.js'

const GiB = 2 ** 30
const ih = (n: number): string => n.toString(16).padStart(40, '0')

function node (nodeId: string, over: Partial<Omit<NodeView, 'complete' | 'cached' | 'copying' | 'fetching'>> & { complete?: string[], cached?: string[], copying?: string[], fetching?: string[] } = {}): NodeView {
  return {
    nodeId,
    total: 100 * GiB,
    free: 50 * GiB,
    reserve: GiB,
    up: true,
    counts: true,
    retiring: false,
    ...over,
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

t.test('beyond the target, only the lowest-ranked holder short of room may drop its copy', async t => {
  const tight = { free: GiB / 2 }
  const droppers = (views: NodeView[], copies: number): Map<string, string[]> => {
    const out = new Map<string, string[]>()
    for (const v of views) for (const x of plan(v.nodeId, contents, views, copies).droppable) out.set(x, [...(out.get(x) ?? []), v.nodeId])
    return out
  }
  const roomy = [node(A, { complete: all }), node(B, { complete: all }), node(C, { complete: all })]
  t.equal(droppers(roomy, 2).size, 0, 'nobody short of room: nothing is dropped')
  const oneTight = [node(A, { complete: all }), node(B, { complete: all, ...tight }), node(C, { complete: all })]
  const byB = droppers(oneTight, 2)
  t.equal(byB.size, contents.length, 'the node short of room may drop any of its copies beyond the target')
  t.ok([...byB.values()].every(l => l.length === 1 && l[0] === B), '... and only it')
  const allTight = [node(A, { complete: all, ...tight }), node(B, { complete: all, ...tight }), node(C, { complete: all, ...tight })]
  const who = droppers(allTight, 2)
  t.ok(who.size === contents.length && [...who.values()].every(l => l.length === 1), 'all short of room: exactly one node may drop each content')
  t.equal(droppers(allTight, 3).size, 0, 'at the target nothing may be dropped')
  const trimmers = new Map<string, string[]>()
  for (const v of roomy) for (const x of plan(v.nodeId, contents, roomy, 2).trimmable) trimmers.set(x, [...(trimmers.get(x) ?? []), v.nodeId])
  t.ok(trimmers.size === contents.length && [...trimmers.values()].every(l => l.length === 1), 'an extra copy: exactly one holder (the lowest-ranked) may trim it')
  t.equal(plan(A, contents, roomy, 3).trimmable.length, 0, 'at the target nothing is trimmed')
  const trimmedWhilePressed = oneTight.flatMap(v => plan(v.nodeId, contents, oneTight, 2).trimmable)
  t.equal(trimmedWhilePressed.length, 0, 'while a holder is short of room, only it drops: nobody trims')
})

t.test('a copy cached by reads never makes a copy made for the target extra', async t => {
  const trimmers = (views: NodeView[]): Map<string, string[]> => {
    const out = new Map<string, string[]>()
    for (const v of views) for (const x of plan(v.nodeId, contents, views, 2).trimmable) out.set(x, [...(out.get(x) ?? []), v.nodeId])
    return out
  }
  // B read everything (a cache on a disk with room to spare): A and C keep theirs.
  const read = [node(A, { complete: all }), node(B, { cached: all }), node(C, { complete: all })]
  t.equal(trimmers(read).size, 0, 'a reader\'s cache and two copies made for the target: nobody trims')
  t.equal(plan(B, contents, read, 2).droppable.length, 0, 'and the reader, with room, drops nothing')
  const readTight = [node(A, { complete: all }), node(B, { cached: all, free: GiB / 2 }), node(C, { complete: all })]
  const byB = plan(B, contents, readTight, 2).droppable
  t.equal(byB.length, contents.length, 'the reader short of room may drop any of its cached copies')
  t.equal(trimmers(readTight).size, 0, '... and nobody else lets a copy go')
  // Three copies made for the target besides a cache: one extra, trimmed by exactly one of the three.
  const four = [node(A, { complete: all }), node(B, { cached: all }), node(C, { complete: all }), node(D, { complete: all })]
  const who = trimmers(four)
  t.equal(who.size, contents.length, 'three copies kept besides a cache: each content has a trimmer')
  t.ok([...who.values()].every(l => l.length === 1 && l[0] !== B), '... exactly one, never the reader of the cache')
  // The cached copy still counts as a holder: nothing is copied while it is there.
  const onlyA = [node(A, { complete: all }), node(B, { cached: all }), node(C)]
  t.equal(plan(C, contents, onlyA, 2).copy.length, 0, 'a cache counts toward the target: no new copy is made')
})

t.test('holdings: the list of cached contents is optional and checked', async t => {
  const base = { v: 1, nodeId: A, generation: '1.1', total: 10, free: 5, reserve: 1, complete: [ih(1)], copying: [], retiring: false }
  const old = parseHoldings(base)
  t.ok(typeof old === 'object' && 'complete' in old && old.cached?.length === 0, 'holdings of an older node (no list) read as nothing cached')
  const withList = parseHoldings({ ...base, cached: [ih(1)] })
  t.ok(typeof withList === 'object' && 'complete' in withList && withList.cached?.[0] === ih(1), 'a list of infohashes is read')
  t.equal(parseHoldings({ ...base, cached: ['nothex'] }), 'bad list of cached contents', 'a malformed list refuses the whole document')
  t.equal(parseHoldings({ ...base, cached: 'x' }), 'bad list of cached contents', '... as does a list that is not one')
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

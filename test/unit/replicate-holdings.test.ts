// Holdings as changes (holdings-log.ts, holdings.ts): a peer following a node's answers (deltas,
// whole documents when it is too far behind, `unchanged`) holds exactly what the node holds, and a
// delta that does not follow from what the receiver holds, or breaks a bound, is refused whole.
import t from 'tap'
import type { Test } from 'tap'
import { applyDelta, holdingsSets, parseHoldings, SET_NAMES, type HoldingsDelta, type PeerHoldings, type SetName } from '../../lib/replicate/holdings.js'
import { OwnHoldings } from '../../lib/replicate/holdings-log.js'
import { prng } from '../helpers/volume.js'

const ih = (n: number): string => n.toString(16).padStart(40, '0')
const NODE = 'a000000000000001'
const small = (free: number): { total: number, free: number, reserve: number, retiring: boolean, progress: [] } => ({ total: 100 * 2 ** 30, free, reserve: 2 ** 30, retiring: false, progress: [] })

/** A receiver's copy of a node's holdings, kept from its answers as the replicator keeps it. */
function follow (own: OwnHoldings, held: PeerHoldings | null, kinds: string[]): PeerHoldings {
  const raw = JSON.parse(JSON.stringify(own.answer(held?.generation ?? null, true)))
  const a = parseHoldings(raw)
  if (typeof a === 'string') throw new Error(a)
  if ('unchanged' in a) {
    kinds.push('unchanged')
    if (held === null || held.generation !== a.generation) throw new Error('unchanged for another generation')
    return held
  }
  if ('delta' in a) {
    kinds.push('delta')
    if (held === null) throw new Error('a delta with nothing held')
    const wrong = applyDelta(held, a, () => {})
    if (wrong !== null) throw new Error(wrong)
    return held
  }
  kinds.push('whole')
  return holdingsSets(a)
}

function same (t: Test, own: OwnHoldings, held: PeerHoldings, what: string): void {
  for (const name of SET_NAMES) t.same([...held[name]].sort(), [...own.sets[name]].sort(), `${what}: ${name}`)
  t.equal(held.generation, own.generation, `${what}: generation`)
}

t.test('a peer following the answers holds what the node holds, through deltas, whole documents and unchanged', async t => {
  const rnd = prng(11)
  const own = new OwnHoldings(NODE, { epoch: 'e1', lengthOf: () => 1000, logLimit: 200 })
  own.setSmall(small(50 * 2 ** 30))
  const kinds: string[] = []
  let held = follow(own, null, kinds)
  for (let step = 0; step < 60; step++) {
    // A burst of changes to every list (some added then removed again within one burst).
    const burst = Math.floor(rnd() * (step % 10 === 9 ? 400 : 40))
    for (let i = 0; i < burst; i++) {
      const name: SetName = SET_NAMES[Math.floor(rnd() * SET_NAMES.length)]
      const x = ih(1 + Math.floor(rnd() * (name === 'dropping' ? 50 : 500)))
      own.set(name, x, !own.has(name, x))
    }
    if (rnd() < 0.3) own.setSmall(small(Math.floor(rnd() * 100) * 2 ** 30))
    held = follow(own, held, kinds)
    same(t, own, held, `step ${step}`)
  }
  held = follow(own, held, kinds)
  t.equal(kinds[kinds.length - 1], 'unchanged', 'nothing changed: unchanged')
  t.ok(kinds.filter(k => k === 'delta').length > 30, `mostly deltas (${kinds.join(' ')})`)
  t.ok(kinds.slice(1).includes('whole'), 'a peer further behind than the log keeps gets the whole document')
})

t.test('free space moving by less than a MiB keeps the generation; by more, a delta with no list changes', async t => {
  const own = new OwnHoldings(NODE, { epoch: 'e1', lengthOf: () => 0 })
  for (let i = 0; i < 1000; i++) own.set('complete', ih(i + 1), true)
  own.setSmall(small(50 * 2 ** 30))
  const gen = own.generation
  own.setSmall(small(50 * 2 ** 30 + 1000))
  t.equal(own.generation, gen, 'within a MiB: same generation')
  own.setSmall(small(40 * 2 ** 30))
  const a = own.answer(gen, true) as HoldingsDelta
  t.equal(a.delta, true, 'a delta, not the whole document')
  t.equal(a.free, 40 * 2 ** 30, 'with the new figure')
  t.same(SET_NAMES.map(n => a.add[n].length + a.remove[n].length), [0, 0, 0, 0], 'and no list changes')
  t.ok(JSON.stringify(a).length < 600, `small (${JSON.stringify(a).length} bytes)`)
  t.equal((own.answer(gen, false) as { complete: string[] }).complete.length, 1000, 'a peer that did not ask for deltas (an old node) gets the whole document')
  t.same(own.answer('other-epoch.3', true), own.whole(), 'a generation of another run: the whole document')
  t.same(own.answer('e1.999999', true), own.whole(), 'a generation not made yet: the whole document')
})

t.test('deltas that do not follow from what the receiver holds, or break bounds, are refused whole', async t => {
  const base = (): PeerHoldings => holdingsSets({ v: 1, nodeId: NODE, generation: 'e.5', total: 10, free: 5, reserve: 1, complete: [ih(1), ih(2)], cached: [], copying: [{ infohash: ih(3), done: 0, total: 9, started: false }], dropping: [], retiring: false })
  const delta = (over: Record<string, unknown> = {}, add: Record<string, string[]> = {}, remove: Record<string, string[]> = {}): unknown =>
    ({ v: 1, delta: true, nodeId: NODE, from: 'e.5', generation: 'e.9', total: 10, free: 4, reserve: 1, retiring: false, progress: [], add, remove, ...over })
  const refused = (raw: unknown, why: RegExp, what: string): void => {
    const h = base()
    const before = JSON.stringify([...h.complete, ...h.copying, h.generation, h.free])
    const d = parseHoldings(raw)
    const wrong = typeof d === 'string' ? d : 'delta' in d ? applyDelta(h, d, () => { throw new Error('changed') }) : 'not a delta'
    t.match(wrong, why, what)
    t.equal(JSON.stringify([...h.complete, ...h.copying, h.generation, h.free]), before, `${what}: nothing changed`)
  }
  refused(delta({ from: 'e.4' }), /generation we do not hold/, 'from another generation')
  refused(delta({ from: 'e.9' }), /bad delta base/, 'from its own generation')
  refused(delta({ nodeId: 'b000000000000002' }), /another node/, 'of another node')
  refused(delta({}, { complete: [ih(1)] }), /adds to complete what is there/, 'an addition of what is there')
  refused(delta({}, { complete: [ih(7), ih(7)] }), /adds to complete/, 'an addition twice')
  refused(delta({}, {}, { complete: [ih(9)] }), /removes from complete what is not there/, 'a removal of what is not there')
  refused(delta({}, { complete: ['zz'] }), /bad delta list of complete/, 'a malformed infohash')
  refused(delta({}, { dropping: Array.from({ length: 1025 }, (_, i) => ih(i + 100)) }), /dropping too long/, 'more drops than any node announces')
  refused(delta({ progress: [{ infohash: ih(8), done: 1, total: 9, started: true }] }), /progress of a copy it does not announce/, 'progress of a copy not announced')
  refused(delta({ progress: [{ infohash: ih(3), done: 1, total: 9, started: false }] }), /bad copy/, 'progress of a copy not started')
  refused(delta({ free: -1 }), /bad disk sizes/, 'a negative size')
  refused(delta({ add: [ih(1)] }), /bad delta lists/, 'lists that are not an object')

  const h = base()
  const counted: Array<[string, number]> = []
  const d = parseHoldings(delta({ progress: [{ infohash: ih(3), done: 4, total: 9, started: true }] }, { complete: [ih(3)], copying: [ih(4)] }, { complete: [ih(1)] }))
  t.equal(typeof d === 'object' && 'delta' in d ? applyDelta(h, d, (x, by) => counted.push([x, by])) : 'no delta', null, 'a delta that follows applies')
  t.same([...h.complete].sort(), [ih(2), ih(3)], 'its contents')
  t.same([...h.copying].sort(), [ih(3), ih(4)], 'its copies')
  t.same(counted, [[ih(1), -1], [ih(3), 1]], 'each change of complete told once')
  t.equal(h.generation, 'e.9', 'its generation')
  t.equal(h.free, 4, 'its figures')
})

t.test('changes made before any generation was shown are not logged, and deltas start from the first one shown', async t => {
  const own = new OwnHoldings(NODE, { epoch: 'e1', lengthOf: () => 0 })
  // A start: everything the disk holds goes into the lists before any peer has asked.
  for (let i = 0; i < 5000; i++) own.set('complete', ih(i + 1), true)
  t.equal(own['log'].length, 0, 'nothing logged while no generation was shown')
  const first = own.answer(null, true) as { complete: string[], generation: string }
  t.equal(first.complete.length, 5000, 'the first answer is the whole document')
  own.set('complete', ih(1), false)
  own.set('cached', ih(2), true)
  t.equal(own['log'].length, 2, 'changes after it are logged')
  const d = own.answer(first.generation, true) as HoldingsDelta
  t.equal(d.delta, true, 'a peer holding the first generation gets a delta')
  t.same(d.remove.complete, [ih(1)], 'with the removal')
  t.same(d.add.cached, [ih(2)], 'and the addition')
  t.same(own.answer('e1.3', true), own.whole(), 'a generation from before the first shown: the whole document')
})

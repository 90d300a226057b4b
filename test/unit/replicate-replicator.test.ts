// Real Replicators, every disk short of room, asking each other for holdings through a transport
// that delays requests and answers at random and loses some, while replicators stop and start
// again: every extra copy goes, and no drop ever leaves a content with fewer complete copies than
// the target on the replicators running (one that stopped during the dropper's round, after it
// may have answered, still counts: no rule can see a stop that comes after the answer). The
// holdings travel in-process: the peer API is not what is tested here; the cluster tests run it
// between real nodes.
import fs from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { silentLogger } from '../../lib/core/log.js'
import { Replicator, type ReplicaPeer } from '../../lib/replicate/replicator.js'
import { ContentStore } from '../../lib/content/store.js'
import type { ContentNeed } from '../../lib/replicate/plan.js'
import { prng } from '../helpers/volume.js'

interface Disk {
  id: string
  dir: string
  content: string
  r: Replicator | null
  /** Events (a global count) when it last stopped, and when its replicator last ended a round. */
  stopped: number
  roundEnded: number
}

const COPIES = 2
const sleep = async (ms: number): Promise<void> => await new Promise(resolve => setTimeout(resolve, ms))

async function waitFor (what: string, done: () => boolean, ms: number): Promise<void> {
  const giveUp = Date.now() + ms
  while (!done()) {
    if (Date.now() > giveUp) throw new Error(`gave up waiting: ${what}`)
    await sleep(20)
  }
}

t.test('replicators short of room, with late answers and restarts, drop every extra copy and none below the target', async t => {
  const seed = process.env.SEED !== undefined ? Number(process.env.SEED) : 7
  const rnd = prng(seed)
  const base = fs.mkdtempSync(join(os.tmpdir(), 'swarmfs-replicator-'))
  t.teardown(() => fs.rmSync(base, { recursive: true, force: true }))
  const contents: ContentNeed[] = Array.from({ length: 12 }, (_, i) => ({ infohash: (i + 1).toString(16).padStart(40, '0'), length: 100 + i }))
  const disks: Disk[] = Array.from({ length: 5 }, (_, i) => {
    const dir = join(base, `d${i}`)
    const content = join(dir, 'content')
    fs.mkdirSync(content, { recursive: true })
    for (const c of contents) if (i < 3 || rnd() < 0.7) fs.writeFileSync(join(content, c.infohash), Buffer.alloc(c.length))
    return { id: (0xd000 + i).toString(16).padStart(16, '0'), dir, content, r: null, stopped: 0, roundEnded: 0 }
  })
  const running = (): Disk[] => disks.filter(d => d.r !== null)
  const holds = (d: Disk, ih: string): boolean => fs.existsSync(join(d.content, ih))
  const violations: string[] = []
  let events = 0
  let drops = 0
  const delay = async (): Promise<void> => await sleep(Math.floor(rnd() * 40))

  const tree = new Map(contents.map(c => [c.infohash, { length: c.length }]))
  const start = (d: Disk): void => {
    const store = new ContentStore(d.dir, 'volume', silentLogger)
    const r = new Replicator({
      nodeId: d.id,
      disk: d.dir,
      held: store,
      // Every disk is below its reserve: each wants to drop every copy the volume holds beyond its target.
      reserve: total => total,
      tree: { contents: () => tree, version: () => 'v' },
      settings: () => ({ copies: COPIES, graceMs: 60_000 }),
      peers: (): ReplicaPeer[] => running().filter(o => o !== d).map(o => ({ nodeId: o.id, host: o.id, httpPort: 1 })),
      fetchHoldings: async (peer, have) => {
        await delay()
        const o = disks.find(x => x.id === peer.nodeId)
        if (o?.r == null || rnd() < 0.15) throw new Error('no answer')
        const answer = await o.r.holdings(have, true)
        await delay()
        return answer
      },
      copy: async () => { throw new Error('no copies in this test') },
      drop: async ih => {
        const live = disks.filter(o => holds(o, ih) && (o.r !== null || o.stopped > d.roundEnded)).length
        if (live - 1 < COPIES) violations.push(`${d.id} dropped ${ih} with ${live} copies on the running disks (seed ${seed})`)
        store.remove([ih], [])
        drops++
      },
      retiring: false,
      onRound: () => { d.roundEnded = ++events },
      log: silentLogger,
      intervalMs: 60
    })
    d.r = r
    d.roundEnded = ++events
    r.start()
  }
  const stop = async (d: Disk): Promise<void> => {
    const r = d.r
    d.r = null
    d.stopped = ++events
    await r?.stop()
  }
  t.teardown(async () => { for (const d of disks) await stop(d) })

  for (const d of disks) start(d)
  // Replicators stop and start again meanwhile (never more than one down, so every content
  // stays with enough holders running to go on dropping).
  for (let i = 0; i < 12; i++) {
    await sleep(50 + Math.floor(rnd() * 100))
    const d = disks[Math.floor(rnd() * disks.length)]
    await stop(d)
    await sleep(Math.floor(rnd() * 200))
    start(d)
  }
  const atTarget = (): boolean => contents.every(c => running().filter(d => holds(d, c.infohash)).length === COPIES)
  await waitFor('every content on exactly the target of disks', atTarget, 30_000).catch(err => t.fail((err as Error).message, {
    copies: contents.map(c => running().filter(d => holds(d, c.infohash)).length)
  }))
  t.same(violations, [], `no drop below the target (seed ${seed}; ${drops} drops)`)
  t.ok(drops >= contents.length, `copies were dropped (${drops})`)
})

t.test('a new disk copies many contents several at once, each once, asking for holdings as changes', async t => {
  const base = fs.mkdtempSync(join(os.tmpdir(), 'swarmfs-replicator-'))
  t.teardown(() => fs.rmSync(base, { recursive: true, force: true }))
  const contents: ContentNeed[] = Array.from({ length: 60 }, (_, i) => ({ infohash: (i + 1).toString(16).padStart(40, '0'), length: 1000 + i }))
  const tree = new Map(contents.map(c => [c.infohash, { length: c.length }]))
  const MAX = 6
  const ids = ['a000000000000001', 'b000000000000002']
  const dirs = ids.map(id => join(base, id))
  for (const d of dirs) fs.mkdirSync(join(d, 'content'), { recursive: true })
  for (const c of contents) fs.writeFileSync(join(dirs[0], 'content', c.infohash), Buffer.alloc(c.length))
  const stores = dirs.map(d => new ContentStore(d, 'volume', silentLogger))
  const copied = new Map<string, number>()
  const wrongCopier: string[] = []
  let running = 0
  let most = 0
  /** The kinds of answers each node got, in order. */
  const answers: string[][] = [[], []]
  const rs: Replicator[] = []
  ids.forEach((id, i) => {
    rs.push(new Replicator({
      nodeId: id,
      disk: dirs[i],
      held: stores[i],
      reserve: () => 0,
      tree: { contents: () => tree, version: () => 'v' },
      settings: () => ({ copies: 2, graceMs: 60_000 }),
      peers: (): ReplicaPeer[] => ids.filter(o => o !== id).map(o => ({ nodeId: o, host: o, httpPort: 1 })),
      fetchHoldings: async (peer, have) => {
        const answer = await rs[ids.indexOf(peer.nodeId)].holdings(have, true)
        // (An idle node's free space may still move: other programs write to this filesystem.)
        const listsChanged = 'delta' in answer && Object.values(answer.add).concat(Object.values(answer.remove)).some(l => l.length > 0)
        answers[i].push('unchanged' in answer ? 'unchanged' : 'delta' in answer ? (listsChanged ? 'delta' : 'figures') : 'whole')
        return JSON.parse(JSON.stringify(answer))
      },
      copy: async ih => {
        if (i !== 1) wrongCopier.push(ih)
        running++
        most = Math.max(most, running)
        await sleep(20 + (parseInt(ih.slice(-2), 16) % 5) * 10)
        fs.writeFileSync(join(dirs[1], 'content', ih), Buffer.alloc(tree.get(ih)?.length ?? 0))
        stores[1].changed(ih, true)
        copied.set(ih, (copied.get(ih) ?? 0) + 1)
        running--
      },
      drop: async () => { throw new Error('no drops in this test') },
      retiring: false,
      log: silentLogger,
      intervalMs: 60,
      maxCopies: MAX
    }))
  })
  t.teardown(async () => { for (const r of rs) await r.stop() })
  for (const r of rs) r.start()
  await waitFor('every content copied to B', () => copied.size === contents.length, 60_000)
  // A few idle rounds.
  const seen = answers.map(a => a.length)
  await waitFor('idle rounds', () => answers.every((a, i) => a.length > seen[i] + 5), 10_000)
  t.same(wrongCopier, [], 'only the disk without the contents copies')
  t.ok([...copied.values()].every(n => n === 1), 'each content copied once')
  t.ok(most > 1 && most <= MAX, `several copies at once, at most ${MAX} (${most})`)
  t.same(answers.map(a => a.filter(k => k === 'whole').length), [1, 1], 'each node got the whole document once, at first contact')
  t.ok(answers[0].includes('delta'), 'A heard of B\'s copies as deltas')
  t.ok(answers.every(a => a.slice(-3).every(k => k === 'unchanged' || k === 'figures')), 'idle: answers without lists (unchanged, or new space figures)', { last: answers.map(a => a.slice(-3)) })
  t.equal(rs[1].status().underTarget, 0, 'B sees nothing under target')
})

// Issue 24's replication rows at scale: three real Replicators in this process (lib/replicate),
// holding sizes.replicaContents contents between them (100,000; SWARMFS_BENCH_CONTENTS=1000000 for
// a million), each content on 2 of the 3 (target 2). Their holdings travel in-process as JSON text
// (stringified and parsed as over the wire, without TLS); what a disk holds comes from a set, not
// a directory, and a copy is instant (it only tells the store): what is measured is the
// replication bookkeeping on the JavaScript thread, which FUSE shares.
//   - idle: after every node has heard the others and nothing is under target, CPU of this
//     process over 20 s (SWARMFS_BENCH_IDLE_S), per node, as % of a core; and the bytes of the
//     holdings answers, per node per second. Baselines, measured in the same run on the same
//     views: what the former round did every 2 s whatever changed (the whole plan over every
//     content, plan.ts's reference, plus taking stock: the whole document built and stringified),
//     and the whole document's bytes per round (what a peer fetched whenever free space moved by
//     1 MiB).
//   - a node gone: node C stops answering; the grace period (3 s) over, A and B plan and make the
//     copies of its contents. Measured: the longest event-loop delay while they do
//     (perf_hooks.monitorEventLoopDelay, p99 and max; a `stat` through the mount waits as long),
//     against the baseline of one whole plan() over the same views (the former round's stall),
//     and the time until nothing is under target.
import { monitorEventLoopDelay, performance } from 'node:perf_hooks'
import fs from 'node:fs'
import { join } from 'node:path'
import { silentLogger } from '../lib/core/log.js'
import { Replicator, type ReplicaPeer } from '../lib/replicate/replicator.js'
import { plan, type ContentNeed, type NodeView } from '../lib/replicate/plan.js'
import type { Context } from './lib/context.js'
import { sleep } from './lib/proc.js'
import type { Row } from './lib/table.js'

const contentsN = Number(process.env.SWARMFS_BENCH_CONTENTS ?? 100_000)
const idleS = Number(process.env.SWARMFS_BENCH_IDLE_S ?? 20)
const INTERVAL_MS = 2000
const GRACE_MS = 3000
const ids = ['a000000000000001', 'b000000000000002', 'c000000000000003']
const fmt = (x: number): string => x < 10 ? x.toFixed(2) : x.toFixed(0)

interface SimNode { id: string, held: Set<string>, watchers: Array<(ih: string, present: boolean) => void>, r: Replicator | null, up: boolean, bytesOut: number }

async function until (what: string, done: () => boolean, ms: number): Promise<void> {
  const giveUp = performance.now() + ms
  while (!done()) {
    if (performance.now() > giveUp) throw new Error(`replicate-scale: gave up waiting: ${what}`)
    await sleep(100)
  }
}

export async function replicateScaleBench (ctx: Context): Promise<Row[]> {
  const w = join(ctx.work, 'replicate-scale')
  fs.mkdirSync(w, { recursive: true })
  const ih = (i: number): string => i.toString(16).padStart(40, '0')
  const tree = new Map<string, { length: number }>()
  for (let i = 1; i <= contentsN; i++) tree.set(ih(i), { length: 100_000 })
  const nodes: SimNode[] = ids.map(id => ({ id, held: new Set(), watchers: [], r: null, up: true, bytesOut: 0 }))
  let i = 0
  for (const c of tree.keys()) {
    nodes[i % 3].held.add(c)
    nodes[(i + 1) % 3].held.add(c)
    i++
  }
  const make = (n: SimNode): Replicator => new Replicator({
    nodeId: n.id,
    disk: w,
    held: { heldInfohashes: async () => new Set(n.held), watch: l => { n.watchers.push(l) } },
    // Room for everything: free space never decides.
    reserve: () => 0,
    tree: { contents: () => tree, version: () => 'v' },
    settings: () => ({ copies: 2, graceMs: GRACE_MS }),
    peers: (): ReplicaPeer[] => nodes.filter(o => o !== n && o.up).map(o => ({ nodeId: o.id, host: o.id, httpPort: 1 })),
    fetchHoldings: async (peer, have) => {
      const o = nodes.find(x => x.id === peer.nodeId)
      if (o?.r == null || !o.up) throw new Error('no answer')
      const text = JSON.stringify(await o.r.holdings(have, true))
      o.bytesOut += text.length
      return JSON.parse(text)
    },
    copy: async c => {
      n.held.add(c)
      for (const l of n.watchers) l(c, true)
    },
    drop: async () => { throw new Error('no drops here') },
    retiring: false,
    log: silentLogger,
    intervalMs: INTERVAL_MS
  })
  const rows: Row[] = []
  try {
    const t0 = performance.now()
    for (const n of nodes) { n.r = make(n); n.r.start() }
    const settled = (): boolean => nodes.every(n => {
      const s = n.r?.status()
      return s !== undefined && s.nodes.length === 3 && s.underTarget === 0
    })
    await until('three nodes that heard each other, nothing under target', settled, 600_000)
    const startMs = performance.now() - t0
    await sleep(2 * INTERVAL_MS)

    // Idle.
    for (const n of nodes) n.bytesOut = 0
    const cpu0 = process.cpuUsage()
    const w0 = performance.now()
    await sleep(idleS * 1000)
    const cpu = process.cpuUsage(cpu0)
    const wall = performance.now() - w0
    const idleCpu = (cpu.user + cpu.system) / 1000 / wall * 100 / nodes.length
    const idleBytes = nodes.reduce((s, n) => s + n.bytesOut, 0) / nodes.length / (wall / 1000)

    // Baseline: the former round's work on A's views, timed once (median of 3).
    const views = (nodes[0].r as unknown as { views: NodeView[] }).views
    const contents: ContentNeed[] = [...tree].map(([infohash, { length }]) => ({ infohash, length }))
    const oldRound: number[] = []
    let wholeBytes = 0
    for (let k = 0; k < 3; k++) {
      const b0 = performance.now()
      const stock = contents.filter(c => nodes[0].held.has(c.infohash)).map(c => c.infohash).sort()
      const doc = JSON.stringify({ v: 1, complete: stock, cached: [], copying: [], dropping: [] })
      wholeBytes = doc.length
      const copied = views.map(v => ({ ...v, complete: new Set(v.complete) }))
      plan(ids[0], contents, copied, 2)
      oldRound.push(performance.now() - b0)
    }
    oldRound.sort((a, b) => a - b)
    const oldCpu = oldRound[1] / INTERVAL_MS * 100
    const wholePlan: number[] = []
    for (let k = 0; k < 3; k++) {
      const b0 = performance.now()
      plan(ids[0], contents, views, 2)
      wholePlan.push(performance.now() - b0)
    }
    wholePlan.sort((a, b) => a - b)

    // Node C gone: after the grace period its contents are copied by A and B.
    const h = monitorEventLoopDelay({ resolution: 5 })
    const c = nodes[2]
    c.up = false
    await c.r?.stop()
    c.r = null
    const g0 = performance.now()
    h.enable()
    const survivors = nodes.slice(0, 2)
    // (Sizes, not a walk over the contents: the check must not stall the loop it measures.)
    await until('every content on A and B', () => survivors.every(n => n.held.size === contentsN), 3_600_000)
    const replanMs = performance.now() - g0
    h.disable()
    const p99 = h.percentile(99) / 1e6
    const max = h.max / 1e6
    ctx.note(`replicate-scale: ${contentsN} contents on 3 in-process replicators (2 copies each); all heard and planned ${fmt(startMs / 1000)} s after start; ` +
      `idle over ${idleS} s: ${fmt(idleCpu)} % of a core and ${fmt(idleBytes)} B/s of holdings per node (former round: ${fmt(oldRound[1])} ms of work every ${INTERVAL_MS} ms, whole document ${fmt(wholeBytes / 1e6)} MB)`)
    ctx.note(`replicate-scale: C gone, grace ${GRACE_MS / 1000} s: its ${contentsN * 2 / 3 | 0} contents copied to A and B (instant copies) ${fmt(replanMs / 1000)} s after it stopped; event-loop delay meanwhile p99 ${fmt(p99)} ms, max ${fmt(max)} ms; one whole plan() over the same views ${fmt(wholePlan[1])} ms`)
    rows.push(
      { measurement: `replicate-scale: idle, ${contentsN} contents on 3 nodes: CPU per node`, unit: '% of a core', better: 'lower', value: idleCpu, baseline: 'former round (whole plan + whole stock) every 2 s', baselineValue: oldCpu },
      { measurement: `replicate-scale: idle, ${contentsN} contents on 3 nodes: holdings sent per node`, unit: 'B/s', better: 'lower', value: idleBytes, baseline: 'whole holdings document every 2 s', baselineValue: wholeBytes / (INTERVAL_MS / 1000) },
      { measurement: `replicate-scale: a node gone (${contentsN * 2 / 3 | 0} contents to copy): longest event-loop stall`, unit: 'ms', better: 'lower', value: max, baseline: 'one whole plan() over the same views', baselineValue: wholePlan[1] }
    )
  } finally {
    for (const n of nodes) await n.r?.stop()
    fs.rmSync(w, { recursive: true, force: true })
  }
  return rows
}

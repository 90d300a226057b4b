// A node serving thousands of contents of distinct sizes keeps its memory: a new storage node
// copies every file of a volume from its only holder, and the holder's resident memory (VmRSS of
// the real process) is read before the copy, at its end and once the holder is idle again. Each
// content's last piece has a length of its own, so piece buffer pools kept by length (8 or 16
// buffers for every length seen) kept about one buffer per file served or received: with the
// sizes below the holder grew by 510 MiB. Bounded pools fixed that; TLS wires then kept a buffer
// as large as their largest write, one wire per active torrent (105-187 MiB more), until writes
// went in 128 KiB slices and two seeders stopped keeping a wire between them.
// What stays at the end of the copy is V8's: heap pages it keeps after its collections (V8 hands
// them back when it finds the process idle) and the bounded pools. So the test bounds growth per
// file at the end (the old pools' 510 MiB fail it), and the issue's goal, under 64 MiB, once idle.
// Sizes start above one 128 KiB block, the smallest piece the pools take.
import fs from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { Cluster, type SNode } from '../helpers/cluster.js'
import { until } from '../helpers/netns.js'
import { sh } from '../helpers/volume.js'

// The issue's own scenario (2,000 files of 0.5-1 MB, 1.5 GB) is this test with
// MEMORY_TEST_MIN_BYTES=524288 MEMORY_TEST_STEP_BYTES=262: too long for the suite.
const FILES = 2000
const MIN_BYTES = Number(process.env.MEMORY_TEST_MIN_BYTES ?? 132 * 1024)
/** Sizes step by a prime so every file's (single, hence last) piece has a length of its own. */
const STEP_BYTES = Number(process.env.MEMORY_TEST_STEP_BYTES ?? 131)
const GROWTH_LIMIT_MIB = 192
/** The goal, once the holder is idle again. */
const IDLE_GROWTH_GOAL_MIB = 64
/** How long the holder has to hand back memory once idle (V8 does it after ~8 s of low allocation). */
const IDLE_WAIT_MS = 90_000
/** Bound a hang only. */
const COPIED_MS = 10 * 60_000

function complete (node: SNode): number {
  const dir = join(node.disk, 'content')
  return fs.existsSync(dir) ? fs.readdirSync(dir).filter(n => /^[0-9a-f]{40}$/.test(n)).length : 0
}

function rssMiB (pid: number | undefined): number {
  const kb = /^VmRSS:\s+(\d+) kB$/m.exec(fs.readFileSync(`/proc/${pid ?? 'none'}/status`, 'utf8'))?.[1]
  if (kb === undefined) throw new Error(`no VmRSS for process ${pid ?? '?'}`)
  return Number(kb) / 1024
}

t.test('a holder serving 2,000 files of distinct sizes to a new disk keeps its memory', async t => {
  const c = await Cluster.create(t, 2)
  const [h1, h2] = c.net.hosts
  const { node: a, invite } = await c.init('A', h1)
  // Random bytes (distinct contents), each file of its own size, written by a shell on the mount.
  await sh(t, `mkdir -p "${a.mnt}/many" && i=0; while [ $i -lt ${FILES} ]; do head -c $(( ${MIN_BYTES} + i * ${STEP_BYTES} )) /dev/urandom > "${a.mnt}/many/f$i" || exit 1; i=$((i+1)); done`, { timeoutMs: 600_000 })
  await until(`A holds all ${FILES} contents`, () => complete(a) === FILES, 120_000)
  const before = rssMiB(a.child?.pid)

  const b = await c.joinStorage('B', h2, invite)
  const bBefore = rssMiB(b.child?.pid)
  try {
    await until(`B holds all ${FILES} contents`, () => complete(b) === FILES, COPIED_MS)
  } catch (err) {
    t.fail((err as Error).message, { onB: complete(b), logs: c.logs() })
    throw err
  }
  const growth = rssMiB(a.child?.pid) - before
  // The new disk's figure is reported, not bounded: its growth is mostly V8 heap of its own
  // bookkeeping of 2,000 new contents, not piece buffers (its pool is bounded like the holder's).
  const bGrowth = rssMiB(b.child?.pid) - bBefore
  t.comment(`RSS at the end of the copy: holder A ${before.toFixed(0)} MiB + ${growth.toFixed(0)} MiB; new disk B ${bBefore.toFixed(0)} MiB + ${bGrowth.toFixed(0)} MiB`)
  t.ok(growth < GROWTH_LIMIT_MIB, `the holder's RSS grew by ${growth.toFixed(1)} MiB serving ${FILES} files (limit ${GROWTH_LIMIT_MIB})`)

  // Both hold every content now: no BitTorrent wire is left between them (two seeders have
  // nothing to trade). B connected to A's BitTorrent port for each content.
  const { torrentPort } = JSON.parse(fs.readFileSync(join(a.disk, 'node.json'), 'utf8')) as { torrentPort: number }
  const wires = async (): Promise<string[]> => (await c.net.exec(h1, 'ss', ['-Htn', 'state', 'established', `( sport = :${torrentPort} )`])).stdout.trim().split('\n').filter(l => l !== '')
  const left = await until('A keeps no BitTorrent wire', async () => (await wires()).length === 0, 30_000).then(() => [], async () => await wires())
  t.same(left, [], 'no BitTorrent connection is left on A once B holds every content')

  let idle = growth
  const since = Date.now()
  while (idle >= IDLE_GROWTH_GOAL_MIB && Date.now() - since < IDLE_WAIT_MS) {
    await new Promise(resolve => setTimeout(resolve, 1_000))
    idle = rssMiB(a.child?.pid) - before
  }
  t.comment(`RSS once idle: holder A + ${idle.toFixed(0)} MiB after ${((Date.now() - since) / 1000).toFixed(0)} s`)
  t.ok(idle < IDLE_GROWTH_GOAL_MIB, `once idle, the holder's RSS is ${idle.toFixed(1)} MiB above where it was before the copy (goal ${IDLE_GROWTH_GOAL_MIB})`)
})

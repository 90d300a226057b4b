// Row 4: a volume of 100,000 files in 1,000 directories (SMALL: 10,000 in 100; SWARMFS_BENCH_FILES
// for another count, SWARMFS_BENCH_ONE_DIR=1 for all of them in one directory). Time from spawning
// `swarmfs start` to its "running" line and then a first successful `ls` of the root from a child,
// cold (index snapshot deleted: the index is loaded from the git trees) and warm (snapshot written by
// the previous clean stop); and the node's RSS (VmRSS) right after. Baseline: an empty volume.
// Then, on the first warm start, once its own work is over (5 s, 20 s for a million files): stat(2) of 2,000 random files (each once, none in the kernel's
// cache) and 1,000 creates in the largest directory; baseline: the same in a volume of 2,000 files
// in two directories, started the same way.
// Then `ls -l` per entry (issue 24): a volume of two directories, one of 100,000 entries and one of
// 10,000 (SMALL: 10,000 and 1,000), built the same way and started warm; once its own work is over,
// `ls -l` (a real `ls`, output to /dev/null) of each, alternately, each after 1.2 s of quiet (longer
// than the mount's entry timeout: every entry is looked up again), SWARMFS_BENCH_REPS times (3).
// Row: µs per entry of the large directory against the small one's, target 1.0x.
import fs from 'node:fs'
import { join } from 'node:path'
import { benchDist, node, sizes } from './lib/env.js'
import type { Context } from './lib/context.js'
import { rssOf, runOk, sleep } from './lib/proc.js'
import { settle } from './lib/quiet.js'
import { initVolume, startSwarmfs } from './lib/servers.js'
import { median, MiB, type Row } from './lib/table.js'

interface StartSample { runningMs: number, lsMs: number, rss: number }
interface StatResult { count: number, ms: number, rate: number, p50: number, p99: number }
interface WorkSample { stat: StatResult, createsPerS: number }
/** ms of each `ls -l` of the large directory and of the small one. */
interface LsSample { large: number[], small: number[] }

const STATS = 2000
/** The start's own work (the replicator's first look at content/ and the tree) lasts ~2 s per 100,000 files. */
const settleMs = (files: number): number => Math.max(5000, files / 100_000 * 2000)
const CREATES = 1000
const SMALL_VOLUME = { dirs: 2, perDir: 1000 }

/** Stats and creates in a mounted volume built by build-volume.js with `dirs` of `perDir`. */
async function workIn (mnt: string, dirs: number, perDir: number): Promise<WorkSample> {
  // Once the start's own work is over (the replicator's first listing of content/ and of the tree).
  await settle()
  await sleep(settleMs(dirs * perDir))
  const stat = JSON.parse((await runOk(node, [join(benchDist, 'lib', 'clients', 'stat-random.js'), mnt, String(dirs), String(perDir), String(STATS)], { timeoutMs: 600_000 })).stdout) as StatResult
  // Into the largest directory itself (create-files.js names them f0000...: no name of the build's).
  const dir = join(mnt, `d${'0'.repeat(String(dirs - 1).length)}`)
  const created = JSON.parse((await runOk(node, [join(benchDist, 'lib', 'clients', 'create-files.js'), dir, String(CREATES), '100'], { timeoutMs: 600_000 })).stdout) as { files: number, ms: number }
  // The volume as it was built, for the starts after this one.
  const width = String(CREATES).length
  for (let i = 0; i < CREATES; i++) fs.rmSync(join(dir, 'f' + String(i).padStart(width, '0')))
  return { stat, createsPerS: created.files / (created.ms / 1000) }
}

async function timedStart (disk: string, mnt: string, check?: { dir: string, entries: number }, during?: () => Promise<void>): Promise<StartSample> {
  const s = await startSwarmfs(disk, mnt)
  try {
    const ls = await runOk('ls', [mnt])
    const lsMs = performance.now() - s.spawnedAt
    if (ls.stdout.trim() === '' && check !== undefined) throw new Error('ls of the root of the large volume printed nothing')
    const rss = rssOf(s.pid)
    if (check !== undefined) {
      const listed = (await runOk('ls', [join(mnt, check.dir)])).stdout.split('\n').filter(Boolean).length
      if (listed !== check.entries) throw new Error(`${check.dir} lists ${listed} entries, expected ${check.entries}`)
    }
    await during?.()
    return { runningMs: s.readyMs, lsMs, rss }
  } finally {
    await s.stop()
  }
}

/** `ls -l` of `<mnt>/d0` (`large` entries) and `<mnt>/d1` (`small`), alternately, `reps` times each, once the start's own work is over. */
async function lsIn (mnt: string, large: number, small: number, reps: number): Promise<LsSample> {
  await settle()
  await sleep(settleMs(large + small))
  for (const [dir, n] of [['d0', large], ['d1', small]] as const) {
    const listed = (await runOk('ls', [join(mnt, dir)])).stdout.split('\n').filter(Boolean).length
    if (listed !== n) throw new Error(`${dir} lists ${listed} entries, expected ${n}`)
  }
  const out: LsSample = { large: [], small: [] }
  for (let rep = 0; rep < reps; rep++) {
    for (const [dir, into] of [['d0', out.large], ['d1', out.small]] as const) {
      await settle()
      await sleep(1200)
      into.push((await runOk('ls', ['-l', join(mnt, dir)], { stdoutToNull: true, timeoutMs: 1_800_000 })).ms)
    }
  }
  return out
}

export async function startLarge (ctx: Context): Promise<Row[]> {
  const dirs = sizes.bigVolumeOneDir ? 1 : Math.min(1000, Math.max(1, Math.round(sizes.bigVolumeFiles / 100)))
  const perDir = Math.ceil(sizes.bigVolumeFiles / dirs)
  const w = join(ctx.work, 'start')
  const bigDisk = join(w, 'big-disk')
  const emptyDisk = join(w, 'empty-disk')
  const smallDisk = join(w, 'small-disk')
  const lsDisk = join(w, 'ls-disk')
  const lsLarge = sizes.lsDirEntries
  const lsSmall = lsLarge / 10
  const mnt = join(w, 'mnt')
  const snapshot = join(bigDisk, 'state', 'index-snapshot.jsonl')
  const empty: StartSample[] = []
  const cold: StartSample[] = []
  const warm: StartSample[] = []
  let bigWork: WorkSample | null = null
  let smallWork: WorkSample | null = null
  let ls: LsSample | null = null
  try {
    await initVolume(emptyDisk)
    await initVolume(bigDisk)
    await initVolume(smallDisk)
    await runOk(node, [join(benchDist, 'lib', 'build-volume.js'), smallDisk, String(SMALL_VOLUME.dirs), String(SMALL_VOLUME.perDir)], { timeoutMs: 600_000 })
    await timedStart(smallDisk, mnt, undefined, async () => { smallWork = await workIn(mnt, SMALL_VOLUME.dirs, SMALL_VOLUME.perDir) })
    const built = await runOk(node, [join(benchDist, 'lib', 'build-volume.js'), bigDisk, String(dirs), String(perDir)], { timeoutMs: 3_600_000 })
    const b = JSON.parse(built.stdout) as { files: number, ms: number }
    ctx.note(`large volume: built ${b.files.toLocaleString('en-US')} files in ${dirs} directories in-process (ContentStore + Meta.apply + commits) in ${(b.ms / 1000).toFixed(1)} s`)
    if (!fs.existsSync(snapshot)) throw new Error('the build left no index snapshot')
    const check = { dir: `d${'0'.repeat(String(dirs - 1).length)}`, entries: perDir }
    for (let rep = 0; rep < sizes.startReps; rep++) {
      empty.push(await timedStart(emptyDisk, mnt))
      warm.push(await timedStart(bigDisk, mnt, rep === 0 ? check : undefined, rep === 0 ? async () => { bigWork = await workIn(mnt, dirs, perDir) } : undefined))
      fs.rmSync(snapshot)
      cold.push(await timedStart(bigDisk, mnt, rep === 0 ? check : undefined))
      if (!fs.existsSync(snapshot)) throw new Error('a clean stop wrote no index snapshot')
    }
    await initVolume(lsDisk)
    const lsBuilt = JSON.parse((await runOk(node, [join(benchDist, 'lib', 'build-volume.js'), lsDisk, '--sizes', `${lsLarge},${lsSmall}`], { timeoutMs: 3_600_000 })).stdout) as { files: number, ms: number }
    ctx.note(`ls -l volume: built directories of ${lsLarge.toLocaleString('en-US')} and ${lsSmall.toLocaleString('en-US')} files in ${(lsBuilt.ms / 1000).toFixed(1)} s`)
    await timedStart(lsDisk, mnt, undefined, async () => { ls = await lsIn(mnt, lsLarge, lsSmall, sizes.startReps) })
  } finally {
    fs.rmSync(w, { recursive: true, force: true })
  }
  const show = (xs: StartSample[]): string => xs.map(x => `${x.runningMs.toFixed(0)}/${x.lsMs.toFixed(0)} ms ${(x.rss / MiB).toFixed(0)} MiB`).join(', ')
  ctx.note(`start samples (running line / ls ok, RSS): empty ${show(empty)}; warm ${show(warm)}; cold ${show(cold)}`)
  const k = `${(dirs * perDir).toLocaleString('en-US')} files${dirs === 1 ? ' in one directory' : ''}`
  const big = bigWork as WorkSample | null
  const small = smallWork as WorkSample | null
  if (big === null || small === null) throw new Error('the stats and creates did not run')
  const lsDone = ls as LsSample | null
  if (lsDone === null) throw new Error('the ls -l did not run')
  const perEntry = (ms: number[], n: number): number[] => ms.map(x => x * 1000 / n)
  ctx.note(`ls -l ms per repetition: ${lsLarge.toLocaleString('en-US')} entries ${lsDone.large.map(x => x.toFixed(0)).join(', ')}; ${lsSmall.toLocaleString('en-US')} entries ${lsDone.small.map(x => x.toFixed(0)).join(', ')}`)
  const statLine = (x: WorkSample): string => `${x.stat.rate.toFixed(0)}/s, p50 ${(x.stat.p50 * 1000).toFixed(0)} µs, p99 ${(x.stat.p99 * 1000).toFixed(0)} µs`
  ctx.note(`stat of ${STATS} random files: ${k} ${statLine(big)}; ${SMALL_VOLUME.dirs * SMALL_VOLUME.perDir} files ${statLine(small)}. ${CREATES} creates: ${big.createsPerS.toFixed(0)}/s against ${small.createsPerS.toFixed(0)}/s`)
  const ms = (xs: StartSample[]): number[] => xs.map(x => x.lsMs)
  const mib = (xs: StartSample[]): number[] => xs.map(x => x.rss / MiB)
  const run = (xs: StartSample[]): number[] => xs.map(x => x.runningMs)
  return [
    { measurement: `start → "running" → ls ok, ${k} cold (no snapshot)`, unit: 'ms', better: 'lower', value: median(ms(cold)), baseline: 'empty volume', baselineValue: median(ms(empty)), samples: { value: ms(cold), baseline: ms(empty) } },
    { measurement: `start → "running" → ls ok, ${k} warm (snapshot)`, unit: 'ms', better: 'lower', value: median(ms(warm)), baseline: 'empty volume', baselineValue: median(ms(empty)), samples: { value: ms(warm), baseline: ms(empty) } },
    { measurement: `start → "running" line only, ${k} cold`, unit: 'ms', better: 'lower', value: median(run(cold)), baseline: 'empty volume', baselineValue: median(run(empty)) },
    { measurement: `node RSS after mount, ${k}, cold`, unit: 'MiB', better: 'lower', value: median(mib(cold)), baseline: 'empty volume', baselineValue: median(mib(empty)), samples: { value: mib(cold), baseline: mib(empty) } },
    { measurement: `node RSS after mount, ${k}, warm`, unit: 'MiB', better: 'lower', value: median(mib(warm)), baseline: 'empty volume', baselineValue: median(mib(empty)), samples: { value: mib(warm), baseline: mib(empty) } },
    { measurement: `stat of a random file, ${k}`, unit: 'stat/s', better: 'higher', value: big.stat.rate, baseline: `${SMALL_VOLUME.dirs * SMALL_VOLUME.perDir}-file volume`, baselineValue: small.stat.rate, target: 0.5 },
    { measurement: `create in the largest directory, ${k}`, unit: 'files/s', better: 'higher', value: big.createsPerS, baseline: `${SMALL_VOLUME.dirs * SMALL_VOLUME.perDir}-file volume`, baselineValue: small.createsPerS, target: 0.5 },
    { measurement: `ls -l of a ${lsLarge.toLocaleString('en-US')}-entry directory, per entry`, unit: 'µs', better: 'lower', value: median(perEntry(lsDone.large, lsLarge)), baseline: `${lsSmall.toLocaleString('en-US')}-entry directory, same volume`, baselineValue: median(perEntry(lsDone.small, lsSmall)), target: 1.0, samples: { value: perEntry(lsDone.large, lsLarge), baseline: perEntry(lsDone.small, lsSmall) } }
  ]
}

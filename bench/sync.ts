// Issue 4's benchmarks: two nodes of one volume on two namespace hosts (bench/lib/netns.ts), node A
// made by `swarmfs init` on host 1, node B by `swarmfs join <invite> --peer <A>` on host 2, both
// mounted (the mounts are in our mount namespace, so this process uses them directly).
// - Propagation latency over 200 changes: write a small file (its own name and size) into A's mount;
//   from the return of close() (writeFileSync) poll stat on B's mount every ~1 ms until it shows that
//   size. p50 and p99; baseline: a small HTTP POST round trip from host 1 to a server in host 2,
//   measured in the same run (ratio = swarmfs / network). Targets (absolute): p50 < 200 ms, p99 < 1 s.
// - A burst of 10,000 creates on A (SMALL: 1,000) from a child process, into 10 directories; a child
//   counting B's entries every 100 ms reports when it lists them all. Time from the start of the
//   burst; baseline: the burst itself on A (ratio = until all on B / burst). And the time from the
//   last close on A (the burst's end) to all listed on B, against its target (issue 24: 3 s).
// - A git repository of 1,000 files of 20 KB (SMALL: 100) made and committed on A: the first
//   `git status` on B, whose copies are all on A, once B lists the repository; baseline: `git
//   status` on A right before. git trusts an index whose stat data (inode numbers included) match
//   what it sees, so B reads no file (and fetches none) only where both nodes show the same numbers.
// Env: SWARMFS_BENCH_SYNC=burst runs the burst alone (quicker iterations on it);
// SWARMFS_BENCH_VERBOSE=1 starts both nodes with --verbose (their debug logs in the logs dir).
import fs from 'node:fs'
import { join } from 'node:path'
import type { ChildProcess } from 'node:child_process'
import { benchDist, node, SMALL, verbose } from './lib/env.js'
import type { Context } from './lib/context.js'
import { isMounted } from './lib/mounts.js'
import { createNetwork, type Network } from './lib/netns.js'
import { run, runOk, sleep, spawnTracked, stopChild, waitForLine } from './lib/proc.js'
import { swarmfsQuiet } from './lib/quiet.js'
import { startSwarmfsNode, type Server } from './lib/servers.js'
import { median, type Row } from './lib/table.js'

const CHANGES = 200
const BURST = SMALL ? 1_000 : 10_000
const BURST_DIRS = 10
const GIT_FILES = SMALL ? 100 : 1_000
const GIT = 'git -c user.email=bench@swarmfs -c user.name=bench -c gc.auto=0'
/** Bounds a hang only. */
const VISIBLE_TIMEOUT_MS = 60_000
const BURST_TIMEOUT_MS = 15 * 60_000

const TARGET_P50_MS = 200
const TARGET_P99_MS = 1000
/** Issue 24: a burst on one node all visible on another within 3 s of the last close. */
const TARGET_BURST_AFTER_MS = 3000
const BURST_ONLY = process.env.SWARMFS_BENCH_SYNC === 'burst'

/** Nearest-rank percentile. */
function percentile (xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(p / 100 * s.length) - 1))]
}

const childEnv = (): NodeJS.ProcessEnv => {
  const env = { ...process.env }
  delete env.NODE_OPTIONS
  return env
}

const client = (name: string): string => join(benchDist, 'lib', 'clients', name)

/** Small HTTP POST round trips from host 1 to a server in host 2. */
async function httpRoundTrips (net: Network, n: number): Promise<number[]> {
  const [h1, h2] = net.hosts
  const server = net.spawn(h2, node, [client('http-rtt.js'), 'server', h2.address], { env: childEnv() })
  try {
    const line = await waitForLine(server, /"port"/, 30_000)
    const { port } = JSON.parse(line) as { port: number }
    const r = await net.exec(h1, node, [client('http-rtt.js'), 'client', h2.address, String(port), '20', String(n), '100'], { env: childEnv(), timeoutMs: 120_000 })
    if (r.code !== 0) throw new Error(`http client exited ${r.code ?? r.signal}: ${r.stderr.trim().slice(-2000)}`)
    return (JSON.parse(r.stdout) as { ms: number[] }).ms
  } finally {
    await stopChild(server, 10_000)
  }
}

/** Polls stat(path) every ~1 ms from `since` until it shows `size`; the ms from `since`, and whether another size showed first. */
async function visibleWithSize (path: string, size: number, since: number): Promise<{ ms: number, otherSizeFirst: boolean, polls: number }> {
  let otherSizeFirst = false
  let polls = 0
  for (;;) {
    polls++
    try {
      const st = fs.statSync(path)
      const t = performance.now()
      if (st.size === size) return { ms: t - since, otherSizeFirst, polls }
      otherSizeFirst = true
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`stat ${path} on B: ${(err as Error).message}`)
    }
    if (performance.now() - since > VISIBLE_TIMEOUT_MS) throw new Error(`${path} did not show size ${size} on B within ${VISIBLE_TIMEOUT_MS} ms`)
    await sleep(1)
  }
}

interface BurstResult { burstMs: number, totalMs: number, polls: number, progress: Array<[number, number]> }

async function burst (mntA: string, mntB: string): Promise<BurstResult> {
  // The counter starts first, so it is already listing B (nothing there yet) when the burst starts.
  const counter: ChildProcess = spawnTracked(node, [client('count-entries.js'), join(mntB, 'burst'), String(BURST_DIRS), String(BURST), '100', String(BURST_TIMEOUT_MS)], { env: childEnv() })
  let counterErr = ''
  counter.stderr?.setEncoding('utf8').on('data', (d: string) => { counterErr += d })
  const counted = waitForLine(counter, /"all"/, BURST_TIMEOUT_MS + 60_000, () => counterErr.slice(-2000))
  counted.catch(() => {})
  try {
    const made = await runOk(node, [client('burst.js'), join(mntA, 'burst'), String(BURST), String(BURST_DIRS)], { env: childEnv(), timeoutMs: BURST_TIMEOUT_MS })
    const b = JSON.parse(made.stdout) as { start: number, end: number }
    const c = JSON.parse(await counted) as { all: number | null, polls: number, count: number, progress: Array<[number, number]> }
    if (c.all === null) throw new Error(`B listed ${c.count} of ${BURST} burst files after ${BURST_TIMEOUT_MS} ms`)
    return { burstMs: b.end - b.start, totalMs: c.all - b.start, polls: c.polls, progress: c.progress }
  } finally {
    await stopChild(counter, 5000)
  }
}

interface GitResult { onA: number, onB: number, fetchedKiB: number }

/** Kilobytes of contents on a disk, complete and partial. */
async function contentKiB (disk: string): Promise<number> {
  const r = await runOk('du', ['-sk', join(disk, 'content'), join(disk, 'partial')])
  return r.stdout.trim().split('\n').reduce((sum, line) => sum + Number(line.split('\t')[0]), 0)
}

async function gitAcross (mntA: string, mntB: string, diskA: string, diskB: string): Promise<GitResult> {
  await runOk('sh', ['-c', `git init -q repo && cd repo && mkdir d && for i in $(seq 1 ${GIT_FILES}); do head -c 20000 /dev/urandom > d/f$i; done && ${GIT} add -A && ${GIT} commit -qm bench`], { cwd: mntA, timeoutMs: 15 * 60_000 })
  const timed = async (mnt: string): Promise<number> => {
    const t0 = performance.now()
    const r = await runOk('git', ['status', '--porcelain'], { cwd: join(mnt, 'repo'), timeoutMs: 15 * 60_000 })
    if (r.stdout !== '') throw new Error(`git status in ${mnt} lists changes: ${r.stdout.slice(0, 500)}`)
    return performance.now() - t0
  }
  const onA = await timed(mntA)
  await swarmfsQuiet(diskA, 120_000)
  const head = (await runOk('git', ['rev-parse', 'HEAD'], { cwd: join(mntA, 'repo') })).stdout
  const since = performance.now()
  while ((await run('git', ['rev-parse', 'HEAD'], { cwd: join(mntB, 'repo') })).stdout !== head || !fs.existsSync(join(mntB, 'repo', 'd', `f${GIT_FILES}`))) {
    if (performance.now() - since > VISIBLE_TIMEOUT_MS) throw new Error(`A's repository did not reach B within ${VISIBLE_TIMEOUT_MS} ms`)
    await sleep(100)
  }
  await swarmfsQuiet(diskB, 120_000)
  const before = await contentKiB(diskB)
  const onB = await timed(mntB)
  return { onA, onB, fetchedKiB: await contentKiB(diskB) - before }
}

function countEntries (root: string): number {
  let n = 0
  for (let d = 0; d < BURST_DIRS; d++) n += fs.readdirSync(join(root, `d${d}`)).length
  return n
}

export async function syncBench (ctx: Context): Promise<Row[]> {
  const w = join(ctx.work, 'sync')
  const diskA = join(w, 'disk-a')
  const diskB = join(w, 'disk-b')
  const mntA = join(w, 'mnt-a')
  const mntB = join(w, 'mnt-b')
  fs.mkdirSync(w, { recursive: true })
  const net = await createNetwork(2)
  const [h1, h2] = net.hosts
  const servers: Server[] = []
  const lat: number[] = []
  let otherSizeFirst = 0
  let rtt: number[] = []
  let burstResult: BurstResult | null = null
  let firstDirMs = 0
  let git: GitResult | null = null
  try {
    if (!BURST_ONLY) rtt = await httpRoundTrips(net, CHANGES)

    const a = await startSwarmfsNode(['init', 'bench', '--disk', diskA, '--mount', mntA, ...verbose], mntA, { via: net.via(h1), label: 'swarmfs-A' })
    servers.push(a)
    const config = JSON.parse(fs.readFileSync(join(diskA, 'node.json'), 'utf8')) as { volumeName: string, volumeKey: string, httpPort: number }
    const invite = `swarmfs://${config.volumeName}/${config.volumeKey}`
    const joinStart = performance.now()
    const nb = await startSwarmfsNode(['join', invite, '--disk', diskB, '--mount', mntB, '--peer', `${h1.address}:${config.httpPort}`, ...verbose], mntB, { via: net.via(h2), label: 'swarmfs-B' })
    servers.push(nb)
    ctx.note(`sync: network ${net.subnet} (A ${h1.address}:${config.httpPort} in ${h1.name}, B ${h2.address} in ${h2.name}); A init → running ${a.readyMs.toFixed(0)} ms; B join → running ${(performance.now() - joinStart).toFixed(0)} ms`)

    // Propagation latency.
    if (!BURST_ONLY) {
      const t0 = performance.now()
      fs.mkdirSync(join(mntA, 'lat'))
      const since = performance.now()
      while (!fs.existsSync(join(mntB, 'lat'))) {
        if (performance.now() - since > VISIBLE_TIMEOUT_MS) throw new Error(`lat/ made on A did not appear on B within ${VISIBLE_TIMEOUT_MS} ms`)
        await sleep(1)
      }
      firstDirMs = performance.now() - t0
      for (let i = 0; i < CHANGES; i++) {
        const size = 100 + i
        const data = Buffer.from(`change ${i}\n`.padEnd(size, '.'))
        fs.writeFileSync(join(mntA, 'lat', `f${i}`), data)
        const closed = performance.now()
        const r = await visibleWithSize(join(mntB, 'lat', `f${i}`), size, closed)
        lat.push(r.ms)
        if (r.otherSizeFirst) otherSizeFirst++
      }
      await swarmfsQuiet(diskA, 120_000)
      await swarmfsQuiet(diskB, 120_000)
    }

    // Burst.
    burstResult = await burst(mntA, mntB)
    const onA = countEntries(join(mntA, 'burst'))
    const onB = countEntries(join(mntB, 'burst'))
    if (onA !== BURST || onB !== BURST) throw new Error(`after the burst A lists ${onA} and B ${onB} files, expected ${BURST}`)

    if (!BURST_ONLY) git = await gitAcross(mntA, mntB, diskA, diskB)
  } finally {
    for (const s of [...servers].reverse()) {
      await s.stop()
      if (s.child.exitCode !== 0) ctx.note(`sync: WARNING ${s.label} did not exit 0 after SIGTERM (${s.child.exitCode ?? s.child.signalCode}); see ${s.logFile}`)
    }
    await net.cleanup()
    if (!isMounted(mntA) && !isMounted(mntB)) fs.rmSync(w, { recursive: true, force: true })
  }

  const verdict = (v: number, t: number): string => v < t ? 'ok' : 'MISSED'
  const fmt = (x: number): string => x < 10 ? x.toFixed(2) : x.toFixed(0)
  const b = burstResult!
  const k = BURST.toLocaleString('en-US')
  const afterMs = b.totalMs - b.burstMs
  ctx.note(`sync target (absolute, issue 24): burst all listed on B ${fmt(afterMs)} ms after the last close on A < ${TARGET_BURST_AFTER_MS} ms: ${verdict(afterMs, TARGET_BURST_AFTER_MS)}`)
  ctx.note(`sync burst: ${k} creates on A in ${BURST_DIRS} directories took ${fmt(b.burstMs)} ms (${(BURST / (b.burstMs / 1000)).toFixed(0)} files/s); all listed on B ${fmt(b.totalMs)} ms after the burst started (${fmt(afterMs)} ms after it ended); B's count over time (ms after the counter started: entries): ${b.progress.map(([t, c]) => `${t}:${c}`).join(' ')}`)
  const burstRows: Row[] = [
    { measurement: `sync: burst of ${k} creates on A → all listed on B`, unit: 'ms', better: 'lower', value: b.totalMs, baseline: 'the burst itself on A', baselineValue: b.burstMs },
    // The target is absolute: the baseline column holds it, so the ratio says how far off it is.
    { measurement: `sync: burst of ${k} creates, last close on A → all listed on B`, unit: 'ms', better: 'lower', value: afterMs, baseline: 'target (issue 24)', baselineValue: TARGET_BURST_AFTER_MS, target: 1 }
  ]
  if (BURST_ONLY) return burstRows

  const p50 = percentile(lat, 50)
  const p99 = percentile(lat, 99)
  const rp50 = percentile(rtt, 50)
  const rp99 = percentile(rtt, 99)
  ctx.note(`sync targets (absolute, issue 4): propagation p50 ${fmt(p50)} ms < ${TARGET_P50_MS} ms: ${verdict(p50, TARGET_P50_MS)}; p99 ${fmt(p99)} ms < ${TARGET_P99_MS} ms: ${verdict(p99, TARGET_P99_MS)}`)
  ctx.note(`sync propagation over ${CHANGES} changes (ms): min ${fmt(Math.min(...lat))}, p10 ${fmt(percentile(lat, 10))}, p50 ${fmt(p50)}, p90 ${fmt(percentile(lat, 90))}, p99 ${fmt(p99)}, max ${fmt(Math.max(...lat))}, mean ${fmt(lat.reduce((s, x) => s + x, 0) / lat.length)}; ` +
    `${otherSizeFirst} of ${CHANGES} showed on B with another size first; the first directory (lat/) took ${fmt(firstDirMs)} ms; stat polled every ~1 ms`)
  ctx.note(`sync baseline: HTTP POST (100 bytes, keep-alive) host 1 → host 2, ${rtt.length} round trips after 20 warm-up: min ${fmt(Math.min(...rtt))}, p50 ${fmt(rp50)}, p99 ${fmt(rp99)}, max ${fmt(Math.max(...rtt))} ms`)
  const g = git!
  ctx.note(`sync git: a repository of ${GIT_FILES.toLocaleString('en-US')} files of 20 KB committed on A; git status on A ${fmt(g.onA)} ms; the first on B ${fmt(g.onB)} ms, during which B's contents grew by ${g.fetchedKiB} KiB`)
  return [
    { measurement: `sync: close() on A → stat with new size on B, p50 of ${CHANGES}`, unit: 'ms', better: 'lower', value: p50, baseline: 'HTTP POST round trip A→B host, p50', baselineValue: rp50 },
    { measurement: `sync: close() on A → stat with new size on B, p99 of ${CHANGES}`, unit: 'ms', better: 'lower', value: p99, baseline: 'HTTP POST round trip A→B host, p99', baselineValue: rp99 },
    ...burstRows,
    { measurement: `sync: first git status on B of a repository of ${GIT_FILES.toLocaleString('en-US')} files committed on A`, unit: 'ms', better: 'lower', value: g.onB, baseline: 'git status on A', baselineValue: g.onA }
  ]
}

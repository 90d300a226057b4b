// Issue 24's idle row with real nodes: three swarmfs nodes on three namespace hosts
// (bench/lib/netns.ts), holding a volume of sizes.bigVolumeFiles files (100,000;
// SWARMFS_BENCH_FILES=1000000 for the million) between them, with nothing changing.
//   - A's disk is built by build-volume.js (directories of 1,000 files, a content each) and A runs
//     (`swarmfs start --no-mount`); B and C join it (`swarmfs join --no-start`), are given A's
//     contents as hard links in their content/ (a copy of a million small files over BitTorrent
//     would take the run's hour), and start. Every content is then on 3 disks (target 2).
//   - Once each node's own status shows the other two up and nothing under target, and a further
//     SWARMFS_BENCH_IDLE_WARM_S (default 60) has passed for the start's own work, each node's CPU
//     (utime + stime from /proc) and the bytes its host sent on eth0 (mDNS, heads, holdings) are
//     read over SWARMFS_BENCH_IDLE_NODES_S (default 60). Nothing asks the nodes anything meanwhile.
// Baseline: the same three nodes, started the same way, on an empty volume, in the same run. The
// issue's targets are absolute (under 1 % of a core and 10 KB/s per node): the notes say whether
// the busiest node meets them.
import fs from 'node:fs'
import { join } from 'node:path'
import { execFileSync, type ChildProcess } from 'node:child_process'
import { benchDist, node, outDir, profileDir, sizes, swarmfsBin, verbose } from './lib/env.js'
import type { Context } from './lib/context.js'
import { createNetwork, type NetHost } from './lib/netns.js'
import { runOk, rssOf, sleep, stopChild, waitForLine } from './lib/proc.js'
import { initVolume } from './lib/servers.js'
import { replicationOf } from './lib/storage-nodes.js'
import type { Row } from './lib/table.js'
import { childEnv } from './content.js'

const WARM_S = Number(process.env.SWARMFS_BENCH_IDLE_WARM_S ?? 60)
const IDLE_S = Number(process.env.SWARMFS_BENCH_IDLE_NODES_S ?? 60)
/** Flags for the nodes' node (SWARMFS_BENCH_IDLE_NODE_FLAGS, e.g. --trace-gc: its lines go to the logs). */
const NODE_FLAGS = (process.env.SWARMFS_BENCH_IDLE_NODE_FLAGS ?? '').split(' ').filter(f => f !== '')
const PER_DIR = 1000
const TARGET_CPU_PERCENT = 1
const TARGET_BYTES_PER_S = 10_000
/** Bound a hang only. */
const START_TIMEOUT_MS = 30 * 60_000
const SETTLE_TIMEOUT_MS = 10 * 60_000

interface Running { label: string, host: NetHost, disk: string, child: ChildProcess, logFile: string }
interface Idle { files: number, cpu: number[], bytesPerS: number[], rss: number[], setupMs: number, settleMs: number }

const fmt = (x: number): string => x < 10 ? x.toFixed(2) : x.toFixed(0)

/** Ticks (user + system) a process has used, from /proc/<pid>/stat. */
function cpuTicks (pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
  // The name in parentheses may hold spaces; fields count from the state, after it.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return Number(fields[11]) + Number(fields[12])
}

/** Bytes `host`'s eth0 has sent (its counters, asked over netlink in the host's namespace). */
async function txBytes (host: NetHost): Promise<number> {
  const r = await runOk('ip', ['-n', host.name, '-j', '-s', 'link', 'show', 'dev', 'eth0'], { timeoutMs: 10_000 })
  const [link] = JSON.parse(r.stdout) as Array<{ stats64: { tx: { bytes: number } } }>
  return link.stats64.tx.bytes
}

function tailOf (file: string): string {
  try { return fs.readFileSync(file, 'utf8').split('\n').slice(-15).join('\n') } catch { return '' }
}

export async function idleNodesBench (ctx: Context): Promise<Row[]> {
  const w = join(ctx.work, 'idle-nodes')
  fs.mkdirSync(w, { recursive: true })
  const hz = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim())
  const files = sizes.bigVolumeFiles
  const empty = await idleCluster(ctx, w, 'empty', 0, hz)
  const big = await idleCluster(ctx, w, 'big', files, hz)
  const max = (xs: number[]): number => Math.max(...xs)
  for (const r of [empty, big]) {
    ctx.note(`idle-nodes: ${r.files} files on 3 nodes (A, B, C), over ${IDLE_S} s after ${WARM_S} s of warm-up: CPU ${r.cpu.map(fmt).join(', ')} % of a core; ` +
      `sent ${r.bytesPerS.map(fmt).join(', ')} B/s on eth0; RSS ${r.rss.map(b => fmt(b / 2 ** 20)).join(', ')} MiB; set up in ${fmt(r.setupMs / 1000)} s, all up with nothing under target ${fmt(r.settleMs / 1000)} s after the last start`)
  }
  ctx.note(`idle-nodes targets (absolute, issue 24), busiest node at ${files} files: CPU ${fmt(max(big.cpu))} % < ${TARGET_CPU_PERCENT} %: ${max(big.cpu) < TARGET_CPU_PERCENT ? 'ok' : 'MISSED'}; ` +
    `network ${fmt(max(big.bytesPerS))} B/s < ${TARGET_BYTES_PER_S} B/s: ${max(big.bytesPerS) < TARGET_BYTES_PER_S ? 'ok' : 'MISSED'}`)
  return [
    { measurement: `idle-nodes: ${files} files on 3 real nodes, nothing changing: CPU of the busiest node over ${IDLE_S} s`, unit: '% of a core', better: 'lower', value: max(big.cpu), baseline: 'the same 3 nodes, empty volume', baselineValue: max(empty.cpu), samples: { value: big.cpu, baseline: empty.cpu } },
    { measurement: `idle-nodes: ${files} files on 3 real nodes, nothing changing: bytes sent by the busiest node`, unit: 'B/s', better: 'lower', value: max(big.bytesPerS), baseline: 'the same 3 nodes, empty volume', baselineValue: max(empty.bytesPerS), samples: { value: big.bytesPerS, baseline: empty.bytesPerS } }
  ]
}

/** Three nodes of a volume of `files` files on a network of their own; their idle figures. */
async function idleCluster (ctx: Context, w: string, label: string, files: number, hz: number): Promise<Idle> {
  const net = await createNetwork(3)
  const running: Running[] = []
  const start = async (host: NetHost, name: string, disk: string, args: string[]): Promise<Running> => {
    const logFile = join(outDir, `idle-nodes-${label}-${name}.log`)
    const logFd = fs.openSync(logFile, 'a')
    const profile = profileDir !== null ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : []
    profile.push(...NODE_FLAGS)
    if (profileDir !== null) fs.mkdirSync(profileDir, { recursive: true })
    let child: ChildProcess
    try {
      child = net.spawn(host, node, [...profile, swarmfsBin, 'start', '--disk', disk, '--no-mount', '--address', host.address, ...args, ...verbose], { stdio: ['ignore', 'pipe', logFd], env: childEnv() })
    } finally {
      fs.closeSync(logFd)
    }
    const r: Running = { label: name, host, disk, child, logFile }
    running.push(r)
    await waitForLine(child, /running/, START_TIMEOUT_MS, () => tailOf(logFile))
    // Drained from now on: a full pipe would stop the node at its next line.
    child.stdout?.on('data', (d: Buffer) => fs.appendFileSync(logFile, `[bench] stdout: ${d.toString()}`))
    return r
  }
  try {
    const t0 = performance.now()
    const [h1, h2, h3] = net.hosts
    const diskA = join(w, `${label}-disk-a`)
    await initVolume(diskA)
    if (files > 0) {
      const dirs = Math.max(1, Math.ceil(files / PER_DIR))
      await runOk(node, [join(benchDist, 'lib', 'build-volume.js'), diskA, String(dirs), String(Math.ceil(files / dirs))], { timeoutMs: 3_600_000 })
    }
    await start(h1, 'A', diskA, [])
    const config = JSON.parse(fs.readFileSync(join(diskA, 'node.json'), 'utf8')) as { volumeName: string, volumeKey: string, httpPort: number }
    const invite = `swarmfs://${config.volumeName}/${config.volumeKey}`
    const peerA = `${h1.address}:${config.httpPort}`
    const others: Array<[NetHost, string, string]> = [[h2, 'B', join(w, `${label}-disk-b`)], [h3, 'C', join(w, `${label}-disk-c`)]]
    for (const [host, , disk] of others) {
      const r = await net.exec(host, node, [swarmfsBin, 'join', invite, '--disk', disk, '--peer', peerA, '--wait', '60', '--no-start'], { env: childEnv(), timeoutMs: START_TIMEOUT_MS })
      if (r.code !== 0) throw new Error(`swarmfs join on ${host.name} exited ${r.code ?? r.signal}: ${r.stderr.trim().slice(-2000)}`)
      // The same disk's files as A's, as a finished copy would have them.
      if (files > 0) await runOk('cp', ['-al', `${join(diskA, 'content')}/.`, join(disk, 'content')], { timeoutMs: START_TIMEOUT_MS })
    }
    for (const [host, name, disk] of others) await start(host, name, disk, ['--peer', peerA])
    const setupMs = performance.now() - t0

    // Settled: every node sees the other two up, and nothing under target.
    const t1 = performance.now()
    for (;;) {
      let settled = true
      for (const r of running) {
        const view = await replicationOf(net, r.host, r.disk)
        const up = view?.nodes.filter(n => n.up).length ?? 0
        if (view === null || view.underTarget !== 0 || up < 3) settled = false
      }
      if (settled) break
      if (performance.now() - t1 > SETTLE_TIMEOUT_MS) throw new Error(`idle-nodes ${label}: not every node saw 3 up and nothing under target within ${SETTLE_TIMEOUT_MS} ms`)
      await sleep(1000)
    }
    const settleMs = performance.now() - t1
    await sleep(WARM_S * 1000)

    const pids = running.map(r => r.child.pid ?? -1)
    const cpu0 = pids.map(cpuTicks)
    const tx0 = await Promise.all(running.map(r => txBytes(r.host)))
    const m0 = performance.now()
    await sleep(IDLE_S * 1000)
    const cpu1 = pids.map(cpuTicks)
    const tx1 = await Promise.all(running.map(r => txBytes(r.host)))
    const wallS = (performance.now() - m0) / 1000
    const rss = pids.map(rssOf)
    return {
      files,
      cpu: pids.map((_, i) => (cpu1[i] - cpu0[i]) / hz / wallS * 100),
      bytesPerS: running.map((_, i) => (tx1[i] - tx0[i]) / wallS),
      rss,
      setupMs,
      settleMs
    }
  } finally {
    for (const r of [...running].reverse()) {
      const { clean } = await stopChild(r.child)
      if (!clean) ctx.note(`idle-nodes: WARNING ${label} ${r.label} did not exit 0 after SIGTERM (${r.child.exitCode ?? r.child.signalCode}); see ${r.logFile}`)
    }
    await net.cleanup()
    for (const name of fs.readdirSync(w)) if (name.startsWith(`${label}-`)) fs.rmSync(join(w, name), { recursive: true, force: true })
  }
}

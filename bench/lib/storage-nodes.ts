// Storage nodes of the replication benchmarks (replicate.ts, replicate-small.ts): a swarmfs child
// without a mount (`swarmfs join <invite> --peer <A>`, an empty disk) on a namespace host, the
// wait until its content/ holds every content of a set, and its own view of the replication.
import fs from 'node:fs'
import { join } from 'node:path'
import type { ChildProcess } from 'node:child_process'
import { node, outDir, profileDir, swarmfsBin, verbose } from './env.js'
import type { Context } from './context.js'
import type { Network, NetHost } from './netns.js'
import { sleep, stopChild, waitForLine } from './proc.js'
import { childEnv } from '../content.js'

/** A storage node: a swarmfs child without a mount (servers.ts's servers are mounted ones). */
export interface StorageNode { label: string, child: ChildProcess, disk: string, logFile: string, joinMs: number, runningAt: number }

export interface ReplicationView { underTarget: number, copies: number, nodes: Array<{ nodeId: string, up: boolean, complete: number, completeBytes: number }> }

const POLL_MS = 50
/** Bound a hang only. */
const COMPLETE_TIMEOUT_MS = 30 * 60_000
const STATUS_TIMEOUT_MS = 30_000

function tailOf (file: string): string {
  try { return fs.readFileSync(file, 'utf8').split('\n').slice(-15).join('\n') } catch { return '' }
}

/**
 * Polls `dir` every ~50 ms until each of `want` (infohash → bytes) is a file of that size there; each
 * one's ms after `since`. One listing a poll, and a stat only of the names new in it: a content is
 * renamed into content/ once complete and synced, and a poll over 10,000 stats would take a core.
 */
export async function completeIn (dir: string, want: Map<string, number>, since: number): Promise<Map<string, number>> {
  const done = new Map<string, number>()
  for (;;) {
    let names: string[] = []
    try { names = fs.readdirSync(dir) } catch {}
    for (const ih of names) {
      const bytes = want.get(ih)
      if (bytes === undefined || done.has(ih)) continue
      try {
        if (fs.statSync(join(dir, ih)).size === bytes) done.set(ih, performance.now() - since)
      } catch {}
    }
    if (done.size === want.size) return done
    if (performance.now() - since > COMPLETE_TIMEOUT_MS) throw new Error(`${dir} holds ${done.size} of the ${want.size} contents complete after ${COMPLETE_TIMEOUT_MS} ms`)
    await sleep(POLL_MS)
  }
}

/** `swarmfs status --json` of a running node (run in its host: the node answers on its address); its live replication view. */
export async function replicationOf (net: Network, host: NetHost, disk: string): Promise<ReplicationView | null> {
  const r = await net.exec(host, node, [swarmfsBin, 'status', '--disk', disk, '--json'], { env: childEnv(), timeoutMs: 60_000 })
  if (r.code !== 0) throw new Error(`swarmfs status --disk ${disk} exited ${r.code ?? r.signal}: ${r.stderr.trim().slice(-2000)}`)
  return (JSON.parse(r.stdout) as { live: { replication?: ReplicationView | null } | null }).live?.replication ?? null
}

/** Waits until the node's own `swarmfs status --json` reports nothing under target (throws after 30 s); the ms it took. */
export async function noneUnderTarget (net: Network, host: NetHost, s: StorageNode): Promise<number> {
  const t0 = performance.now()
  for (;;) {
    const view = await replicationOf(net, host, s.disk)
    if (view !== null && view.underTarget === 0) return performance.now() - t0
    if (performance.now() - t0 > STATUS_TIMEOUT_MS) throw new Error(`${s.label} holds every content but its status reports ${view?.underTarget ?? '(no replication status)'} files under target after ${STATUS_TIMEOUT_MS} ms`)
    await sleep(500)
  }
}

export interface StorageNodes {
  /** A fresh storage node joined on `host` with an empty disk under `dir`; resolves at its "running" line. */
  join: (host: NetHost, invite: string, peer: string) => Promise<StorageNode>
  /** SIGTERM, and a note if it did not exit 0. */
  stop: (s: StorageNode) => Promise<void>
  /** Every one still running, newest first. */
  stopAll: () => Promise<void>
}

/** Storage nodes of one benchmark: disks `<dir>/disk-<name><k>`, logs `<outDir>/<bench>-swarmfs-<name><k>.log`. */
export function storageNodes (net: Network, dir: string, ctx: Context, bench: string, name: string): StorageNodes {
  const live: StorageNode[] = []
  let seq = 0
  const stop = async (s: StorageNode): Promise<void> => {
    const { clean } = await stopChild(s.child)
    live.splice(live.indexOf(s), 1)
    if (!clean) ctx.note(`${bench}: WARNING ${s.label} did not exit 0 after SIGTERM (${s.child.exitCode ?? s.child.signalCode}); see ${s.logFile}`)
  }
  return {
    join: async (host, invite, peer) => {
      const k = ++seq
      const label = `swarmfs-${name}${k}`
      const disk = join(dir, `disk-${name}-${k}`)
      const logFile = join(outDir, `${bench}-${label}.log`)
      const profile = profileDir !== null ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : []
      if (profileDir !== null) fs.mkdirSync(profileDir, { recursive: true })
      const logFd = fs.openSync(logFile, 'a')
      const t0 = performance.now()
      let child: ChildProcess
      try {
        child = net.spawn(host, node, [...profile, swarmfsBin, 'join', invite, '--disk', disk, '--peer', peer, '--wait', '60', ...verbose], { stdio: ['ignore', 'pipe', logFd], env: childEnv() })
      } finally {
        fs.closeSync(logFd)
      }
      const s: StorageNode = { label, child, disk, logFile, joinMs: 0, runningAt: 0 }
      live.push(s)
      const line = await waitForLine(child, /running/, 600_000, () => tailOf(logFile))
      s.runningAt = performance.now()
      s.joinMs = s.runningAt - t0
      fs.appendFileSync(logFile, `[bench] stdout: ${line}\n`)
      child.stdout?.on('data', (d: Buffer) => fs.appendFileSync(logFile, `[bench] stdout: ${d.toString()}`))
      return s
    },
    stop,
    stopAll: async () => { for (const s of [...live].reverse()) await stop(s) }
  }
}

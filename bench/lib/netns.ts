// A network of "hosts" on one machine for the cluster benchmarks (same layout as the tests' network,
// DESIGN.md "Testing a cluster on one machine"): each host is a network namespace with one
// interface (eth0) on a private bridge, connected to nothing else.
//
//   <prefix>-sw   the switch: bridge br0, and one port pN per host (the peer of host N's eth0)
//   <prefix>-hN   host N (1-based): lo up, eth0 = 10.<x>.0.N/24, default route on eth0 (without a
//                 route multicast has none, and mDNS sees nobody)
//
// Processes run in a host through `nsenter --net=/run/netns/<name>` (nsenter execs the program, so
// the child's pid is the program's), never `ip netns exec`, which would also give the command a
// private mount namespace and hide a node's FUSE mount from everyone else.
//
// Needs root. The benchmark run itself is inside `unshare --net` (npm run bench), so nothing can
// reach an outside network even if a step here went wrong.
//
// Cleanup: `cleanup()` (async, at the end of a benchmark, success or failure) kills whatever still
// runs in our namespaces and deletes them. Before anything is created, a synchronous version is
// registered with proc.ts's onCleanupSync, which run.ts's exit/signal/failure path runs.
import { execFileSync, type ChildProcess, type SpawnOptions } from 'node:child_process'
import { onCleanupSync, run, runOk, spawnTracked, type RunResult } from './proc.js'

export interface NetHost {
  /** Namespace name, `<prefix>-hN`. */
  name: string
  /** IPv4 address on the network (no prefix length). */
  address: string
}

export interface Network {
  /** `sfb<pid>n<k>`: unique to this process and network. */
  prefix: string
  /** e.g. 10.201.0.0/24 */
  subnet: string
  hosts: NetHost[]
  /** The command prefix that runs a program in `host`: `nsenter --net=/run/netns/<name> --`. */
  via: (host: NetHost) => string[]
  /** Starts a (tracked) process in a host. */
  spawn: (host: NetHost, cmd: string, args: string[], opts?: SpawnOptions) => ChildProcess
  /** Runs a command in a host to completion. */
  exec: (host: NetHost, cmd: string, args: string[], opts?: SpawnOptions & { timeoutMs?: number }) => Promise<RunResult>
  /** Kills what still runs in the namespaces, deletes them. Safe to call twice. */
  cleanup: () => Promise<void>
}

let made = 0

function pidsInSync (ns: string): number[] {
  try {
    return execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
      .split('\n').filter(l => /^\d+$/.test(l)).map(Number)
  } catch {
    return []
  }
}

function destroySync (namespaces: string[]): void {
  for (const ns of namespaces) {
    for (const pid of pidsInSync(ns)) { try { process.kill(pid, 'SIGKILL') } catch {} }
  }
  for (const ns of [...namespaces].reverse()) {
    try { execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' }) } catch { /* never made, or gone */ }
  }
}

/** Builds a network of `n` hosts on one switch. */
export async function createNetwork (n: number): Promise<Network> {
  if (!Number.isInteger(n) || n < 1 || n > 250) throw new Error(`hosts must be 1..250, got ${n}`)
  const k = made++
  const prefix = `sfb${process.pid}n${k}`
  const x = 200 + (k % 50)
  const sw = `${prefix}-sw`
  const hosts: NetHost[] = Array.from({ length: n }, (_, i) => ({ name: `${prefix}-h${i + 1}`, address: `10.${x}.0.${i + 1}` }))
  const namespaces = [sw, ...hosts.map(h => h.name)]
  const unregister = onCleanupSync(() => destroySync(namespaces))

  let cleaning: Promise<void> | null = null
  const cleanup = (): Promise<void> => (cleaning ??= (async () => {
    for (const ns of namespaces) {
      for (const pid of pidsInSync(ns)) {
        process.stderr.write(`bench: netns cleanup: killing pid ${pid}, still running in ${ns}\n`)
        try { process.kill(pid, 'SIGKILL') } catch {}
      }
    }
    const problems: string[] = []
    for (const ns of [...namespaces].reverse()) {
      const r = await run('ip', ['netns', 'del', ns], { timeoutMs: 30_000 })
      if (r.code !== 0 && !/No such file|not exist/i.test(r.stderr)) problems.push(`ip netns del ${ns}: ${r.stderr.trim()}`)
    }
    unregister()
    if (problems.length > 0) throw new Error(`netns cleanup failed: ${problems.join('; ')}`)
  })())

  const ip = async (args: string[]): Promise<void> => { await runOk('ip', args, { timeoutMs: 30_000 }) }
  try {
    await ip(['netns', 'add', sw])
    // No multicast snooping: every host gets every group at once, without waiting for IGMP reports.
    await ip(['-n', sw, 'link', 'add', 'br0', 'type', 'bridge', 'mcast_snooping', '0'])
    await ip(['-n', sw, 'link', 'set', 'br0', 'up'])
    for (const [i, h] of hosts.entries()) {
      const port = `p${i + 1}`
      await ip(['netns', 'add', h.name])
      // Both ends are created straight in their namespaces: no name can clash with ours.
      await ip(['link', 'add', 'eth0', 'netns', h.name, 'type', 'veth', 'peer', 'name', port, 'netns', sw])
      await ip(['-n', sw, 'link', 'set', port, 'master', 'br0', 'up'])
      await ip(['-n', h.name, 'link', 'set', 'lo', 'up'])
      await ip(['-n', h.name, 'addr', 'add', `${h.address}/24`, 'dev', 'eth0'])
      await ip(['-n', h.name, 'link', 'set', 'eth0', 'up'])
      await ip(['-n', h.name, 'route', 'add', 'default', 'dev', 'eth0'])
    }
  } catch (err) {
    await cleanup().catch(() => {})
    throw err
  }

  const argsIn = (host: NetHost, cmd: string, args: string[]): string[] => [`--net=/run/netns/${host.name}`, '--', cmd, ...args]
  return {
    prefix,
    subnet: `10.${x}.0.0/24`,
    hosts,
    via: host => ['nsenter', `--net=/run/netns/${host.name}`, '--'],
    spawn: (host, cmd, args, opts = {}) => {
      if (cleaning !== null) throw new Error('network is being cleaned up')
      return spawnTracked('nsenter', argsIn(host, cmd, args), opts)
    },
    exec: async (host, cmd, args, opts = {}) => await run('nsenter', argsIn(host, cmd, args), opts),
    cleanup
  }
}

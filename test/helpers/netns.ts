// A test network of "hosts" on one machine, for cluster tests: each host is a network namespace
// with one interface (eth0) on a private bridge, so mDNS, HTTP and BitTorrent between nodes cross
// a real (virtual) network that is connected to nothing else.
//
//   <prefix>-sw   the switch: bridge br0, and one port pN per host (the peers of the hosts' veths)
//   <prefix>-hN   host N (1-based): lo up, eth0 = 10.<x>.0.(N+1)/24, default route on eth0, so
//                 multicast (224.0.0.0/4) has a route and mDNS works
//
// Processes are started in a host with `nsenter --net=/run/netns/NAME`, never `ip netns exec`:
// the latter also gives the command a private mount namespace, which would hide a node's FUSE
// mount from every other process.
//
// Needs root (ip netns). Run the test itself inside `unshare --net` (as scripts/test.sh does), so
// nothing can leak to an outside network even if a step here went wrong.
//
// Cleanup (t.teardown, also callable early): processes started with `spawn` get SIGTERM, then
// SIGKILL after a grace period; processes still found in one of our namespaces are killed by pid;
// then every namespace is deleted. If the test process exits, or gets SIGINT/SIGTERM/SIGHUP or
// tap's timeout signal (SIGALRM) first, a synchronous handler kills the processes in our
// namespaces (SIGKILL) and deletes the namespaces. Only SIGKILL of the test process leaks them.
import { execFile, execFileSync, spawn as spawnChild, type ChildProcess, type StdioOptions } from 'node:child_process'
import type { Test } from 'tap'
import { childEnv, run, type RunResult } from './volume.js'

export interface NetHost {
  /** The namespace name, `<prefix>-hN`. */
  name: string
  /** Its IPv4 address on the test subnet (without prefix length). */
  address: string
  /** Its interface on the test network. */
  iface: string
}

export interface SpawnOptions {
  /** Extra environment variables; the base is the test's environment without tap's loader hooks. */
  env?: Record<string, string>
  cwd?: string
  /** Default: stdin ignored, stdout and stderr piped (and recorded for waitForLine / outputOf). */
  stdio?: StdioOptions
}

export interface ExecOptions {
  env?: Record<string, string>
  cwd?: string
  input?: string
  timeoutMs?: number
}

export interface Network {
  /** Unique to this network: `sfs<pid>n<k>`. */
  prefix: string
  /** The test subnet in CIDR form, e.g. 10.37.0.0/24. */
  subnet: string
  hosts: NetHost[]
  /** Whether an IPv4 address is on the test subnet. */
  inSubnet (address: string): boolean
  /** Runs a command in a host to completion; resolves with its output and exit status (never rejects on a non-zero exit). */
  exec (host: HostRef, cmd: string, args: string[], opts?: ExecOptions): Promise<RunResult>
  /** Starts a long-running process in a host; it is stopped at cleanup. */
  spawn (host: HostRef, cmd: string, args: string[], opts?: SpawnOptions): ChildProcess
  /** Stops every process started with spawn and deletes every namespace. Safe to call twice. */
  cleanup (): Promise<void>
}

/** A host, or a namespace name. */
export type HostRef = NetHost | string

const SIGTERM_GRACE_MS = 5_000
const IP_DEADLINE_MS = 30_000

let networksMade = 0
const live = new Set<NetworkState>()

interface NetworkState {
  namespaces: string[]
  children: Set<ChildProcess>
}

const nameOf = (host: HostRef): string => typeof host === 'string' ? host : host.name

function nsenterArgs (host: HostRef, cmd: string, args: string[]): string[] {
  return [`--net=/run/netns/${nameOf(host)}`, '--', cmd, ...args]
}

// ---------------------------------------------------------------------------------------------
// Processes

interface Recorded {
  stdout: string
  stderr: string
  exit: { code: number | null, signal: NodeJS.Signals | null } | null
  exited: Promise<void>
  /** Called on every output chunk and on exit, so waiters re-check. */
  changed: Set<() => void>
}

const records = new WeakMap<ChildProcess, Recorded>()

function record (child: ChildProcess): Recorded {
  const rec: Recorded = { stdout: '', stderr: '', exit: null, exited: Promise.resolve(), changed: new Set() }
  const notify = (): void => { for (const f of [...rec.changed]) f() }
  child.stdout?.setEncoding('utf8').on('data', (s: string) => { rec.stdout += s; notify() })
  child.stderr?.setEncoding('utf8').on('data', (s: string) => { rec.stderr += s; notify() })
  rec.exited = new Promise(resolve => {
    // 'close' comes after the output is drained, so a waiter sees the last lines before the exit.
    child.once('close', (code: number | null, signal: NodeJS.Signals | null) => { rec.exit = { code, signal }; resolve(); notify() })
    child.once('error', err => { rec.stderr += `spawn failed: ${err.message}\n`; rec.exit ??= { code: null, signal: null }; resolve(); notify() })
  })
  records.set(child, rec)
  return rec
}

function recordOf (child: ChildProcess): Recorded {
  const rec = records.get(child)
  if (rec === undefined) throw new Error('not a process started by spawnIn / network.spawn')
  return rec
}

/**
 * Starts `cmd` in a host (nsenter execs it, so the child's pid is the program's pid). The caller
 * owns the process; prefer `network.spawn`, which also stops it at cleanup.
 */
export function spawnIn (host: HostRef, cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
  const child = spawnChild('nsenter', nsenterArgs(host, cmd, args), {
    cwd: opts.cwd,
    env: childEnv(opts.env),
    stdio: opts.stdio ?? ['ignore', 'pipe', 'pipe']
  })
  record(child)
  return child
}

/** Everything a process started here printed so far, and its exit once it has exited. */
export function outputOf (child: ChildProcess): { stdout: string, stderr: string, exit: Recorded['exit'] } {
  const rec = recordOf(child)
  return { stdout: rec.stdout, stderr: rec.stderr, exit: rec.exit }
}

/**
 * Resolves with the first complete line (printed at any time since the start) matching `regex`.
 * Rejects if the process exits without printing one, or after `timeoutMs`; the error carries the
 * process's output. The deadline only bounds a hang: make it generous.
 */
export function waitForLine (child: ChildProcess, regex: RegExp, timeoutMs: number, stream: 'stdout' | 'stderr' = 'stdout'): Promise<string> {
  const rec = recordOf(child)
  return new Promise((resolve, reject) => {
    const finish = (err: Error | null, line = ''): void => {
      clearTimeout(timer)
      rec.changed.delete(check)
      if (err === null) resolve(line)
      else reject(err)
    }
    const describe = (why: string): Error => new Error(`${why} (pid ${child.pid ?? '?'}, waiting for ${String(regex)} on ${stream})\n--- stdout\n${rec.stdout.slice(-4000)}\n--- stderr\n${rec.stderr.slice(-4000)}`)
    const check = (): void => {
      const complete = rec[stream].slice(0, rec[stream].lastIndexOf('\n') + 1)
      const line = complete.split('\n').find(l => regex.test(l))
      if (line !== undefined) finish(null, line)
      else if (rec.exit !== null) finish(describe(`exited (${rec.exit.code ?? rec.exit.signal}) without printing the line`))
    }
    const timer = setTimeout(() => finish(describe(`no such line within ${timeoutMs} ms`)), timeoutMs)
    rec.changed.add(check)
    check()
  })
}

/** SIGTERM, then SIGKILL if it is still running after `graceMs`; resolves with how it exited. */
export async function stopProcess (child: ChildProcess, graceMs = SIGTERM_GRACE_MS): Promise<{ code: number | null, signal: NodeJS.Signals | null, killed: boolean }> {
  const rec = recordOf(child)
  if (rec.exit === null) child.kill('SIGTERM')
  let timer: NodeJS.Timeout | undefined
  const inTime = await Promise.race([
    rec.exited.then(() => true),
    new Promise<boolean>(resolve => { timer = setTimeout(() => resolve(false), graceMs) })
  ])
  clearTimeout(timer)
  if (!inTime) {
    child.kill('SIGKILL')
    await rec.exited
  }
  return { ...rec.exit!, killed: !inTime }
}

// ---------------------------------------------------------------------------------------------
// Namespaces

async function ip (args: string[]): Promise<void> {
  const r = await run('ip', args, { timeoutMs: IP_DEADLINE_MS })
  if (r.code !== 0) throw new Error(`ip ${args.join(' ')} failed (${r.code ?? r.signal}): ${r.stderr.trim()}`)
}

async function buildSwitch (sw: string): Promise<void> {
  await ip(['netns', 'add', sw])
  // No multicast snooping: every host sees every group without waiting for IGMP reports.
  await ip(['-n', sw, 'link', 'add', 'br0', 'type', 'bridge', 'mcast_snooping', '0'])
  await ip(['-n', sw, 'link', 'set', 'br0', 'up'])
}

async function buildHost (sw: string, host: NetHost, port: string): Promise<void> {
  await ip(['netns', 'add', host.name])
  // Both ends are created straight in their namespaces, so no name can clash with the caller's.
  await ip(['link', 'add', host.iface, 'netns', host.name, 'type', 'veth', 'peer', 'name', port, 'netns', sw])
  await ip(['-n', sw, 'link', 'set', port, 'master', 'br0', 'up'])
  await ip(['-n', host.name, 'link', 'set', 'lo', 'up'])
  await ip(['-n', host.name, 'addr', 'add', `${host.address}/24`, 'dev', host.iface])
  await ip(['-n', host.name, 'link', 'set', host.iface, 'up'])
  // Without a route, multicast sends fail with ENETUNREACH and mDNS sees nobody.
  await ip(['-n', host.name, 'route', 'add', 'default', 'dev', host.iface])
}

function pidsIn (namespace: string): number[] {
  try {
    return execFileSync('ip', ['netns', 'pids', namespace], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
      .split('\n').filter(l => /^[0-9]+$/.test(l)).map(Number)
  } catch {
    return []
  }
}

function killPid (pid: number): void {
  try { process.kill(pid, 'SIGKILL') } catch { /* already gone */ }
}

/** The synchronous last resort (process exit or a fatal signal): no grace periods, only SIGKILL. */
function destroySync (state: NetworkState): void {
  for (const child of state.children) if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) killPid(child.pid)
  for (const ns of state.namespaces) {
    for (const pid of pidsIn(ns)) killPid(pid)
    try { execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' }) } catch { /* not created, or already deleted */ }
  }
  live.delete(state)
}

function destroyAllSync (): void {
  for (const state of [...live]) destroySync(state)
}

// SIGALRM is how tap ends a test process that ran past its timeout (then SIGKILL shortly after),
// without running teardowns.
const FATAL_SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGALRM']

function onFatalSignal (signal: NodeJS.Signals): void {
  destroyAllSync()
  // Then let the signal do what it would have done without us: tap's handler (signal-exit steps
  // aside while another listener exists), or the default action.
  unhookSignals()
  process.kill(process.pid, signal)
}

let exitHooked = false
let signalsHooked = false

function hookProcessExit (): void {
  if (!exitHooked) process.on('exit', destroyAllSync)
  if (!signalsHooked) for (const sig of FATAL_SIGNALS) process.on(sig, onFatalSignal)
  exitHooked = signalsHooked = true
}

function unhookSignals (): void {
  for (const sig of FATAL_SIGNALS) process.removeListener(sig, onFatalSignal)
  signalsHooked = false
}

async function destroy (t: Test, state: NetworkState): Promise<void> {
  const problems: string[] = []
  await Promise.all([...state.children].map(async child => {
    const r = await stopProcess(child)
    if (r.killed) t.comment(`netns cleanup: pid ${child.pid ?? '?'} ignored SIGTERM for ${SIGTERM_GRACE_MS} ms and was killed`)
  }))
  // Deleting a namespace name does not end the processes in it; end those a test started by other means.
  for (const ns of state.namespaces) {
    for (const pid of pidsIn(ns)) {
      t.comment(`netns cleanup: killing pid ${pid}, still running in ${ns}`)
      killPid(pid)
    }
  }
  for (const ns of [...state.namespaces].reverse()) {
    const r = await run('ip', ['netns', 'del', ns], { timeoutMs: IP_DEADLINE_MS })
    if (r.code !== 0 && !/No such file/.test(r.stderr)) problems.push(`ip netns del ${ns}: ${r.stderr.trim()}`)
  }
  live.delete(state)
  if (problems.length > 0) throw new Error(`netns cleanup failed:\n${problems.join('\n')}`)
}

/**
 * Builds a network of `hosts` hosts on one switch. Cleanup is registered with `t.teardown` (and a
 * process exit handler) before anything is created, so a failure half-way leaves nothing behind.
 */
export async function createNetwork (t: Test, opts: { hosts: number }): Promise<Network> {
  if (!Number.isInteger(opts.hosts) || opts.hosts < 1 || opts.hosts > 250) throw new Error(`hosts must be 1..250, got ${opts.hosts}`)
  const k = networksMade++
  const prefix = `sfs${process.pid}n${k}`
  // Any /24 would do (each network is isolated); a different one per network of a process keeps
  // addresses in logs unambiguous.
  const x = 10 + (k % 240)
  const sw = `${prefix}-sw`
  const hosts: NetHost[] = Array.from({ length: opts.hosts }, (_, i) => ({ name: `${prefix}-h${i + 1}`, address: `10.${x}.0.${i + 2}`, iface: 'eth0' }))

  const state: NetworkState = { namespaces: [sw, ...hosts.map(h => h.name)], children: new Set() }
  live.add(state)
  hookProcessExit()
  let destroying: Promise<void> | null = null
  const cleanup = (): Promise<void> => (destroying ??= destroy(t, state))
  t.teardown(cleanup)

  await buildSwitch(sw)
  for (const [i, host] of hosts.entries()) await buildHost(sw, host, `p${i + 1}`)

  return {
    prefix,
    subnet: `10.${x}.0.0/24`,
    hosts,
    inSubnet: address => address.startsWith(`10.${x}.0.`) && /^\d+\.\d+\.\d+\.\d+$/.test(address),
    exec: (host, cmd, args, execOpts = {}) => run('nsenter', nsenterArgs(host, cmd, args), execOpts),
    spawn (host, cmd, args, spawnOpts = {}) {
      if (destroying !== null) throw new Error('network is being cleaned up')
      const child = spawnIn(host, cmd, args, spawnOpts)
      state.children.add(child)
      return child
    },
    cleanup
  }
}

/** Polls `check` until it holds; the deadline only bounds a hang (no test asserts on time). */
export async function until (what: string, check: () => boolean | Promise<boolean>, deadlineMs = 60_000): Promise<void> {
  const end = Date.now() + deadlineMs
  while (!await check()) {
    if (Date.now() > end) throw new Error(`gave up waiting: ${what}`)
    await new Promise(resolve => setTimeout(resolve, 100))
  }
}

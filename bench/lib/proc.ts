// Child processes of the benchmarks: every one is registered so that a failure anywhere still ends
// it (SIGTERM by pid, then SIGKILL), and every command is timed from spawn to exit.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process'
import fs from 'node:fs'
import { once } from 'node:events'

const live = new Map<number, ChildProcess>()

export function liveChildren (): number[] {
  return [...live.keys()]
}

/** Spawns a child and tracks it until it exits. */
export function spawnTracked (cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts })
  if (child.pid === undefined) throw new Error(`could not spawn ${cmd}`)
  const pid = child.pid
  live.set(pid, child)
  child.once('exit', () => live.delete(pid))
  child.once('error', () => live.delete(pid))
  return child
}

export function exited (child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null
}

/** Waits for a child to exit; false on timeout. */
export async function waitExit (child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (exited(child)) return true
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<false>(resolve => { timer = setTimeout(() => resolve(false), timeoutMs) })
  const done = once(child, 'exit').then(() => true as const)
  const r = await Promise.race([done, timeout])
  clearTimeout(timer)
  return r
}

/** SIGTERM by pid, wait, then SIGKILL if it is still there. */
export async function stopChild (child: ChildProcess, timeoutMs = 120_000): Promise<{ clean: boolean }> {
  if (exited(child)) return { clean: child.exitCode === 0 }
  try { process.kill(child.pid!, 'SIGTERM') } catch {}
  if (await waitExit(child, timeoutMs)) return { clean: child.exitCode === 0 }
  try { process.kill(child.pid!, 'SIGKILL') } catch {}
  await waitExit(child, 10_000)
  return { clean: false }
}

const syncCleanups = new Set<() => void>()

/**
 * Registers a synchronous last-resort cleanup (e.g. deleting network namespaces) that killAllSync
 * runs after killing the children, so run.ts's exit, signal and failure paths run it too. Returns
 * the function that unregisters it (call it once the normal cleanup is done).
 */
export function onCleanupSync (fn: () => void): () => void {
  syncCleanups.add(fn)
  return () => { syncCleanups.delete(fn) }
}

/** Last resort, synchronous (used from an exit handler): SIGKILL every child still tracked, then the registered cleanups. */
export function killAllSync (): void {
  for (const [pid, child] of live) {
    if (!exited(child)) {
      try { process.kill(pid, 'SIGKILL') } catch {}
    }
  }
  for (const fn of [...syncCleanups]) {
    try { fn() } catch (err) { process.stderr.write(`bench: cleanup failed: ${(err as Error).message}\n`) }
  }
}

export interface RunResult { code: number | null, signal: string | null, stdout: string, stderr: string, ms: number }

/** Runs a command to completion, timing it from spawn to exit (milliseconds). */
export async function run (cmd: string, args: string[], opts: SpawnOptions & { timeoutMs?: number, stdoutToNull?: boolean } = {}): Promise<RunResult> {
  const start = performance.now()
  const child = spawnTracked(cmd, args, { ...opts, stdio: ['ignore', opts.stdoutToNull === true ? 'ignore' : 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout?.setEncoding('utf8').on('data', (d: string) => { stdout += d })
  child.stderr?.setEncoding('utf8').on('data', (d: string) => { stderr += d })
  // 'close' comes once the pipes are drained, which may be after 'exit' (an empty stdout was read
  // from `ip -j` that way); bounded, since a process the command left behind may hold them open.
  const drained = new Promise(resolve => child.once('close', resolve))
  const ok = await waitExit(child, opts.timeoutMs ?? 600_000)
  const ms = performance.now() - start
  if (!ok) {
    await stopChild(child, 5000)
    throw new Error(`${cmd} ${args.join(' ')}: timed out after ${opts.timeoutMs ?? 600_000} ms`)
  }
  await Promise.race([drained, new Promise(resolve => setTimeout(resolve, 5000).unref())])
  return { code: child.exitCode, signal: child.signalCode, stdout, stderr, ms }
}

/** Like run, but throws unless the command exits 0. */
export async function runOk (cmd: string, args: string[], opts: SpawnOptions & { timeoutMs?: number, stdoutToNull?: boolean } = {}): Promise<RunResult> {
  const r = await run(cmd, args, opts)
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code ?? r.signal}: ${r.stderr.trim().slice(-2000)}`)
  return r
}

/** Resolves with the first stdout line matching `re` (and the ms since `since`); rejects if the child exits first. */
export function waitForLine (child: ChildProcess, re: RegExp, timeoutMs: number, describe: () => string = () => ''): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = ''
    const onData = (d: Buffer | string): void => {
      buf += d.toString()
      let nl: number
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl)
        buf = buf.slice(nl + 1)
        if (re.test(line)) {
          finish()
          resolve(line)
          return
        }
      }
    }
    const onExit = (code: number | null, signal: string | null): void => {
      finish()
      reject(new Error(`process exited (${code ?? signal}) before printing ${re}: ${describe()}`))
    }
    const timer = setTimeout(() => {
      finish()
      reject(new Error(`no line matching ${re} within ${timeoutMs} ms: ${describe()}`))
    }, timeoutMs)
    const finish = (): void => {
      clearTimeout(timer)
      child.stdout?.off('data', onData)
      child.off('exit', onExit)
    }
    child.stdout?.on('data', onData)
    child.once('exit', onExit)
  })
}

/** Resident set size of a process in bytes (VmRSS from /proc/<pid>/status). */
export function rssOf (pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8')
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status)
  if (m === null) throw new Error(`no VmRSS for pid ${pid}`)
  return Number(m[1]) * 1024
}

export const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

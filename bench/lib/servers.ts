// Starting and stopping the filesystems under test, each a child process: a swarmfs node (the real
// CLI), the passthrough baseline and the do-nothing baseline. Stopping is SIGTERM by pid, then
// SIGKILL, then `fusermount -uz` if the mount is still there.
import fs from 'node:fs'
import { join } from 'node:path'
import type { ChildProcess } from 'node:child_process'
import { benchDist, node, outDir, profileDir, swarmfsBin } from './env.js'
import { forceUnmount, isMounted, trackMount } from './mounts.js'
import { runOk, spawnTracked, stopChild, waitForLine } from './proc.js'

export interface Server {
  label: string
  mountPoint: string
  child: ChildProcess
  pid: number
  /** Milliseconds from spawn to the line saying it is mounted. */
  readyMs: number
  /** performance.now() at spawn. */
  spawnedAt: number
  logFile: string
  stop: () => Promise<void>
}

let logSeq = 0
function logFileFor (label: string): string {
  fs.mkdirSync(outDir, { recursive: true })
  return join(outDir, `${String(++logSeq).padStart(2, '0')}-${label}.log`)
}

function tail (file: string): string {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').slice(-15).join('\n')
  } catch {
    return ''
  }
}

/** Spawns `node args` (through `via`, e.g. nsenter and its arguments, if given) and waits for `ready` on stdout. */
async function startServer (label: string, args: string[], mountPoint: string, ready: RegExp, env: NodeJS.ProcessEnv = process.env, timeoutMs = 600_000, via: string[] = []): Promise<Server> {
  const logFile = logFileFor(label)
  const logFd = fs.openSync(logFile, 'a')
  trackMount(mountPoint)
  const spawnedAt = performance.now()
  let child: ChildProcess
  try {
    child = via.length > 0
      ? spawnTracked(via[0], [...via.slice(1), node, ...args], { stdio: ['ignore', 'pipe', logFd], env })
      : spawnTracked(node, args, { stdio: ['ignore', 'pipe', logFd], env })
  } finally {
    fs.closeSync(logFd)
  }
  const server: Server = {
    label,
    mountPoint,
    child,
    pid: child.pid!,
    readyMs: 0,
    spawnedAt,
    logFile,
    stop: async () => {
      const { clean } = await stopChild(child)
      const forced = forceUnmount(mountPoint)
      if (!clean || forced) process.stderr.write(`bench: ${label} (pid ${child.pid}) did not stop cleanly${forced ? '; unmounted with fusermount -uz' : ''}; see ${logFile}\n`)
    }
  }
  try {
    const line = await waitForLine(child, ready, timeoutMs, () => tail(logFile))
    server.readyMs = performance.now() - spawnedAt
    fs.appendFileSync(logFile, `[bench] stdout: ${line}\n`)
    child.stdout?.on('data', (d: Buffer) => fs.appendFileSync(logFile, `[bench] stdout: ${d.toString()}`))
    if (!isMounted(mountPoint)) throw new Error(`${label} said it is mounted but ${mountPoint} is not in the mount table`)
  } catch (err) {
    await server.stop()
    throw err
  }
  return server
}

/** Creates a volume on an empty disk directory with the CLI (`init --no-start`). */
export async function initVolume (disk: string, name = 'bench'): Promise<void> {
  await runOk(node, [swarmfsBin, 'init', name, '--disk', disk, '--no-start'])
}

/**
 * Runs `swarmfs start` as a child; resolves once it prints its "running" line. With
 * SWARMFS_BENCH_PROFILE set (or `profile`), that child alone runs with --cpu-prof.
 */
export async function startSwarmfs (disk: string, mountPoint: string, opts: { profile?: boolean, env?: NodeJS.ProcessEnv } = {}): Promise<Server> {
  return await startSwarmfsNode(['start', '--disk', disk, '--mount', mountPoint], mountPoint, opts)
}

/**
 * Runs any swarmfs command that ends up running a mounted node (`start`, `init`, `join`) as a
 * child, through `via` if given (e.g. `nsenter --net=... --`); resolves at its "running" line.
 */
export async function startSwarmfsNode (swarmfsArgs: string[], mountPoint: string, opts: { profile?: boolean, env?: NodeJS.ProcessEnv, via?: string[], label?: string, bin?: string } = {}): Promise<Server> {
  const env: NodeJS.ProcessEnv = { ...process.env, ...opts.env }
  delete env.NODE_OPTIONS
  // Node 20 refuses --cpu-prof in NODE_OPTIONS: it goes on the node command line of this child.
  const profile: string[] = []
  if (profileDir !== null && opts.profile !== false) {
    fs.mkdirSync(profileDir, { recursive: true })
    profile.push('--cpu-prof', `--cpu-prof-dir=${profileDir}`)
  }
  return await startServer(opts.label ?? 'swarmfs', [...profile, opts.bin ?? swarmfsBin, ...swarmfsArgs], mountPoint, /running/, env, 600_000, opts.via)
}

/** The passthrough baseline of `backing`, mounted at `mountPoint` with swarmfs's options. */
export async function startPassthrough (backing: string, mountPoint: string): Promise<Server> {
  fs.mkdirSync(backing, { recursive: true })
  const env = { ...process.env }
  delete env.NODE_OPTIONS
  return await startServer('passthrough', [join(benchDist, 'lib', 'passthrough.js'), backing, mountPoint], mountPoint, /mounted/, env)
}

/** The do-nothing in-memory baseline, mounted with swarmfs's options. */
export async function startMemfs (mountPoint: string): Promise<Server> {
  const env = { ...process.env }
  delete env.NODE_OPTIONS
  return await startServer('memfs', [join(benchDist, 'lib', 'memfs.js'), mountPoint], mountPoint, /mounted/, env)
}

/** Runs `fn` with a server, stopping it afterwards whatever happens. */
export async function withServer<T> (start: () => Promise<Server>, fn: (s: Server) => Promise<T>): Promise<T> {
  const server = await start()
  try {
    return await fn(server)
  } finally {
    await server.stop()
  }
}

// Helpers for tests that run real nodes: a volume on a temporary disk, mounted by the real CLI in a
// child process and driven by real programs (cp, mv, dd, git, ...), and a tree checksum computed by
// child processes so two trees (one native, one mounted) can be compared.
//
// The test process never touches a mount itself: the mount is served by a child process, and every
// look at it goes through another child (bash, find, sha256sum). Every volume is torn down when its
// test ends, failed or not: the node is stopped by its pid, a mount still present is lazily
// unmounted, and the temporary directories go.
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import os from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Test } from 'tap'
import { processAlive } from '../../lib/node/disk.js'

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
export const CLI = join(ROOT, 'bin', 'swarmfs.js')

/** How long a node may take to print its "running" line, or to exit after a signal. */
const START_DEADLINE_MS = 60_000
const STOP_DEADLINE_MS = 60_000
/** Any one command run against a mount; far above what a healthy mount needs. */
const COMMAND_DEADLINE_MS = 180_000

export interface RunResult {
  stdout: string
  stderr: string
  /** Exit code; null when the process died of a signal (see `signal`). */
  code: number | null
  signal: NodeJS.Signals | null
}

/** The environment children get: without tap's loader and coverage hooks, with a fixed locale. */
export function childEnv (extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env }
  for (const key of Object.keys(env)) {
    if (key === 'NODE_OPTIONS' || key === 'NODE_V8_COVERAGE' || key.startsWith('TAP') || key.startsWith('TS_NODE') || key === '_TAPJS_PROCESSINFO_EXCLUDE') delete env[key]
  }
  env.LC_ALL = 'C'
  env.LANG = 'C'
  env.TZ = 'UTC'
  return { ...env, ...extra }
}

/** Runs a program; resolves with its output and exit status whatever they are (never rejects on a non-zero exit). */
export function run (cmd: string, args: string[], opts: { cwd?: string, env?: Record<string, string>, input?: string, timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, {
      cwd: opts.cwd,
      env: childEnv(opts.env),
      maxBuffer: 256 * 1024 * 1024,
      timeout: opts.timeoutMs ?? COMMAND_DEADLINE_MS,
      killSignal: 'SIGKILL',
      encoding: 'utf8'
    }, (err, stdout, stderr) => {
      if (err !== null && typeof (err as { code?: unknown }).code === 'string') {
        // Could not start at all (ENOENT, ...).
        reject(err)
        return
      }
      const e = err as (Error & { code?: number, signal?: NodeJS.Signals | null }) | null
      resolve({ stdout, stderr, code: e === null ? 0 : (e.code ?? null), signal: e?.signal ?? null })
    })
    if (opts.input !== undefined) child.stdin?.end(opts.input)
    else child.stdin?.end()
  })
}

/** Runs the swarmfs CLI (the built one) and resolves with its output and exit status. */
export function cli (args: string[], opts: { cwd?: string, timeoutMs?: number } = {}): Promise<RunResult> {
  return run(process.execPath, [CLI, ...args], opts)
}

/**
 * Runs `script` with bash (`set -euo pipefail` first). Unless `allowFail` is set, a non-zero exit
 * fails the test with the script's output and throws, so a scenario stops at its first broken step.
 */
export async function sh (t: Test, script: string, opts: { cwd?: string, env?: Record<string, string>, allowFail?: boolean, timeoutMs?: number } = {}): Promise<RunResult> {
  const r = await run('bash', ['-c', 'set -euo pipefail\n' + script], opts)
  if (opts.allowFail !== true && r.code !== 0) {
    t.fail(`shell step failed (exit ${r.code ?? r.signal})`, { script, cwd: opts.cwd, stdout: r.stdout.slice(-4000), stderr: r.stderr.slice(-4000) })
    throw new Error(`shell step failed: ${script.split('\n')[0]}: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`)
  }
  return r
}

/**
 * Runs a script in a native directory and in the mount, and asserts that both give the same exit
 * code, output and errors (paths of the mount in its errors read as the native ones). Returns the
 * mount's run.
 */
export async function sameAsNative (t: Test, native: string, mounted: string, script: string, msg: string): Promise<RunResult> {
  const a = await sh(t, script, { cwd: native, allowFail: true })
  const b = await sh(t, script, { cwd: mounted, allowFail: true })
  t.same({ code: b.code, stdout: b.stdout, stderr: b.stderr.replaceAll(mounted, native) }, { code: a.code, stdout: a.stdout, stderr: a.stderr }, `${msg}: same as on a local disk`)
  return b
}

// ---------------------------------------------------------------------------------------------
// Mounts

function unescapeMount (s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)))
}

/** Whether a FUSE filesystem is mounted at `dir` (read from /proc/self/mounts, not from the mount). */
/** Bytes of the file at `path` in the page cache (util-linux `fincore`, which asks mincore). */
export function residentBytes (path: string): number {
  return Number(execFileSync('fincore', ['--bytes', '--noheadings', '--output', 'RES', path], { encoding: 'utf8' }).trim())
}

/**
 * Whether `path` is listed with `size` bytes. A peer lists a file as soon as its name is committed,
 * which may be before its bytes are (a commit batch can fall between a create and the close): a
 * test that reads what another node wrote waits for its size, not only its name.
 */
export function listedWith (path: string, size: number): boolean {
  return fs.statSync(path, { throwIfNoEntry: false })?.size === size
}

export function isMounted (dir: string): boolean {
  const table = fs.readFileSync('/proc/self/mounts', 'utf8')
  return table.split('\n').some(line => {
    const [, where, type] = line.split(' ')
    return where !== undefined && unescapeMount(where) === dir && type !== undefined && type.startsWith('fuse')
  })
}

const pidAlive = processAlive

/** A node process started by a test, with everything it printed so far. */
class NodeProcess {
  stdout = ''
  stderr = ''
  exit: { code: number | null, signal: NodeJS.Signals | null } | null = null
  readonly exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
  private readonly child: ChildProcess
  private onChange: (() => void) | null = null

  constructor (args: string[]) {
    this.child = spawn(process.execPath, [CLI, ...args], { env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] })
    this.child.stdout?.setEncoding('utf8').on('data', (s: string) => { this.stdout += s; this.onChange?.() })
    this.child.stderr?.setEncoding('utf8').on('data', (s: string) => { this.stderr += s })
    this.exited = new Promise(resolve => {
      this.child.on('exit', (code, signal) => {
        this.exit = { code, signal }
        resolve(this.exit)
        this.onChange?.()
      })
      this.child.on('error', err => {
        this.stderr += `spawn failed: ${err.message}\n`
        this.exit = { code: null, signal: null }
        resolve(this.exit)
        this.onChange?.()
      })
    })
  }

  get pid (): number {
    return this.child.pid ?? -1
  }

  get running (): boolean {
    return this.exit === null
  }

  /** Waits for the line that says the volume is mounted; rejects if the node exits first or takes too long. */
  async ready (): Promise<void> {
    let timer: NodeJS.Timeout | undefined
    try {
      await new Promise<void>((resolve, reject) => {
        timer = setTimeout(() => reject(new Error(`node did not print "running" within ${START_DEADLINE_MS} ms:\n${this.stdout}${this.stderr}`)), START_DEADLINE_MS)
        this.onChange = () => {
          if (/running/.test(this.stdout)) resolve()
          else if (this.exit !== null) reject(new Error(`node exited (${this.exit.code ?? this.exit.signal}) before running:\n${this.stdout}${this.stderr}`))
        }
        this.onChange()
      })
    } finally {
      clearTimeout(timer)
      this.onChange = null
    }
  }

  /** Sends a signal and waits for the exit, up to a deadline (then SIGKILL, and waits again). */
  async signalAndWait (signal: NodeJS.Signals): Promise<{ code: number | null, signal: NodeJS.Signals | null, timedOut: boolean }> {
    if (this.exit !== null) return { ...this.exit, timedOut: false }
    this.child.kill(signal)
    let timer: NodeJS.Timeout | undefined
    const timedOut = await Promise.race([
      this.exited.then(() => false),
      new Promise<boolean>(resolve => { timer = setTimeout(() => resolve(true), STOP_DEADLINE_MS) })
    ])
    clearTimeout(timer)
    if (timedOut) {
      this.child.kill('SIGKILL')
      await this.exited
    }
    return { ...this.exit!, timedOut }
  }
}

export interface Volume {
  /** The mount point (an absolute, real path). */
  mnt: string
  /** The disk directory. */
  disk: string
  /** A native scratch directory next to them, for sources, tarballs and scripts. */
  scratch: string
  name: string
  /** The invite line printed by init. */
  invite: string
  /** The pid of the node now running (or of the last one). */
  readonly pid: number
  /** Everything the current node printed so far. */
  readonly output: { stdout: string, stderr: string }
  /** The exit of the node now running. */
  readonly exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
  /** SIGTERM, wait for the exit; asserts a clean exit (0) and that the mount is gone. */
  stop (): Promise<void>
  /** SIGKILL, wait for the exit; the mount stays behind, stale, as after a crash. */
  kill9 (): Promise<void>
  /** Stops the node if it runs (cleanly), then `swarmfs start --disk` and waits for "running". */
  restart (): Promise<void>
  /** Runs a program, by default in the mount. */
  run (cmd: string, args: string[], opts?: { cwd?: string }): Promise<RunResult>
}

export interface VolumeOptions {
  name?: string
  /** The disk directory (not there yet, or empty), e.g. on a filesystem the test made; default: a new one beside the mount. */
  disk?: string
}

async function makeTmp (prefix: string): Promise<string> {
  return await fsp.realpath(await fsp.mkdtemp(join(os.tmpdir(), prefix)))
}

/**
 * Creates a volume on a new temporary disk with `swarmfs init`, mounted on a new temporary
 * directory, and waits until it runs. Registers the teardown before anything is started.
 */
export async function startVolume (t: Test, opts: VolumeOptions = {}): Promise<Volume> {
  const base = await makeTmp('swarmfs-test-')
  const disk = opts.disk ?? join(base, 'disk')
  const mnt = join(base, 'mnt')
  const scratch = join(base, 'scratch')
  await fsp.mkdir(mnt)
  await fsp.mkdir(scratch)
  const name = opts.name ?? 'testvol'
  let node: NodeProcess | null = null
  const nodes: NodeProcess[] = []

  t.teardown(async () => {
    for (const n of nodes) {
      if (n.running) {
        const r = await n.signalAndWait('SIGTERM')
        if (r.timedOut) t.comment(`teardown: node ${n.pid} ignored SIGTERM for ${STOP_DEADLINE_MS} ms and was killed`)
      }
    }
    await unmountAndRemove(t, base, [mnt])
  })

  const spawnNode = async (args: string[]): Promise<void> => {
    node = new NodeProcess(args)
    nodes.push(node)
    await node.ready()
  }

  await spawnNode(['init', name, '--disk', disk, '--mount', mnt])
  const invite = /invite: (\S+)/.exec(node!.stdout)?.[1] ?? ''

  const current = (): NodeProcess => {
    if (node === null) throw new Error('no node')
    return node
  }

  const vol: Volume = {
    mnt,
    disk,
    scratch,
    name,
    invite,
    get pid () { return current().pid },
    get output () { return { stdout: current().stdout, stderr: current().stderr } },
    get exited () { return current().exited },
    async stop () {
      const n = current()
      const r = await n.signalAndWait('SIGTERM')
      t.equal(r.timedOut, false, 'node exits after SIGTERM', { stderr: n.stderr.slice(-4000) })
      t.equal(r.code, 0, 'node exits 0 after SIGTERM', { signal: r.signal, stderr: n.stderr.slice(-4000) })
      t.notOk(isMounted(mnt), 'node unmounted on SIGTERM')
    },
    async kill9 () {
      const n = current()
      const r = await n.signalAndWait('SIGKILL')
      t.equal(r.signal, 'SIGKILL', 'node killed')
    },
    async restart () {
      if (current().running) await vol.stop()
      await spawnNode(['start', '--disk', disk])
    },
    async run (cmd, args, runOpts = {}) {
      return await run(cmd, args, { cwd: runOpts.cwd ?? mnt })
    }
  }
  return vol
}

/**
 * After every node is gone: lazily unmounts what is still mounted under `base`, then removes
 * `base`. Never removes a directory while something is mounted inside it.
 */
export async function unmountAndRemove (t: Test, base: string, mounts: string[]): Promise<void> {
  let stillMounted = false
  for (const m of mounts) {
    if (!isMounted(m)) continue
    const r = await run('fusermount', ['-uz', m], { timeoutMs: 30_000 })
    if (r.code !== 0 || isMounted(m)) {
      t.comment(`teardown: could not unmount ${m}: ${r.stderr}`)
      stillMounted = true
    }
  }
  const table = fs.readFileSync('/proc/self/mounts', 'utf8')
  if (table.split('\n').some(l => (l.split(' ')[1] ?? '').startsWith(base + '/'))) stillMounted = true
  if (!stillMounted) await fsp.rm(base, { recursive: true, force: true })
}

/** A native temporary directory removed when the test ends. */
export async function tmpDir (t: Test, prefix = 'swarmfs-native-'): Promise<string> {
  const dir = await makeTmp(prefix)
  t.teardown(() => fsp.rm(dir, { recursive: true, force: true }))
  return dir
}

/**
 * Starts a process the test holds on to (e.g. one keeping a file open) and kills it at teardown.
 * Resolves once it has printed `readyLine` on stdout.
 */
export async function startHelperProcess (t: Test, script: string, readyLine: string, cwd?: string): Promise<{ pid: number, kill: () => Promise<void>, output: () => string }> {
  const child = spawn('bash', ['-c', script], { cwd, env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let exited = false
  const exitedP = new Promise<void>(resolve => child.on('exit', () => { exited = true; resolve() }))
  child.stdout.setEncoding('utf8').on('data', (s: string) => { out += s })
  child.stderr.setEncoding('utf8').on('data', (s: string) => { out += s })
  const kill = async (): Promise<void> => {
    if (exited) return
    // Scripts end with `exec`, so the helper is one process and this kills all of it.
    child.kill('SIGKILL')
    await exitedP
  }
  t.teardown(kill)
  await new Promise<void>((resolve, reject) => {
    const deadline = setTimeout(() => reject(new Error(`helper did not print ${readyLine}: ${out}`)), START_DEADLINE_MS)
    const check = (): void => {
      if (out.includes(readyLine)) { clearTimeout(deadline); resolve() } else if (exited) { clearTimeout(deadline); reject(new Error(`helper exited early: ${out}`)) }
    }
    child.stdout.on('data', check)
    void exitedP.then(check)
  })
  return { pid: child.pid ?? -1, kill, output: () => out }
}

export { pidAlive }

// ---------------------------------------------------------------------------------------------
// Tree checksums

export interface TreeEntry {
  path: string
  /** f (file), d (directory), l (symlink), or another find %y letter. */
  type: string
  /** Bytes for files and symlinks; '-' for directories, whose size differs between filesystems. */
  size: string
  /** Permission bits, octal. */
  mode: string
  /** sha256 of a file's bytes, '' otherwise. */
  sha256: string
  /** A symlink's target, '' otherwise. */
  target: string
}

/**
 * Every entry below `dir` (not `dir` itself), sorted by path, computed by child processes (find and
 * sha256sum), so it works the same on a native directory and on a mount.
 */
export async function treeSum (dir: string): Promise<TreeEntry[]> {
  const listing = await run('bash', ['-c', 'set -euo pipefail; cd "$1"; find . -mindepth 1 -printf "%P\\0%y\\0%s\\0%m\\0%l\\0"', 'tree', dir])
  if (listing.code !== 0) throw new Error(`find in ${dir} failed: ${listing.stderr}`)
  const sums = await run('bash', ['-c', 'set -euo pipefail; cd "$1"; find . -mindepth 1 -type f -printf "%P\\0" | xargs -0 -r sha256sum -z --', 'tree', dir])
  if (sums.code !== 0) throw new Error(`sha256sum in ${dir} failed: ${sums.stderr}`)
  const shaOf = new Map<string, string>()
  for (const rec of sums.stdout.split('\0')) {
    if (rec.length === 0) continue
    // "<64 hex>  <path>" (or " *<path>" in binary mode)
    shaOf.set(rec.slice(66), rec.slice(0, 64))
  }
  const f = listing.stdout.split('\0')
  const entries: TreeEntry[] = []
  for (let i = 0; i + 4 < f.length; i += 5) {
    const [path, type, size, mode, target] = f.slice(i, i + 5)
    entries.push({
      path,
      type,
      size: type === 'd' ? '-' : size,
      mode,
      sha256: type === 'f' ? (shaOf.get(path) ?? '?') : '',
      target: type === 'l' ? target : ''
    })
  }
  entries.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
  return entries
}

/** Human-readable differences between two trees (empty when they are the same), at most `limit`. */
export function diffTrees (a: TreeEntry[], b: TreeEntry[], limit = 30): string[] {
  const out: string[] = []
  const ma = new Map(a.map(e => [e.path, e]))
  const mb = new Map(b.map(e => [e.path, e]))
  const fmt = (e: TreeEntry): string => `${e.type} size=${e.size} mode=${e.mode}${e.sha256 !== '' ? ` sha=${e.sha256.slice(0, 12)}` : ''}${e.target !== '' ? ` -> ${e.target}` : ''}`
  for (const [path, ea] of ma) {
    const eb = mb.get(path)
    if (eb === undefined) out.push(`only in first:  ${path} (${fmt(ea)})`)
    else if (fmt(ea) !== fmt(eb)) out.push(`differs: ${path}: ${fmt(ea)}  vs  ${fmt(eb)}`)
  }
  for (const [path, eb] of mb) if (!ma.has(path)) out.push(`only in second: ${path} (${fmt(eb)})`)
  if (out.length > limit) return [...out.slice(0, limit), `... and ${out.length - limit} more`]
  return out
}

/** Asserts that two directories hold the same tree (names, types, sizes, modes, bytes, link targets). */
export async function assertSameTree (t: Test, expected: string, actual: string, msg: string): Promise<void> {
  const [a, b] = await Promise.all([treeSum(expected), treeSum(actual)])
  t.same(diffTrees(a, b), [], `${msg} (${a.length} entries)`)
}

// ---------------------------------------------------------------------------------------------
// Deterministic data

/** mulberry32: a small seeded PRNG, so a failing run can be replayed from its seed. */
export function prng (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let x = a
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

/** `n` pseudo-random bytes from a seeded PRNG. */
export function randomBytesSeeded (rand: () => number, n: number): Buffer {
  const buf = Buffer.allocUnsafe(n)
  let i = 0
  for (; i + 4 <= n; i += 4) buf.writeUInt32LE(Math.floor(rand() * 4294967296), i)
  for (; i < n; i++) buf[i] = Math.floor(rand() * 256)
  return buf
}

/**
 * Writes a tree of `files` small files (0 to 2 KiB, a few modes) in nested directories under `dir`
 * (native), plus an empty file, a one-byte file, a few larger files of several MiB (one exactly a
 * piece long), a symlink and names with spaces and non-ASCII letters. Returns the number of files.
 */
export function makeTree (dir: string, rand: () => number, files: number): number {
  fs.mkdirSync(dir, { recursive: true })
  let count = 0
  const top = 8
  const sub = 5
  const perDir = Math.ceil(files / (top * sub))
  for (let a = 0; a < top; a++) {
    for (let b = 0; b < sub; b++) {
      const d = join(dir, `dir${a}`, `sub ${b}`)
      fs.mkdirSync(d, { recursive: true })
      for (let c = 0; c < perDir && count < files; c++, count++) {
        const p = join(d, `file-${c}.txt`)
        fs.writeFileSync(p, randomBytesSeeded(rand, Math.floor(rand() * 2048)))
        if (c % 17 === 0) fs.chmodSync(p, 0o600)
        else if (c % 23 === 0) fs.chmodSync(p, 0o755)
      }
    }
  }
  fs.writeFileSync(join(dir, 'empty'), '')
  fs.writeFileSync(join(dir, 'one-byte'), 'x')
  fs.mkdirSync(join(dir, 'big'))
  fs.writeFileSync(join(dir, 'big', 'three-mib-and-a-bit'), randomBytesSeeded(rand, 3 * 1024 * 1024 + 12345))
  fs.writeFileSync(join(dir, 'big', 'one-piece'), randomBytesSeeded(rand, 1024 * 1024))
  fs.writeFileSync(join(dir, 'big', 'five-mib'), randomBytesSeeded(rand, 5 * 1024 * 1024))
  fs.writeFileSync(join(dir, 'naïve café.txt'), 'unicode name\n')
  fs.writeFileSync(join(dir, '.gitignore'), '*.o\n')
  fs.mkdirSync(join(dir, 'empty dir'))
  fs.symlinkSync('dir0/sub 0/file-1.txt', join(dir, 'link-to-file'))
  fs.symlinkSync('../nowhere', join(dir, 'dangling'))
  return count + 7
}

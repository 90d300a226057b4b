// Issue 24's "many small files copied to a new disk": 10,000 files of 100 KB (SMALL: 1,000) against
// one file of the same total size (1 GB; SMALL: 100 MB), each brought up to the copy target by a
// new storage node, on namespace hosts (bench/lib/netns.ts), as replicate.ts does.
// Two volumes, each with one mounted node on host 1 (`swarmfs init`, target 2 copies, so every
// file is under target): "one" holds the one file (`dd bs=1M conv=fsync` of the random source),
// "many" the small files, written into its mount by a client process (bench/lib/clients/
// write-slices.ts: file i is slice i of the random source, so each has its own content), 1,000 to
// a directory. Per repetition, for each volume in turn, a fresh storage node B on host 2
// (`swarmfs join <invite> --peer <A>`, no --mount, an empty disk) starts; from its "running" line
// B's content/ is polled every ~50 ms until every content A's content/ holds is there at its size
// (complete, synced and renamed into place). Then B's own `swarmfs status --json` must report
// nothing under target; B stops and its disk is removed, so A is again the only holder. The first
// repetition's copies are compared with A's, every byte (cmp for the one file, every small file
// read and compared). MB/s = bytes / that time. Row: the small files' MB/s against the one
// file's, target 0.5x (issue 24). Repetitions: 3 (SWARMFS_BENCH_REPS).
import fs from 'node:fs'
import { join } from 'node:path'
import { benchDist, node, SMALL, sizes, verbose } from './lib/env.js'
import { mbps, type Context } from './lib/context.js'
import { isMounted } from './lib/mounts.js'
import { createNetwork, type NetHost } from './lib/netns.js'
import { run, runOk } from './lib/proc.js'
import { settle, swarmfsQuiet } from './lib/quiet.js'
import { startSwarmfsNode, type Server } from './lib/servers.js'
import { completeIn, noneUnderTarget, replicationOf, storageNodes, type StorageNodes } from './lib/storage-nodes.js'
import { median, type Row } from './lib/table.js'

const FILE_BYTES = 100_000
const PER_DIR = 1000
const WRITE_TIMEOUT_MS = 30 * 60_000

const fmt = (x: number): string => x < 10 ? x.toFixed(2) : x.toFixed(0)

/** One volume under test: its mounted node A, what A's content/ holds, the new nodes that copy it. */
interface Volume {
  name: string
  a: Server
  disk: string
  invite: string
  peer: string
  /** infohash → bytes, as A's content/ holds them. */
  want: Map<string, number>
  nodes: StorageNodes
  runs: Array<{ mbs: number, ms: number, joinMs: number, statusMs: number, perFile: number[] }>
}

export async function replicateSmallBench (ctx: Context): Promise<Row[]> {
  const n = SMALL ? 1000 : 10_000
  const total = n * FILE_BYTES
  const reps = process.env.SWARMFS_BENCH_REPS !== undefined ? sizes.reps : 3
  const src = ctx.randomFile()
  if (fs.statSync(src).size < total) throw new Error(`the random source holds fewer than ${total} bytes`)
  const w = join(ctx.work, 'replicate-small')
  fs.mkdirSync(w, { recursive: true })
  const net = await createNetwork(2)
  const [h1, h2] = net.hosts
  const volumes: Volume[] = []
  const mounts: string[] = []

  /** A mounted node of a new volume on `host`, filled by `write`, committed and settled. */
  const makeVolume = async (host: NetHost, name: string, files: number, write: (mnt: string) => Promise<string>): Promise<Volume> => {
    const disk = join(w, `disk-${name}-a`)
    const mnt = join(w, `mnt-${name}`)
    mounts.push(mnt)
    const a = await startSwarmfsNode(['init', name, '--disk', disk, '--mount', mnt, ...verbose], mnt, { via: net.via(host), label: `swarmfs-${name}-A` })
    const v: Volume = { name, a, disk, invite: '', peer: '', want: new Map(), nodes: storageNodes(net, w, ctx, 'replicate-small', `${name}-B`), runs: [] }
    volumes.push(v)
    const config = JSON.parse(fs.readFileSync(join(disk, 'node.json'), 'utf8')) as { volumeName: string, volumeKey: string, httpPort: number }
    v.invite = `swarmfs://${config.volumeName}/${config.volumeKey}`
    v.peer = `${host.address}:${config.httpPort}`
    const how = await write(mnt)
    await swarmfsQuiet(disk, 600_000)
    const content = join(disk, 'content')
    for (const ih of fs.readdirSync(content)) v.want.set(ih, fs.statSync(join(content, ih)).size)
    const sum = [...v.want.values()].reduce((s, x) => s + x, 0)
    if (v.want.size !== files || sum !== total) throw new Error(`${name}: A's content/ holds ${v.want.size} contents of ${sum} bytes, expected ${files} of ${total} bytes in all`)
    const view = await replicationOf(net, host, disk)
    if (view === null || view.underTarget !== files) throw new Error(`${name}: A reports ${view?.underTarget ?? '(no replication status)'} files under target, expected ${files}`)
    ctx.note(`replicate-small: volume "${name}": A ${v.peer} in ${host.name}, init → running ${fmt(a.readyMs)} ms; ${how}; target ${view.copies} copies, ${view.underTarget} files under target`)
    return v
  }

  /** A fresh B copies `v` whole; timed from its "running" line. The first copy is checked byte for byte. */
  const copyOnce = async (v: Volume, check: boolean): Promise<void> => {
    const b = await v.nodes.join(h2, v.invite, v.peer)
    const done = await completeIn(join(b.disk, 'content'), v.want, b.runningAt)
    const ms = Math.max(...done.values())
    // Not timed: B's own view agrees that nothing is under target any more.
    const statusMs = await noneUnderTarget(net, h2, b)
    v.runs.push({ mbs: mbps(total, ms), ms, joinMs: b.joinMs, statusMs, perFile: [...done.values()].sort((x, y) => x - y) })
    await v.nodes.stop(b)
    if (check) {
      const [ours, theirs] = [join(v.disk, 'content'), join(b.disk, 'content')]
      for (const ih of v.want.keys()) {
        if (v.want.size === 1) {
          const r = await run('cmp', [join(ours, ih), join(theirs, ih)], { timeoutMs: WRITE_TIMEOUT_MS })
          if (r.code !== 0) throw new Error(`${b.label}'s copy of ${ih} differs from A's: ${(r.stdout + r.stderr).trim().slice(0, 500)}`)
        } else if (!fs.readFileSync(join(ours, ih)).equals(fs.readFileSync(join(theirs, ih)))) {
          throw new Error(`${b.label}'s copy of ${ih} differs from A's`)
        }
      }
    }
    fs.rmSync(b.disk, { recursive: true, force: true })
    await settle()
  }

  try {
    const one = await makeVolume(h1, 'one', 1, async mnt => {
      const r = await runOk('dd', [`if=${src}`, `of=${join(mnt, 'one.bin')}`, 'bs=1M', 'iflag=count_bytes', `count=${total}`, 'conv=fsync', 'status=none'], { timeoutMs: WRITE_TIMEOUT_MS })
      return `1 file of ${fmt(total / 1e6)} MB written at ${fmt(mbps(total, r.ms))} MB/s (dd bs=1M conv=fsync)`
    })
    const many = await makeVolume(h1, 'many', n, async mnt => {
      const r = await runOk(node, [join(benchDist, 'lib', 'clients', 'write-slices.js'), src, mnt, String(n), String(FILE_BYTES), String(PER_DIR)], { timeoutMs: WRITE_TIMEOUT_MS })
      const { ms, dirs } = JSON.parse(r.stdout) as { ms: number, dirs: number }
      return `${n} files of ${FILE_BYTES / 1000} KB in ${dirs} directories written by one client at ${fmt(n / (ms / 1000))} files/s (${fmt(mbps(total, ms))} MB/s)`
    })
    await settle()
    for (let rep = 0; rep < reps; rep++) {
      await copyOnce(one, rep === 0)
      await copyOnce(many, rep === 0)
    }
  } finally {
    for (const v of [...volumes].reverse()) await v.nodes.stopAll()
    for (const v of [...volumes].reverse()) {
      await v.a.stop()
      if (v.a.child.exitCode !== 0) ctx.note(`replicate-small: WARNING ${v.a.label} did not exit 0 after SIGTERM (${v.a.child.exitCode ?? v.a.child.signalCode}); see ${v.a.logFile}`)
    }
    await net.cleanup()
    if (!mounts.some(isMounted)) fs.rmSync(w, { recursive: true, force: true })
  }

  const [one, many] = volumes
  const pct = (xs: number[], p: number): number => xs[Math.min(xs.length - 1, Math.floor(xs.length * p))]
  for (const v of volumes) {
    ctx.note(`replicate-small "${v.name}" per rep (fresh node each): ${v.runs.map(r => `${fmt(r.mbs)} MB/s (${fmt(r.ms / 1000)} s; join → running ${fmt(r.joinMs)} ms; ` +
      `${v.want.size > 1 ? `files complete at 10/50/90 %: ${[0.1, 0.5, 0.9].map(p => fmt(pct(r.perFile, p) / 1000)).join('/')} s; ` : ''}status showed none under target ${fmt(r.statusMs)} ms later)`).join('; ')}`)
  }
  const k = n.toLocaleString('en-US')
  const mbs = (v: Volume): number[] => v.runs.map(r => r.mbs)
  return [
    { measurement: `replicate-small: a new node copies ${k} files of ${FILE_BYTES / 1000} KB (${fmt(total / 1e6)} MB)`, unit: 'MB/s', better: 'higher', value: median(mbs(many)), baseline: `one file of ${fmt(total / 1e6)} MB copied the same way`, baselineValue: median(mbs(one)), target: 0.5, samples: { value: mbs(many), baseline: mbs(one) } }
  ]
}

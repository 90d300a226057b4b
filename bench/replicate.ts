// Issue 6's benchmark: the time a new node takes to bring under-replicated files up to the volume's
// copy target, on namespace hosts (bench/lib/netns.ts). Node A (`swarmfs init`, host 1, mounted)
// writes sizes.seqBytes (1 GiB; SMALL: 100 MiB) as 8 files of random bytes (8 distinct slices of
// the random source, `dd conv=fsync`) into its mount. The volume's target is 2 copies and A is its
// only node, so every file is under target.
// Per repetition a fresh storage node B on host 2 (`swarmfs join <invite> --peer <A>`, no --mount,
// an empty disk) starts; from its "running" line, B's content/ is polled every ~50 ms until each
// of the 8 contents (the infohashes A's content/ holds) is there at its size: a complete content,
// fsynced and renamed into place. Then B stops (SIGTERM) and its disk is removed, so A is again the
// only holder. MB/s = bytes of the 8 files / that time. The first repetition's copies are compared
// with A's (cmp), and every repetition checks that B's `swarmfs status --json` then reports no file
// under target. Baseline: raw TCP, a server on host 1 streaming the same number of bytes to a
// client on host 2 (bench/lib/clients/tcp-stream.ts), in the same run. No target (issue 6 sets none).
import fs from 'node:fs'
import { join } from 'node:path'
import { mbps, type Context } from './lib/context.js'
import { SMALL, sizes } from './lib/env.js'
import { isMounted } from './lib/mounts.js'
import { createNetwork } from './lib/netns.js'
import { run, runOk } from './lib/proc.js'
import { settle, swarmfsQuiet } from './lib/quiet.js'
import { startSwarmfsNode, type Server } from './lib/servers.js'
import { completeIn, noneUnderTarget, replicationOf, storageNodes } from './lib/storage-nodes.js'
import { median, MiB, type Row } from './lib/table.js'
import { tcpBaselines } from './content.js'

const FILES = 8
const WRITE_TIMEOUT_MS = 30 * 60_000

const fmt = (x: number): string => x < 10 ? x.toFixed(2) : x.toFixed(0)

export async function replicateBench (ctx: Context): Promise<Row[]> {
  const bytes = sizes.seqBytes
  const part = bytes / FILES
  if (!Number.isInteger(part)) throw new Error(`${bytes} bytes do not split into ${FILES} equal files`)
  const reps = sizes.reps
  const src = ctx.randomFile()
  const w = join(ctx.work, 'replicate')
  fs.mkdirSync(w, { recursive: true })
  const net = await createNetwork(2)
  const [h1, h2] = net.hosts
  const servers: Server[] = []
  const storage = storageNodes(net, w, ctx, 'replicate', 'B')
  const mntA = join(w, 'mnt-a')

  let streamMs: number[] = []
  const copies: Array<{ mbs: number, ms: number, joinMs: number, perFile: number[], statusMs: number }> = []
  try {
    // The stream baseline only (no round trips: rtts 0 leaves the block client's 10 warm-ups).
    streamMs = (await tcpBaselines(net, h1, h2, bytes, reps, 0)).streamMs

    // A and its 8 files (8 distinct slices of the random source).
    const diskA = join(w, 'disk-a')
    const a = await startSwarmfsNode(['init', 'bench', '--disk', diskA, '--mount', mntA], mntA, { via: net.via(h1), label: 'swarmfs-A' })
    servers.push(a)
    const config = JSON.parse(fs.readFileSync(join(diskA, 'node.json'), 'utf8')) as { volumeName: string, volumeKey: string, httpPort: number }
    const invite = `swarmfs://${config.volumeName}/${config.volumeKey}`
    const peerA = `${h1.address}:${config.httpPort}`
    const tw = performance.now()
    for (let i = 0; i < FILES; i++) {
      await runOk('dd', [`if=${src}`, `of=${join(mntA, `file${i + 1}.bin`)}`, 'bs=1M', 'iflag=skip_bytes,count_bytes', `skip=${i * part}`, `count=${part}`, 'conv=fsync', 'status=none'], { timeoutMs: WRITE_TIMEOUT_MS })
    }
    const writeMs = performance.now() - tw
    await swarmfsQuiet(diskA, 300_000)
    const contentA = join(diskA, 'content')
    const held = fs.readdirSync(contentA)
    const want = new Map(held.map(ih => [ih, fs.statSync(join(contentA, ih)).size]))
    if (held.length !== FILES || [...want.values()].some(n => n !== part)) {
      throw new Error(`A's content/ holds ${held.length} contents (${[...want.values()].join(', ')} bytes), expected ${FILES} of ${part} bytes`)
    }
    const before = await replicationOf(net, h1, diskA)
    if (before === null || before.underTarget !== FILES) throw new Error(`A reports ${before?.underTarget ?? '(no replication status)'} files under target, expected ${FILES}`)
    await settle()
    ctx.note(`replicate: network ${net.subnet} (A ${peerA} in ${h1.name}, new nodes in ${h2.name}); A init → running ${fmt(a.readyMs)} ms; ` +
      `${FILES} files of ${fmt(part / MiB)} MiB written on A's mount at ${fmt(mbps(bytes, writeMs))} MB/s (dd bs=1M conv=fsync); A: target ${before.copies} copies, ${before.underTarget} files under target`)

    for (let rep = 0; rep < reps; rep++) {
      const b = await storage.join(h2, invite, peerA)
      const done = await completeIn(join(b.disk, 'content'), want, b.runningAt)
      const ms = Math.max(...done.values())
      // Not timed: B's own view agrees that nothing is under target any more.
      const statusMs = await noneUnderTarget(net, h2, b)
      copies.push({ mbs: mbps(bytes, ms), ms, joinMs: b.joinMs, perFile: [...done.values()].sort((x, y) => x - y), statusMs })
      await storage.stop(b)
      if (rep === 0) {
        for (const ih of want.keys()) {
          const r = await run('cmp', [join(contentA, ih), join(b.disk, 'content', ih)], { timeoutMs: WRITE_TIMEOUT_MS })
          if (r.code !== 0) throw new Error(`${b.label}'s copy of ${ih} differs from A's: ${(r.stdout + r.stderr).trim().slice(0, 500)}`)
        }
      }
      fs.rmSync(b.disk, { recursive: true, force: true })
      await settle()
    }
  } finally {
    await storage.stopAll()
    for (const s of [...servers].reverse()) {
      await s.stop()
      if (s.child.exitCode !== 0) ctx.note(`replicate: WARNING ${s.label} did not exit 0 after SIGTERM (${s.child.exitCode ?? s.child.signalCode}); see ${s.logFile}`)
    }
    await net.cleanup()
    if (!isMounted(mntA)) fs.rmSync(w, { recursive: true, force: true })
  }

  const tcpMbs = streamMs.map(ms => mbps(bytes, ms))
  const size = SMALL ? `${bytes / MiB} MiB` : `${bytes / 2 ** 30} GiB`
  ctx.note(`replicate baseline: raw TCP ${size} host 1 → host 2, ${reps} reps: ${tcpMbs.map(fmt).join(', ')} MB/s`)
  ctx.note(`replicate per rep (fresh node each): ${copies.map(r => `${fmt(r.mbs)} MB/s (${fmt(r.ms / 1000)} s; join → running ${fmt(r.joinMs)} ms; status showed none under target ${fmt(r.statusMs)} ms later)`).join('; ')}`)
  ctx.note(`replicate: each file complete on the new node (ms after "running"), per rep: ${copies.map(r => r.perFile.map(fmt).join(' ')).join('; ')}`)
  return [
    { measurement: `replicate: a new node brings ${size} (${FILES} files) up to target`, unit: 'MB/s', better: 'higher', value: median(copies.map(r => r.mbs)), baseline: 'raw TCP stream host 1 → host 2', baselineValue: median(tcpMbs), samples: { value: copies.map(r => r.mbs), baseline: tcpMbs } }
  ]
}

// Issue 5's benchmarks: contents fetched on demand between nodes, on namespace hosts
// (bench/lib/netns.ts). Node A (`swarmfs init`, host 1) writes two files of sizes.seqBytes (1 GiB;
// SMALL: 100 MiB) of random bytes into its mount; every other node is a fresh `swarmfs join
// <invite> --peer ...` with an empty disk, so it starts without any content.
// 1. Remote sequential read: per repetition a fresh node on host 2 reads file 1 through its mount
//    (`dd bs=1M` to /dev/null), then stops and its disk is removed (so A stays the only holder).
//    Baseline: raw TCP, a server on host 1 streaming the same number of bytes to a client on host
//    2 (bench/lib/clients/tcp-stream.ts), in the same run. Target: >= 0.25x.
//    1b. The same over a 1 Gbit/s link: tc shapes host 1's eth0 (tbf), so the link, not a memory
//    copy between namespaces, sets the pace, as on a LAN. Baseline: raw TCP over that link.
//    1c. Row 1 against its per-byte work alone (bench/lib/clients/piece-pipeline.ts): the holder reads
//    the file in 1 MiB pieces onto a TCP socket; the reader hashes each (SHA-1), writes it into a
//    partial file, and pipes it to `dd`. No BitTorrent, no FUSE, one thread each side.
// 2. Two holders: node C on host 3 first reads file 1 completely (it then holds and seeds it);
//    per repetition a fresh node on host 4 reads it (`dd bs=1M`), then stops. Same baseline.
//    The bytes A and C sent meanwhile (their eth0 tx counters) show where the pieces came from.
// 3. Time to first byte: a fresh node on host 2 reads 4 KiB at 50 random offsets of file 2 (held
//    by A alone), one distinct piece each (never the first or last piece, which players' index
//    reads make special, and in descending order so no read looks sequential and starts a
//    read-ahead window over a later one's piece), each timed open + read + close
//    (bench/lib/clients/read-at.ts); every read's bytes are checked. Median; baseline: TCP
//    connect + 1-byte request + 4 KiB response + close between host 2 and host 1, median of 50.
//    Target (absolute, issue 5): < 50 ms.
import fs from 'node:fs'
import { createHash, randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { benchDist, node, SMALL, sizes, swarmfsBin } from './lib/env.js'
import { bigFilesUnder, mbps, type Context } from './lib/context.js'
import { isMounted } from './lib/mounts.js'
import { createNetwork, type Network, type NetHost } from './lib/netns.js'
import { run, runOk, sleep, stopChild, waitForLine } from './lib/proc.js'
import { settle, swarmfsQuiet } from './lib/quiet.js'
import { startSwarmfsNode, type Server } from './lib/servers.js'
import { median, MiB, type Row } from './lib/table.js'

const TTFB_READS = 50
const TTFB_BYTES = 4096
const TARGET_RATIO = 0.25
const TARGET_TTFB_MS = 50
/** Row 1b's link: gigabit Ethernet, a LAN's usual speed. */
const LAN_RATE = '1gbit'
/** Bounds a hang only. */
const LISTED_TIMEOUT_MS = 120_000
const READ_TIMEOUT_MS = 30 * 60_000

export const childEnv = (): NodeJS.ProcessEnv => {
  const env = { ...process.env }
  delete env.NODE_OPTIONS
  return env
}

const client = (name: string): string => join(benchDist, 'lib', 'clients', name)

/** The per-byte work alone: `file` served on `from`, fetched on `to` through a partial file in `dir` into `dd`, `reps` times; the ms of each. */
async function pipelineBaseline (net: Network, from: NetHost, to: NetHost, file: string, dir: string, reps: number): Promise<number[]> {
  fs.mkdirSync(dir, { recursive: true })
  const size = fs.statSync(file).size
  const server = net.spawn(from, node, [client('piece-pipeline.js'), 'serve', from.address, file], { env: childEnv() })
  try {
    const { port } = JSON.parse(await waitForLine(server, /"port"/, 30_000)) as { port: number }
    const out: number[] = []
    for (let i = 0; i < reps; i++) {
      const partial = join(dir, 'partial')
      const fetch = `${node} ${client('piece-pipeline.js')} fetch ${from.address} ${port} ${partial} | dd of=/dev/null bs=1M status=none`
      const r = await net.exec(to, 'sh', ['-c', fetch], { env: childEnv(), timeoutMs: READ_TIMEOUT_MS })
      const got = r.code === 0 ? (JSON.parse(r.stderr.trim().split('\n').pop() ?? '{}') as { bytes?: number }).bytes : undefined
      if (got !== size) throw new Error(`piece pipeline fetch: exit ${r.code ?? r.signal}, ${got ?? '?'} of ${size} bytes: ${r.stderr.trim().slice(-2000)}`)
      out.push(r.ms)
      fs.rmSync(partial, { force: true })
    }
    return out
  } finally {
    await stopChild(server, 10_000)
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

/** Limits what `host` sends to `rate` (tc tbf on its eth0), or lifts the limit (`null`). */
async function shapeEgress (net: Network, host: NetHost, rate: string | null): Promise<void> {
  const via = net.via(host)
  const args = rate === null
    ? ['qdisc', 'del', 'dev', 'eth0', 'root']
    : ['qdisc', 'add', 'dev', 'eth0', 'root', 'tbf', 'rate', rate, 'burst', '1mb', 'latency', '20ms']
  await runOk(via[0], [...via.slice(1), 'tc', ...args])
}

/** Bytes sent by a host's eth0 so far. */
async function txBytes (host: NetHost): Promise<number> {
  const r = await runOk('ip', ['-n', host.name, '-j', '-s', 'link', 'show', 'eth0'])
  const [link] = JSON.parse(r.stdout) as Array<{ stats64: { tx: { bytes: number } } }>
  return link.stats64.tx.bytes
}

/** Raw TCP baselines: a server on `from` (streams `bytes`, or answers 4 KiB), clients on `to`. */
export async function tcpBaselines (net: Network, from: NetHost, to: NetHost, bytes: number, reps: number, rtts: number): Promise<{ streamMs: number[], blockMs: number[] }> {
  const server = net.spawn(from, node, [client('tcp-stream.js'), 'server', from.address, String(bytes)], { env: childEnv() })
  try {
    const { port } = JSON.parse(await waitForLine(server, /"port"/, 30_000)) as { port: number }
    const s = await net.exec(to, node, [client('tcp-stream.js'), 'stream', from.address, String(port), String(reps)], { env: childEnv(), timeoutMs: READ_TIMEOUT_MS })
    if (s.code !== 0) throw new Error(`tcp stream client exited ${s.code ?? s.signal}: ${s.stderr.trim().slice(-2000)}`)
    const streamed = JSON.parse(s.stdout) as { ms: number[], bytes: number[] }
    if (streamed.bytes.some(b => b !== bytes)) throw new Error(`tcp stream client got ${streamed.bytes.join(', ')} bytes, expected ${bytes}`)
    const b = await net.exec(to, node, [client('tcp-stream.js'), 'block', from.address, String(port), '10', String(rtts)], { env: childEnv(), timeoutMs: 120_000 })
    if (b.code !== 0) throw new Error(`tcp block client exited ${b.code ?? b.signal}: ${b.stderr.trim().slice(-2000)}`)
    return { streamMs: streamed.ms, blockMs: (JSON.parse(b.stdout) as { ms: number[] }).ms }
  } finally {
    await stopChild(server, 10_000)
  }
}

/**
 * The dependency alone: a plain webtorrent client seeding `file` on `from`, a fresh one downloading
 * it on `to` into `dir` (emptied per repetition), `reps` times; the ms of each download.
 */
async function webtorrentBaseline (net: Network, from: NetHost, to: NetHost, file: string, dir: string, reps: number): Promise<number[]> {
  fs.mkdirSync(dir, { recursive: true })
  const torrent = join(dir, 'file.torrent')
  const seeder = net.spawn(from, node, [client('webtorrent-pair.js'), 'seed', file, from.address, torrent], { env: childEnv() })
  try {
    const { port } = JSON.parse(await waitForLine(seeder, /"port"/, READ_TIMEOUT_MS)) as { port: number }
    const out: number[] = []
    for (let i = 0; i < reps; i++) {
      const into = join(dir, `fetch-${i}`)
      const r = await net.exec(to, node, [client('webtorrent-pair.js'), 'fetch', torrent, from.address, String(port), into], { env: childEnv(), timeoutMs: READ_TIMEOUT_MS })
      if (r.code !== 0) throw new Error(`webtorrent fetch exited ${r.code ?? r.signal}: ${r.stderr.trim().slice(-2000)}`)
      out.push((JSON.parse(r.stdout) as { ms: number }).ms)
      fs.rmSync(into, { recursive: true, force: true })
    }
    return out
  } finally {
    await stopChild(seeder, 10_000)
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

async function until (what: string, check: () => boolean, timeoutMs = LISTED_TIMEOUT_MS): Promise<number> {
  const t0 = performance.now()
  while (!check()) {
    if (performance.now() - t0 > timeoutMs) throw new Error(`gave up waiting ${timeoutMs} ms: ${what}`)
    await sleep(20)
  }
  return performance.now() - t0
}

function listedWithSize (path: string, size: number): boolean {
  try { return fs.statSync(path).size === size } catch { return false }
}

const sha256Of = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

export async function contentBench (ctx: Context): Promise<Row[]> {
  const bytes = sizes.seqBytes
  const reps = sizes.reps
  const src = ctx.randomFile()
  const w = join(ctx.work, 'content')
  fs.mkdirSync(w, { recursive: true })
  const net = await createNetwork(4)
  const [h1, h2, h3, h4] = net.hosts
  const servers: Server[] = []
  const mounts: string[] = []
  let seq = 0
  const fmt = (x: number): string => x < 10 ? x.toFixed(2) : x.toFixed(0)

  /** A fresh node joined on `host` with an empty disk; `peers` are host:httpPort. */
  const joinFresh = async (host: NetHost, label: string, invite: string, peers: string[]): Promise<{ server: Server, disk: string, mnt: string, joinMs: number }> => {
    const k = ++seq
    const disk = join(w, `disk-${label}-${k}`)
    const mnt = join(w, `mnt-${label}-${k}`)
    mounts.push(mnt)
    const t0 = performance.now()
    const server = await startSwarmfsNode(['join', invite, '--disk', disk, '--mount', mnt, '--wait', '60', ...peers.flatMap(p => ['--peer', p])], mnt, { via: net.via(host), label: `swarmfs-${label}${k}` })
    servers.push(server)
    return { server, disk, mnt, joinMs: performance.now() - t0 }
  }
  const stopNode = async (server: Server): Promise<void> => {
    await server.stop()
    servers.splice(servers.indexOf(server), 1)
    if (server.child.exitCode !== 0) ctx.note(`content: WARNING ${server.label} did not exit 0 after SIGTERM (${server.child.exitCode ?? server.child.signalCode}); see ${server.logFile}`)
  }
  /** `dd bs=1M` of a whole remote file to /dev/null; MB/s, and the ms. */
  const ddRead = async (file: string): Promise<{ mbs: number, ms: number }> => {
    const r = await runOk('dd', [`if=${file}`, 'of=/dev/null', 'bs=1M', 'status=none'], { timeoutMs: READ_TIMEOUT_MS })
    return { mbs: mbps(bytes, r.ms), ms: r.ms }
  }
  const verify = async (file: string, what: string): Promise<void> => {
    const r = await run('cmp', [src, file], { timeoutMs: READ_TIMEOUT_MS })
    if (r.code !== 0) throw new Error(`${what}: ${file} differs from the bytes written on A: ${(r.stdout + r.stderr).trim().slice(0, 500)}`)
  }

  /** Row 1 and 1b: a fresh node on host 2 reads file 1 (A the only holder), `reps` times. */
  const readOnFreshNodes = async (invite: string, peerA: string, what: string): Promise<Array<{ mbs: number, ms: number, joinMs: number }>> => {
    const out: Array<{ mbs: number, ms: number, joinMs: number }> = []
    for (let rep = 0; rep < reps; rep++) {
      const b = await joinFresh(h2, 'B', invite, [peerA])
      await until('file1.bin listed on B', () => listedWithSize(join(b.mnt, 'file1.bin'), bytes))
      const r = await ddRead(join(b.mnt, 'file1.bin'))
      out.push({ ...r, joinMs: b.joinMs })
      if (rep === 0) await verify(join(b.mnt, 'file1.bin'), what)
      await stopNode(b.server)
      if (!isMounted(b.mnt)) fs.rmSync(b.disk, { recursive: true, force: true })
    }
    return out
  }

  let webtorrentMs: number[] = []
  let pipelineMs: number[] = []
  let streamMs: number[] = []
  let lanStreamMs: number[] = []
  let lan: Array<{ mbs: number, ms: number, joinMs: number }> = []
  let blockMs: number[] = []
  let one: Array<{ mbs: number, ms: number, joinMs: number }> = []
  const two: Array<{ mbs: number, ms: number, joinMs: number, txA: number, txC: number }> = []
  let cRead = { mbs: 0, ms: 0 }
  let ttfb: number[] = []
  let ttfbOffsets: number[] = []
  try {
    const base = await tcpBaselines(net, h1, h2, bytes, reps, TTFB_READS)
    streamMs = base.streamMs
    blockMs = base.blockMs
    webtorrentMs = await webtorrentBaseline(net, h1, h2, src, join(w, 'webtorrent'), reps)
    pipelineMs = await pipelineBaseline(net, h1, h2, src, join(w, 'pipeline'), reps)

    // A and its two files (file 2 differs from file 1 in its first MiB: another content).
    const diskA = join(w, 'disk-a')
    const mntA = join(w, 'mnt-a')
    mounts.push(mntA)
    const a = await startSwarmfsNode(['init', 'bench', '--disk', diskA, '--mount', mntA], mntA, { via: net.via(h1), label: 'swarmfs-A' })
    servers.push(a)
    const config = JSON.parse(fs.readFileSync(join(diskA, 'node.json'), 'utf8')) as { volumeName: string, volumeKey: string, httpPort: number }
    const invite = `swarmfs://${config.volumeName}/${config.volumeKey}`
    const peerA = `${h1.address}:${config.httpPort}`
    // The reads measured here are reads on demand: no replication copying in the background.
    const target = await net.exec(h1, node, [swarmfsBin, 'volume', '--copies', '1', '--disk', diskA], { env: childEnv(), timeoutMs: 60_000 })
    if (target.code !== 0) throw new Error(`swarmfs volume --copies 1 failed: ${target.stderr.trim()}`)
    const w1 = await runOk('dd', [`if=${src}`, `of=${join(mntA, 'file1.bin')}`, 'bs=1M', 'conv=fsync', 'status=none'], { timeoutMs: READ_TIMEOUT_MS })
    const head2 = join(w, 'head2.bin')
    fs.writeFileSync(head2, randomBytes(MiB))
    const w2 = await runOk('sh', ['-c', `{ cat "${head2}"; tail -c +${MiB + 1} "${src}"; } | dd of="${join(mntA, 'file2.bin')}" bs=1M iflag=fullblock conv=fsync status=none`], { timeoutMs: READ_TIMEOUT_MS })
    if (fs.statSync(join(mntA, 'file2.bin')).size !== bytes) throw new Error(`file2.bin on A is ${fs.statSync(join(mntA, 'file2.bin')).size} bytes, expected ${bytes}`)
    await swarmfsQuiet(diskA, 300_000)
    await settle()
    ctx.note(`content: network ${net.subnet} (A ${peerA} in ${h1.name}; reader of row 1 and 3 in ${h2.name}, C in ${h3.name}, two-holder reader in ${h4.name}); A init → running ${fmt(a.readyMs)} ms; ` +
      `writes on A's mount: file1 ${fmt(mbps(bytes, w1.ms))} MB/s, file2 ${fmt(mbps(bytes, w2.ms))} MB/s (dd bs=1M conv=fsync)`)

    one = await readOnFreshNodes(invite, peerA, 'row 1')
    // A kernel without the tbf queueing discipline only loses this row.
    const shaped = await shapeEgress(net, h1, LAN_RATE).then(() => true, (err: Error) => {
      ctx.note(`content row 1b: WARNING skipped, tc could not shape host 1's eth0: ${err.message}`)
      return false
    })
    if (shaped) {
      try {
        lanStreamMs = (await tcpBaselines(net, h1, h2, bytes, reps, 1)).streamMs
        lan = await readOnFreshNodes(invite, peerA, 'row 1b')
      } finally {
        await shapeEgress(net, h1, null)
      }
    }

    // Row 2: C reads file 1 completely, then fresh readers on host 4 find two holders.
    const c = await joinFresh(h3, 'C', invite, [peerA])
    const configC = JSON.parse(fs.readFileSync(join(c.disk, 'node.json'), 'utf8')) as { httpPort: number }
    const peerC = `${h3.address}:${configC.httpPort}`
    await until('file1.bin listed on C', () => listedWithSize(join(c.mnt, 'file1.bin'), bytes))
    cRead = await ddRead(join(c.mnt, 'file1.bin'))
    const completeMs = await until('C holds file1.bin complete (content/)', () => bigFilesUnder(join(c.disk, 'content'), bytes).length > 0, 60_000)
    ctx.note(`content: C (host 3) read file1 from A in ${fmt(cRead.ms)} ms (${fmt(cRead.mbs)} MB/s); it was a complete content on C's disk ${fmt(completeMs)} ms after dd ended`)
    await settle()
    for (let rep = 0; rep < reps; rep++) {
      const d = await joinFresh(h4, 'D', invite, [peerA, peerC])
      await until('file1.bin listed on D', () => listedWithSize(join(d.mnt, 'file1.bin'), bytes))
      const [ta0, tc0] = [await txBytes(h1), await txBytes(h3)]
      const r = await ddRead(join(d.mnt, 'file1.bin'))
      const [ta1, tc1] = [await txBytes(h1), await txBytes(h3)]
      two.push({ ...r, joinMs: d.joinMs, txA: ta1 - ta0, txC: tc1 - tc0 })
      if (rep === 0) await verify(join(d.mnt, 'file1.bin'), 'row 2')
      await stopNode(d.server)
      if (!isMounted(d.mnt)) fs.rmSync(d.disk, { recursive: true, force: true })
    }
    await stopNode(c.server)

    // Row 3: 4 KiB reads at distinct pieces of file 2 (A alone holds it) on a fresh node on host 2.
    const pl = MiB // BASE_PIECE_LENGTH: files up to 4 GiB have 1 MiB pieces
    const pieces = Math.ceil(bytes / pl)
    const candidates = Array.from({ length: pieces - 2 }, (_, i) => i + 1)
    for (let i = candidates.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1))
      const t = candidates[i]
      candidates[i] = candidates[j]
      candidates[j] = t
    }
    const chosen = candidates.slice(0, TTFB_READS).sort((x, y) => y - x)
    ttfbOffsets = chosen.map(p => p * pl + Math.floor(Math.random() * ((pl - TTFB_BYTES) / TTFB_BYTES)) * TTFB_BYTES)
    const e = await joinFresh(h2, 'E', invite, [peerA])
    await until('file2.bin listed on E', () => listedWithSize(join(e.mnt, 'file2.bin'), bytes))
    await settle()
    const rr = await net.exec(h2, node, [client('read-at.js'), join(e.mnt, 'file2.bin'), String(TTFB_BYTES), ttfbOffsets.join(',')], { env: childEnv(), timeoutMs: 30 * 60_000 })
    if (rr.code !== 0) throw new Error(`read-at client exited ${rr.code ?? rr.signal}: ${rr.stderr.trim().slice(-2000)}`)
    const got = JSON.parse(rr.stdout) as { ms: number[], sha256: string[] }
    const fd = fs.openSync(src, 'r')
    try {
      const buf = Buffer.alloc(TTFB_BYTES)
      for (const [i, off] of ttfbOffsets.entries()) {
        fs.readSync(fd, buf, 0, TTFB_BYTES, off)
        if (got.sha256[i] !== sha256Of(buf)) throw new Error(`row 3: 4 KiB read at offset ${off} of file2.bin returned other bytes than were written`)
      }
    } finally {
      fs.closeSync(fd)
    }
    ttfb = got.ms
    const partial = bigFilesUnder(join(e.disk, 'partial'), 1).filter(p => !p.endsWith('.bitfield'))
    ctx.note(`content TTFB: E's partial/ holds ${partial.map(p => `${(fs.statSync(p).blocks * 512 / MiB).toFixed(1)} MiB allocated`).join(', ') || 'nothing'} after ${TTFB_READS} reads of ${TTFB_BYTES} bytes (1 MiB pieces)`)
    await stopNode(e.server)
  } finally {
    for (const s of [...servers].reverse()) {
      await s.stop()
      if (s.child.exitCode !== 0) ctx.note(`content: WARNING ${s.label} did not exit 0 after SIGTERM (${s.child.exitCode ?? s.child.signalCode}); see ${s.logFile}`)
    }
    await net.cleanup()
    if (mounts.every(m => !isMounted(m))) fs.rmSync(w, { recursive: true, force: true })
  }

  const tcpMbs = streamMs.map(ms => mbps(bytes, ms))
  const tcp = median(tcpMbs)
  const size = SMALL ? `${bytes / MiB} MiB` : `${bytes / 2 ** 30} GiB`
  const list = (xs: number[]): string => xs.map(fmt).join(', ')
  ctx.note(`content baseline: raw TCP ${size} host 1 → host 2, ${reps} reps: ${list(tcpMbs)} MB/s`)
  ctx.note(`content baseline: plain webtorrent (two clients as swarmfs configures them) ${size} host 1 → host 2, ${reps} reps: ${list(webtorrentMs.map(ms => mbps(bytes, ms)))} MB/s`)
  const lanTcpMbs = lanStreamMs.map(ms => mbps(bytes, ms))
  const pipelineMbs = pipelineMs.map(ms => mbps(bytes, ms))
  ctx.note(`content baseline: the per-byte work alone (piece-pipeline: disk read, TCP, SHA-1, pwrite, pipe to dd) ${size} host 1 → host 2, ${reps} reps: ${list(pipelineMbs)} MB/s`)
  if (lan.length > 0) ctx.note(`content row 1b: host 1's eth0 shaped to ${LAN_RATE} (tc tbf); raw TCP over it, ${reps} reps: ${list(lanTcpMbs)} MB/s; swarmfs per rep: ${lan.map(r => `${fmt(r.mbs)} MB/s (${fmt(r.ms)} ms)`).join('; ')}`)
  ctx.note(`content row 1 (one holder), per rep (fresh node each): ${one.map(r => `${fmt(r.mbs)} MB/s (${fmt(r.ms)} ms; join ${fmt(r.joinMs)} ms)`).join('; ')}`)
  ctx.note(`content row 2 (holders A and C), per rep (fresh node each): ${two.map(r => `${fmt(r.mbs)} MB/s (${fmt(r.ms)} ms; A sent ${(r.txA / MiB).toFixed(0)} MiB, C sent ${(r.txC / MiB).toFixed(0)} MiB)`).join('; ')}`)
  const tt = median(ttfb)
  const sorted = [...ttfb].sort((x, y) => x - y)
  ctx.note(`content TTFB target (absolute, issue 5): median ${fmt(tt)} ms < ${TARGET_TTFB_MS} ms: ${tt < TARGET_TTFB_MS ? 'ok' : 'MISSED'}`)
  ctx.note(`content TTFB per read in order (piece: ms): ${ttfbOffsets.map((o, i) => `${Math.floor(o / MiB)}:${fmt(ttfb[i])}`).join(' ')}; sorted min ${fmt(sorted[0])}, p90 ${fmt(sorted[Math.ceil(0.9 * sorted.length) - 1])}, max ${fmt(sorted[sorted.length - 1])}`)
  ctx.note(`content TTFB baseline: TCP connect + request + 4 KiB response host 2 → host 1, ${blockMs.length} after 10 warm-up: min ${fmt(Math.min(...blockMs))}, median ${fmt(median(blockMs))}, max ${fmt(Math.max(...blockMs))} ms`)
  const lanRow: Row[] = lan.length === 0 ? [] : [
    { measurement: `content: row 1 over a ${LAN_RATE.replace('gbit', ' Gbit/s')} link (tc on host 1's eth0), one holder`, unit: 'MB/s', better: 'higher', value: median(lan.map(r => r.mbs)), baseline: 'raw TCP over the same link', baselineValue: median(lanTcpMbs), samples: { value: lan.map(r => r.mbs), baseline: lanTcpMbs } }
  ]
  return [
    { measurement: `content: remote sequential read of ${size}, one holder (dd bs=1M on a fresh node)`, unit: 'MB/s', better: 'higher', value: median(one.map(r => r.mbs)), baseline: 'raw TCP stream host 1 → host 2', baselineValue: tcp, target: TARGET_RATIO, samples: { value: one.map(r => r.mbs), baseline: tcpMbs } },
    ...lanRow,
    { measurement: `content: remote sequential read of ${size}, two holders (dd bs=1M on a fresh node)`, unit: 'MB/s', better: 'higher', value: median(two.map(r => r.mbs)), baseline: 'raw TCP stream host 1 → host 2', baselineValue: tcp, target: TARGET_RATIO, samples: { value: two.map(r => r.mbs), baseline: tcpMbs } },
    { measurement: `content: row 1's read against the dependency alone (webtorrent client → client, no FUSE, no swarmfs)`, unit: 'MB/s', better: 'higher', value: median(one.map(r => r.mbs)), baseline: 'plain webtorrent host 1 → host 2', baselineValue: median(webtorrentMs.map(ms => mbps(bytes, ms))), samples: { value: one.map(r => r.mbs), baseline: webtorrentMs.map(ms => mbps(bytes, ms)) } },
    { measurement: `content: row 1's read against its per-byte work alone (disk read, TCP, SHA-1, pwrite, pipe to dd; no BitTorrent, no FUSE)`, unit: 'MB/s', better: 'higher', value: median(one.map(r => r.mbs)), baseline: 'piece pipeline host 1 → host 2', baselineValue: median(pipelineMbs), samples: { value: one.map(r => r.mbs), baseline: pipelineMbs } },
    { measurement: `content: first byte of a 4 KiB read at a random offset of a remote ${size} file, median of ${ttfb.length}`, unit: 'ms', better: 'lower', value: tt, baseline: 'TCP connect + 4 KiB response, median', baselineValue: median(blockMs) }
  ]
}

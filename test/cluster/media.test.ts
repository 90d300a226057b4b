// Contents between nodes with real media tools and real failures:
//   - a video made with Debian's ffmpeg on node A is probed (duration) and seeked into (a frame from
//     its middle) with ffprobe and ffmpeg through node B's mount;
//   - a file held by two nodes (A wrote it, C read it whole) is read on B while A is killed with
//     SIGKILL half-way: the read completes with the right bytes, from C;
//   - a piece corrupted on the only holder's disk: B's read of that piece fails with EIO and never
//     returns the bad bytes, while another piece of the same file reads back right.
// Nodes run with --verbose; their logs are written to $SWARMFS_TEST_LOGS (default
// <tmpdir>/swarmfs-media-logs) when a test fails, or always with SWARMFS_TEST_KEEP_LOGS=1.
// Deadlines only bound hangs.
import { createHash } from 'node:crypto'
import type { ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { createNetwork, outputOf, waitForLine, type Network, type NetHost, until } from '../helpers/netns.js'
import { CLI, isMounted, prng, randomBytesSeeded, run } from '../helpers/volume.js'

const MiB = 1024 * 1024
/** Piece length of every content up to 4 GiB (lib/content/torrent-info.ts). */
const PIECE = MiB
const LOG_DIR = process.env.SWARMFS_TEST_LOGS ?? join(os.tmpdir(), 'swarmfs-media-logs')

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

interface Cluster {
  net: Network
  hosts: NetHost[]
  dir: (name: string) => string
  disk: (n: string) => string
  mnt: (n: string) => string
  nodes: Map<string, ChildProcess>
  /** Starts node `a` with init, or joins it to the volume of the first node. */
  start: (n: string) => Promise<ChildProcess>
  /** The infohash of a file, from the git entry on a node's disk (waits for the commit). */
  infohashOf: (n: string, name: string) => Promise<string>
}

/**
 * A network of `count` hosts; node names are 'a', 'b', 'c'... (host i runs node i). Cleanup
 * (registered before anything is made): processes ended, namespaces deleted, mounts unmounted,
 * temp dirs removed; on failure the nodes' logs are kept in LOG_DIR.
 */
async function cluster (t: Test, label: string, count: number): Promise<Cluster> {
  const base = fs.mkdtempSync(join(os.tmpdir(), `swarmfs-${label}-`))
  const dir = (name: string): string => join(base, name)
  const disk = (n: string): string => dir(`disk-${n}`)
  const mnt = (n: string): string => dir(`mnt-${n}`)
  const names = Array.from({ length: count }, (_, i) => String.fromCharCode(97 + i))
  const nodes = new Map<string, ChildProcess>()
  let net: Network | null = null
  t.teardown(async () => {
    await net?.cleanup()
    for (const n of names) if (isMounted(mnt(n))) await run('fusermount', ['-uz', mnt(n)])
    if (!t.passing() || process.env.SWARMFS_TEST_KEEP_LOGS === '1') {
      fs.mkdirSync(LOG_DIR, { recursive: true })
      for (const [n, child] of nodes) {
        const out = outputOf(child)
        fs.writeFileSync(join(LOG_DIR, `${label}-${n}.log`), `--- exit ${JSON.stringify(out.exit)}\n--- stdout\n${out.stdout}\n--- stderr\n${out.stderr}`)
      }
      t.comment(`node logs kept in ${LOG_DIR}/${label}-*.log`)
    }
    fs.rmSync(base, { recursive: true, force: true })
  })
  net = await createNetwork(t, { hosts: count })
  const theNet = net
  let invite = ''
  const start = async (n: string): Promise<ChildProcess> => {
    const host = theNet.hosts[names.indexOf(n)]
    let child: ChildProcess
    if (invite === '') {
      child = theNet.spawn(host, process.execPath, [CLI, 'init', 'media', '--verbose', '--disk', disk(n), '--mount', mnt(n)])
      invite = (await waitForLine(child, /invite: (\S+)/, 60_000)).match(/invite: (\S+)/)?.[1] ?? ''
    } else {
      child = theNet.spawn(host, process.execPath, [CLI, 'join', invite, '--verbose', '--disk', disk(n), '--mount', mnt(n), '--wait', '60'])
    }
    nodes.set(n, child)
    await waitForLine(child, /running/, 90_000)
    if (n === names[0]) {
      // These tests are about reads of what one node holds: no replication behind their back.
      const r = await theNet.exec(host, process.execPath, [CLI, 'volume', '--copies', '1', '--disk', disk(n)], { timeoutMs: 30_000 })
      if (r.code !== 0) throw new Error(`swarmfs volume --copies 1 failed: ${r.stderr}`)
    }
    return child
  }
  const infohashOf = async (n: string, name: string): Promise<string> => {
    let ih = ''
    await until(`the entry of ${name} committed on ${n}`, async () => {
      const r = await run('git', ['--git-dir', join(disk(n), 'meta'), 'show', `main:${name}`])
      if (r.code !== 0) return false
      ih = (JSON.parse(r.stdout) as { infohash?: string }).infohash ?? ''
      return /^[0-9a-f]{40}$/.test(ih)
    })
    return ih
  }
  return { net, hosts: net.hosts, dir, disk, mnt, nodes, start, infohashOf }
}

/** Waits until `name` is listed on a node's mount with `size` bytes. */
async function listed (c: Cluster, n: string, name: string, size: number): Promise<void> {
  const p = join(c.mnt(n), name)
  await until(`${name} listed on ${n}`, () => fs.existsSync(p) && fs.statSync(p).size === size)
}

t.test('media: a video made on A is probed and seeked into on B', async t => {
  const c = await cluster(t, 'media', 2)
  await c.start('a')
  await c.start('b')

  const encoders = await run('ffmpeg', ['-hide_banner', '-encoders'])
  const codec = /\blibx264\b/.test(encoders.stdout) ? ['-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p'] : ['-c:v', 'mpeg4', '-q:v', '5']
  t.comment(`encoder: ${codec[1]}`)
  const source = ['-hide_banner', '-v', 'error', '-f', 'lavfi', '-i', 'testsrc=duration=180:size=640x360:rate=25', ...codec]

  // Written natively, then copied into the mount with cp.
  const native = c.dir('native')
  fs.mkdirSync(native)
  const made = await run('ffmpeg', [...source, join(native, 'out.mp4')], { timeoutMs: 300_000 })
  t.equal(made.code, 0, 'ffmpeg makes a 180 s video in a native dir', { stderr: made.stderr })
  const cp = await run('cp', [join(native, 'out.mp4'), join(c.mnt('a'), 'copied.mp4')])
  t.equal(cp.code, 0, 'cp puts it into A\'s mount', { stderr: cp.stderr })
  // Written by ffmpeg straight into the mount (the mp4 muxer seeks back to finish its header).
  const direct = await run('ffmpeg', [...source, join(c.mnt('a'), 'direct.mp4')], { timeoutMs: 300_000 })
  t.equal(direct.code, 0, 'ffmpeg writes a video straight into A\'s mount', { stderr: direct.stderr })

  const videoBytes = fs.readFileSync(join(native, 'out.mp4'))
  t.ok(videoBytes.length > MiB, `the video is ${videoBytes.length} bytes`)
  t.equal(sha256(fs.readFileSync(join(c.mnt('a'), 'copied.mp4'))), sha256(videoBytes), 'A reads back the copied video')

  const frameSize = async (png: string): Promise<string> => {
    const r = await run('ffprobe', ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'stream=width,height', '-of', 'csv=p=0', png])
    return r.stdout.trim()
  }

  for (const name of ['copied.mp4', 'direct.mp4']) {
    const onA = join(c.mnt('a'), name)
    const onB = join(c.mnt('b'), name)
    if (!fs.existsSync(onA)) {
      t.fail(`${name} is not on A`)
      continue
    }
    const size = fs.statSync(onA).size
    await listed(c, 'b', name, size)

    const probe = await run('ffprobe', ['-v', 'error', '-show_entries', 'format=duration', '-of', 'csv=p=0', onB], { timeoutMs: 120_000 })
    t.equal(probe.code, 0, `ffprobe on B reads ${name}`, { stderr: probe.stderr })
    const duration = Number(probe.stdout.trim())
    t.ok(Math.abs(duration - 180) < 1, `${name}: the duration on B is about 180 s (${probe.stdout.trim()})`)

    const frameB = join(native, `frame-b-${name}.png`)
    const frameA = join(native, `frame-a-${name}.png`)
    const exB = await run('ffmpeg', ['-hide_banner', '-v', 'error', '-ss', '90', '-i', onB, '-frames:v', '1', '-f', 'image2', frameB], { timeoutMs: 120_000 })
    t.equal(exB.code, 0, `ffmpeg -ss 90 on B extracts a frame of ${name}`, { stderr: exB.stderr })
    const exA = await run('ffmpeg', ['-hide_banner', '-v', 'error', '-ss', '90', '-i', onA, '-frames:v', '1', '-f', 'image2', frameA], { timeoutMs: 120_000 })
    t.equal(exA.code, 0, `the same extraction on A's copy of ${name}`, { stderr: exA.stderr })
    t.ok(fs.existsSync(frameB) && fs.statSync(frameB).size > 0, `${name}: the frame from B is a non-empty file`)
    t.equal(await frameSize(frameB), '640,360', `${name}: the frame from B is 640x360`)
    if (fs.existsSync(frameA) && fs.existsSync(frameB)) {
      t.equal(sha256(fs.readFileSync(frameB)), sha256(fs.readFileSync(frameA)), `${name}: the frames from A and B are identical`)
    }
    // What B read through the mount is the video A wrote.
    const sumB = await run('sha256sum', [onB], { timeoutMs: 120_000 })
    const sumA = await run('sha256sum', [onA], { timeoutMs: 120_000 })
    t.equal(sumB.stdout.split(' ')[0], sumA.stdout.split(' ')[0], `${name}: B reads the same bytes as A`)
  }
})

t.test('two holders, one killed mid-read: the read completes from the other', async t => {
  const c = await cluster(t, 'holders', 3)
  const a = await c.start('a')
  await c.start('b')
  await c.start('c')

  const data = randomBytesSeeded(prng(11), 64 * MiB + 12345)
  fs.writeFileSync(join(c.mnt('a'), 'big.bin'), data)
  const ih = await c.infohashOf('a', 'big.bin')

  // C reads it whole, so C holds it too.
  await listed(c, 'c', 'big.bin', data.length)
  const sumC = await run('sha256sum', [join(c.mnt('c'), 'big.bin')], { timeoutMs: 180_000 })
  t.equal(sumC.stdout.split(' ')[0], sha256(data), 'C reads the whole file', { stderr: sumC.stderr })
  await until('C holds the content complete', () => fs.existsSync(join(c.disk('c'), 'content', ih)))

  // B reads sequentially through one open file: 2 MiB, then waits for the go, then the rest; the
  // digest covers everything it read.
  await listed(c, 'b', 'big.bin', data.length)
  const go = c.dir('go')
  const firstDone = c.dir('first-done')
  const script = `exec 3<"$1"
{ dd bs=128k count=16 iflag=fullblock status=none <&3; : > "$3"; while [ ! -e "$2" ]; do sleep 0.05; done; dd bs=128k status=none <&3; } | sha256sum`
  const reading = run('sh', ['-c', script, 'reader', join(c.mnt('b'), 'big.bin'), go, firstDone], { timeoutMs: 180_000 })
  await until('B read its first 2 MiB', () => fs.existsSync(firstDone), 120_000)

  a.kill('SIGKILL')
  await until('A is dead', () => outputOf(a).exit !== null, 30_000)
  // Whatever B lacks now can only come from C.
  t.notOk(fs.existsSync(join(c.disk('b'), 'content', ih)), 'B does not hold the whole content when A is dead')
  const bits = fs.existsSync(join(c.disk('b'), 'partial', `${ih}.bitfield`)) ? fs.readFileSync(join(c.disk('b'), 'partial', `${ih}.bitfield`)) : Buffer.alloc(0)
  const held = [...bits].reduce((n, byte) => n + byte.toString(2).split('1').length - 1, 0)
  t.comment(`B's persisted bitfield (written at most once a second) shows ${held} of ${Math.ceil(data.length / PIECE)} pieces when A died`)
  const um = await run('fusermount', ['-uz', c.mnt('a')])
  t.equal(um.code, 0, 'A\'s mount is cleared', { stderr: um.stderr })
  fs.writeFileSync(go, '')

  const done = await reading
  t.equal(done.code, 0, 'B\'s read finishes', { stderr: done.stderr })
  t.equal(done.stdout.split(' ')[0], sha256(data), 'B\'s read returns the right bytes (served by C after A died)')
  const again = await run('sha256sum', [join(c.mnt('b'), 'big.bin')], { timeoutMs: 180_000 })
  t.equal(again.stdout.split(' ')[0], sha256(data), 'a second full read on B is right too', { stderr: again.stderr })
})

t.test('a corrupt piece on the only holder: EIO on the reader, never the bad bytes', async t => {
  const c = await cluster(t, 'corrupt', 2)
  await c.start('a')
  await c.start('b')

  const data = randomBytesSeeded(prng(23), 16 * MiB)
  fs.writeFileSync(join(c.mnt('a'), 'file.bin'), data)
  const ih = await c.infohashOf('a', 'file.bin')
  const stored = join(c.disk('a'), 'content', ih)
  await until('A holds the content', () => fs.existsSync(stored))
  t.equal(fs.statSync(stored).size, data.length, 'A stores the content by infohash')

  // Flip a few bytes in piece 5 of A's stored copy.
  const bad = 5
  const at = bad * PIECE + 4321
  const fd = fs.openSync(stored, 'r+')
  try {
    const orig = Buffer.alloc(8)
    fs.readSync(fd, orig, 0, 8, at)
    fs.writeSync(fd, Buffer.from(orig.map(b => b ^ 0xff)), 0, 8, at)
    fs.fsyncSync(fd)
  } finally {
    fs.closeSync(fd)
  }

  await listed(c, 'b', 'file.bin', data.length)
  const out = c.dir('piece-bad.bin')
  const failsBefore = (outputOf(c.nodes.get('b')!).stderr.match(/"msg":"read failed"/g) ?? []).length
  const began = Date.now()
  const dd = await run('dd', [`if=${join(c.mnt('b'), 'file.bin')}`, `of=${out}`, 'bs=128k', `skip=${bad * 8}`, 'count=8', 'status=none'], { timeoutMs: 90_000 })
  // Information only, not asserted: how long the reader waited, and how many FUSE reads B failed.
  const fails = (outputOf(c.nodes.get('b')!).stderr.match(/"msg":"read failed"/g) ?? []).length - failsBefore
  t.comment(`dd of the corrupt piece returned after ${Date.now() - began} ms; B failed ${fails} read(s) with EIO`)
  t.not(dd.code, 0, 'dd of the corrupt piece\'s range on B fails')
  t.match(dd.stderr, /Input\/output error/, '... with EIO')
  const got = fs.existsSync(out) ? fs.readFileSync(out) : Buffer.alloc(0)
  t.ok(got.equals(data.subarray(bad * PIECE, bad * PIECE + got.length)), `whatever dd got (${got.length} bytes) is the right bytes, not the corrupted ones`)
  t.ok(got.length <= at - bad * PIECE, 'nothing at or past the corrupted offset was returned')

  for (const good of [10, 0, 15]) {
    const r = await run('sh', ['-c', `dd if="$1" bs=128k skip=${good * 8} count=8 status=none | sha256sum`, 'rd', join(c.mnt('b'), 'file.bin')], { timeoutMs: 90_000 })
    t.equal(r.stdout.split(' ')[0], sha256(data.subarray(good * PIECE, (good + 1) * PIECE)), `piece ${good} reads back right on B`, { stderr: r.stderr })
  }
  const ls = await run('ls', [c.mnt('b')], { timeoutMs: 10_000 })
  t.equal(ls.code, 0, 'B\'s mount answers after the failed read')
})

// Contents between nodes with real media tools and real failures:
//   - a video made with Debian's ffmpeg on node A is probed (duration) and seeked into (a frame from
//     its middle) with ffprobe and ffmpeg through node B's mount;
//   - a file held by two nodes (A wrote it, C read it whole) is read on B while A is killed with
//     SIGKILL half-way: the read completes with the right bytes, from C;
//   - a piece corrupted on the only holder's disk: B's read of that piece fails with EIO and never
//     returns the bad bytes, while another piece of the same file reads back right; told by B, A
//     sets its bad copy aside (its own reads of that piece fail too, the rest is kept);
//   - pieces corrupted on one of two holders: B reads the right bytes, and the bad holder, told
//     by B, fetches its bad pieces again from the other;
//   - swarmfs scrub on a disk whose copy went bad unread: it names the file, and the bad piece is
//     fetched again from the other holder;
//   - media players on B, headless, on videos only A holds (MP4 with the moov atom at the end and
//     with +faststart, MKV): mpv seeks to the middle, back to the start and near the end, then plays
//     to the end, and every frame it shows is the frame it shows from the native file; VLC (its own
//     demuxers, run as another user through allow_other) seeks likewise and plays to the end.
// Nodes run with --verbose; their logs are written to $SWARMFS_TEST_LOGS (default
// <tmpdir>/swarmfs-media-logs) when a test fails, or always with SWARMFS_TEST_KEEP_LOGS=1.
// Deadlines only bound hangs.
import { createHash } from 'node:crypto'
import { spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { createNetwork, outputOf, waitForLine, type Network, type NetHost, until } from '../helpers/netns.js'
import { childEnv, CLI, isMounted, prng, randomBytesSeeded, run } from '../helpers/volume.js'

const MiB = 1024 * 1024
/** Piece length of every content up to 4 GiB (lib/core/torrent-info.ts). */
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
/** A cluster whose nodes have all started, in order (a inits, the others join). */
async function runningCluster (t: Test, label: string, count: number): Promise<Cluster> {
  const c = await cluster(t, label, count)
  for (let i = 0; i < count; i++) await c.start(String.fromCharCode(97 + i))
  return c
}

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

  // A file open on A all along, read with O_DIRECT so that every read reaches the node (no page
  // cache): once A learns its copy is bad, this descriptor must not go on returning the bad bytes.
  const held = await holdOpen(t, join(c.mnt('a'), 'file.bin'))
  t.equal(await held.read(10 * PIECE, PIECE), `ok ${sha256(data.subarray(10 * PIECE, 11 * PIECE))}`, 'a file held open on A reads piece 10 from A\'s copy')

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

  // B told A of the bad piece: A's copy is no longer one, and A's own reads stop returning it.
  await until('A set its bad copy aside', () => !fs.existsSync(stored) && fs.existsSync(join(c.disk('a'), 'partial', ih)), 30_000)
  t.match(outputOf(c.nodes.get('a')!).stderr, /this disk's copy of a content has pieces that fail their hash check.*"bad":1,/, 'A logged its copy bad, with one bad piece')
  const onA = await run('dd', [`if=${join(c.mnt('a'), 'file.bin')}`, 'of=/dev/null', 'bs=128k', `skip=${bad * 8}`, 'count=8', 'status=none'], { timeoutMs: 90_000 })
  t.not(onA.code, 0, 'reading the bad piece on A fails now too (no other disk has it)')
  const goodOnA = await run('sh', ['-c', 'dd if="$1" bs=128k skip=80 count=8 status=none | sha256sum', 'rd', join(c.mnt('a'), 'file.bin')], { timeoutMs: 90_000 })
  t.equal(goodOnA.stdout.split(' ')[0], sha256(data.subarray(10 * PIECE, 11 * PIECE)), 'the rest of A\'s copy is kept and reads right on A')
  t.equal(await held.read(bad * PIECE, PIECE), 'error 5', 'the file held open on A since before: reading the bad piece fails with EIO too')
  t.equal(await held.read(10 * PIECE, PIECE), `ok ${sha256(data.subarray(10 * PIECE, 11 * PIECE))}`, '... and piece 10 still reads right through it')
})

/** Reads `off len` per line of stdin through one descriptor (O_DIRECT); answers `ok <sha256>` or `error <errno>`. */
const HOLD_OPEN = `
import hashlib, mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECT)
buf = mmap.mmap(-1, 1 << 20)
for line in sys.stdin:
    off, n = map(int, line.split())
    try:
        got = os.preadv(fd, [memoryview(buf)[:n]], off)
        print('ok', hashlib.sha256(buf[:got]).hexdigest(), flush=True)
    except OSError as e:
        print('error', e.errno, flush=True)
`

/** A process holding `file` open, to read it through the same descriptor later; ended at teardown. */
async function holdOpen (t: Test, file: string): Promise<{ read: (offset: number, length: number) => Promise<string> }> {
  const child = spawn('python3', ['-u', '-c', HOLD_OPEN, file], { stdio: ['pipe', 'pipe', 'pipe'] })
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  const lines: string[] = []
  let waiting: (() => void) | null = null
  let buffered = ''
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d })
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    buffered += d
    const parts = buffered.split('\n')
    buffered = parts.pop() ?? ''
    lines.push(...parts)
    waiting?.()
  })
  child.once('close', () => waiting?.())
  return {
    read: async (offset, length) => {
      child.stdin.write(`${offset} ${length}\n`)
      while (lines.length === 0) {
        if (child.exitCode !== null || child.signalCode !== null) throw new Error(`the reader holding ${file} exited: ${stderr}`)
        await new Promise<void>(resolve => { waiting = resolve })
      }
      return lines.shift() as string
    }
  }
}

t.test('two holders, one with bad pieces: the reader gets the right bytes, the bad copy is fetched again', async t => {
  const c = await runningCluster(t, 'rot', 3)
  const data = randomBytesSeeded(prng(29), 24 * MiB + 777)
  fs.writeFileSync(join(c.mnt('a'), 'rot.bin'), data)
  const ih = await c.infohashOf('a', 'rot.bin')
  const storedA = join(c.disk('a'), 'content', ih)
  await until('A holds the content', () => fs.existsSync(storedA))
  await listed(c, 'c', 'rot.bin', data.length)
  const sumC = await run('sha256sum', [join(c.mnt('c'), 'rot.bin')], { timeoutMs: 180_000 })
  t.equal(sumC.stdout.split(' ')[0], sha256(data), 'C reads the whole file, so it holds it too', { stderr: sumC.stderr })
  await until('C holds the content complete', () => fs.existsSync(join(c.disk('c'), 'content', ih)))

  // Bit rot on A: a byte flipped in every piece of its copy but the last, so whatever B asks A
  // for comes bad.
  const pieces = Math.ceil(data.length / PIECE)
  const fd = fs.openSync(storedA, 'r+')
  try {
    for (let p = 0; p < pieces - 1; p++) fs.writeSync(fd, Buffer.from([data[p * PIECE + 99]! ^ 0x40]), 0, 1, p * PIECE + 99)
    fs.fsyncSync(fd)
  } finally {
    fs.closeSync(fd)
  }

  await listed(c, 'b', 'rot.bin', data.length)
  const sumB = await run('sha256sum', [join(c.mnt('b'), 'rot.bin')], { timeoutMs: 180_000 })
  t.equal(sumB.stdout.split(' ')[0], sha256(data), 'B reads the right bytes', { stderr: sumB.stderr })
  t.match(outputOf(c.nodes.get('b')!).stderr, /a piece from a peer failed its hash check/, 'B was sent bad pieces (by A) and discarded them')

  const logA = (): string => outputOf(c.nodes.get('a')!).stderr
  await until('A says its copy is whole again', () => /a damaged copy is whole again/.test(logA()), 120_000)
  t.match(logA(), new RegExp(`this disk's copy of a content has pieces that fail their hash check.*"bad":${pieces - 1},`), 'A found every bad piece of its copy')
  t.equal(sha256(fs.readFileSync(storedA)), sha256(data), 'A holds a whole, right copy again')
  t.notOk(fs.existsSync(join(c.disk('a'), 'partial', ih)), 'A keeps no partial file of it')
  const sumA = await run('sha256sum', [join(c.mnt('a'), 'rot.bin')], { timeoutMs: 180_000 })
  t.equal(sumA.stdout.split(' ')[0], sha256(data), 'A\'s mount reads the right bytes')
})

t.test('swarmfs scrub finds a copy gone bad that nobody reads, and it is fetched again', async t => {
  const c = await runningCluster(t, 'scrub', 3)
  const one = randomBytesSeeded(prng(31), 8 * MiB + 5)
  const two = randomBytesSeeded(prng(37), 3 * MiB)
  fs.mkdirSync(join(c.mnt('a'), 'films'))
  fs.writeFileSync(join(c.mnt('a'), 'films', 'one.bin'), one)
  fs.writeFileSync(join(c.mnt('a'), 'two.bin'), two)
  fs.linkSync(join(c.mnt('a'), 'films', 'one.bin'), join(c.mnt('a'), 'one-again.bin'))
  const ih = await c.infohashOf('a', 'films/one.bin')
  const storedA = join(c.disk('a'), 'content', ih)
  await until('A holds the content', () => fs.existsSync(storedA))
  // C reads both whole, so each has a second holder.
  for (const [name, data] of [['films/one.bin', one], ['two.bin', two]] as const) {
    await listed(c, 'c', name, data.length)
    const r = await run('sha256sum', [join(c.mnt('c'), name)], { timeoutMs: 120_000 })
    t.equal(r.stdout.split(' ')[0], sha256(data), `C reads ${name}`, { stderr: r.stderr })
  }
  await until('C holds both contents', () => fs.readdirSync(join(c.disk('c'), 'content')).filter(n => /^[0-9a-f]{40}$/.test(n)).length === 2)

  const scrub = async (n: string, ...args: string[]): Promise<{ code: number | null, stdout: string, stderr: string }> =>
    await c.net.exec(c.hosts[n.charCodeAt(0) - 97]!, process.execPath, [CLI, 'scrub', '--disk', c.disk(n), ...args], { timeoutMs: 120_000 })
  const clean = await scrub('a')
  t.equal(clean.code, 0, 'scrub on A exits 0', { stderr: clean.stderr })
  t.equal(clean.stdout, 'swarmfs: scrubbed 2 contents (11.0 MiB): every copy on this disk is intact\n', 'A\'s copies are intact')

  // Bit rot in piece 2 of A's copy of one.bin, which nobody reads.
  const fd = fs.openSync(storedA, 'r+')
  try {
    fs.writeSync(fd, Buffer.from([one[2 * PIECE + 7]! ^ 0x01]), 0, 1, 2 * PIECE + 7)
    fs.fsyncSync(fd)
  } finally {
    fs.closeSync(fd)
  }
  const found = await scrub('a')
  t.equal(found.code, 0, 'scrub on A exits 0 when it finds damage', { stderr: found.stderr })
  t.match(found.stdout, /^swarmfs: scrubbed 2 contents \(11\.0 MiB\): 1 damaged on this disk; their bad pieces are set aside and fetched again/, 'it says one copy is damaged')
  t.same(found.stdout.split('\n').filter(l => l.startsWith('  ')).sort(), ['  /films/one.bin', '  /one-again.bin'], '... and names every path of that file')
  t.match(found.stderr, /scrubbing: .* contents checked/, 'progress went to stderr')
  const logA = (): string => outputOf(c.nodes.get('a')!).stderr
  await until('A says its copy is whole again', () => /a damaged copy is whole again/.test(logA()), 120_000)
  t.equal(sha256(fs.readFileSync(storedA)), sha256(one), 'A holds a right copy again (its bad piece came from C)')
  const again = await scrub('a', '--json')
  t.same(JSON.parse(again.stdout), { contents: 2, bytes: one.length + two.length, partial: 0, damaged: [], skipped: [] }, 'a second scrub on A finds nothing (--json)')
  const onC = await scrub('c')
  t.equal(onC.stdout, 'swarmfs: scrubbed 2 contents (11.0 MiB): every copy on this disk is intact\n', 'C\'s copies were never touched')

  // B reads one piece of one.bin (O_DIRECT: no page cache of B's mount answers the second read)
  // and keeps it, with the pieces read ahead, as a partial content. That piece rots on B's disk.
  const piece = 3
  const readPieceOnB = async (): Promise<string> => (await run('sh', ['-c', `dd if="${join(c.mnt('b'), 'films', 'one.bin')}" bs=${PIECE} skip=${piece} count=1 iflag=direct status=none | sha256sum`], { timeoutMs: 120_000 })).stdout.split(' ')[0]!
  const wanted = sha256(one.subarray(piece * PIECE, (piece + 1) * PIECE))
  await listed(c, 'b', 'films/one.bin', one.length)
  t.equal(await readPieceOnB(), wanted, 'B reads a piece of one.bin')
  const partialB = join(c.disk('b'), 'partial', ih)
  const heldOnB = (): boolean => fs.existsSync(`${partialB}.bitfield`) && (fs.readFileSync(`${partialB}.bitfield`)[piece >> 3]! & (128 >> (piece & 7))) !== 0
  await until('B\'s bitfield says it holds the piece', heldOnB)
  const fdB = fs.openSync(partialB, 'r+')
  try {
    fs.writeSync(fdB, Buffer.from([one[piece * PIECE + 11]! ^ 0x01]), 0, 1, piece * PIECE + 11)
    fs.fsyncSync(fdB)
  } finally {
    fs.closeSync(fdB)
  }
  const onB = await scrub('b')
  t.equal(onB.code, 0, 'scrub on B exits 0', { stderr: onB.stderr })
  t.match(onB.stdout, /^swarmfs: scrubbed \d+ contents? \([^)]*, 1 of them partly: pieces kept from reads\): 1 damaged on this disk/, 'scrub on B checks the pieces B kept from its read, and finds the bad one', { stdout: onB.stdout })
  t.same(onB.stdout.split('\n').filter(l => l.startsWith('  ')).sort(), ['  /films/one.bin', '  /one-again.bin'], '... naming every path of that file')
  t.notOk(heldOnB(), 'the bad piece is no longer in B\'s bitfield')
  t.equal(await readPieceOnB(), wanted, 'B reads the piece right again: fetched anew, not served from its rotten copy')
})

/**
 * An mpv script: paused, it shows the first frame, seeks exactly to the middle, back to the start
 * and 5 s before the end (each frame shown once), then plays on to the end. It prints where each
 * seek landed and where playback ended: mpv takes a failed read (EIO) for the end of the file and
 * exits 0 without a word, so only the position and the frames tell that a read failed. Written as
 * play.lua, its print()s come out on stdout prefixed with `[play] `.
 */
const MPV_SCRIPT = `local seeks = { { '50', 'absolute-percent+exact' }, { '0', 'absolute+exact' }, { '-5', 'absolute+exact' } }
local n = 0
local last = -1
local started = mp.get_time()
mp.observe_property('time-pos', 'number', function (_, v) if v ~= nil then last = v end end)
mp.register_event('playback-restart', function ()
  if n == 0 then print(string.format('first frame after %.3f s', mp.get_time() - started)) end
  print(string.format('restart %d at %.3f', n, mp.get_property_number('time-pos', -1)))
  n = n + 1
  if n <= #seeks then
    mp.commandv('seek', seeks[n][1], seeks[n][2])
  elseif n == #seeks + 1 then
    mp.set_property_bool('pause', false)
  end
end)
mp.register_event('end-file', function (e) print(string.format('end-file %s at %.3f', e.reason, last)) end)
`

interface MpvRun {
  code: number | null
  /** What mpv itself printed (errors only: --msg-level=all=error), on stdout and stderr. */
  errors: string[]
  /** The script's lines: where each seek landed, and how and where playback ended. */
  lines: string[]
  firstFrame: string
  /** sha256 of each frame file mpv wrote, in order. */
  frames: string[]
}

/** Plays `file` with mpv, headless and untimed, driven by MPV_SCRIPT; every frame shown is written as a PNG into `outDir`. */
async function mpvPlay (script: string, file: string, outDir: string): Promise<MpvRun> {
  const r = await run('mpv', ['--no-config', '--pause', '--untimed', '--ao=null', '--ao-null-untimed', '--vo=image', '--vo-image-format=png', `--vo-image-outdir=${outDir}`,
    `--script=${script}`, '--term-status-msg=', '--msg-level=all=error,play=info', file], { timeoutMs: 180_000 })
  const lines = r.stdout.split('\n').map(l => l.trim())
  const out = lines.filter(l => l.startsWith('[play] ')).map(l => l.slice('[play] '.length))
  const frames = fs.existsSync(outDir) ? fs.readdirSync(outDir).sort().map(f => sha256(fs.readFileSync(join(outDir, f)))) : []
  return {
    code: r.code,
    errors: [...lines.filter(l => l !== '' && !l.startsWith('[play] ')), ...r.stderr.split('\n').filter(l => l.trim() !== '')],
    lines: out.filter(l => /^(restart|end-file) /.test(l)),
    firstFrame: out.find(l => l.startsWith('first frame')) ?? '',
    frames
  }
}

/** The warnings and errors in a node's log so far. */
const problems = (child: ChildProcess): string[] => outputOf(child).stderr.split('\n').filter(l => /"level":"(warn|error)"/.test(l))

/**
 * VLC on `file` through its command-line interface (rc), run as user nobody (VLC refuses root):
 * seeks to the middle, back to the start, and 3 s before the end, then plays to the end (where
 * --play-and-pause pauses it). Resolves with its stderr, its statistics and where it ended.
 */
async function vlcPlay (t: Test, file: string, home: string, duration: number): Promise<{ code: number | null, stderr: string, stats: string, end: number }> {
  const vlc = spawn('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'cvlc', '--no-dbus', '-I', 'rc', '--rc-fake-tty',
    '--aout', 'dummy', '--vout', 'dummy', '--play-and-pause', file], { env: childEnv({ HOME: home }), stdio: ['pipe', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  vlc.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d })
  vlc.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d })
  const exited = new Promise<number | null>(resolve => vlc.once('close', code => resolve(code)))
  t.teardown(() => { if (vlc.exitCode === null && vlc.signalCode === null) vlc.kill('SIGKILL') })
  /** Sends one command and waits for the answer matching `re`. */
  const ask = async (cmd: string, re: RegExp): Promise<RegExpMatchArray> => {
    const from = stdout.length
    vlc.stdin.write(`${cmd}\n`)
    await until(`VLC answers ${cmd}`, () => re.test(stdout.slice(from)), 30_000)
    return stdout.slice(from).match(re) as RegExpMatchArray
  }
  // A number, or an empty answer (get_length and get_time before the file is open), read as 0.
  const number = /^(?:> )*(-?\d*)\r?\n/m
  const time = async (): Promise<number> => Number((await ask('get_time', number))[1])
  const reaches = async (what: string, ok: (s: number) => boolean): Promise<void> => {
    await until(`VLC ${what}`, async () => ok(await time()), 60_000)
  }
  let end = -1
  let failure: unknown = null
  try {
    await until('VLC has opened the file', async () => Number((await ask('get_length', number))[1]) > 0, 60_000)
    const mid = Math.round(duration / 2)
    await ask(`seek ${mid}`, /^(?:> )+/m)
    await reaches(`plays on from ${mid} s`, s => s >= mid + 2)
    await ask('seek 0', /^(?:> )+/m)
    await reaches('plays on from the start', s => s >= 1 && s < mid)
    await ask(`seek ${duration - 3}`, /^(?:> )+/m)
    await until('VLC plays to the end (and pauses there)', async () => /\( state paused \)/.test((await ask('status', /\( state \w+ \)/))[0]), 60_000)
    end = await time()
  } catch (err) {
    failure = err
  }
  if (vlc.exitCode === null) await ask('stats', /end of statistical info/).catch(() => {})
  vlc.stdin.end('quit\n')
  const code = await exited
  if (failure !== null) t.fail(`VLC on ${file}: ${String(failure)}`, { stderr, stdout: stdout.slice(-2000) })
  return { code, stderr, stats: stdout.slice(stdout.lastIndexOf('begin of statistical info')), end }
}

t.test('media players: mpv and VLC play and seek videos on B that only A holds', async t => {
  const c = await cluster(t, 'players', 2)
  await c.start('a')
  await c.start('b')
  const b = c.nodes.get('b')!

  // 120 s of 640x360 H.264 at a constant 3 Mb/s (about 45 pieces) with a sine tone, made natively.
  const encoders = await run('ffmpeg', ['-hide_banner', '-encoders'])
  const codec = /\blibx264\b/.test(encoders.stdout)
    ? ['-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-b:v', '3M', '-minrate', '3M', '-maxrate', '3M', '-bufsize', '2M', '-x264-params', 'nal-hrd=cbr']
    : ['-c:v', 'mpeg4', '-b:v', '3M', '-minrate', '3M', '-maxrate', '3M', '-bufsize', '2M']
  const duration = 120
  const native = c.dir('native')
  fs.mkdirSync(native)
  const made = await run('ffmpeg', ['-hide_banner', '-v', 'error', '-f', 'lavfi', '-i', `testsrc=duration=${duration}:size=640x360:rate=25`,
    '-f', 'lavfi', '-i', `sine=frequency=440:duration=${duration}`, ...codec, '-g', '50', '-c:a', 'aac', join(native, 'end.mp4')], { timeoutMs: 300_000 })
  t.equal(made.code, 0, `ffmpeg makes a ${duration} s video (${codec[1]})`, { stderr: made.stderr })
  // The same streams in other containers; the VLC copies differ in a tag, so they are contents of
  // their own that B has not fetched yet when VLC opens them.
  const remux: Array<[string, string[]]> = [
    ['faststart.mp4', ['-movflags', '+faststart']],
    ['video.mkv', []],
    ['vlc-end.mp4', ['-metadata', 'comment=vlc']],
    ['vlc.mkv', ['-metadata', 'comment=vlc']]
  ]
  for (const [name, opts] of remux) {
    const r = await run('ffmpeg', ['-hide_banner', '-v', 'error', '-i', join(native, 'end.mp4'), '-map', '0', '-c', 'copy', ...opts, join(native, name)])
    t.equal(r.code, 0, `ffmpeg remuxes it into ${name}`, { stderr: r.stderr })
  }
  const head = (name: string): string => fs.readFileSync(join(native, name)).subarray(0, 64).toString('latin1')
  t.notMatch(head('end.mp4'), /moov/, 'end.mp4 has its moov atom at the end')
  t.match(head('faststart.mp4'), /moov/, 'faststart.mp4 has its moov atom first')

  const names = ['end.mp4', 'faststart.mp4', 'video.mkv', 'vlc-end.mp4', 'vlc.mkv']
  for (const name of names) {
    const cp = await run('cp', [join(native, name), join(c.mnt('a'), name)])
    t.equal(cp.code, 0, `cp puts ${name} into A's mount`, { stderr: cp.stderr })
  }
  for (const name of names) {
    await listed(c, 'b', name, fs.statSync(join(native, name)).size)
    const ih = await c.infohashOf('a', name)
    t.notOk(fs.existsSync(join(c.disk('b'), 'content', ih)), `B does not hold ${name}`)
  }

  const script = join(native, 'play.lua')
  fs.writeFileSync(script, MPV_SCRIPT)
  for (const name of ['end.mp4', 'faststart.mp4', 'video.mkv']) {
    const ref = await mpvPlay(script, join(native, name), c.dir(`frames-native-${name}`))
    t.equal(ref.code, 0, `mpv plays the native ${name}`, { errors: ref.errors })
    t.equal(ref.lines.length, 5, `${name}: mpv lands 4 times and ends, natively`, { lines: ref.lines })
    t.ok(ref.frames.length >= 5 * 25, `${name}: mpv shows ${ref.frames.length} frames natively`)

    const before = problems(b).length
    const playing = mpvPlay(script, join(c.mnt('b'), name), c.dir(`frames-b-${name}`))
    // The mount answers while a player reads through it.
    const ls = await run('ls', [c.mnt('b')], { timeoutMs: 30_000 })
    t.equal(ls.code, 0, `ls of B's mount answers while mpv plays ${name}`, { stderr: ls.stderr })
    t.ok(ls.stdout.split('\n').includes(name), `... and lists ${name}`)
    const onB = await playing
    t.comment(`${name}: mpv on B: ${onB.firstFrame} (native: ${ref.firstFrame.replace('first frame after ', '')}); ${onB.lines.join('; ')}`)
    t.equal(onB.code, 0, `mpv on B exits 0 on ${name}`)
    t.same(onB.errors, [], `mpv on B reports no error on ${name}`)
    // The seeks land exactly where they land natively; the last position mpv reports before the
    // end varies by a frame or two from run to run (natively too), so the end is checked apart.
    t.same(onB.lines.slice(0, -1), ref.lines.slice(0, -1), `${name}: mpv on B lands where it lands natively`)
    t.match(onB.lines.at(-1), /^end-file eof at /, `${name}: ... and plays on to the end of the file`)
    const end = Number(/^end-file eof at ([\d.]+)$/.exec(onB.lines.at(-1) ?? '')?.[1] ?? NaN)
    t.ok(end > duration - 0.5, `${name}: playback on B ended at the end of the file (${end} s)`)
    t.equal(onB.frames.length, ref.frames.length, `${name}: mpv on B shows as many frames as natively (${ref.frames.length})`)
    const differ = onB.frames.filter((f, i) => f !== ref.frames[i]).length
    t.equal(differ, 0, `${name}: every frame mpv shows on B is the frame it shows natively`)
    t.same(problems(b).slice(before), [], `B logs no warning or error while mpv plays ${name}`)
  }

  // VLC runs as nobody: the test's directories must let it through to the mount.
  fs.chmodSync(c.dir('.'), 0o755)
  const home = c.dir('vlc-home')
  fs.mkdirSync(home, { mode: 0o777 })
  fs.chmodSync(home, 0o777)
  for (const name of ['vlc-end.mp4', 'vlc.mkv']) {
    const before = problems(b).length
    const r = await vlcPlay(t, join(c.mnt('b'), name), home, duration)
    t.comment(`${name}: VLC on B ended at ${r.end} s`)
    // VLC exits 0 even when it cannot open a file: this only catches a crash.
    t.equal(r.code, 0, `VLC on B exits 0 after ${name}`)
    t.ok(r.end >= duration - 2, `${name}: VLC on B played to the end (${r.end} s)`)
    t.notMatch(r.stderr, /read error|Input\/output|stream error|unable to open|can't be opened|corrupt/i, `VLC on B reports no read error on ${name}`)
    const decoded = Number(/video decoded\s*:\s*(\d+)/.exec(r.stats)?.[1] ?? 0)
    t.ok(decoded > 25, `VLC on B decoded ${decoded} video frames of ${name}`, { stats: r.stats })
    t.match(r.stats, /demux corrupted\s*:\s*0\b/, `${name}: VLC's demuxer saw nothing corrupt`)
    t.same(problems(b).slice(before), [], `B logs no warning or error while VLC plays ${name}`)
  }
})

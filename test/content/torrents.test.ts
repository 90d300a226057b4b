// TorrentService (lib/content/torrents.ts) between real processes in network namespaces: each node
// is test/content/fixtures/torrent-node.mjs (the built dist/ module) in its own namespace, driven
// over a line protocol on stdin/stdout. Build first (npx tsc -p tsconfig.json) and run inside
// `unshare --net` (scripts/test.sh does both).
//
// SWARMFS_TORRENT_BENCH_MIB sets the size of the benchmark file (default 1024; 0 skips the benchmark).
import t, { type Test } from 'tap'
import fs from 'node:fs'
import os from 'node:os'
import { createHash, randomFillSync, randomInt } from 'node:crypto'
import { join } from 'node:path'
import type { ChildProcess } from 'node:child_process'
import { residentBytes, ROOT } from '../helpers/volume.js'
import { createNetwork, outputOf, stopProcess, waitForLine, type NetHost, type Network } from '../helpers/netns.js'
import { buildInfo, infoHash, pieceLengthFor, type TorrentInfo } from '../../lib/core/torrent-info.js'

const FIXTURE = join(ROOT, 'test', 'content', 'fixtures', 'torrent-node.mjs')
const BUILT = join(ROOT, 'dist', 'lib', 'content', 'torrents.js')
const VOLUME = 'f00dfeed00112233'
const KEY = 'the-volume-key-of-this-test'
const START_MS = 30_000
const MiB = 1 << 20
const BENCH_MIB = Number(process.env.SWARMFS_TORRENT_BENCH_MIB ?? 1024)

// ---------------------------------------------------------------------------------------------
// Contents

interface Content {
  ih: string
  info: TorrentInfo
  path: string
  sha256: string
  /** The bytes, for small contents. */
  data: Buffer | null
}

/** Writes `size` random bytes as a complete content of `disk`, hashing pieces on the way. */
function makeContent (disk: string, size: number, keep: boolean): Content {
  const pieceLength = pieceLengthFor(size)
  const dir = join(disk, 'content')
  fs.mkdirSync(dir, { recursive: true })
  const tmp = join(dir, 'tmp-' + String(randomInt(1e9)))
  const fd = fs.openSync(tmp, 'w')
  const whole = createHash('sha256')
  const digests: Buffer[] = []
  const kept: Buffer[] = []
  const chunk = Buffer.allocUnsafe(16 * pieceLength)
  try {
    for (let offset = 0; offset < size;) {
      const n = Math.min(chunk.length, size - offset)
      const part = chunk.subarray(0, n)
      randomFillSync(part)
      for (let p = 0; p < n; p += pieceLength) digests.push(createHash('sha1').update(part.subarray(p, p + pieceLength)).digest())
      whole.update(part)
      if (keep) kept.push(Buffer.from(part))
      fs.writeSync(fd, part, 0, n, offset)
      offset += n
    }
  } finally {
    fs.closeSync(fd)
  }
  const info = buildInfo(VOLUME, size, pieceLength, digests)
  const ih = infoHash(info)
  const path = join(dir, ih)
  fs.renameSync(tmp, path)
  return { ih, info, path, sha256: whole.digest('hex'), data: keep ? Buffer.concat(kept) : null }
}

function expected (c: Content, offset: number, length: number): { length: number, sha256: string } {
  const end = Math.min(c.info.length, offset + length)
  let bytes: Buffer
  if (c.data !== null) {
    bytes = c.data.subarray(offset, end)
  } else {
    bytes = Buffer.alloc(end - offset)
    const fd = fs.openSync(c.path, 'r')
    try { fs.readSync(fd, bytes, 0, bytes.length, offset) } finally { fs.closeSync(fd) }
  }
  return { length: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') }
}

function piecesOf (c: Content, offset: number, length: number): number[] {
  const end = Math.min(c.info.length, offset + length)
  const out: number[] = []
  for (let i = Math.floor(offset / c.info.pieceLength); i <= Math.floor((end - 1) / c.info.pieceLength); i++) out.push(i)
  return out
}

function fileSha256 (path: string): string {
  const hash = createHash('sha256')
  const fd = fs.openSync(path, 'r')
  const buf = Buffer.allocUnsafe(16 * MiB)
  try {
    for (let n; (n = fs.readSync(fd, buf, 0, buf.length, null)) > 0;) hash.update(buf.subarray(0, n))
  } finally {
    fs.closeSync(fd)
  }
  return hash.digest('hex')
}

function median (values: number[]): number {
  const s = [...values].sort((a, b) => a - b)
  return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
}

// ---------------------------------------------------------------------------------------------
// Nodes

interface Reply<T> { id: number, ok: boolean, result?: T, error?: { code: string | null, message: string }, ms?: number }

interface Stats { port: number, active: string[], downloaded: number, uploaded: number, piecesFetched: number, hashFailures: number, refused: number }

interface ReadResult { length: number, sha256: string, ms: number }

class TorrentNode {
  port = 0
  private nextId = 1
  private readonly pending = new Map<number, (reply: Reply<unknown>) => void>()
  private buffered = ''

  private constructor (readonly name: string, readonly host: NetHost, readonly child: ChildProcess) {
    child.stdout!.on('data', (s: string) => {
      this.buffered += s
      let nl
      while ((nl = this.buffered.indexOf('\n')) >= 0) {
        const line = this.buffered.slice(0, nl)
        this.buffered = this.buffered.slice(nl + 1)
        if (!line.startsWith('{')) continue
        const reply = JSON.parse(line) as Reply<unknown>
        this.pending.get(reply.id)?.(reply)
        this.pending.delete(reply.id)
      }
    })
    child.once('close', () => {
      for (const [id, f] of this.pending) f({ id, ok: false, error: { code: 'EXITED', message: `${name} exited` } })
      this.pending.clear()
    })
  }

  /** `key`: the volume key its wires prove (another one: a host of the LAN without the key). */
  static async start (net: Network, host: NetHost, name: string, disk: string, key: string, extra: Record<string, unknown> = {}): Promise<TorrentNode> {
    const config = { name, disk, volumeId: VOLUME, key, ...extra }
    const child = net.spawn(host, process.execPath, [FIXTURE, JSON.stringify(config)], { stdio: ['pipe', 'pipe', 'pipe'] })
    const node = new TorrentNode(name, host, child)
    const line = await waitForLine(child, /^listening \d+$/, START_MS)
    node.port = Number(line.split(' ')[1])
    return node
  }

  call<T> (op: string, args: Record<string, unknown> = {}, timeoutMs = 300_000): Promise<Reply<T>> {
    const id = this.nextId++
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id)
        const out = outputOf(this.child)
        reject(new Error(`${this.name}: no answer to ${op} within ${timeoutMs} ms\n--- stderr\n${out.stderr.slice(-4000)}`))
      }, timeoutMs)
      this.pending.set(id, reply => { clearTimeout(timer); resolve(reply as Reply<T>) })
      this.child.stdin!.write(JSON.stringify({ id, op, ...args }) + '\n')
    })
  }

  async ok<T> (op: string, args: Record<string, unknown> = {}, timeoutMs?: number): Promise<T> {
    const reply = await this.call<T>(op, args, timeoutMs)
    if (!reply.ok) throw new Error(`${this.name} ${op} failed: ${reply.error?.code ?? ''} ${reply.error?.message ?? ''}\n--- stderr\n${outputOf(this.child).stderr.slice(-4000)}`)
    return reply.result as T
  }

  read (c: Content, offset: number, length: number, deadlineMs = 10_000): Promise<Reply<ReadResult>> {
    return this.call<ReadResult>('read', { ih: c.ih, info: c.info, offset, length, deadlineMs })
  }

  stats (): Promise<Stats> {
    return this.ok<Stats>('stats')
  }

  /** The pieces of a content this node holds. */
  async holds (c: Content): Promise<Set<number>> {
    const p = await this.ok<{ have: number[] } | null>('progress', { ih: c.ih, info: c.info })
    return new Set(p?.have ?? [])
  }

  async stop (): Promise<void> {
    const r = await stopProcess(this.child)
    if (r.killed || r.code !== 0) throw new Error(`${this.name} did not stop cleanly (${r.code ?? r.signal}${r.killed ? ', killed' : ''})\n${outputOf(this.child).stderr.slice(-4000)}`)
  }
}

function tempDir (t: Test, name: string): string {
  const dir = fs.mkdtempSync(join(os.tmpdir(), `swarmfs-${name}-`))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

async function until (what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}

// ---------------------------------------------------------------------------------------------

t.before(() => {
  if (!fs.existsSync(BUILT)) throw new Error(`${BUILT} is missing: run npx tsc -p tsconfig.json first`)
})

t.test('pieces move between two nodes, stay on disk, and are verified', async t => {
  const net = await createNetwork(t, { hosts: 3 })
  t.comment(`network ${net.prefix}`)
  const [hostA, hostB, hostC] = net.hosts as [NetHost, NetHost, NetHost]
  const base = tempDir(t, 'torrents')
  const diskA = join(base, 'a')
  const diskB = join(base, 'b')
  const diskC = join(base, 'c')

  // X: 64 MiB and a bit (a short last piece); Y, Z: small, seeded after X so that A (at most two
  // active torrents) evicts X and must activate it again when B asks for it.
  const X = makeContent(diskA, 64 * MiB + 12_345, true)
  const Y = makeContent(diskA, 3 * MiB + 5, true)
  const Z = makeContent(diskA, 100_000, true)
  const startA = async (): Promise<TorrentNode> => {
    const node = await TorrentNode.start(net, hostA, 'A', diskA, KEY, { maxActive: 2, listenPort: 6881 })
    for (const c of [X, Y, Z]) await node.ok('seed', { ih: c.ih, info: c.info })
    return node
  }
  const startB = async (): Promise<TorrentNode> => {
    const node = await TorrentNode.start(net, hostB, 'B', diskB, KEY)
    await node.ok('addPeer', { ih: null, host: hostA.address, port: A.port })
    return node
  }
  let A = await startA()
  let B = await startB()
  t.notOk((await A.stats()).active.includes(X.ih), 'A keeps at most two torrents active: X was evicted')

  // Random ranges, one ending past the end of X, one inside its short last piece. None starts where
  // the one before it (in a loop: they are read again) ended, or the service would see a sequential
  // reader and fetch pieces ahead; this test keeps track of exactly which pieces B holds.
  const looksSequential = (prev: [number, number], next: [number, number]): boolean =>
    next[0] >= prev[0] && next[0] <= Math.min(X.info.length, prev[0] + prev[1]) + X.info.pieceLength
  let ranges: Array<[number, number]>
  do {
    ranges = [[X.info.length - 1000, 5000], [X.info.length - 20, 20]]
    while (ranges.length < 18) {
      const next: [number, number] = [randomInt(X.info.length - 1), 1 + randomInt(2 * MiB)]
      if (!looksSequential(ranges[ranges.length - 1]!, next)) ranges.push(next)
    }
  } while (looksSequential(ranges[ranges.length - 1]!, ranges[0]!))
  const have = new Set<number>()

  await t.test('B reads random ranges of a content only A holds', async t => {
    for (const [offset, length] of ranges) {
      const r = await B.read(X, offset, length)
      t.ok(r.ok, `read ${offset}+${length}`, { error: r.error })
      t.same({ length: r.result?.length, sha256: r.result?.sha256 }, expected(X, offset, length), `bytes of ${offset}+${length}`)
      for (const p of piecesOf(X, offset, length)) have.add(p)
    }
    t.ok((await A.stats()).active.includes(X.ih), 'A activated X when B asked for it')
    const partial = fs.statSync(join(diskB, 'partial', X.ih))
    t.equal(partial.size, X.info.length, 'the partial file has the content\'s size')
    t.ok(partial.blocks * 512 <= (have.size + 2) * X.info.pieceLength, `and is sparse (${partial.blocks * 512} bytes allocated for ${have.size} pieces)`)
    t.notOk(fs.existsSync(join(diskB, 'content', X.ih)), 'not complete yet')
  })

  await t.test('reading the same ranges again transfers nothing', async t => {
    const a0 = await A.stats()
    const b0 = await B.stats()
    for (const [offset, length] of ranges) {
      const r = await B.read(X, offset, length)
      t.same({ length: r.result?.length, sha256: r.result?.sha256 }, expected(X, offset, length), `bytes of ${offset}+${length}`)
    }
    const a1 = await A.stats()
    const b1 = await B.stats()
    t.equal(b1.piecesFetched - b0.piecesFetched, 0, 'no piece fetched')
    t.equal(b1.downloaded - b0.downloaded, 0, 'no byte received by B')
    t.equal(a1.uploaded - a0.uploaded, 0, 'no byte sent by A')
  })

  await t.test('a sequential reader gets a read-ahead window, a random one does not', async t => {
    const before = (await B.stats()).piecesFetched
    const fetched = async (): Promise<number> => (await B.stats()).piecesFetched - before
    for (const offset of [0, 128 * 1024]) {
      const r = await B.read(Y, offset, 128 * 1024)
      t.same({ length: r.result?.length, sha256: r.result?.sha256 }, expected(Y, offset, 128 * 1024), `bytes of ${offset}+128K`)
    }
    // The second read was sequential: pieces 1 and 2 come without being read.
    const end = Date.now() + 10_000
    while (await fetched() < 3 && Date.now() < end) await new Promise(resolve => setTimeout(resolve, 50))
    t.equal(await fetched(), 3, 'piece 0 for the reads, pieces 1 and 2 ahead of them')
    const r = await B.read(Y, 2 * MiB + 10, 1000)
    t.same({ length: r.result?.length, sha256: r.result?.sha256 }, expected(Y, 2 * MiB + 10, 1000), 'a read in piece 2')
    t.equal(await fetched(), 3, 'found it on the disk already')
    const seek = await B.read(Y, 3 * MiB, 5)
    t.same({ length: seek.result?.length, sha256: seek.result?.sha256 }, expected(Y, 3 * MiB, 5), 'a read of the last piece')
    t.equal(await fetched(), 4, 'fetched that piece alone')
    await until('Y to complete on B', () => fs.existsSync(join(diskB, 'content', Y.ih)))
    t.equal(fileSha256(join(diskB, 'content', Y.ih)), Y.sha256, 'every piece read: Y is complete on B')
  })

  await t.test('a restarted B keeps its pieces', async t => {
    await B.stop()
    const bits = fs.readFileSync(join(diskB, 'partial', `${X.ih}.bitfield`))
    t.equal(bits.length, Math.ceil(X.info.length / X.info.pieceLength / 8), 'the bitfield was written')
    // An old mtime: partial contents are evicted oldest bitfield first.
    const bitfield = join(diskB, 'partial', `${X.ih}.bitfield`)
    const old = new Date('2001-01-01T00:00:00Z')
    fs.utimesSync(bitfield, old, old)
    // What a crash between writeBitfield's write and its rename leaves.
    const torn = `${bitfield}.0123456789ab.tmp`
    fs.writeFileSync(torn, bits)
    B = await startB()
    t.notOk(fs.existsSync(torn), 'a bitfield\'s temporary left by a crash is removed at start')
    for (const [offset, length] of ranges) {
      const r = await B.read(X, offset, length)
      t.same({ length: r.result?.length, sha256: r.result?.sha256 }, expected(X, offset, length), `bytes of ${offset}+${length}`)
    }
    const s = await B.stats()
    t.equal(s.piecesFetched, 0, 'no piece fetched after the restart')
    t.equal(s.downloaded, 0, 'no byte received after the restart')
    const readAt = Date.now()
    await B.stop()
    t.ok(fs.statSync(bitfield).mtimeMs >= readAt - 1000, 'read again with nothing fetched, X\'s bitfield is as recent as the reads (not evicted as if unused since 2001)')
    B = await startB()
  })

  await t.test('a corrupt piece on the holder is never returned', async t => {
    const pieces = Math.ceil(X.info.length / X.info.pieceLength)
    const holds = await B.holds(X)
    t.same(holds, have, 'B holds exactly the pieces its reads covered')
    let victim = -1
    for (let p = 1; p < pieces - 1 && victim < 0; p++) if (!holds.has(p)) victim = p
    t.ok(victim > 0, `piece ${victim} is one B does not have`)
    const at = victim * X.info.pieceLength + 4321
    const fd = fs.openSync(X.path, 'r+')
    const original = Buffer.alloc(1)
    fs.readSync(fd, original, 0, 1, at)
    fs.writeSync(fd, Buffer.from([original[0]! ^ 0xff]), 0, 1, at)
    try {
      const before = await B.stats()
      const started = Date.now()
      const r = await B.read(X, at - 100, 4096, 3_000)
      t.notOk(r.ok, 'the read fails')
      t.equal(r.error?.code, 'EIO', 'with EIO')
      t.ok(Date.now() - started < 8_000, 'by its deadline')
      t.ok((await B.stats()).hashFailures > before.hashFailures, 'B saw the piece fail its hash check')
    } finally {
      fs.writeSync(fd, original, 0, 1, at)
      fs.closeSync(fd)
    }
    const r = await B.read(X, at - 100, 4096)
    t.same({ length: r.result?.length, sha256: r.result?.sha256 }, expected(X, at - 100, 4096), 'once repaired on A, the right bytes come')
    have.add(victim)
  })

  await t.test('a node without the volume key gets nothing', async t => {
    const C = await TorrentNode.start(net, hostC, 'C', diskC, 'another volume\'s key')
    await C.ok('addPeer', { ih: null, host: hostA.address, port: A.port })
    const refused = (await A.stats()).refused
    const r = await C.read(X, 0, 4096, 2_000)
    t.equal(r.error?.code, 'EIO', 'C\'s read fails with EIO')
    t.ok((await A.stats()).refused > refused, 'A refused C\'s connection')
    t.match(outputOf(A.child).stderr, /refused a BitTorrent connection that did not prove the volume key/, 'and logged it')
    t.equal((await C.stats()).piecesFetched, 0, 'C received no piece')
    await C.stop()
  })

  await t.test('with the only holder gone, a read fails with EIO by its deadline', async t => {
    await A.stop()
    const pieces = Math.ceil(X.info.length / X.info.pieceLength)
    const holds = await B.holds(X)
    let missing = -1
    for (let p = 0; p < pieces && missing < 0; p++) if (!holds.has(p)) missing = p
    const deadline = 2_000
    const r = await B.read(X, missing * X.info.pieceLength, 4096, deadline)
    t.notOk(r.ok, 'the read fails')
    t.equal(r.error?.code, 'EIO', 'with EIO')
    t.ok((r.ms ?? 0) >= deadline - 5 && (r.ms ?? 0) < deadline + 1_000, `at its deadline (${Math.round(r.ms ?? 0)} ms for ${deadline})`)
    const local = await B.read(X, ranges[2]![0], ranges[2]![1], 1_000)
    t.ok(local.ok, 'pieces B holds are still read meanwhile')
  })

  await t.test('reading every piece completes the content', async t => {
    A = await startA()
    const r = await B.ok<{ bytes: number, sha256: string, ms: number }>('readAll', { ih: X.ih, info: X.info, chunk: 128 * 1024, deadlineMs: 10_000 })
    t.equal(r.bytes, X.info.length, 'every byte read')
    t.equal(r.sha256, X.sha256, 'the right bytes')
    await until('B\'s content file', () => fs.existsSync(join(diskB, 'content', X.ih)))
    t.equal(fileSha256(join(diskB, 'content', X.ih)), X.sha256, 'B now holds X complete in content/')
    await until('partial files to go', () => !fs.existsSync(join(diskB, 'partial', X.ih)) && !fs.existsSync(join(diskB, 'partial', `${X.ih}.bitfield`)))
    t.pass('the partial file and its bitfield are gone')
    const again = await B.read(X, 1000, 1000)
    t.same({ length: again.result?.length, sha256: again.result?.sha256 }, expected(X, 1000, 1000), 'read from the complete copy')
  })

  await t.test('two holders: one killed mid-read, the read completes from the other', async t => {
    // B completed X above and seeds it now; A holds it too. D reads it from both.
    await A.stop()
    await B.stop()
    A = await TorrentNode.start(net, hostA, 'A', diskA, KEY, { listenPort: 6881 })
    await A.ok('seed', { ih: X.ih, info: X.info })
    B = await TorrentNode.start(net, hostB, 'B', diskB, KEY)
    await B.ok('seed', { ih: X.ih, info: X.info })
    const D = await TorrentNode.start(net, hostC, 'D', join(base, 'd'), KEY)
    await D.ok('addPeer', { ih: null, host: hostA.address, port: A.port })
    await D.ok('addPeer', { ih: X.ih, host: hostB.address, port: B.port })
    const reading = D.ok<{ bytes: number, sha256: string }>('readAll', { ih: X.ih, info: X.info, chunk: 128 * 1024, deadlineMs: 10_000 })
    const end = Date.now() + 30_000
    while ((await D.stats()).piecesFetched < 8 && Date.now() < end) await new Promise(resolve => setTimeout(resolve, 10))
    const [a, b] = [await A.stats(), await B.stats()]
    t.ok(a.uploaded > 0 && b.uploaded > 0, `both holders send pieces (A ${a.uploaded} bytes, B ${b.uploaded} bytes so far)`)
    A.child.kill('SIGKILL')
    const r = await reading
    t.equal(r.sha256, X.sha256, 'the read completes with the right bytes after A died')
    // D fetched every piece: those behind its reader leave the page cache once synced
    // (PieceFile.dropCached); at completion at most the read-ahead window (32 MiB) was still ahead.
    const complete = join(base, 'd', 'content', X.ih)
    await until('X complete on D', () => fs.existsSync(complete))
    const cached = residentBytes(complete)
    t.ok(cached <= 40 * MiB, `D's page cache does not keep what it fetched and read (${(cached / MiB).toFixed(1)} of ${(X.info.length / MiB).toFixed(1)} MiB cached)`)
    await D.stop()
    await B.stop()
  })
})

t.test('many contents: only the torrents in use stay active, and each is activated when needed', async t => {
  // 150 contents and room for 8 active torrents on each side: every read makes B activate one
  // (evicting another) and A activate it again when B's wire asks for it.
  const COUNT = 150
  const MAX_ACTIVE = 8
  const net = await createNetwork(t, { hosts: 2 })
  t.comment(`network ${net.prefix}`)
  const [hostA, hostB] = net.hosts as [NetHost, NetHost]
  const base = tempDir(t, 'torrents-many')
  const contents = Array.from({ length: COUNT }, (_, i) => makeContent(join(base, 'a'), 1000 + i * 997, true))
  const A = await TorrentNode.start(net, hostA, 'A', join(base, 'a'), KEY, { maxActive: MAX_ACTIVE })
  for (const c of contents) await A.ok('seed', { ih: c.ih, info: c.info })
  const B = await TorrentNode.start(net, hostB, 'B', join(base, 'b'), KEY, { maxActive: MAX_ACTIVE })
  await B.ok('addPeer', { ih: null, host: hostA.address, port: A.port })

  const wrong: string[] = []
  let mostActive = 0
  for (const [i, c] of contents.entries()) {
    const r = await B.read(c, 0, c.info.length)
    const want = expected(c, 0, c.info.length)
    if (!r.ok || r.result?.sha256 !== want.sha256) wrong.push(`content ${i}: ${r.ok ? 'other bytes' : `${r.error?.code ?? ''} ${r.error?.message ?? ''}`}`)
    const [a, b] = [await A.stats(), await B.stats()]
    mostActive = Math.max(mostActive, a.active.length, b.active.length)
  }
  t.same(wrong, [], `B read all ${COUNT} contents with the right bytes`)
  t.ok(mostActive <= MAX_ACTIVE, `neither node had more than ${MAX_ACTIVE} torrents active (at most ${mostActive})`)
  // The first ones were evicted long ago on both sides, and are read again from B's disk.
  const before = (await B.stats()).downloaded
  const again = await B.read(contents[0]!, 0, contents[0]!.info.length)
  t.equal(again.result?.sha256, expected(contents[0]!, 0, contents[0]!.info.length).sha256, 'the first content again, after its torrent was evicted')
  t.equal((await B.stats()).downloaded, before, '... from B\'s own disk')
  await B.stop()
  await A.stop()
})

t.test('benchmark: a large content between two namespaces', { skip: BENCH_MIB <= 0 ? 'SWARMFS_TORRENT_BENCH_MIB=0' : false }, async t => {
  const net = await createNetwork(t, { hosts: 2 })
  t.comment(`network ${net.prefix}`)
  const [hostA, hostB] = net.hosts as [NetHost, NetHost]
  const base = tempDir(t, 'torrents-bench')
  const size = BENCH_MIB * MiB
  const X = makeContent(join(base, 'a'), size, false)

  // Raw TCP on the same link, for comparison.
  const sink = net.spawn(hostA, process.execPath, ['-e', `
    const net = require('node:net')
    const server = net.createServer(c => { let n = 0; const t0 = process.hrtime.bigint(); c.on('data', d => { n += d.length }); c.on('end', () => { console.log('received ' + n + ' ' + (Number(process.hrtime.bigint() - t0) / 1e6)); server.close() }) })
    server.listen(5999, () => console.log('ready'))`])
  await waitForLine(sink, /^ready$/, START_MS)
  const source = await net.exec(hostB, process.execPath, ['-e', `
    const c = require('node:net').connect(5999, '${hostA.address}', () => {
      const buf = Buffer.alloc(1 << 20, 7); let left = ${size}
      const go = () => { while (left > 0) { left -= buf.length; if (!c.write(buf)) return c.once('drain', go) } c.end() }
      go()
    })`])
  t.equal(source.code, 0, 'raw TCP sender ran')
  const [, bytes, tcpMs] = (await waitForLine(sink, /^received /, 120_000)).split(' ')
  const tcpMBs = Number(bytes) / 1e6 / (Number(tcpMs) / 1000)

  const A = await TorrentNode.start(net, hostA, 'A', join(base, 'a'), KEY)
  await A.ok('seed', { ih: X.ih, info: X.info })

  const T = await TorrentNode.start(net, hostB, 'T', join(base, 't'), KEY)
  await T.ok('addPeer', { ih: null, host: hostA.address, port: A.port })
  const reads = await T.ok<Array<{ offset: number, ms: number, sha256: string }>>('randomReads', { ih: X.ih, info: X.info, count: 21, size: 4096, deadlineMs: 10_000 })
  for (const r of reads) t.equal(r.sha256, expected(X, r.offset, 4096).sha256, `4 KiB at ${r.offset}`)
  // The first read also connects to A; the median is over the 20 after it.
  const ttfb = median(reads.slice(1).map(r => r.ms))
  await T.stop()

  const S = await TorrentNode.start(net, hostB, 'S', join(base, 's'), KEY)
  await S.ok('addPeer', { ih: null, host: hostA.address, port: A.port })
  const seq = await S.ok<{ bytes: number, ms: number }>('readAll', { ih: X.ih, info: X.info, chunk: 128 * 1024, deadlineMs: 10_000, hash: false }, 600_000)
  t.equal(seq.bytes, size, 'sequential read: every byte')
  const seqMBs = seq.bytes / 1e6 / (seq.ms / 1000)
  await S.stop()
  t.equal(fileSha256(join(base, 's', 'content', X.ih)), X.sha256, 'and the content it completed has the right bytes')
  await A.stop()

  t.comment(`raw TCP between the namespaces: ${tcpMBs.toFixed(0)} MB/s`)
  t.comment(`sequential read of ${BENCH_MIB} MiB through TorrentService (128 KiB reads): ${seqMBs.toFixed(1)} MB/s in ${(seq.ms / 1000).toFixed(1)} s (${(seqMBs / tcpMBs).toFixed(3)}x raw TCP)`)
  t.comment(`4 KiB read at a random offset: first (connects) ${reads[0]!.ms.toFixed(1)} ms, median of the next 20 ${ttfb.toFixed(1)} ms (min ${Math.min(...reads.slice(1).map(r => r.ms)).toFixed(1)}, max ${Math.max(...reads.slice(1).map(r => r.ms)).toFixed(1)})`)
})

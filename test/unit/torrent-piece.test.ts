// The vendored torrent-piece assembles a piece's blocks in one buffer and lends those buffers out
// again once a piece is written (vendor/torrent-piece/index.js). Pure logic: blocks in any order
// give back exactly the piece's bytes, a lent buffer is reused only once it came back, and a
// reused one carries nothing of its last piece. The last check goes through PieceFile.put, the
// store that gives the buffers back, with a real file.
import fs from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { PieceFile } from '../../lib/content/piece-file.js'
import type { TorrentInfo } from '../../lib/core/torrent-info.js'

interface PieceLike {
  missing: number
  reserve: () => number
  set: (i: number, data: Uint8Array, source: unknown) => boolean
  get: (i: number) => Uint8Array | null
  flush: () => Uint8Array | null
  chunkOffset: (i: number) => number
  chunkLength: (i: number) => number
}
interface PieceClass {
  new (length: number): PieceLike
  BLOCK_LENGTH: number
  recycle: (buf: Uint8Array) => void
  pool: { budget: number, freeBytes: number }
}

const modulePath: string = '../../vendor/torrent-piece/index.js'
const Piece = ((await import(modulePath)) as { default: PieceClass }).default
const BLOCK = Piece.BLOCK_LENGTH
const poolPath: string = '../../vendor/torrent-piece/pool.js'
const { sizeClass } = (await import(poolPath)) as { sizeClass: (length: number) => number }

/** Deterministic shuffle (xorshift), so a failure can be replayed. */
function shuffled (n: number, seed: number): number[] {
  const order = Array.from({ length: n }, (_, i) => i)
  let x = seed
  for (let i = n - 1; i > 0; i--) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5
    const j = (x >>> 0) % (i + 1)
    ;[order[i], order[j]] = [order[j]!, order[i]!]
  }
  return order
}

/** Feeds `bytes` to a fresh piece block by block in `order`; returns what flush() gave. */
function assemble (bytes: Buffer, order: number[]): Uint8Array {
  const piece = new Piece(bytes.length)
  const blocks = Math.ceil(bytes.length / BLOCK)
  for (let k = 0; k < blocks; k++) piece.reserve()
  order.forEach((i, n) => {
    const whole = piece.set(i, bytes.subarray(i * BLOCK, Math.min(bytes.length, (i + 1) * BLOCK)), 'peer')
    if (whole !== (n === order.length - 1)) throw new Error(`set() said whole=${whole} after ${n + 1} of ${order.length} blocks`)
  })
  const out = piece.flush()
  if (out === null) throw new Error('flush() gave nothing for a whole piece')
  return out
}

t.test('blocks in any order give back exactly the piece, a short last block included', async t => {
  for (const [length, seed] of [[1 << 20, 7], [(1 << 20) - 1, 11], [3 * BLOCK + 5, 13], [100, 17], [BLOCK, 19]] as const) {
    const bytes = randomBytes(length)
    const out = assemble(bytes, shuffled(Math.ceil(length / BLOCK), seed))
    t.equal(out.length, length, `${length} bytes: length`)
    t.ok(Buffer.from(out).equals(bytes), `${length} bytes: the same bytes`)
    Piece.recycle(out)
  }
})

t.test('a block set twice counts once; get() shows a block only once it is there', async t => {
  const bytes = randomBytes(2 * BLOCK)
  const piece = new Piece(bytes.length)
  piece.reserve()
  piece.reserve()
  t.equal(piece.get(1), null)
  t.equal(piece.set(1, bytes.subarray(BLOCK), 'a'), false)
  t.equal(piece.set(1, bytes.subarray(BLOCK), 'b'), false, 'the same block again does not complete the piece')
  t.ok(Buffer.from(piece.get(1)!).equals(bytes.subarray(BLOCK)))
  t.equal(piece.missing, BLOCK)
  t.equal(piece.flush(), null, 'no flush while a block is missing')
  t.equal(piece.set(0, bytes.subarray(0, BLOCK), 'a'), true)
  t.ok(Buffer.from(piece.flush()!).equals(bytes))
  t.equal(piece.flush(), null, 'a flushed piece flushes once')
})

t.test('a buffer comes back to a piece only after recycle(), once, and carries nothing of its last piece', async t => {
  const length = 4 * BLOCK
  const first = assemble(randomBytes(length), [0, 1, 2, 3])
  const second = assemble(randomBytes(length), [3, 2, 1, 0])
  t.not(first.buffer, second.buffer, 'two pieces in flight have their own buffers')
  Piece.recycle(first)
  Piece.recycle(first)
  Piece.recycle(new Uint8Array(length))
  const nextBytes = randomBytes(length)
  const next = assemble(nextBytes, [2, 0, 3, 1])
  t.equal(next.buffer, first.buffer, 'the recycled buffer serves the next piece of that length')
  t.ok(Buffer.from(next).equals(nextBytes), 'with exactly the new piece in it')
  const another = assemble(randomBytes(length), [0, 1, 2, 3])
  t.not(another.buffer, first.buffer, 'recycling one buffer twice lends it once')
  t.not(another.buffer, second.buffer, 'a buffer not given back is never lent again')
})

t.test('a last piece of another length reuses a buffer of its size class', async t => {
  const first = assemble(randomBytes(3 * BLOCK + 100), [0, 1, 2, 3])
  Piece.recycle(first)
  const bytes = randomBytes(3 * BLOCK + 7000)
  const next = assemble(bytes, [3, 1, 0, 2])
  t.equal(next.buffer, first.buffer, 'the buffer of a piece of 3 blocks + 100 bytes serves one of 3 blocks + 7,000')
  t.equal(next.length, bytes.length, 'in a view of the new piece\'s length')
  t.ok(Buffer.from(next).equals(bytes), 'with exactly its bytes')
  Piece.recycle(next)
})

t.test('free buffers are bounded by bytes, however many distinct lengths pass', async t => {
  // The last pieces of 2,000 contents of distinct sizes, received 40 at a time.
  for (let batch = 0; batch < 50; batch++) {
    const pieces = Array.from({ length: 40 }, (_, i) => {
      const length = BLOCK + 4096 + (batch * 40 + i) * 131
      return assemble(randomBytes(length), shuffled(Math.ceil(length / BLOCK), i + 1))
    })
    for (const p of pieces) Piece.recycle(p)
    if (Piece.pool.freeBytes > Piece.pool.budget) t.fail(`${Piece.pool.freeBytes} bytes kept after ${batch + 1} batches`)
  }
  t.ok(Piece.pool.freeBytes > Piece.pool.budget / 2, `free buffers are kept (${Piece.pool.freeBytes} bytes) ...`)
  t.ok(Piece.pool.freeBytes <= Piece.pool.budget, `... within the ${Piece.pool.budget} bytes of its budget`)
})

t.test('a size class holds its length, is at most a quarter over it, and is its own class', async t => {
  for (const length of [1, 16384, 16385, BLOCK, BLOCK + 1, 300_000, (1 << 20) - 1, 1 << 20, (1 << 20) + 1, 3 * (1 << 30) + 5, 2 ** 41 - 3]) {
    const cls = sizeClass(length)
    t.ok(cls >= length && (length <= 16384 || cls <= length * 1.25), `${length} bytes: class ${cls}`)
    t.equal(sizeClass(cls), cls, `${cls} is a class`)
  }
})

t.test('a piece of one block keeps its buffer (a whole-piece read may still hold it)', async t => {
  const small = assemble(randomBytes(BLOCK), [0])
  Piece.recycle(small)
  const next = assemble(randomBytes(BLOCK), [0])
  t.not(next.buffer, small.buffer)
})

t.test('PieceFile.put gives the buffer back once the piece is written, not before', async t => {
  const dir = fs.mkdtempSync(join(os.tmpdir(), 'swarmfs-piece-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const pieceLength = 2 * BLOCK
  const info: TorrentInfo = { name: 'v', length: 2 * pieceLength, pieceLength, pieces: new Uint8Array(40) } as unknown as TorrentInfo
  const store = await PieceFile.open(join(dir, 'partial'), info, true)
  t.teardown(() => store.release())
  const bytes = randomBytes(pieceLength)
  const lent = assemble(bytes, [1, 0])
  const written = new Promise<void>((resolve, reject) => store.put(1, lent, err => err != null ? reject(err) : resolve()))
  const during = assemble(randomBytes(pieceLength), [0, 1])
  t.not(during.buffer, lent.buffer, 'a piece being written keeps its buffer')
  await written
  // Given back just after the callback has run.
  await new Promise(resolve => setImmediate(resolve))
  const onDisk = Buffer.alloc(pieceLength)
  const fd = fs.openSync(join(dir, 'partial'), 'r')
  fs.readSync(fd, onDisk, 0, pieceLength, pieceLength)
  fs.closeSync(fd)
  t.ok(onDisk.equals(bytes), 'the piece is on the disk')
  const next = assemble(randomBytes(pieceLength), [0, 1])
  t.equal(next.buffer, lent.buffer, 'and its buffer serves the next piece')
})

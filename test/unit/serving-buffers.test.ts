// ServingBuffers (lib/content/serving-buffers.ts): a piece buffer is reused only once the piece
// cache has dropped it and every block lent from it has been written; the free ones are bounded by
// bytes whatever the lengths. Pure bookkeeping, then once through a real TCP socket tuned by
// socket-tuning.ts, whose write callbacks report the blocks.
import net from 'node:net'
import t from 'tap'
import { ServingBuffers, servingBuffers } from '../../lib/content/serving-buffers.js'
import { tuneSocket } from '../../lib/content/socket-tuning.js'

const BLOCK = 128 * 1024
const PIECE = 8 * BLOCK

t.test('a piece buffer comes back only when dropped and all its blocks are written', async t => {
  const pool = new ServingBuffers()
  const piece = pool.take(PIECE)
  t.equal(piece.length, PIECE, 'a buffer of the length asked')
  const a = pool.lend(piece, 0, BLOCK)
  const b = pool.lend(piece, BLOCK, BLOCK)
  const again = pool.lend(piece, BLOCK, BLOCK) // the same block for a second peer
  t.ok(pool.isLent(a) && pool.isLent(b) && pool.isLent(again), 'lent blocks are known')
  // The layers between a wire and its socket pass the bytes on in new views of the same memory.
  const viewOfA = Buffer.from(a.buffer, a.byteOffset, a.length)
  t.ok(pool.isLent(viewOfA), 'a new view of a lent block is known too')
  t.notOk(pool.isLent(Buffer.from(a)), 'a copy is not')
  t.notOk(pool.isLent(piece.subarray(2 * BLOCK, 3 * BLOCK)), 'a block not lent is not')

  pool.drop(piece)
  t.not(pool.take(PIECE).buffer, piece.buffer, 'dropped from the cache but blocks unwritten: not reused')
  pool.written(viewOfA)
  pool.written(b)
  t.not(pool.take(PIECE).buffer, piece.buffer, 'one peer\'s copy of a block still unwritten: not reused')
  pool.written(again)
  t.notOk(pool.isLent(a), 'every block written: none lent')
  t.equal(pool.take(PIECE).buffer, piece.buffer, 'then the buffer is reused')
})

t.test('a buffer still held by the cache is not reused, whatever was written', async t => {
  const pool = new ServingBuffers()
  const piece = pool.take(PIECE)
  const block = pool.lend(piece, 0, BLOCK)
  pool.written(block)
  pool.written(block) // a second report changes nothing
  t.not(pool.take(PIECE).buffer, piece.buffer, 'held: not reused')
  pool.drop(piece)
  t.equal(pool.take(PIECE).buffer, piece.buffer, 'dropped: reused')
})

t.test('a block never written keeps its piece out of the pool', async t => {
  const pool = new ServingBuffers()
  const piece = pool.take(PIECE)
  pool.lend(piece, 0, BLOCK)
  pool.drop(piece)
  t.not(pool.take(PIECE).buffer, piece.buffer, 'not reused')
  t.not(pool.take(BLOCK).buffer, piece.buffer, 'not for another length either')
})

t.test('free buffers are bounded by bytes, however many distinct lengths are served', async t => {
  const budget = 4 << 20
  const pool = new ServingBuffers(budget)
  // The last pieces of 2,000 contents of distinct sizes, served 40 at a time and let go.
  for (let batch = 0; batch < 50; batch++) {
    const pieces = Array.from({ length: 40 }, (_, i) => 132 * 1024 + (batch * 40 + i) * 131).map(length => {
      const piece = pool.take(length)
      if (piece.length !== length) t.fail(`a buffer of ${piece.length} bytes for ${length}`)
      pool.written(pool.lend(piece, 0, BLOCK))
      return piece
    })
    for (const piece of pieces) pool.drop(piece)
    if (pool.freeBytes > budget) t.fail(`${pool.freeBytes} bytes kept after ${batch + 1} batches`)
  }
  t.ok(pool.freeBytes > budget / 2, `free buffers are kept (${pool.freeBytes} bytes) ...`)
  t.ok(pool.freeBytes <= budget, `... within the ${budget} bytes of its budget`)
})

t.test('a piece of another length reuses a free buffer of its size class; the class used longest ago goes first', async t => {
  const pool = new ServingBuffers(3 * PIECE)
  const piece = pool.take(PIECE - 1000)
  pool.drop(piece)
  const other = pool.take(PIECE - 5)
  t.equal(other.buffer, piece.buffer, 'a piece 5 bytes short of 1 MiB reuses the buffer of one 1,000 bytes short')
  t.equal(other.length, PIECE - 5, 'in a view of its own length')
  t.not(pool.take(PIECE - 5).buffer, piece.buffer, 'while lent, that buffer is not lent again')
  pool.drop(other)
  const small = [pool.take(300_000), pool.take(300_001), pool.take(300_002)]
  for (const s of small) pool.drop(s)
  t.equal(pool.freeBytes, 3 * (320 << 10) + PIECE, 'a 1 MiB buffer and three of 320 KiB are kept')
  const more = pool.take(PIECE)
  pool.drop(more)
  t.equal(pool.take(300_000).buffer, small[2]?.buffer, 'the last freed buffer of a class is lent first')
  const big = [pool.take(PIECE), pool.take(PIECE), pool.take(PIECE)]
  t.equal(big[0]?.buffer, more.buffer, 'the free 1 MiB buffer is reused first')
  for (const b of big) pool.drop(b)
  t.ok(pool.freeBytes <= 3 * PIECE, `over the budget, buffers go (${pool.freeBytes} bytes kept)`)
  t.not(pool.take(300_000).buffer, small[1]?.buffer, 'and they were the 320 KiB ones, used longest ago')
})

t.test('with none free of its class, a piece takes a free buffer of a class up to twice its size', async t => {
  const pool = new ServingBuffers(4 * PIECE)
  const big = pool.take(600_000)
  const bigger = pool.take(PIECE)
  pool.drop(big)
  pool.drop(bigger)
  const small = pool.take(300_000)
  t.equal(small.buffer, big.buffer, 'a 300,000-byte piece takes the free 640 KiB buffer (the smallest that fits) ...')
  t.equal(small.length, 300_000, '... in a view of its own length')
  t.not(pool.take(300_000).buffer, bigger.buffer, 'but not the 1 MiB one, over twice its class')
})

t.test('a tuned socket reports a lent block once the kernel has it', async t => {
  const received: Buffer[] = []
  const server = net.createServer(conn => conn.on('data', (d: Buffer) => received.push(d)))
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => server.close())
  const port = (server.address() as net.AddressInfo).port
  const socket = net.connect(port, '127.0.0.1')
  t.teardown(() => socket.destroy())
  await new Promise<void>(resolve => socket.once('connect', resolve))
  tuneSocket(socket)

  const piece = servingBuffers.take(PIECE)
  piece.fill(7)
  const block = servingBuffers.lend(piece, 3 * BLOCK, BLOCK)
  servingBuffers.drop(piece)
  let callbackRan = false
  // As streams hand it over: a new Buffer view of the block's memory, with the caller's callback.
  await new Promise<void>((resolve, reject) => socket.write(Buffer.from(block.buffer, block.byteOffset, block.length), err => {
    callbackRan = true
    if (err) reject(err)
    else resolve()
  }))
  t.ok(callbackRan, 'the writer\'s own callback still runs')
  t.notOk(servingBuffers.isLent(block), 'the block is reported written')
  t.equal(servingBuffers.take(PIECE).buffer, piece.buffer, 'and the piece buffer is reused')
  // As a stream pipe writes: no callback at all.
  const second = servingBuffers.lend(piece, 0, BLOCK)
  servingBuffers.drop(piece)
  socket.write(Buffer.from(second.buffer, second.byteOffset, second.length))
  const until = Date.now() + 5000
  while (servingBuffers.isLent(second) && Date.now() < until) await new Promise(resolve => setTimeout(resolve, 5))
  t.notOk(servingBuffers.isLent(second), 'a write without a callback reports the block too')
  const plain = Buffer.alloc(10, 1)
  await new Promise<void>((resolve, reject) => socket.write(plain, err => err ? reject(err) : resolve()))
  const end = Date.now() + 5000
  while (received.reduce((n, d) => n + d.length, 0) < 2 * BLOCK + 10 && Date.now() < end) await new Promise(resolve => setTimeout(resolve, 10))
  const all = Buffer.concat(received)
  t.equal(all.length, 2 * BLOCK + 10, 'the peer got every byte')
  t.ok(all.subarray(0, BLOCK).every(x => x === 7), 'the block\'s bytes as they were when written')
})

// Buffers that pieces are read into to serve peers, reused once every block lent out of them has
// been written to its socket. Why: a piece served is read whole (one read for its 8 block
// requests) and kept about a second for them, long enough for V8 to promote its buffer; every
// 64 MB of promoted buffers then started a full garbage collection, every 150-200 ms while
// serving (measured: ~45 % of a holder's CPU in V8's GC during a 1 GiB read by a peer).
// The free ones are bounded by bytes, across all lengths (the vendored torrent-piece's pool): kept
// per length, the distinct last piece of every content served stayed (measured: a holder serving
// 2,000 files of 132-394 KB grew by 510 MiB of RSS).
import { BufferPool } from 'torrent-piece/pool'

/** A piece buffer and what still uses it. */
interface Loan {
  buffer: Buffer
  /** Blocks handed to a wire and not yet written to its socket: count by byte offset. */
  pending: Map<number, number>
  /** Whether the piece cache still holds it (blocks can still be cut from it). */
  held: boolean
}

/** Free bytes kept: a few pieces are in use at once per peer; 8 of the 1 MiB most contents have. */
const FREE_BYTES = 8 << 20

/**
 * Blocks are known by their memory (the piece's ArrayBuffer and the block's offset in it), not
 * by object: the layers between a wire and its socket hand the bytes on in new Buffer views.
 */
export class ServingBuffers {
  private readonly free: BufferPool
  private readonly loans = new WeakMap<ArrayBufferLike, Loan>()

  constructor (freeBytes = FREE_BYTES) {
    this.free = new BufferPool(freeBytes)
  }

  /** Bytes of the free buffers kept for reuse. */
  get freeBytes (): number {
    return this.free.freeBytes
  }

  /** A buffer of `length` bytes for a piece the cache will hold; give it back with `drop`. */
  take (length: number): Buffer {
    // Its own ArrayBuffer (never a slice of Node's shared pool), maybe larger than `length`.
    const buffer = Buffer.from(this.free.take(length), 0, length)
    this.loans.set(buffer.buffer, { buffer, pending: new Map(), held: true })
    return buffer
  }

  /** `length` bytes at `offset` of a piece buffer from `take`, lent until `written` is called with them. */
  lend (piece: Buffer, offset: number, length: number): Buffer {
    const block = piece.subarray(offset, offset + length)
    const loan = this.loans.get(piece.buffer)
    if (loan !== undefined) loan.pending.set(block.byteOffset, (loan.pending.get(block.byteOffset) ?? 0) + 1)
    return block
  }

  /** Whether `chunk` is a block lent by `lend` (a socket write of it must report back). */
  isLent (chunk: unknown): chunk is Uint8Array {
    return chunk instanceof Uint8Array && this.loans.get(chunk.buffer)?.pending.has(chunk.byteOffset) === true
  }

  /** A lent block has been written to its socket: nothing refers to its bytes any more. */
  written (block: Uint8Array): void {
    const loan = this.loans.get(block.buffer)
    const count = loan?.pending.get(block.byteOffset)
    if (loan === undefined || count === undefined) return
    if (count > 1) loan.pending.set(block.byteOffset, count - 1)
    else loan.pending.delete(block.byteOffset)
    this.maybeFree(loan)
  }

  /** The piece cache no longer holds `piece`: it is reused once its lent blocks are written. */
  drop (piece: Buffer): void {
    const loan = this.loans.get(piece.buffer)
    if (loan === undefined) return
    loan.held = false
    this.maybeFree(loan)
  }

  private maybeFree (loan: Loan): void {
    if (loan.held || loan.pending.size > 0) return
    // A block that is never written (a cancelled request, a closed wire) keeps its piece out of
    // the pool for good: it is then garbage-collected like any buffer.
    this.loans.delete(loan.buffer.buffer)
    this.free.give(loan.buffer.buffer)
  }
}

/** The node's one pool: the piece files lend from it, the BitTorrent sockets report writes to it. */
export const servingBuffers = new ServingBuffers()

/*! torrent-piece. MIT License. WebTorrent LLC <https://webtorrent.io/opensource> */
import { BufferPool } from './pool.js'

// swarmfs: 128 KiB blocks instead of BitTorrent's customary 16 KiB. Every peer of a volume is a
// swarmfs node, and webtorrent serves requests up to 128 KiB (MAX_BLOCK_LENGTH in its torrent.js):
// 8x fewer request and piece messages per byte, which is what a LAN transfer spends its CPU on.
const BLOCK_LENGTH = 1 << 17

// swarmfs: blocks are copied, as they arrive, into one buffer of the piece's length, so a piece
// needs no concatenation when it is whole and keeps no reference to the (larger) buffers the wire
// parsed its blocks out of. The buffer of a piece that has been written comes back through
// Piece.recycle and serves a later piece: a transfer reuses a few buffers instead of allocating
// one per piece (a quarter fewer young-generation collections per GiB received). The free ones
// are bounded by bytes (pool.js), not by a count per length, which every content's last piece
// has its own of.
/** Free bytes kept: 16 pieces of the 1 MiB most contents have. */
const POOL_BYTES = 16 << 20
const pool = new BufferPool(POOL_BYTES)
const lent = new WeakSet()

function takeBuffer (length) {
  // Never read before every byte of it was set: no need to zero it.
  const buf = new Uint8Array(pool.take(length), 0, length)
  lent.add(buf)
  return buf
}

export default class Piece {
  constructor (length) {
    this.length = length
    this.missing = length
    this.sources = null

    this._chunks = Math.ceil(length / BLOCK_LENGTH)
    this._remainder = (length % BLOCK_LENGTH) || BLOCK_LENGTH
    this._buffered = 0
    this._buffer = null
    this._data = null
    this._cancellations = null
    this._reservations = 0
    this._flushed = false
  }

  chunkLength (i) {
    return i === this._chunks - 1 ? this._remainder : BLOCK_LENGTH
  }

  chunkLengthRemaining (i) {
    return this.length - (i * BLOCK_LENGTH)
  }

  chunkOffset (i) {
    return i * BLOCK_LENGTH
  }

  reserve () {
    if (!this.init()) return -1
    if (this._cancellations.length) return this._cancellations.pop()
    if (this._reservations < this._chunks) return this._reservations++
    return -1
  }

  reserveRemaining () {
    if (!this.init()) return -1
    if (this._cancellations.length || this._reservations < this._chunks) {
      let min = this._reservations
      while (this._cancellations.length) {
        min = Math.min(min, this._cancellations.pop())
      }
      this._reservations = this._chunks
      return min
    }
    return -1
  }

  cancel (i) {
    if (!this.init()) return
    this._cancellations.push(i)
  }

  cancelRemaining (i) {
    if (!this.init()) return
    this._reservations = i
  }

  get (i) {
    if (!this.init() || !this._buffer[i]) return null
    const offset = this.chunkOffset(i)
    return this._data.subarray(offset, offset + this.chunkLength(i))
  }

  set (i, data, source) {
    if (!this.init()) return false
    const len = data.length
    const blocks = Math.ceil(len / BLOCK_LENGTH)
    for (let j = 0; j < blocks; j++) {
      if (!this._buffer[i + j] && i + j < this._chunks) {
        const offset = j * BLOCK_LENGTH
        // (The wire hands over only blocks of the length requested; a shorter one would fail the
        // piece's hash like any bad data, and nothing is written past the block.)
        const splitData = data.subarray(offset, offset + Math.min(BLOCK_LENGTH, this.chunkLength(i + j)))
        if (this._data === null) this._data = takeBuffer(this.length)
        this._data.set(splitData, this.chunkOffset(i + j))
        this._buffered++
        this._buffer[i + j] = true
        this.missing -= splitData.length
        if (!this.sources.includes(source)) {
          this.sources.push(source)
        }
      }
    }
    return this._buffered === this._chunks
  }

  flush () {
    if (!this._buffer || this._chunks !== this._buffered) return null
    const buffer = this._data
    this._data = null
    this._buffer = null
    this._cancellations = null
    this.sources = null
    this._flushed = true
    return buffer
  }

  init () {
    if (this._flushed) return false
    if (this._buffer) return true
    this._buffer = new Array(this._chunks)
    this._cancellations = []
    this.sources = []
    return true
  }
}

Piece.BLOCK_LENGTH = BLOCK_LENGTH

/**
 * Gives back the buffer flush() returned, once nothing uses it any more (the piece is written);
 * any other buffer, or the same one twice, is ignored.
 */
Piece.recycle = function recycle (buf) {
  if (!lent.has(buf)) return
  // While a piece is being written, webtorrent's immediate-chunk-store answers reads of it from
  // this buffer: a block request gets a copy (Uint8Array.slice), but a request for a whole piece
  // of up to one block gets the buffer itself, which a socket may still hold. Those are not reused.
  if (buf.length <= BLOCK_LENGTH) return
  lent.delete(buf)
  pool.give(buf.buffer)
}

/** The pool's own figures, for tests. */
Piece.pool = pool

// The store that writes a piece is not given this module (webtorrent owns the import): it finds
// recycle() under this registered symbol.
globalThis[Symbol.for('torrent-piece.recycle')] = Piece.recycle

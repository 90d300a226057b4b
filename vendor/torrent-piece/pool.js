// swarmfs: free piece buffers kept for reuse, bounded by their total bytes. A pool kept per piece
// length (16 buffers for every length seen) grew without end, since the last piece of every
// content has a length of its own: a node serving or receiving thousands of files kept about one
// buffer per file (measured: 1.5 GB of 2,000 files copied from one node, RSS 183 -> 1,666 MiB).
// Here a buffer is allocated at the size class of the length asked for (a quarter-power-of-two
// step: at most 25 % over; a free one of a larger class serves when its own has none), a piece
// gets a view of the length it needs, and free buffers past the budget go, those of the class
// used longest ago first. Last pieces of any length then reuse the buffers of their class, and
// what stays is at most the budget.

const MIN_CLASS = 1 << 14

/** The bytes a buffer for `length` bytes is allocated with: four classes per power of two. */
export function sizeClass (length) {
  if (length <= MIN_CLASS) return MIN_CLASS
  let power = MIN_CLASS
  while (power * 2 < length) power *= 2
  // power < length <= 2 * power
  const step = power / 4
  return Math.ceil(length / step) * step
}

export class BufferPool {
  /** `budget`: the most bytes of free buffers kept, across all classes. */
  constructor (budget) {
    this.budget = budget
    this.freeBytes = 0
    // Map order is recency of use, oldest first: a class is moved to the end when used.
    this._free = new Map()
  }

  /**
   * An ArrayBuffer of at least `length` bytes, its bytes not zeroed: a free one of its size class,
   * else of the smallest class up to twice that with one free (every fresh buffer is one more for
   * the collector to find and for the allocator to keep), else a new one of its class.
   */
  take (length) {
    const size = sizeClass(length)
    let best = this._free.get(size)?.length > 0 ? size : 0
    if (best === 0) {
      for (const [cls, list] of this._free) {
        if (list.length > 0 && cls > size && cls <= 2 * size && (best === 0 || cls < best)) best = cls
      }
    }
    if (best !== 0) {
      this.freeBytes -= best
      return this._touch(best).pop()
    }
    // allocUnsafeSlow: an ArrayBuffer of its own, never a slice of Node's shared pool.
    return Buffer.allocUnsafeSlow(size).buffer
  }

  /** Gives back an ArrayBuffer from take(); nothing may use its bytes any more. */
  give (arrayBuffer) {
    const size = arrayBuffer.byteLength
    if (size !== sizeClass(size) || size > this.budget) return
    this._touch(size).push(arrayBuffer)
    this.freeBytes += size
    for (const [cls, list] of this._free) {
      if (this.freeBytes <= this.budget) break
      while (list.length > 0 && this.freeBytes > this.budget) {
        list.shift()
        this.freeBytes -= cls
      }
      if (list.length === 0) this._free.delete(cls)
    }
  }

  _touch (size) {
    const list = this._free.get(size) ?? []
    this._free.delete(size)
    this._free.set(size, list)
    return list
  }
}

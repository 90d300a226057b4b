/** The bytes a buffer for `length` bytes is allocated with: four classes per power of two. */
export function sizeClass (length: number): number

/** Free piece buffers kept for reuse, at most `budget` bytes of them across all size classes. */
export class BufferPool {
  constructor (budget: number)
  readonly budget: number
  /** Bytes of the free buffers kept now. */
  readonly freeBytes: number
  /** An ArrayBuffer of at least `length` bytes (a free one of its size class or up to twice that, else a new one of its class); not zeroed. */
  take (length: number): ArrayBuffer
  /** Gives back an ArrayBuffer from take(); nothing may use its bytes any more. */
  give (arrayBuffer: ArrayBufferLike): void
}

// The swarm reader's memory version (swarm-reader.ts): contents from a map, no torrent, no disk.
// For the filesystem core's tests: a content made unavailable reads as one whose holders are all
// gone (EIO), as a real read after its deadline does.
import { FsError } from '../core/errors.js'
import type { ContentRef } from '../core/torrent-info.js'

export class MemoryReader {
  private readonly unavailable = new Set<string>()
  private closed = false
  /** Reads and whole fetches served, for tests that count them. */
  readonly counts = { reads: 0, fetches: 0 }

  /**
   * `contents`: the bytes of each content by infohash (what the other nodes hold). `onFetched`:
   * told of a whole fetch, with the bytes, so a memory store can take them as this disk's copy.
   */
  constructor (readonly contents = new Map<string, Buffer>(), private readonly onFetched?: (ref: ContentRef, bytes: Buffer) => void) {}

  /** Adds (or replaces) a content the swarm holds. */
  put (infohash: string, bytes: Buffer): void {
    this.contents.set(infohash, bytes)
  }

  /** Whether a content can be read: false makes its reads fail with EIO, as when no holder answers. */
  setAvailable (infohash: string, available: boolean): void {
    if (available) this.unavailable.delete(infohash)
    else this.unavailable.add(infohash)
  }

  async read (ref: ContentRef, offset: number, length: number, into: Buffer): Promise<number> {
    const bytes = this.source(ref)
    this.counts.reads++
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) throw new FsError('EINVAL', `EINVAL: bad range ${offset}+${length}`)
    if (into.length < length) throw new FsError('EINVAL', `EINVAL: a buffer of ${into.length} bytes for ${length}`)
    const end = Math.min(bytes.length, offset + length)
    if (end <= offset) return 0
    return bytes.copy(into, 0, offset, end)
  }

  async fetchAll (ref: ContentRef): Promise<void> {
    const bytes = this.source(ref)
    this.counts.fetches++
    this.onFetched?.(ref, bytes)
  }

  close (): void {
    this.closed = true
  }

  private source (ref: ContentRef): Buffer {
    if (this.closed) throw new FsError('EIO', 'EIO: the node is stopping')
    const bytes = this.contents.get(ref.infohash)
    if (bytes === undefined || this.unavailable.has(ref.infohash)) {
      throw new FsError('EIO', `EIO: no holder of ${ref.infohash} answered`, { infohash: ref.infohash })
    }
    return bytes
  }
}

// The remote reader's memory version: the contents other nodes hold, as a map of infohash to bytes.
// (lib/content/memory-reader.ts, by another part of the redesign, may replace it.)
import { FsError } from '../../lib/core/errors.js'
import type { ContentRef } from '../../lib/core/torrent-info.js'
import type { RemoteContent } from '../../lib/vfs/ports.js'

export class MemoryRemote implements RemoteContent {
  readonly contents = new Map<string, Buffer>()

  /** `land`: puts a whole content fetched from the others on this disk. */
  constructor (private readonly land: (infohash: string, bytes: Buffer) => void = () => {}) {}

  async read (ref: ContentRef, offset: number, length: number, into: Buffer): Promise<number> {
    const bytes = this.contents.get(ref.infohash)
    if (bytes === undefined) throw new FsError('EIO', `EIO: no node holds ${ref.infohash}`)
    return bytes.copy(into, 0, offset, Math.min(bytes.length, offset + length))
  }

  async fetchAll (ref: ContentRef): Promise<void> {
    const bytes = this.contents.get(ref.infohash)
    if (bytes === undefined) throw new FsError('EIO', `EIO: no node holds ${ref.infohash}`)
    this.land(ref.infohash, bytes)
  }
}

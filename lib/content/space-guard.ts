// Writes of file data stop (ENOSPC) while the disk still has room for metadata: the journal, the
// commits and the index must always be writable, or a full disk would leave an acknowledged change
// that cannot be recorded. The disk's free space is read at most once a second, or sooner when the
// bytes written since could have used up half of what was left. One guard per disk, shared by the
// writes through the mount and the pieces fetched from peers, so both count against one figure.
import fs from 'node:fs'
import { FsError } from '../core/errors.js'

/** Room kept for metadata: 1 % of the disk, at least 1 MiB and at most 64 MiB. */
export function metadataReserve (total: number): number {
  return Math.max(2 ** 20, Math.min(64 * 2 ** 20, Math.floor(total / 100)))
}

const RECHECK_MS = 1000

export class SpaceGuard {
  private free = 0
  private reserve = 0
  private total = 0
  private checkedAt = -Infinity
  /** Bytes allowed since free was read. */
  private since = 0

  constructor (private readonly dir: string) {}

  private refresh (): void {
    const st = fs.statfsSync(this.dir)
    this.free = st.bavail * st.bsize
    this.total = st.blocks * st.bsize
    this.reserve = metadataReserve(this.total)
    this.checkedAt = Date.now()
    this.since = 0
  }

  /** Allows a write of `bytes` of file data, or throws ENOSPC. */
  claim (bytes: number): void {
    if (Date.now() - this.checkedAt > RECHECK_MS || this.since + bytes > (this.free - this.reserve) / 2) this.refresh()
    if (this.free - this.since - bytes < this.reserve) {
      throw new FsError('ENOSPC', 'ENOSPC: the disk of this node is full (the rest is kept for metadata)', { free: this.free - this.since, reserve: this.reserve })
    }
    this.since += bytes
  }

  /**
   * Bytes of file data that may still be written while `floorOf(disk size)` bytes stay free (and
   * never the metadata's room): what fetched pieces, a cache, may take. Negative when the disk
   * is already below.
   */
  room (floorOf: (total: number) => number): number {
    if (Date.now() - this.checkedAt > RECHECK_MS) this.refresh()
    return this.free - this.since - Math.max(this.reserve, floorOf(this.total))
  }

  /** Files were removed or holes punched: the next call reads the free space again. */
  stale (): void {
    this.checkedAt = -Infinity
  }
}

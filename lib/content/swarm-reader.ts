// How the filesystem reads what this disk does not hold: from the torrent service, with a
// deadline, and how a whole content is fetched onto this disk (a copy-on-write, a replica, a
// damaged copy made whole again). lib/vfs's RemoteContent is satisfied structurally (content sits
// below vfs and imports nothing from it); memory-reader.ts is the same shape without a network.
import { FsError } from '../core/errors.js'
import type { ContentRef, TorrentInfo } from '../core/torrent-info.js'

/** A read waits this long for pieces, then fails with EIO: below fuse-native's own 15 s answer. */
export const READ_DEADLINE_MS = 10_000
/** A read of a piece that failed this recently fails at once. */
const RECENT_FAILURE_MS = 3000
/** A whole content is fetched in steps of this, each with the read deadline. */
const FETCH_CHUNK = 16 * 1024 * 1024
/** Failures remembered at most (then forgotten all at once: a bound on what peers' absence can grow). */
const MAX_FAILURES = 1000

/** What the reader asks of the torrent service (torrents.ts). */
export interface PieceSource {
  read (infohash: string, info: TorrentInfo, offset: number, length: number, deadlineMs: number, into?: Buffer): Promise<Buffer>
  fetch (infohash: string, info: TorrentInfo, offset: number, length: number, deadlineMs: number): Promise<void>
  completed (infohash: string, timeoutMs: number): Promise<boolean>
}

export class SwarmReader {
  private closed = false
  /**
   * The kernel retries a page whose read-ahead failed with a read of its own; without this the
   * reader would wait a second full deadline for the same piece. (Only waits that ran out are
   * remembered: a full disk answers at once, and a retry after freeing space must not fail.)
   */
  private readonly failedAt = new Map<string, number>()

  /** `held`: whether this disk holds a content completely (ContentStore.has). */
  constructor (private readonly torrents: PieceSource, private readonly held: { has: (infohash: string) => boolean }) {}

  /** Bytes of a content from `offset`, into `into`; how many. Rejects with EIO when they cannot come in time. */
  async read (ref: ContentRef, offset: number, length: number, into: Buffer): Promise<number> {
    if (this.closed) throw stopping()
    const key = `${ref.infohash}:${Math.floor(offset / ref.info.pieceLength)}`
    const failed = this.failedAt.get(key)
    if (failed !== undefined && Date.now() - failed < RECENT_FAILURE_MS) throw new FsError('EIO', 'EIO: that piece could not be fetched just now')
    try {
      return (await this.torrents.read(ref.infohash, ref.info, offset, length, READ_DEADLINE_MS, into)).length
    } catch (err) {
      if ((err as FsError).code === 'ENOSPC') throw err
      this.failedAt.set(key, Date.now())
      if (this.failedAt.size > MAX_FAILURES) this.failedAt.clear()
      throw err
    }
  }

  /** Fetches a whole content onto this disk (for a write that changes part of it). */
  async fetchAll (ref: ContentRef): Promise<void> {
    if (this.closed) throw stopping()
    await this.fetchWhole(ref.infohash, ref.info)
  }

  /** Fetches a whole content onto this disk (a copy-on-write, a replica); resolves once it is in content/. */
  async fetchWhole (infohash: string, info: TorrentInfo, progress: (done: number) => void = () => {}): Promise<void> {
    for (let at = 0; at < info.length && !this.held.has(infohash); at += FETCH_CHUNK) {
      const n = Math.min(FETCH_CHUNK, info.length - at)
      await this.torrents.fetch(infohash, info, at, n, READ_DEADLINE_MS)
      progress(at + n)
    }
    // The last piece in, the partial file is synced and moved into content/ just after.
    if (!await this.torrents.completed(infohash, READ_DEADLINE_MS)) throw new FsError('EIO', 'EIO: the content could not be fetched whole')
  }

  /** From the start of a stop (the torrent client is going): reads and fetchAll fail at once. */
  close (): void {
    this.closed = true
  }
}

function stopping (): FsError {
  return new FsError('EIO', 'EIO: the node is stopping')
}

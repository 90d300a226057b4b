// Storage of one torrent: one file (a complete content, or a sparse partial one), read and
// written at piece offsets through a file descriptor; and the plain file reads and syncs the
// torrent service needs besides.
import fs from 'node:fs'
import { promisify } from 'node:util'
import fileops from '@swarmfs/fileops'
import type { ChunkStore } from 'webtorrent'
import { FsError, SwarmError } from '../core/errors.js'
import type { TorrentInfo } from '../core/torrent-info.js'
import { servingBuffers } from './serving-buffers.js'

/** Whole pieces a content file keeps in memory to serve block requests from. */
const PIECE_CACHE = 2
const PIECE_CACHE_MS = 1_000
/**
 * Bytes of such pieces all content files keep at once, the oldest let go first. Kept per file
 * only, every piece served in the last second stayed: a holder serving many small files to a
 * new disk held ~60 MB of them at once, which its allocator kept after.
 */
const SERVED_CACHE_BYTES = 8 << 20

interface CachedPiece { index: number, at: number, bytes: number, piece: Promise<Buffer> }
/** Every content file's cached pieces, oldest first, with the file that holds each. */
const cachedPieces = new Map<CachedPiece, PieceFile>()
let cachedBytes = 0

/**
 * Hands a piece's buffer back to the vendored torrent-piece's pool once it is written and put's
 * callback has run (webtorrent's immediate store then no longer serves reads from it). The pool
 * ignores buffers it did not lend.
 */
function recyclePiece (chunk: Uint8Array): void {
  const recycle = (globalThis as Record<symbol, unknown>)[Symbol.for('torrent-piece.recycle')]
  if (typeof recycle === 'function') recycle(chunk)
}

export function eio (message: string, data: Record<string, unknown> = {}): FsError {
  return new FsError('EIO', `EIO: ${message}`, data)
}


const openP = promisify(fs.open)
const fstatP = promisify(fs.fstat)
const ftruncateP = promisify(fs.ftruncate)
const readP = promisify(fs.read)
const writeP = promisify(fs.write)
const fsyncP = promisify(fs.fsync)
const fdatasyncP = promisify(fs.fdatasync)
const closeP = promisify(fs.close)

/**
 * The abstract-chunk-store webtorrent reads and writes pieces through (passed as `preloadedStore`,
 * with webtorrent's memory cache off: the page cache does that job). The file descriptor belongs
 * to the service: webtorrent's close() leaves it open; release() closes it once nothing is in
 * flight. A rename of the file (completion) does not disturb it.
 */
export class PieceFile implements ChunkStore {
  readonly chunkLength: number
  private inflight = 0
  private idleWaiters: Array<() => void> = []
  private released: Promise<void> | null = null
  /** The last pieces read whole to serve a peer's block requests from (most recent last). */
  private recent: CachedPiece[] = []
  private expiry: NodeJS.Timeout | null = null

  private constructor (private readonly fd: number, private readonly length: number, pieceLength: number, private readonly writable: boolean, private readonly claim: (bytes: number) => Promise<void>) {
    this.chunkLength = pieceLength
  }

  /** `claim`: awaited before a piece is written, with its length; a rejection fails the write (a full disk). */
  static async open (path: string, info: TorrentInfo, writable: boolean, claim: (bytes: number) => Promise<void> = async () => {}): Promise<PieceFile> {
    const flags = writable ? fs.constants.O_RDWR | fs.constants.O_CREAT : fs.constants.O_RDONLY
    const fd = await openP(path, flags, 0o644)
    try {
      const st = await fstatP(fd)
      if (writable) {
        // Sparse: only the pieces written take space.
        if (st.size !== info.length) await ftruncateP(fd, info.length)
      } else if (st.size !== info.length) {
        throw new SwarmError('SWARMFS_DISK', `${path} has ${st.size} bytes, its info says ${info.length}`)
      }
    } catch (err) {
      fs.close(fd, () => {})
      throw err
    }
    return new PieceFile(fd, info.length, info.pieceLength, writable, claim)
  }

  private async track<T> (work: () => Promise<T>): Promise<T> {
    if (this.released !== null) throw new SwarmError('SWARMFS_STOPPING', 'store released')
    this.inflight++
    try {
      return await work()
    } finally {
      if (--this.inflight === 0) for (const f of this.idleWaiters.splice(0)) f()
    }
  }

  private pieceSize (index: number): number {
    return Math.min(this.chunkLength, this.length - index * this.chunkLength)
  }

  /** `length` bytes at `position`, into `into` when given (no allocation, no copy). */
  readAt (position: number, length: number, into?: Buffer): Promise<Buffer> {
    return this.track(() => readFully(this.fd, position, length, into))
  }

  put (index: number, chunk: Uint8Array, cb: (err?: Error | null) => void = () => {}): void {
    if (!this.writable) {
      queueMicrotask(() => cb(new SwarmError('SWARMFS_INTERNAL', 'a complete content is never written')))
      return
    }
    if (!Number.isInteger(index) || index < 0 || index * this.chunkLength >= this.length || chunk.length !== this.pieceSize(index)) {
      queueMicrotask(() => cb(new SwarmError('SWARMFS_INTERNAL', `bad piece ${index} (${chunk.length} bytes)`)))
      return
    }
    const buf = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
    this.forgetRecent(r => r.index === index)
    this.track(async () => {
      await this.claim(buf.length)
      let done = 0
      while (done < buf.length) {
        const { bytesWritten } = await writeP(this.fd, buf, done, buf.length - done, index * this.chunkLength + done)
        done += bytesWritten
      }
    }).then(() => cb(null), err => cb(err as Error)).finally(() => recyclePiece(chunk))
  }

  get (index: number, opts: { offset?: number, length?: number } | null, cb: (err: Error | null, buf?: Uint8Array) => void): void {
    if (typeof opts === 'function') {
      cb = opts as typeof cb
      opts = null
    }
    const size = this.pieceSize(index)
    const offset = opts?.offset ?? 0
    const length = opts?.length ?? size - offset
    if (!Number.isInteger(index) || index < 0 || size <= 0 || offset < 0 || length < 0 || offset + length > size) {
      queueMicrotask(() => cb(new SwarmError('SWARMFS_INTERNAL', `bad get ${index} ${offset}+${length}`)))
      return
    }
    if (length === size) {
      this.readAt(index * this.chunkLength, size).then(buf => cb(null, buf), err => cb(err as Error))
      return
    }
    // A peer asks a piece block by block: one read of the whole piece serves all of them.
    // Kept briefly: long enough for a peer's burst of requests, and the bytes come from the disk
    // again soon after (a piece corrupted on disk and repaired is served repaired). The piece's
    // buffer is reused once it has left this cache and its blocks are on their sockets.
    const now = Date.now()
    this.forgetRecent(r => now - r.at >= PIECE_CACHE_MS)
    let cached = this.recent.find(r => r.index === index)
    if (cached === undefined) {
      const into = servingBuffers.take(size)
      const entry = { index, at: now, bytes: size, piece: this.readAt(index * this.chunkLength, size, into) }
      entry.piece.catch(() => { this.forgetRecent(r => r === entry) })
      this.recent.push(entry)
      cachedPieces.set(entry, this)
      cachedBytes += size
      const oldest = this.recent[0]
      if (this.recent.length > PIECE_CACHE) this.forgetRecent(r => r === oldest)
      PieceFile.trimCached()
      this.expireRecent()
      cached = entry
    }
    cached.piece.then(piece => cb(null, servingBuffers.lend(piece, offset, length)), err => cb(err as Error))
  }

  /**
   * Forgets cached pieces once they are PIECE_CACHE_MS old even when no request follows: checked
   * only at the next request, the last pieces of every active torrent stayed (up to 64 x 2 pieces).
   */
  private expireRecent (): void {
    if (this.expiry !== null || this.recent.length === 0) return
    this.expiry = setTimeout(() => {
      this.expiry = null
      const now = Date.now()
      this.forgetRecent(r => now - r.at >= PIECE_CACHE_MS)
      this.expireRecent()
    }, PIECE_CACHE_MS)
    this.expiry.unref()
  }

  /** Bytes of the pieces all content files hold to serve blocks from. */
  static get servedCacheBytes (): number {
    return cachedBytes
  }

  /** Lets the oldest cached pieces of any file go while all of them exceed SERVED_CACHE_BYTES; the newest stays. */
  private static trimCached (): void {
    for (const [oldest, file] of cachedPieces) {
      if (cachedBytes <= SERVED_CACHE_BYTES || cachedPieces.size <= 1) return
      file.forgetRecent(r => r === oldest)
    }
  }

  /** Removes the cached pieces `which` selects, giving their buffers back once their blocks are written. */
  private forgetRecent (which: (r: CachedPiece) => boolean): void {
    const gone = this.recent.filter(which)
    if (gone.length === 0) return
    this.recent = this.recent.filter(r => !which(r))
    for (const r of gone) {
      cachedPieces.delete(r)
      cachedBytes -= r.bytes
      r.piece.then(piece => servingBuffers.drop(piece), () => {})
    }
  }

  close (cb: (err?: Error | null) => void = () => {}): void {
    queueMicrotask(() => cb(null))
  }

  destroy (cb: (err?: Error | null) => void = () => {}): void {
    queueMicrotask(() => cb(null))
  }

  fsync (): Promise<void> {
    return this.track(() => fsyncP(this.fd))
  }

  fdatasync (): Promise<void> {
    return this.track(() => fdatasyncP(this.fd))
  }

  /**
   * Drops `length` bytes at `position` from the page cache; they must be on the disk already
   * (after fdatasync), or the kernel only starts writing them back. Why: on these VMs a page the
   * kernel has not used before costs ~5x more to fill than a reused one (a 1 GiB write into fresh
   * page cache ran at 0.74-0.90 GB/s, the same after dropping an earlier file's pages at 4.4-4.6
   * GB/s), so a fetched content whose pages stay cached makes every further byte fetched cost a
   * fresh page; dropped, the next pieces reuse them. Advisory: a failure only leaves pages cached.
   */
  dropCached (position: number, length: number): Promise<void> {
    return this.track(() => fileops.fadvise(this.fd, position, length, fileops.POSIX_FADV_DONTNEED))
  }

  /** Gives the blocks of `length` bytes at `position` back to the filesystem (a hole: reads as zeros). */
  punch (position: number, length: number): Promise<void> {
    return this.track(() => fileops.punchHole(this.fd, position, length))
  }

  private idle (): Promise<void> {
    if (this.inflight === 0) return Promise.resolve()
    return new Promise(resolve => this.idleWaiters.push(resolve))
  }

  release (): Promise<void> {
    if (this.expiry !== null) clearTimeout(this.expiry)
    this.expiry = null
    this.forgetRecent(() => true)
    this.released ??= this.idle().then(() => closeP(this.fd))
    return this.released
  }
}

/** Exactly `length` bytes at `position` of a file (into `into` when given); EIO when the file is shorter. */
export async function readFully (fd: number, position: number, length: number, into?: Buffer): Promise<Buffer> {
  const buf = into ?? Buffer.allocUnsafe(length)
  let done = 0
  while (done < length) {
    // The page cache at once, on this thread; the thread pool only for what would wait for the disk.
    let n = fileops.readCached(fd, buf, done, length - done, position + done)
    if (n < 0) n = (await readP(fd, buf, done, length - done, position + done)).bytesRead
    if (n === 0) throw eio(`a content file is shorter than its info says (no bytes at ${position + done})`)
    done += n
  }
  return buf.subarray(0, length)
}

export async function readLocal (path: string, offset: number, length: number, into?: Buffer): Promise<Buffer | null> {
  let fd: number
  try {
    fd = await openP(path, fs.constants.O_RDONLY)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw err
  }
  try {
    return await readFully(fd, offset, length, into)
  } finally {
    await closeP(fd).catch(() => {})
  }
}

// A file open for writing has one write session, shared by every handle that writes it, so two
// writers and any reader see the same bytes. The session owns a staging file until it is sealed.
//
// Changes to the staging file (writes, truncates, fsyncs) run one at a time, in the order they came:
// the thread pool would run them in any order, and the bytes on disk, `size` and the piece hashes
// must agree. `size` and `dirty` change only once the disk has the bytes, so a size change that
// fails changes nothing, and a `stage` record never names bytes that are not there. The fd is
// closed only once no change or read is under way on it: a closed fd's number soon names another
// file (a staging file, the journal, a git object), where a late ftruncate or write would land.
import fs from 'node:fs'
import fileops from '@swarmfs/fileops'
import { FsError, SwarmError } from '../core/errors.js'
import type { PieceHasher } from '../content/piece-hasher.js'
import type { FileNode } from '../meta/nodes.js'

const SYNC_WRITE_MAX = 16 * 1024

export class WriteSession {
  writers = 0
  /** Bytes written since the last `stage` record. */
  dirty = false
  /** The staging file's name was synced (its directory, at the first fsync). */
  nameSynced = false
  /**
   * Bytes may not be on the disk: changed since the last fsync, or never synced (a copy of the
   * content, or staged bytes of an earlier session). The seal syncs them unless a fsync did.
   */
  unsynced = true
  /**
   * The times its writers' changes stamped, which the next `stage` record carries into the index
   * (and stat shows meanwhile); null until one does. The index's node is changed only by its ops.
   */
  modified: { mtime: number, mtimeNs: number, ctime: number } | null = null
  /** The last change queued; it never rejects. */
  private tail: Promise<void> = Promise.resolve()
  private changes = 0
  private reads = 0
  private closed = false
  private onIdle: Array<() => void> = []

  constructor (
    readonly file: FileNode,
    readonly stagingId: string,
    private readonly fd: number,
    public size: number,
    readonly hasher: PieceHasher
  ) {}

  /** Writes at `pos`, or at the end when `pos` is null (O_APPEND). */
  write (buf: Buffer, len: number, pos: number | null): Promise<number> {
    const data = buf.subarray(0, len)
    // A small write costs less as a direct write(2) than as a thread-pool round trip; it may go
    // at once when no change is queued before it.
    if (this.changes === 0 && len <= SYNC_WRITE_MAX) {
      try {
        this.checkOpen()
        const at = pos ?? this.size
        const written = fs.writeSync(this.fd, data, 0, len, at)
        this.hasher.write(at, data.subarray(0, written))
        this.wrote(at, written)
        return Promise.resolve(written)
      } catch (err) {
        return Promise.reject(err)
      }
    }
    return this.queue(async () => {
      const at = pos ?? this.size
      const done = new Promise<number>((resolve, reject) => {
        fs.write(this.fd, data, 0, len, at, (err, written) => err ? reject(err) : resolve(written))
      })
      // A large write goes to the pool, so a slow disk cannot hold the thread every FUSE operation
      // shares, and its piece hashing runs on this thread meanwhile; bytes that did not reach the
      // disk are hashed again at the seal.
      this.hasher.write(at, data)
      let written: number
      try {
        written = await done
      } catch (err) {
        this.hasher.invalidateFrom(at)
        throw err
      }
      if (written < len) this.hasher.invalidateFrom(at + written)
      this.wrote(at, written)
      return written
    })
  }

  /** mtime and ctime become `ms`: the bytes changed. */
  stamp (ms: number): void {
    // In place: it is on the path of every write.
    const m = this.modified
    if (m === null) {
      this.modified = { mtime: ms, mtimeNs: 0, ctime: ms }
      return
    }
    m.mtime = m.ctime = ms
    m.mtimeNs = 0
  }

  private wrote (at: number, written: number): void {
    this.dirty = true
    this.unsynced = true
    if (at + written > this.size) this.size = at + written
  }

  /** ftruncate(2); once done, the file's mtime and ctime become `time`. */
  truncate (size: number, time: number): Promise<void> {
    return this.queue(() => new Promise<void>((resolve, reject) => fs.ftruncate(this.fd, size, err => {
      if (err !== null) {
        reject(err)
        return
      }
      this.hasher.invalidateFrom(Math.min(size, this.size))
      this.size = size
      this.dirty = true
      this.unsynced = true
      this.stamp(time)
      resolve()
    })))
  }

  /**
   * fallocate(2) with `mode`; once done, the size is what the disk says (it grows unless
   * KEEP_SIZE), bytes from `offset` are hashed again at the seal, and mtime and ctime become `time`.
   */
  allocate (mode: number, offset: number, length: number, time: number): Promise<void> {
    return this.queue(async () => {
      await fileops.fallocate(this.fd, mode, offset, length)
      const size = fs.fstatSync(this.fd).size
      this.hasher.invalidateFrom(Math.min(offset, this.size, size))
      this.size = size
      this.dirty = true
      this.unsynced = true
      this.stamp(time)
    })
  }

  sync (): Promise<void> {
    return this.queue(() => new Promise<void>((resolve, reject) => {
      // Changes run one at a time: none comes between this and the fsync.
      const was = this.unsynced
      this.unsynced = false
      fs.fsync(this.fd, err => {
        if (err !== null) {
          this.unsynced = was
          reject(err)
        } else {
          resolve()
        }
      })
    }))
  }

  async read (buf: Buffer, len: number, pos: number): Promise<number> {
    this.checkOpen()
    this.reads++
    try {
      return await readAt(this.fd, buf, len, pos)
    } finally {
      this.reads--
      this.wakeIfIdle()
    }
  }

  /** The 512-byte blocks the staging file takes on the disk (holes take none). */
  blocks (): number {
    this.checkOpen()
    return fs.fstatSync(this.fd).blocks
  }

  /** A change is queued or a read is under way. */
  get busy (): boolean {
    return this.changes > 0 || this.reads > 0
  }

  /** Resolves once the session is not busy (at once when it is not); it may be again by the time the caller runs. */
  idle (): Promise<void> {
    if (!this.busy) return Promise.resolve()
    return new Promise(resolve => this.onIdle.push(resolve))
  }

  /** Only when not busy: nothing may be under way on the fd. */
  close (): void {
    if (this.busy) throw new SwarmError('SWARMFS_INTERNAL', 'a write session closed while its fd is in use')
    this.closed = true
    fs.closeSync(this.fd)
  }

  private queue<T> (change: () => Promise<T>): Promise<T> {
    try {
      this.checkOpen()
    } catch (err) {
      return Promise.reject(err)
    }
    this.changes++
    const result = this.tail.then(async () => {
      try {
        return await change()
      } finally {
        this.changes--
        this.wakeIfIdle()
      }
    })
    this.tail = result.then(() => {}, () => {})
    return result
  }

  private checkOpen (): void {
    if (this.closed) throw new FsError('EBADF', 'EBADF: the file was closed')
  }

  private wakeIfIdle (): void {
    if (this.busy) return
    const waiting = this.onIdle
    this.onIdle = []
    for (const resolve of waiting) resolve()
  }
}

export function readAt (fd: number, buf: Buffer, len: number, pos: number): Promise<number> {
  return new Promise((resolve, reject) => fs.read(fd, buf, 0, len, pos, (err, n) => err ? reject(err) : resolve(n)))
}

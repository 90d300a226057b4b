// A file open for writing has one write session, shared by every handle that writes it, so two
// writers and any reader see the same bytes. The session owns a staging file until it is sealed.
import fs from 'node:fs'
import type { PieceHasher } from '../content/piece-hasher.js'
import type { FileNode } from '../meta/nodes.js'

const SYNC_WRITE_MAX = 16 * 1024

export class WriteSession {
  writers = 0
  /** Bytes written since the last `stage` record. */
  dirty = false
  constructor (
    readonly file: FileNode,
    readonly stagingId: string,
    readonly fd: number,
    public size: number,
    readonly hasher: PieceHasher
  ) {}

  write (buf: Buffer, len: number, pos: number): Promise<number> {
    const data = buf.subarray(0, len)
    this.dirty = true
    if (pos + len > this.size) this.size = pos + len
    // A small write costs less as a direct write(2) than as a thread-pool round trip. A large one
    // goes to the pool, so a slow disk cannot hold the thread every FUSE operation shares, and its
    // piece hashing runs on this thread meanwhile.
    if (len <= SYNC_WRITE_MAX) {
      const written = fs.writeSync(this.fd, data, 0, len, pos)
      this.hasher.write(pos, data)
      return Promise.resolve(written)
    }
    const done = new Promise<number>((resolve, reject) => {
      fs.write(this.fd, data, 0, len, pos, (err, written) => err ? reject(err) : resolve(written))
    })
    this.hasher.write(pos, data)
    return done
  }

  truncate (size: number): Promise<void> {
    this.hasher.invalidateFrom(Math.min(size, this.size))
    this.size = size
    this.dirty = true
    return new Promise((resolve, reject) => fs.ftruncate(this.fd, size, err => err ? reject(err) : resolve()))
  }

  sync (): Promise<void> {
    return new Promise((resolve, reject) => fs.fsync(this.fd, err => err ? reject(err) : resolve()))
  }

  close (): void {
    fs.closeSync(this.fd)
  }
}

export function readAt (fd: number, buf: Buffer, len: number, pos: number): Promise<number> {
  return new Promise((resolve, reject) => fs.read(fd, buf, 0, len, pos, (err, n) => err ? reject(err) : resolve(n)))
}

// The filesystem a mount serves, in terms a FUSE binding can call: paths in, stats and bytes out,
// FsErrors for everything POSIX forbids. It knows nothing of FUSE itself, and of the parts behind
// it only their ports (ports.ts). This is the facade: names (namespace.ts), what is shown and
// attributes (attributes.ts), reads (reads.ts) and writes (writes.ts) do the work; opening and
// releasing handles, which ties reads and writes together, is here.
import type fs from 'node:fs'
import { fsError } from '../core/errors.js'
import type { FileNode } from '../meta/nodes.js'
import { Attributes, type DirentStat, type Stat } from './attributes.js'
import { Core, type Handle } from './core.js'
import { Namespace, type Owner } from './namespace.js'
import type { VolumeFsParts } from './ports.js'
import { Reads } from './reads.js'
import { Writes } from './writes.js'

export type { Owner } from './namespace.js'
export type { DirentStat, Stat } from './attributes.js'
export type { RemoteContent, VolumeFsParts } from './ports.js'

const O_ACCMODE = 3
const O_WRONLY = 1
const O_RDWR = 2
const O_TRUNC = 0o1000
const O_APPEND = 0o2000
const S_ISUID = 0o4000
const S_ISGID = 0o2000
const S_IXGRP = 0o0010

export class VolumeFs {
  private readonly core: Core
  private readonly names: Namespace
  private readonly attrs: Attributes
  private readonly reads: Reads
  private readonly writes: Writes
  private nextHandle = 1

  constructor (parts: VolumeFsParts) {
    this.core = new Core(parts)
    this.names = new Namespace(this.core)
    this.attrs = new Attributes(this.core)
    this.reads = new Reads(this.core)
    this.writes = new Writes(this.core)
  }

  // ---- what is shown ----

  getattr (path: string): Stat {
    return this.attrs.getattr(path)
  }

  fgetattr (fh: number): Stat {
    return this.attrs.fgetattr(fh)
  }

  readdir (path: string): { names: string[], stats: DirentStat[] } {
    return this.attrs.readdir(path)
  }

  access (path: string): void {
    this.attrs.lookup(path)
  }

  readlink (path: string): string {
    return this.attrs.readlink(path)
  }

  statfs (): fs.StatsFs {
    return this.attrs.statfs()
  }

  // ---- attributes ----

  chmod (path: string, mode: number): void {
    this.attrs.chmod(path, mode)
  }

  chown (path: string, uid: number, gid: number): void {
    this.attrs.chown(path, uid, gid)
  }

  utimens (path: string, atime: number, mtime: number, atimeNs = 0, mtimeNs = 0): void {
    this.attrs.utimens(path, atime, mtime, atimeNs, mtimeNs)
  }

  // ---- names ----

  mkdir (path: string, mode: number, owner: Owner | null = null): void {
    this.names.mkdir(path, mode, owner)
  }

  rmdir (path: string): void {
    this.names.rmdir(path)
  }

  unlink (path: string): void {
    this.names.unlink(path)
  }

  rename (from: string, to: string): void {
    this.names.rename(from, to)
  }

  symlink (target: string, path: string, owner: Owner | null = null): void {
    this.names.symlink(target, path, owner)
  }

  link (from: string, to: string): void {
    this.names.link(from, to)
  }

  mknod (path: string, mode: number, rdev: number, owner: Owner | null = null): void {
    this.names.mknod(path, mode, rdev, owner)
  }

  // ---- handles ----

  private mustFile (path: string): FileNode {
    const node = this.attrs.lookup(path)
    if (node.kind === 'dir') throw fsError('EISDIR', path)
    if (node.kind !== 'file' || node.special !== null) throw fsError('EINVAL', path)
    return node
  }

  async create (path: string, mode: number, owner: Owner | null = null): Promise<number> {
    this.names.create(path, mode, owner)
    return await this.open(path, O_WRONLY)
  }

  /** `keepsSetid`: whether the caller has CAP_FSETID (asked only by an O_TRUNC of a setuid or setgid file). */
  async open (path: string, flags: number, keepsSetid: () => boolean = () => false): Promise<number> {
    const file = this.mustFile(path)
    const writes = (flags & O_ACCMODE) === O_WRONLY || (flags & O_ACCMODE) === O_RDWR
    const truncates = (flags & O_TRUNC) !== 0
    const h: Handle = { file, session: null, append: (flags & O_APPEND) !== 0, readFd: null, readKey: null, reads: 0, retired: [], remoteAt: 0 }
    if (writes) {
      h.session = await this.writes.session(file, truncates)
    } else {
      // Linux truncates on open(O_RDONLY | O_TRUNC) too; the kernel has checked write permission.
      if (truncates) await this.truncate(path, 0)
      // Opened now, so a content released later (overwritten, unlinked) stays readable through it.
      if (!this.core.sessions.has(file)) await this.reads.readSource(h)
    }
    if (truncates) this.truncatedByOpen(file, keepsSetid)
    const fh = this.nextHandle++
    this.core.handles.set(fh, h)
    return fh
  }

  /**
   * open(O_TRUNC) changes the times, and drops setuid, and setgid where group-exec makes it one, as
   * a write does: with atomic_o_trunc the kernel leaves both to the filesystem. A caller with
   * CAP_FSETID keeps them, as on a local disk.
   */
  private truncatedByOpen (file: FileNode, keepsSetid: () => boolean): void {
    if (!file.attached()) return
    const now = this.core.now()
    let perm = file.attrs.perm
    if ((perm & (S_ISUID | S_ISGID)) !== 0 && !keepsSetid()) {
      perm &= ~S_ISUID
      if ((perm & S_IXGRP) !== 0) perm &= ~S_ISGID
    }
    this.core.meta.apply({ op: 'setattr', path: file.path(), attrs: { perm, mtime: now, mtimeNs: 0, ctime: now } })
    this.core.sessions.get(file)?.stamp(now)
  }

  read (fh: number, buf: Buffer, len: number, pos: number): Promise<number> {
    return this.reads.read(fh, buf, len, pos)
  }

  /** Throws (rather than rejects) what is refused before anything is written, as it always did. */
  async write (fh: number, buf: Buffer, len: number, pos: number): Promise<number> {
    return await this.writes.write(fh, buf, len, pos)
  }

  async truncate (path: string, size: number): Promise<void> {
    const file = this.mustFile(path)
    this.writes.checkSize(file, size)
    for (;;) {
      const session = this.core.sessions.get(file)
      if (session !== undefined) {
        await session.truncate(size, this.core.now())
        return
      }
      const pending = this.core.sealing.get(file)
      if (pending === undefined) break
      await pending
    }
    if (size === 0 && !this.core.hidden.has(path)) {
      this.core.meta.apply({ op: 'setcontent', path, size: 0, content: null, mtime: this.core.now() })
      return
    }
    const fh = await this.open(path, O_WRONLY)
    try {
      await this.ftruncate(fh, size)
      await this.flush(fh)
    } finally {
      await this.release(fh)
    }
  }

  ftruncate (fh: number, size: number): Promise<void> {
    return this.writes.ftruncate(fh, size)
  }

  fallocate (fh: number, mode: number, offset: number, length: number): Promise<void> {
    return this.writes.fallocate(fh, mode, offset, length)
  }

  /** close(2): what was written becomes durable (journaled) before close returns. */
  async flush (fh: number): Promise<void> {
    const h = this.core.handle(fh)
    if (h.session !== null) this.writes.stage(h.session)
  }

  fsync (fh: number): Promise<void> {
    return this.writes.fsync(fh)
  }

  /** fsyncdir(2): the names in a directory are journal records, synced with the journal. */
  fsyncdir (): void {
    this.core.meta.syncDirectory()
  }

  async release (fh: number): Promise<void> {
    const h = this.core.handle(fh)
    this.core.handles.delete(fh)
    this.reads.retireReadFd(h)
    // libfuse unlinks a hidden file after its last release, but not when its directory went first.
    if (this.core.hidden.size > 0 && this.core.handlesOf(h.file) === 0) this.core.hidden.forget(h.file)
    const session = h.session
    if (session === null) return
    this.writes.stage(session)
    this.writes.leave(session)
  }

  // ---- for the node ----

  copySetAside (infohash: string): void {
    this.reads.copySetAside(infohash)
  }

  isOpen (infohash: string): boolean {
    return this.reads.isOpen(infohash)
  }

  resumeSeals (): void {
    this.writes.resumeSeals()
  }

  settle (): Promise<void> {
    return this.writes.settle()
  }

  openHandles (): number {
    return this.core.handles.size
  }
}

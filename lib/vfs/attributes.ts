// What the filesystem shows of its entries (stat, readdir, readlink, statfs) and the changes of
// attributes alone (chmod, chown, utimens).
import fs from 'node:fs'
import { fsError } from '../core/errors.js'
import { subMsNs, symlinkTarget, typeBits, visibleSize, type Attrs, type FileNode, type Node } from '../meta/nodes.js'
import type { Core } from './core.js'
import type { WriteSession } from './sessions.js'

const { S_IFDIR } = fs.constants
/** How the vendored fuse-native passes utimensat's UTIME_NOW and UTIME_OMIT (see vendor/fuse-native). */
const UTIME_NOW = Number.MIN_SAFE_INTEGER
const UTIME_OMIT = Number.MIN_SAFE_INTEGER + 1

export interface Stat {
  ino: number
  mode: number
  uid: number
  gid: number
  size: number
  nlink: number
  /** A device's number; 0 for anything else. */
  rdev: number
  blksize: number
  blocks: number
  atime: number
  mtime: number
  ctime: number
  /** Nanoseconds past the millisecond of atime and mtime (ctime is whole milliseconds). */
  atimeNs: number
  mtimeNs: number
}

/** What readdir tells of an entry: the type bits of its mode and its inode number. */
export interface DirentStat {
  mode: number
  ino: number
}

export class Attributes {
  constructor (private readonly core: Core) {}

  /** The entry at `path`, hidden files included. */
  lookup (path: string): Node {
    return this.core.hidden.get(path) ?? this.core.meta.mustLookup(path)
  }

  getattr (path: string): Stat {
    return this.stat(this.lookup(path))
  }

  fgetattr (fh: number): Stat {
    return this.stat(this.core.handle(fh).file)
  }

  private stat (node: Node): Stat {
    const session = node.kind === 'file' ? this.core.sessions.get(node) : undefined
    const size = session !== undefined ? session.size : visibleSize(node)
    let { mtime, ctime, atime, uid, gid, perm, mtimeNs = 0, atimeNs = 0 } = this.core.hidden.attrsOf(node)
    // A writer's times are its session's until its next `stage` record carries them to the index.
    const modified = session?.modified
    if (modified != null) {
      mtime = modified.mtime
      mtimeNs = modified.mtimeNs
      if (modified.ctime > ctime) ctime = modified.ctime
    }
    return {
      ino: node.inode,
      mode: typeBits(node) | perm,
      uid,
      gid,
      size,
      // 2 + subdirectories, as on a local disk (counted as entries come and go, so a large
      // directory costs nothing). gnulib's fts (find, du) trusts it on filesystem types it does
      // not know, FUSE included: a directory of 2 links is read as a leaf, without entering it.
      // A file's names; one still for a file open after its last name went (libfuse 2 still shows
      // it under a hidden name, and the kernel must not see a named inode without links).
      nlink: node.kind === 'dir' ? 2 + node.children.dirs : node.kind === 'file' ? Math.max(1, node.links) : 1,
      rdev: node.kind === 'file' ? node.special?.rdev ?? 0 : 0,
      blksize: 128 * 1024,
      // A symlink's target lives in the metadata, as a local disk's short (fast) symlinks do.
      blocks: node.kind === 'dir' ? Math.ceil(size / 512) : node.kind === 'file' && node.special === null ? this.blocksOf(node, session, size) : 0,
      atime,
      mtime,
      ctime,
      atimeNs,
      mtimeNs
    }
  }

  /**
   * The 512-byte blocks a file takes on this disk, as a local disk counts them: holes (a file
   * grown by truncate, a punched range) take none, so du and cp --sparse see a sparse file. A
   * content held elsewhere counts whole.
   */
  private blocksOf (file: FileNode, session: WriteSession | undefined, size: number): number {
    try {
      if (session !== undefined) return session.blocks()
      if (file.staged !== null) return fs.statSync(this.core.content.stagingPath(file.staged.id)).blocks
      // One stat each time (a few µs against a FUSE round trip's tens): a cache would keep showing
      // the blocks of a copy the replicator has since dropped.
      if (file.content !== null) return fs.statSync(this.core.content.contentPath(file.content.infohash), { throwIfNoEntry: false })?.blocks ?? Math.ceil(size / 512)
    } catch {
      // Sealed or moved in the meantime: the size is a fair answer.
    }
    return Math.ceil(size / 512)
  }

  /**
   * A directory's names, each with its type and inode number, which readdir passes on (d_type,
   * d_ino): find, rm -r and git then know a directory from a file without a stat of each name.
   */
  readdir (path: string): { names: string[], stats: DirentStat[] } {
    const node = this.core.meta.mustLookup(path)
    if (node.kind !== 'dir') throw fsError('ENOTDIR', path)
    const names = ['.', '..']
    const stats: DirentStat[] = [{ mode: S_IFDIR, ino: node.inode }, { mode: S_IFDIR, ino: (node.parent ?? node).inode }]
    for (const [name, child] of node.children) {
      names.push(name)
      stats.push({ mode: typeBits(child), ino: child.inode })
    }
    return { names, stats }
  }

  readlink (path: string): string {
    const target = symlinkTarget(this.core.meta.mustLookup(path))
    if (target === null) throw fsError('EINVAL', path)
    return target
  }

  /** Changes attributes; a hidden file's only in memory, since it is in no tree. */
  setattr (path: string, attrs: Partial<Attrs>): void {
    const hidden = this.core.hidden.get(path)
    if (hidden !== undefined) this.core.hidden.setattr(hidden, attrs)
    else this.core.meta.apply({ op: 'setattr', path, attrs })
  }

  chmod (path: string, mode: number): void {
    this.setattr(path, { perm: mode & 0o7777, ctime: this.core.now() })
  }

  chown (path: string, uid: number, gid: number): void {
    // (uid_t)-1 means "leave unchanged". One that changes nothing still changes ctime, as Linux's do.
    const attrs: Partial<Attrs> = { ctime: this.core.now() }
    if (uid !== -1 && uid !== 0xffffffff) attrs.uid = uid
    if (gid !== -1 && gid !== 0xffffffff) attrs.gid = gid
    this.setattr(path, attrs)
  }

  /**
   * Times in milliseconds since the epoch, negative before 1970, or UTIME_NOW / UTIME_OMIT; with
   * the nanoseconds past each millisecond.
   */
  utimens (path: string, atime: number, mtime: number, atimeNs = 0, mtimeNs = 0): void {
    const node = this.lookup(path)
    // One instant for all three, so `touch` leaves atime = mtime = ctime, as on a local disk.
    const now = this.core.now()
    const attrs: Partial<Attrs> = { ctime: now }
    if (atime !== UTIME_OMIT) {
      attrs.atime = atime === UTIME_NOW ? now : atime
      attrs.atimeNs = atime === UTIME_NOW ? 0 : subMsNs(atimeNs)
    }
    if (mtime !== UTIME_OMIT) {
      attrs.mtime = mtime === UTIME_NOW ? now : mtime
      attrs.mtimeNs = mtime === UTIME_NOW ? 0 : subMsNs(mtimeNs)
    }
    this.setattr(path, attrs)
    // A writer's later `stage` record carries this mtime with it.
    const session = node.kind === 'file' ? this.core.sessions.get(node) : undefined
    if (attrs.mtime !== undefined && session !== undefined) session.modified = { mtime: attrs.mtime, mtimeNs: attrs.mtimeNs ?? 0, ctime: now }
  }

  statfs (): fs.StatsFs {
    return this.core.space.statfs()
  }
}

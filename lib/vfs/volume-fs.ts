// The filesystem a mount serves, in terms a FUSE binding can call: paths in, stats and bytes out,
// FsErrors for everything POSIX forbids. It knows nothing of FUSE itself.
import fs from 'node:fs'
import { randomBytes } from 'node:crypto'
import { dirname } from 'node:path'
import { DirSyncs, fsyncFile, syncDir } from '../core/durable.js'
import { PieceHasher } from '../content/piece-hasher.js'
import type { ContentStore } from '../content/store.js'
import { fsError, FsError } from '../core/errors.js'
import type { Logger } from '../core/log.js'
import type { Meta } from '../meta/meta.js'
import { S_IFBLK, S_IFCHR, S_IFDIR, S_IFMT, S_IFREG, SPECIAL_TYPES, stagedTimes, stampModified, subMsNs, symlinkTarget, typeBits, visibleSize, type Attrs, type ContentRef, type FileNode, type Node } from '../meta/nodes.js'
import { readAt, WriteSession } from './sessions.js'
import { SpaceGuard } from '../content/space-guard.js'
import fileops from '@swarmfs/fileops'

const O_ACCMODE = 3
const O_WRONLY = 1
const O_RDWR = 2
const O_TRUNC = 0o1000
const O_APPEND = 0o2000
const S_ISUID = 0o4000
const S_ISGID = 0o2000
const S_IXGRP = 0o0010
/** How the vendored fuse-native passes utimensat's UTIME_NOW and UTIME_OMIT (see vendor/fuse-native). */
const UTIME_NOW = Number.MIN_SAFE_INTEGER
const UTIME_OMIT = Number.MIN_SAFE_INTEGER + 1

/** The user and group a new entry belongs to: the caller's. */
export interface Owner {
  uid: number
  gid: number
}

/**
 * The name libfuse 2 gives a file unlinked or renamed over while open (`hide_node`), so it can
 * still ask for it by path: ".fuse_hidden" and the inode and a counter in 8 hex digits each.
 */
const HIDDEN_NAME = /\/\.fuse_hidden[0-9a-f]{16}$/

function parentPath (path: string): string {
  const slash = path.lastIndexOf('/')
  return slash <= 0 ? '/' : path.slice(0, slash)
}

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

/** Contents this disk does not hold, fetched from the nodes that do (lib/content/torrents). */
export interface RemoteContent {
  /** Bytes of a content from `offset`, into `into`; resolves with how many; rejects with an EIO error when they cannot come in time. */
  read (ref: ContentRef, offset: number, length: number, into: Buffer): Promise<number>
  /** Fetches a whole content onto this disk (for a write that changes part of it). */
  fetchAll (ref: ContentRef): Promise<void>
}

/** What a VolumeFs is made of, given by the node that wires it. */
export interface VolumeFsParts {
  meta: Meta
  content: ContentStore
  /** The disk directory (what statfs measures). */
  disk: string
  /** The guard of `disk`, shared with the pieces fetched onto it. */
  space: SpaceGuard
  /** Contents this disk does not hold: read from, or fetched whole from, the nodes that do. */
  remote: RemoteContent
  /**
   * The volume's space as `df` shows it (every disk's, divided by the copy target); null until
   * known, and then this disk's own is shown.
   */
  volumeSpace: () => { total: number, free: number } | null
  log: Logger
}

/** readSource's answer for a content that is not on this disk. */
const REMOTE = 'remote'
const REMOTE_RECHECK_MS = 1000

interface Handle {
  file: FileNode
  session: WriteSession | null
  append: boolean
  /** The fd last opened for reading, and the content (infohash or staging id) it holds. */
  readFd: number | null
  readKey: string | null
  /**
   * Reads under way, and the read fds replaced meanwhile: those are closed once none is left, as
   * another read of the handle (the kernel reads ahead in parallel) may still be using one.
   */
  reads: number
  retired: number[]
  /** When a content was last found missing here, so a remote read does not retry open() on every read. */
  remoteAt: number
}

export class VolumeFs {
  private readonly handles = new Map<number, Handle>()
  private nextHandle = 1
  private readonly sessions = new Map<FileNode, WriteSession>()
  /** Per file, the last writer's release under way: its session closing, then the seal of what it staged. */
  private readonly sealing = new Map<FileNode, Promise<void>>()
  /**
   * Files unlinked while open, by the name libfuse moved them to. They are gone from the tree (and
   * from peers) at once, as an unlink on a local disk; only this mount's open handles still reach
   * them, until the last one is released.
   */
  private readonly hidden = new Map<string, FileNode>()

  /** The content directory's new names (sealed contents), synced together by concurrent seals. */
  private readonly names = new DirSyncs()
  readonly meta: Meta
  readonly content: ContentStore
  private readonly disk: string
  private readonly space: SpaceGuard
  private readonly remote: RemoteContent
  private readonly volumeSpace: () => { total: number, free: number } | null
  private readonly log: Logger

  constructor (parts: VolumeFsParts) {
    this.meta = parts.meta
    this.content = parts.content
    this.disk = parts.disk
    this.space = parts.space
    this.remote = parts.remote
    this.volumeSpace = parts.volumeSpace
    this.log = parts.log
  }

  private now (): number {
    return Date.now()
  }

  /**
   * Attributes of a new entry at `path`: owned by `owner` (the node's own user when unknown), in
   * the owner's group unless the directory is setgid, whose group it then takes, and whose setgid a
   * new directory inherits, as Linux does.
   */
  private newAttrs (path: string, mode: number, owner: Owner | null, isDir = false): Attrs {
    const now = this.now()
    const { uid, gid } = owner ?? { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 }
    const parent = this.meta.lookup(parentPath(path))
    const inherits = parent !== undefined && (parent.attrs.perm & S_ISGID) !== 0
    const perm = (mode & 0o7777) | (inherits && isDir ? S_ISGID : 0)
    return { perm, uid, gid: inherits ? parent.attrs.gid : gid, mtime: now, ctime: now, atime: now }
  }

  /** The entry at `path`, hidden files included. */
  private lookup (path: string): Node {
    return this.hidden.get(path) ?? this.meta.mustLookup(path)
  }

  /** Changes attributes; a hidden file's only in memory, since it is in no tree. */
  private setattr (path: string, attrs: Partial<Attrs>): void {
    const hidden = this.hidden.get(path)
    if (hidden !== undefined) Object.assign(hidden.attrs, attrs)
    else this.meta.apply({ op: 'setattr', path, attrs })
  }

  getattr (path: string): Stat {
    return this.stat(this.lookup(path))
  }

  fgetattr (fh: number): Stat {
    return this.stat(this.handle(fh).file)
  }

  private stat (node: Node): Stat {
    const session = node.kind === 'file' ? this.sessions.get(node) : undefined
    const size = session !== undefined ? session.size : visibleSize(node)
    const { mtime, ctime, atime, uid, gid, perm, mtimeNs = 0, atimeNs = 0 } = node.attrs
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
      if (file.staged !== null) return fs.statSync(this.content.stagingPath(file.staged.id)).blocks
      // One stat each time (a few µs against a FUSE round trip's tens): a cache would keep showing
      // the blocks of a copy the replicator has since dropped.
      if (file.content !== null) return fs.statSync(this.content.contentPath(file.content.infohash), { throwIfNoEntry: false })?.blocks ?? Math.ceil(size / 512)
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
    const node = this.meta.mustLookup(path)
    if (node.kind !== 'dir') throw fsError('ENOTDIR', path)
    const names = ['.', '..']
    const stats: DirentStat[] = [{ mode: S_IFDIR, ino: node.inode }, { mode: S_IFDIR, ino: (node.parent ?? node).inode }]
    for (const [name, child] of node.children) {
      names.push(name)
      stats.push({ mode: typeBits(child), ino: child.inode })
    }
    return { names, stats }
  }

  access (path: string): void {
    this.lookup(path)
  }

  readlink (path: string): string {
    const target = symlinkTarget(this.meta.mustLookup(path))
    if (target === null) throw fsError('EINVAL', path)
    return target
  }

  mkdir (path: string, mode: number, owner: Owner | null = null): void {
    this.meta.apply({ op: 'mkdir', path, attrs: this.newAttrs(path, mode, owner, true) })
  }

  rmdir (path: string): void {
    this.mustHoldNoHidden(path)
    this.meta.apply({ op: 'rmdir', path, time: this.now() })
  }

  /**
   * libfuse 2 reaches an open, unlinked file only by its hidden path: once its directory is gone,
   * its descriptors would fail (fstat ENOENT, reads EIO). So such a directory is busy until the
   * file is closed, as a directory on NFS is with its silly-renamed files, rather than lose them.
   */
  private mustHoldNoHidden (dir: string): void {
    for (const name of this.hidden.keys()) {
      if (name.startsWith(dir + '/')) throw fsError('EBUSY', dir, 'a file in it that was deleted is still open:')
    }
  }

  unlink (path: string): void {
    if (this.hidden.delete(path)) return
    this.meta.apply({ op: 'unlink', path, time: this.now() })
  }

  rename (from: string, to: string): void {
    const node = this.meta.lookup(from)
    if (HIDDEN_NAME.test(to) && node?.kind === 'file' && this.handlesOf(node) > 0) {
      // libfuse hiding an open file that is being unlinked or renamed over: for the volume, an unlink.
      const now = this.now()
      this.meta.apply({ op: 'unlink', path: from, time: now })
      node.attrs.ctime = now
      this.hidden.set(to, node)
      return
    }
    if (this.hidden.size > 0 && this.meta.lookup(to)?.kind === 'dir') this.mustHoldNoHidden(to)
    this.meta.apply({ op: 'rename', from, to, ctime: this.now() })
    if (this.hidden.size > 0 && node?.kind === 'dir') {
      // libfuse moves the hidden files with their directory: so do their names here.
      for (const [name, file] of [...this.hidden]) {
        if (!name.startsWith(from + '/')) continue
        this.hidden.delete(name)
        this.hidden.set(to + name.slice(from.length), file)
      }
    }
  }

  private handlesOf (file: FileNode): number {
    let n = 0
    for (const h of this.handles.values()) if (h.file === file) n++
    return n
  }

  symlink (target: string, path: string, owner: Owner | null = null): void {
    this.meta.apply({ op: 'symlink', path, target, attrs: this.newAttrs(path, 0o777, owner) })
  }

  /** A hard link: one more name of the same file, here and on every peer. */
  link (from: string, to: string): void {
    const node = this.meta.mustLookup(from)
    const linkId = node.kind === 'file' && node.linkId !== null ? node.linkId : randomBytes(8).toString('hex')
    this.meta.apply({ op: 'link', from, to, time: this.now(), linkId })
  }

  chmod (path: string, mode: number): void {
    this.setattr(path, { perm: mode & 0o7777, ctime: this.now() })
  }

  chown (path: string, uid: number, gid: number): void {
    // (uid_t)-1 means "leave unchanged". One that changes nothing still changes ctime, as Linux's do.
    const attrs: Partial<Attrs> = { ctime: this.now() }
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
    const now = this.now()
    const attrs: Partial<Attrs> = { ctime: now }
    if (atime !== UTIME_OMIT) {
      attrs.atime = atime === UTIME_NOW ? now : atime
      attrs.atimeNs = atime === UTIME_NOW ? 0 : subMsNs(atimeNs)
    }
    if (mtime !== UTIME_OMIT) {
      attrs.mtime = mtime === UTIME_NOW ? now : mtime
      attrs.mtimeNs = mtime === UTIME_NOW ? 0 : subMsNs(mtimeNs)
    }
    if (attrs.mtime !== undefined && node.kind === 'file' && this.sessions.has(node)) {
      // A writer's later `stage` record carries this mtime with it.
      node.attrs.mtime = attrs.mtime
      node.attrs.mtimeNs = attrs.mtimeNs
    }
    this.setattr(path, attrs)
  }

  statfs (): fs.StatsFs {
    const local = fs.statfsSync(this.disk)
    const space = this.volumeSpace()
    if (space === null) return local
    const blocks = Math.floor(space.total / local.bsize)
    const free = Math.min(blocks, Math.floor(space.free / local.bsize))
    return { ...local, blocks, bfree: free, bavail: free }
  }

  // ---- files ----

  private handle (fh: number): Handle {
    const h = this.handles.get(fh)
    if (h === undefined) throw new FsError('EBADF', `EBADF: no open file ${fh}`)
    return h
  }

  /** A handle open for writing, with its session. */
  private writer (fh: number): { h: Handle, session: WriteSession } {
    const h = this.handle(fh)
    if (h.session === null) throw new FsError('EBADF', 'EBADF: file not open for writing')
    return { h, session: h.session }
  }

  private mustFile (path: string): FileNode {
    const node = this.lookup(path)
    if (node.kind === 'dir') throw fsError('EISDIR', path)
    if (node.kind !== 'file' || node.special !== null) throw fsError('EINVAL', path)
    return node
  }

  async create (path: string, mode: number, owner: Owner | null = null): Promise<number> {
    this.meta.apply({ op: 'create', path, attrs: this.newAttrs(path, mode, owner) })
    return await this.open(path, O_WRONLY)
  }

  /** A regular file, FIFO, socket or device (the kernel checks who may make which). */
  mknod (path: string, mode: number, rdev: number, owner: Owner | null = null): void {
    const type = mode & S_IFMT
    const attrs = this.newAttrs(path, mode, owner)
    if (type === S_IFREG || type === 0) {
      this.meta.apply({ op: 'create', path, attrs })
      return
    }
    if (!SPECIAL_TYPES.has(type)) throw fsError('EINVAL', path, 'not a type of file:')
    this.meta.apply({ op: 'create', path, attrs, special: { type, rdev: type === S_IFCHR || type === S_IFBLK ? rdev : 0 } })
  }

  /** `keepsSetid`: whether the caller has CAP_FSETID (asked only by an O_TRUNC of a setuid or setgid file). */
  async open (path: string, flags: number, keepsSetid: () => boolean = () => false): Promise<number> {
    const file = this.mustFile(path)
    const writes = (flags & O_ACCMODE) === O_WRONLY || (flags & O_ACCMODE) === O_RDWR
    const truncates = (flags & O_TRUNC) !== 0
    const h: Handle = { file, session: null, append: (flags & O_APPEND) !== 0, readFd: null, readKey: null, reads: 0, retired: [], remoteAt: 0 }
    if (writes) {
      h.session = await this.writeSession(file, truncates)
    } else {
      // Linux truncates on open(O_RDONLY | O_TRUNC) too; the kernel has checked write permission.
      if (truncates) await this.truncate(path, 0)
      // Opened now, so a content released later (overwritten, unlinked) stays readable through it.
      if (!this.sessions.has(file)) await this.readSource(h)
    }
    if (truncates) this.truncatedByOpen(file, keepsSetid)
    const fh = this.nextHandle++
    this.handles.set(fh, h)
    return fh
  }

  /**
   * open(O_TRUNC) changes the times, and drops setuid, and setgid where group-exec makes it one, as
   * a write does: with atomic_o_trunc the kernel leaves both to the filesystem. A caller with
   * CAP_FSETID keeps them, as on a local disk.
   */
  private truncatedByOpen (file: FileNode, keepsSetid: () => boolean): void {
    if (!file.attached()) return
    const now = this.now()
    let perm = file.attrs.perm
    if ((perm & (S_ISUID | S_ISGID)) !== 0 && !keepsSetid()) {
      perm &= ~S_ISUID
      if ((perm & S_IXGRP) !== 0) perm &= ~S_ISGID
    }
    this.meta.apply({ op: 'setattr', path: file.path(), attrs: { perm, mtime: now, mtimeNs: 0, ctime: now } })
  }

  /** The file's write session, joined as one more writer; `truncate` empties it (O_TRUNC). */
  private async writeSession (file: FileNode, truncate: boolean): Promise<WriteSession> {
    for (;;) {
      // A release under way closes the last session and seals it: the next one starts from there.
      const pending = this.sealing.get(file)
      if (pending !== undefined) {
        await pending
        continue
      }
      const session = this.sessions.get(file)
      if (session !== undefined) {
        session.writers++
        if (truncate) {
          try {
            await session.truncate(0, this.now())
          } catch (err) {
            this.leave(session)
            throw err
          }
        }
        return session
      }
      let staged: { id: string, fd: number, hasher: PieceHasher }
      let size: number
      if (file.staged !== null && !truncate) {
        // Closed but not yet sealed (a seal that failed, or one replayed from the journal).
        staged = { id: file.staged.id, fd: fs.openSync(this.content.stagingPath(file.staged.id), 'r+'), hasher: new PieceHasher() }
        size = file.staged.size
      } else {
        const from = truncate ? null : file.content
        if (from !== null && !this.content.has(from.infohash)) {
          // A change to part of a content held elsewhere starts from a whole local copy.
          await this.remote.fetchAll(from)
        }
        staged = await this.content.stage(from)
        size = truncate ? 0 : file.size
        if (this.sessions.has(file) || this.sealing.has(file) || (!truncate && (file.staged !== null || file.content !== from))) {
          // Another writer came meanwhile (and may have gone): start again from what it left.
          fs.closeSync(staged.fd)
          this.content.remove([], [staged.id])
          continue
        }
      }
      const created = new WriteSession(file, staged.id, staged.fd, size, staged.hasher)
      if (truncate && (file.size > 0 || file.staged !== null)) created.dirty = true
      created.writers++
      this.sessions.set(file, created)
      this.meta.beginWrite(file)
      return created
    }
  }

  /** The fd to read `h.file` from now, when no write session has it: a staged file or the content. */
  private async readSource (h: Handle): Promise<number | null | typeof REMOTE> {
    for (;;) {
      const file = h.file
      const key = this.sourceKey(file)
      if (key === null) return null
      if (key === h.readKey && h.readFd !== null) return h.readFd
      // Until a fetch completes the content, it stays remote: look on the disk again at most every
      // REMOTE_RECHECK_MS rather than at every 128 KiB read.
      if (key === h.readKey && h.readFd === null && Date.now() - h.remoteAt < REMOTE_RECHECK_MS) return REMOTE
      const path = file.staged !== null ? this.content.stagingPath(file.staged.id) : this.content.contentPath(key)
      let fd: number
      try {
        fd = await new Promise<number>((resolve, reject) => fs.open(path, 'r', (err, fd) => err ? reject(err) : resolve(fd)))
      } catch (err) {
        // A seal may have moved the staged bytes into content/ while this open was under way; the
        // file then names its new source, so look again. Otherwise the bytes are really missing.
        if ((err as NodeJS.ErrnoException).code === 'ENOENT' && this.sourceKey(file) !== key) continue
        if ((err as NodeJS.ErrnoException).code === 'ENOENT' && file.staged === null && file.content !== null) {
          // The entry names a content this disk does not hold (written on another node).
          this.retireReadFd(h)
          h.readKey = key
          h.remoteAt = Date.now()
          return REMOTE
        }
        throw err
      }
      this.retireReadFd(h)
      h.readFd = fd
      h.readKey = key
      return fd
    }
  }

  /** Closes the handle's read fd, or leaves it to the last read under way on the handle. */
  private retireReadFd (h: Handle): void {
    if (h.readFd !== null) h.retired.push(h.readFd)
    h.readFd = null
    this.closeRetired(h)
  }

  private closeRetired (h: Handle): void {
    if (h.reads === 0 && h.retired.length > 0) for (const fd of h.retired.splice(0)) fs.close(fd, () => {})
  }

  /**
   * This disk's copy of a content was set aside, having failed its hash check. Descriptors opened
   * on it would keep reading the bad bytes; each handle reading it looks for its source again at
   * its next read, which then goes the remote way (good pieces from the partial file, bad ones
   * fetched from another holder, or EIO).
   */
  copySetAside (infohash: string): void {
    for (const h of this.handles.values()) {
      if (h.readKey !== infohash) continue
      this.retireReadFd(h)
      h.readKey = null
    }
  }

  /** Whether a file open on this mount reads a content (a copy of it must not be dropped now). */
  isOpen (infohash: string): boolean {
    for (const h of this.handles.values()) if (h.file.content?.infohash === infohash) return true
    return false
  }

  private sourceKey (file: FileNode): string | null {
    return file.staged !== null ? 's' + file.staged.id : file.content !== null ? file.content.infohash : null
  }

  async read (fh: number, buf: Buffer, len: number, pos: number): Promise<number> {
    const h = this.handle(fh)
    const session = this.sessions.get(h.file)
    if (session !== undefined) return await session.read(buf, len, pos)
    h.reads++
    try {
      const fd = await this.readSource(h)
      if (fd === null) return 0
      if (fd === REMOTE) {
        const ref = h.file.content
        if (ref === null) throw new FsError('EIO', 'EIO: content not on this disk')
        if (pos >= ref.info.length) return 0
        return await this.remote.read(ref, pos, Math.min(len, buf.length, ref.info.length - pos), buf)
      }
      return await readAt(fd, buf, len, pos)
    } finally {
      h.reads--
      this.closeRetired(h)
    }
  }

  async write (fh: number, buf: Buffer, len: number, pos: number): Promise<number> {
    const { h, session } = this.writer(fh)
    const at = h.append ? session.size : pos
    let n = len
    if (at + n > session.size) {
      // As a local disk: EFBIG at or past its largest file, and a write across it stops there.
      const largest = this.content.largestFile()
      if (at >= largest) throw new FsError('EFBIG', `EFBIG: ${h.file.path()} cannot grow past ${largest} bytes on this disk`)
      n = Math.min(n, largest - at)
      // Growing the file takes space; rewriting bytes it has does not.
      this.space.claim(at + n - session.size)
    }
    stampModified(h.file.attrs, this.now())
    return await session.write(buf, n, h.append ? null : pos)
  }

  async truncate (path: string, size: number): Promise<void> {
    const file = this.mustFile(path)
    this.checkSize(file, size)
    for (;;) {
      const session = this.sessions.get(file)
      if (session !== undefined) {
        await session.truncate(size, this.now())
        return
      }
      const pending = this.sealing.get(file)
      if (pending === undefined) break
      await pending
    }
    if (size === 0 && !this.hidden.has(path)) {
      this.meta.apply({ op: 'setcontent', path, size: 0, content: null, mtime: this.now() })
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

  async ftruncate (fh: number, size: number): Promise<void> {
    const { h, session } = this.writer(fh)
    this.checkSize(h.file, size)
    await session.truncate(size, this.now())
  }

  /**
   * fallocate(2) on a file open for writing, done by the disk on its staging copy: space reserved
   * (growing the file unless KEEP_SIZE), or a range punched out or zeroed. Other modes (collapse,
   * insert, unshare) are EOPNOTSUPP, as on a filesystem without them.
   */
  async fallocate (fh: number, mode: number, offset: number, length: number): Promise<void> {
    const { h, session } = this.writer(fh)
    const kind = mode & ~fileops.FALLOC_FL_KEEP_SIZE
    if (kind !== 0 && kind !== fileops.FALLOC_FL_PUNCH_HOLE && kind !== fileops.FALLOC_FL_ZERO_RANGE) {
      throw new FsError('ENOTSUP', `ENOTSUP: fallocate mode ${mode} of ${h.file.path()}`)
    }
    if (offset < 0 || length <= 0) throw new FsError('EINVAL', `EINVAL: fallocate of ${length} bytes at ${offset}`)
    const grows = (mode & fileops.FALLOC_FL_KEEP_SIZE) === 0 && offset + length > session.size
    if (grows) {
      this.checkSize(h.file, offset + length)
      this.space.claim(offset + length - session.size)
    }
    await session.allocate(mode, offset, length, this.now())
  }

  /** EFBIG for a size this disk cannot hold in a file, before anything changes, as a local disk answers. */
  private checkSize (file: FileNode, size: number): void {
    if (size > this.content.largestFile()) throw new FsError('EFBIG', `EFBIG: ${file.path()} cannot be ${size} bytes on this disk`)
  }

  /** close(2): what was written becomes durable (journaled) before close returns. */
  async flush (fh: number): Promise<void> {
    const h = this.handle(fh)
    if (h.session !== null) this.stageSession(h.session)
  }

  /**
   * fsync(2) and fdatasync(2): durable against a power cut before the answer. The staged bytes and
   * their file's name, then the journal with the record that names them (and every record before
   * it: the file's own name, a rename of it).
   */
  async fsync (fh: number): Promise<void> {
    const h = this.handle(fh)
    if (h.session !== null) {
      const session = h.session
      // The bytes and the staging file's name together (one journal commit of the disk's
      // filesystem, not two), both before the record that names them.
      await Promise.all([session.sync(), session.nameSynced ? null : syncDir(dirname(this.content.stagingPath(session.stagingId)))])
      session.nameSynced = true
      this.stageSession(session)
    } else if (h.file.staged !== null) {
      // Written through another handle, closed, not sealed yet: its staged bytes are what the
      // journal names.
      const path = this.content.stagingPath(h.file.staged.id)
      try {
        await Promise.all([fsyncFile(path), syncDir(dirname(path))])
      } catch (err) {
        // Sealed and let go meanwhile, which happens only once the seal is durable.
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
      }
    }
    await this.meta.syncJournalAsync()
  }

  /** fsyncdir(2): the names in a directory are journal records, synced with the journal. */
  fsyncdir (): void {
    this.meta.syncDirectory()
  }

  private stageSession (session: WriteSession): void {
    if (!session.dirty) return
    const file = session.file
    if (!file.attached()) return
    this.meta.apply({ op: 'stage', path: file.path(), staged: { id: session.stagingId, size: session.size }, ...stagedTimes(file.attrs) })
    session.dirty = false
  }

  async release (fh: number): Promise<void> {
    const h = this.handle(fh)
    this.handles.delete(fh)
    this.retireReadFd(h)
    // libfuse unlinks a hidden file after its last release, but not when its directory went first.
    if (this.hidden.size > 0 && this.handlesOf(h.file) === 0) for (const [name, file] of this.hidden) if (file === h.file) this.hidden.delete(name)
    const session = h.session
    if (session === null) return
    this.stageSession(session)
    this.leave(session)
  }

  /**
   * One writer fewer. The last one's session stays until every change queued on it is on the disk
   * (a truncate(2) by path may have joined it after the writer's close(2) returned, before the
   * kernel's RELEASE came), then closes; what it staged is then sealed.
   */
  private leave (session: WriteSession): void {
    if (--session.writers > 0) return
    const file = session.file
    this.track(file, (async () => {
      // The session stays findable until it closes, so reads and truncates may still come: the
      // close waits for those too, and follows the last check in the same step.
      while (session.busy) await session.idle()
      if (this.sessions.get(file) === session) {
        this.sessions.delete(file)
        this.meta.endWrite(file)
      }
      session.close()
      // Changes done since the release's own stage record (that truncate) are recorded now.
      this.stageSession(session)
      if (file.staged?.id !== session.stagingId) {
        // Nothing was written (or the file is gone): the staging copy is not needed.
        this.content.remove([], [session.stagingId])
        return
      }
      await this.seal(file, session.hasher, !session.unsynced)
    })())
  }

  /** Registers a release or a seal under way for `file`; a write session waits for it. */
  private track (file: FileNode, work: Promise<void>): void {
    const tracked: Promise<void> = work.catch(err => {
      this.log.error('could not seal a written file; its bytes stay staged and are retried at the next start', { path: file.path(), err })
    }).finally(() => {
      if (this.sealing.get(file) === tracked) this.sealing.delete(file)
    })
    this.sealing.set(file, tracked)
  }

  /** Hashes a closed file's staged bytes into a content; readers use staging meanwhile. */
  /** `synced`: the writer's fsync covered every byte (the seal need not sync them again). */
  private async seal (file: FileNode, hasher: PieceHasher, synced = false): Promise<void> {
    const staged = file.staged
    if (staged === null || !file.attached()) return
    let content: ContentRef | null
    try {
      // The bytes are durable before a record names them as a content (a power cut may keep the
      // record and lose unsynced bytes), and so is the content's name.
      if (staged.size > 0 && !synced) await fsyncFile(this.content.stagingPath(staged.id))
      content = await this.content.seal(staged.id, staged.size, hasher)
      if (content !== null) {
        // Pinned: a removal of equal bytes let go earlier must not take the file meanwhile.
        this.meta.pin(content.infohash)
        try {
          this.names.add(dirname(this.content.contentPath(content.infohash)))
          await this.names.flush()
        } finally {
          this.meta.unpin(content.infohash)
        }
      }
    } catch (err) {
      // Unlinked meanwhile, which let the staged bytes go: there is nothing left to seal.
      if (!file.attached() || file.staged?.id !== staged.id) return
      throw err
    }
    if (!file.attached() || file.staged?.id !== staged.id) {
      // The file went away or changed meanwhile; its content is referenced by no one.
      if (content !== null && !this.meta.contentRefs.has(content.infohash)) this.content.remove([content.infohash], [])
      return
    }
    this.meta.apply({ op: 'seal', path: file.path(), stagedId: staged.id, size: staged.size, content })
    // Only once the record that names the content is durable may the staged copy go.
    this.meta.whenDurable(() => this.content.remove([], [staged.id]))
  }

  /** Seals what earlier runs staged but did not seal (from the journal). */
  resumeSeals (): void {
    for (const file of this.meta.stagedNow()) if (!this.sessions.has(file)) this.track(file, this.seal(file, new PieceHasher()))
  }

  /** Waits until every closed file is sealed; open sessions are staged first. */
  async settle (): Promise<void> {
    for (const session of this.sessions.values()) this.stageSession(session)
    while (this.sealing.size > 0) await Promise.all([...this.sealing.values()])
  }

  openHandles (): number {
    return this.handles.size
  }
}


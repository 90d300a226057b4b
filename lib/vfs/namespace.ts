// Changes of names: mkdir, rmdir, unlink, rename, link, symlink, mknod and the name of a created
// file. Each is one op on the index; the files libfuse hides while open are kept apart.
import fs from 'node:fs'
import { randomBytes } from 'node:crypto'
import { fsError } from '../core/errors.js'
import type { Attrs } from '../meta/nodes.js'
import type { Core } from './core.js'
import { isHiddenName } from './hidden-files.js'

const { S_IFMT, S_IFREG, S_IFCHR, S_IFBLK, S_IFIFO, S_IFSOCK } = fs.constants
const SPECIAL_TYPES = new Set([S_IFIFO, S_IFSOCK, S_IFCHR, S_IFBLK])
const S_ISGID = 0o2000

/** The user and group a new entry belongs to: the caller's. */
export interface Owner {
  uid: number
  gid: number
}

function parentPath (path: string): string {
  const slash = path.lastIndexOf('/')
  return slash <= 0 ? '/' : path.slice(0, slash)
}

export class Namespace {
  constructor (private readonly core: Core) {}

  /**
   * Attributes of a new entry at `path`: owned by `owner` (the node's own user when unknown), in
   * the owner's group unless the directory is setgid, whose group it then takes, and whose setgid a
   * new directory inherits, as Linux does.
   */
  private newAttrs (path: string, mode: number, owner: Owner | null, isDir = false): Attrs {
    const now = this.core.now()
    const { uid, gid } = owner ?? { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 }
    const parent = this.core.meta.lookup(parentPath(path))
    const inherits = parent !== undefined && (parent.attrs.perm & S_ISGID) !== 0
    const perm = (mode & 0o7777) | (inherits && isDir ? S_ISGID : 0)
    return { perm, uid, gid: inherits ? parent.attrs.gid : gid, mtime: now, ctime: now, atime: now }
  }

  mkdir (path: string, mode: number, owner: Owner | null): void {
    this.core.meta.apply({ op: 'mkdir', path, attrs: this.newAttrs(path, mode, owner, true) })
  }

  rmdir (path: string): void {
    this.core.hidden.mustHoldNone(path)
    this.core.meta.apply({ op: 'rmdir', path, time: this.core.now() })
  }

  /** A new empty regular file. */
  create (path: string, mode: number, owner: Owner | null): void {
    this.core.meta.apply({ op: 'create', path, attrs: this.newAttrs(path, mode, owner) })
  }

  /** A regular file, FIFO, socket or device (the kernel checks who may make which). */
  mknod (path: string, mode: number, rdev: number, owner: Owner | null): void {
    const type = mode & S_IFMT
    const attrs = this.newAttrs(path, mode, owner)
    if (type === S_IFREG || type === 0) {
      this.core.meta.apply({ op: 'create', path, attrs })
      return
    }
    if (!SPECIAL_TYPES.has(type)) throw fsError('EINVAL', path, 'not a type of file:')
    this.core.meta.apply({ op: 'create', path, attrs, special: { type, rdev: type === S_IFCHR || type === S_IFBLK ? rdev : 0 } })
  }

  unlink (path: string): void {
    if (this.core.hidden.delete(path)) return
    this.core.meta.apply({ op: 'unlink', path, time: this.core.now() })
  }

  rename (from: string, to: string): void {
    const { meta, hidden } = this.core
    const node = meta.lookup(from)
    if (isHiddenName(to) && node?.kind === 'file' && this.core.handlesOf(node) > 0) {
      // libfuse hiding an open file that is being unlinked or renamed over: for the volume, an unlink.
      const now = this.core.now()
      meta.apply({ op: 'unlink', path: from, time: now })
      hidden.hide(to, node, now)
      return
    }
    if (hidden.size > 0 && meta.lookup(to)?.kind === 'dir') hidden.mustHoldNone(to)
    meta.apply({ op: 'rename', from, to, ctime: this.core.now() })
    if (hidden.size > 0 && node?.kind === 'dir') hidden.moveDir(from, to)
  }

  symlink (target: string, path: string, owner: Owner | null): void {
    this.core.meta.apply({ op: 'symlink', path, target, attrs: this.newAttrs(path, 0o777, owner) })
  }

  /** A hard link: one more name of the same file, here and on every peer. */
  link (from: string, to: string): void {
    const node = this.core.meta.mustLookup(from)
    const linkId = node.kind === 'file' && node.linkId !== null ? node.linkId : randomBytes(8).toString('hex')
    this.core.meta.apply({ op: 'link', from, to, time: this.core.now(), linkId })
  }
}

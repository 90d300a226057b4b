// Every change to the index is one of these records: applied to the tree here (a pure function of
// tree and record, with POSIX's rules and errnos), appended to the journal before FUSE acknowledges
// it, and replayed from the journal after a crash.
import { fsError } from '../core/errors.js'
import { isSafeName, splitPath } from './names.js'
import { collectData, DirNode, FileNode, isVolumeInode, S_IFLNK, stampModified, subMsNs, SymlinkNode, type Attrs, type ContentRef, type Node, type Special, type Staged } from './nodes.js'
import { compareSettings, effectiveSettings, parseVolumeSettings } from './volume-settings.js'

/** `ino`, the new node's volume-wide inode number, is missing from records journaled by an older release. */
export type Op =
  | { op: 'mkdir', path: string, attrs: Attrs, ino?: number }
  /** `special`: a FIFO, socket or device rather than a regular file. */
  | { op: 'create', path: string, attrs: Attrs, special?: Special, ino?: number }
  | { op: 'symlink', path: string, target: string, attrs: Attrs, ino?: number }
  | { op: 'setattr', path: string, attrs: Partial<Attrs> }
  /** `ctime` is missing from records journaled by an older release, which stamped both with `mtime`; `mtimeNs` is there when not 0. */
  | { op: 'stage', path: string, staged: Staged, mtime: number, mtimeNs?: number, ctime?: number }
  | { op: 'seal', path: string, stagedId: string, size: number, content: ContentRef | null }
  | { op: 'setcontent', path: string, size: number, content: ContentRef | null, mtime: number }
  /** A hard link: `to` becomes one more name of the file at `from`; `linkId` is the id its names share, if it has none yet. */
  | { op: 'link', from: string, to: string, time: number, linkId: string }
  | { op: 'unlink', path: string, time: number }
  | { op: 'rmdir', path: string, time: number }
  | { op: 'rename', from: string, to: string, ctime: number }
  /** Volume settings; what is left out keeps its value. `at` orders it against every other change of them. */
  | { op: 'setvolume', copies?: number, graceMs?: number, at: number }

/** What an applied op changed in the data nodes refer to: contents gained, contents and staged ids let go. */
export interface Released {
  contents: string[]
  staged: string[]
  added: ContentRef[]
}

export function lookup (root: DirNode, path: string): Node | undefined {
  let node: Node = root
  for (const part of splitPath(path)) {
    if (node.kind !== 'dir') throw fsError('ENOTDIR', path)
    // No name here is longer, so Linux says why it cannot exist (stat, open, unlink... all look it
    // up first). A name of at most 85 UTF-16 units has at most 255 UTF-8 bytes: most need no count.
    if (part.length > 85 && Buffer.byteLength(part) > 255) throw fsError('ENAMETOOLONG', path)
    const next = node.children.get(part)
    if (next === undefined) return undefined
    node = next
  }
  return node
}

export function mustLookup (root: DirNode, path: string): Node {
  const node = lookup(root, path)
  if (node === undefined) throw fsError('ENOENT', path)
  return node
}

function parentOf (root: DirNode, path: string): { dir: DirNode, name: string } {
  const parts = splitPath(path)
  const name = parts.pop()
  if (name === undefined) throw fsError('EEXIST', path)
  if (!isSafeName(name)) throw fsError(Buffer.byteLength(name) > 255 ? 'ENAMETOOLONG' : 'EINVAL', path)
  const dir = mustLookup(root, '/' + parts.join('/'))
  if (dir.kind !== 'dir') throw fsError('ENOTDIR', path)
  return { dir, name }
}

function mustFile (root: DirNode, path: string): FileNode {
  const node = mustLookup(root, path)
  if (node.kind === 'dir') throw fsError('EISDIR', path)
  if (node.kind !== 'file') throw fsError('EINVAL', path)
  return node
}

function addNew (root: DirNode, path: string, node: Node): void {
  const { dir, name } = parentOf(root, path)
  if (dir.children.has(name)) throw fsError('EEXIST', path)
  dir.add(name, node)
  stampModified(dir.attrs, node.attrs.ctime)
}

const none = (): Released => ({ contents: [], staged: [], added: [] })

/** A new node's attributes; a record journaled by an older release has no atime, which is its mtime. */
function fresh (attrs: Attrs): Attrs {
  return { ...attrs, atime: attrs.atime ?? attrs.mtime }
}

function numbered<N extends Node> (node: N, ino: number | undefined): N {
  if (isVolumeInode(ino)) node.inode = ino
  return node
}

export function applyOp (root: DirNode, op: Op): Released {
  switch (op.op) {
    case 'mkdir':
      addNew(root, op.path, numbered(new DirNode(fresh(op.attrs)), op.ino))
      return none()
    case 'create': {
      const file = numbered(new FileNode(fresh(op.attrs)), op.ino)
      file.special = op.special ?? null
      addNew(root, op.path, file)
      return none()
    }
    case 'symlink':
      addNew(root, op.path, numbered(new SymlinkNode(fresh(op.attrs), op.target), op.ino))
      return none()
    case 'setattr': {
      const node = mustLookup(root, op.path)
      Object.assign(node.attrs, op.attrs)
      node.touch()
      return none()
    }
    case 'stage': {
      const file = mustFile(root, op.path)
      const released = none()
      if (file.staged !== null && file.staged.id !== op.staged.id) released.staged.push(file.staged.id)
      file.staged = { ...op.staged }
      // Apart: an mtime set while the file was open (cp -p, tar) is in the past, its ctime is not.
      stampModified(file.attrs, op.mtime)
      if (op.mtimeNs !== undefined) file.attrs.mtimeNs = subMsNs(op.mtimeNs)
      file.attrs.ctime = op.ctime ?? op.mtime
      return released
    }
    case 'seal': {
      const file = mustFile(root, op.path)
      if (file.staged === null || file.staged.id !== op.stagedId) return none()
      const released = none()
      if (file.content !== null) released.contents.push(file.content.infohash)
      file.staged = null
      file.content = op.content
      file.size = op.size
      if (op.content !== null) released.added.push(op.content)
      file.touch()
      return released
    }
    case 'setcontent': {
      const file = mustFile(root, op.path)
      const released = none()
      if (file.content !== null) released.contents.push(file.content.infohash)
      if (file.staged !== null) released.staged.push(file.staged.id)
      file.staged = null
      file.content = op.content
      file.size = op.size
      if (op.content !== null) released.added.push(op.content)
      stampModified(file.attrs, op.mtime)
      file.touch()
      return released
    }
    case 'link': {
      const found = mustLookup(root, op.from)
      // As on Linux, whose link(2) gives EPERM for a directory.
      if (found.kind === 'dir') throw fsError('EPERM', op.from, 'cannot hard-link a directory:')
      const { dir, name } = parentOf(root, op.to)
      if (dir.children.has(name)) throw fsError('EEXIST', op.to)
      const node = found.kind === 'symlink' ? asLinkedSymlink(found) : found
      node.linkId ??= op.linkId
      dir.add(name, node)
      node.attrs.ctime = op.time
      stampModified(dir.attrs, op.time)
      return none()
    }
    case 'unlink': {
      const { dir, name } = parentOf(root, op.path)
      const node = dir.children.get(name)
      if (node === undefined) throw fsError('ENOENT', op.path)
      if (node.kind === 'dir') throw fsError('EISDIR', op.path)
      return detach(dir, name, op.time)
    }
    case 'rmdir': {
      const node = mustLookup(root, op.path)
      if (node.kind !== 'dir') throw fsError('ENOTDIR', op.path)
      if (node.isRoot) throw fsError('EBUSY', op.path)
      if (node.children.size > 0) throw fsError('ENOTEMPTY', op.path)
      const { dir, name } = parentOf(root, op.path)
      return detach(dir, name, op.time)
    }
    case 'rename':
      return rename(root, op.from, op.to, op.ctime)
    case 'setvolume':
      setVolume(root, op)
      return none()
  }
}

/**
 * Settings only ever move to newer ones: a replayed change older than what the index already holds
 * (taken from a peer meanwhile) would lose the merge anyway, and applying it would undo a newer one.
 */
function setVolume (root: DirNode, op: Extract<Op, { op: 'setvolume' }>): void {
  const current = effectiveSettings(root.volume)
  const next = parseVolumeSettings({ copies: op.copies ?? current.copies, graceMs: op.graceMs ?? current.graceMs, at: op.at })
  if (next === null) throw fsError('EINVAL', '/', 'invalid volume settings for')
  if (compareSettings(next, current) <= 0) return
  root.volume = next
  // The root's marker changes, so the root tree is written again.
  root.touch()
}

/**
 * The symlink, in its place and with its inode number, as a file entry that can have several
 * names (see Special): a git symlink has no room for the id that joins them.
 */
function asLinkedSymlink (symlink: SymlinkNode): FileNode {
  const file = new FileNode(symlink.attrs)
  file.inode = symlink.inode
  file.special = { type: S_IFLNK, rdev: 0, target: symlink.target }
  const dir = symlink.parent as DirNode
  const name = symlink.name
  dir.unplace(name)
  dir.add(name, file)
  return file
}

function detach (dir: DirNode, name: string, time: number): Released {
  const node = dir.remove(name)
  const released = none()
  if (node !== undefined) collectData(node, released.contents, released.staged)
  if (node?.kind === 'file' && node.parent !== null) {
    // A name of a file that has others: the file loses a link, which changes its ctime.
    node.attrs.ctime = time
    node.touch()
  }
  stampModified(dir.attrs, time)
  return released
}

function rename (root: DirNode, from: string, to: string, ctime: number): Released {
  const src = parentOf(root, from)
  const node = src.dir.children.get(src.name)
  if (node === undefined) throw fsError('ENOENT', from)
  const dst = parentOf(root, to)
  const existing = dst.dir.children.get(dst.name)
  // The same name, or two names of one file: POSIX says rename then does nothing.
  if (existing === node) return none()
  if (node.kind === 'dir') {
    for (let d: DirNode | null = dst.dir; d !== null; d = d.parent) {
      if (d === node) throw fsError('EINVAL', to, 'cannot move a directory into itself:')
    }
  }
  let released = none()
  if (existing !== undefined) {
    if (node.kind === 'dir' && existing.kind !== 'dir') throw fsError('ENOTDIR', to)
    if (node.kind !== 'dir' && existing.kind === 'dir') throw fsError('EISDIR', to)
    if (existing.kind === 'dir' && existing.children.size > 0) throw fsError('ENOTEMPTY', to)
    released = detach(dst.dir, dst.name, ctime)
  }
  src.dir.remove(src.name)
  dst.dir.add(dst.name, node)
  node.attrs.ctime = ctime
  stampModified(src.dir.attrs, ctime)
  stampModified(dst.dir.attrs, ctime)
  return released
}

// The in-memory index that FUSE operations are served from. Nodes know their parent so a node keeps
// its identity across renames (open handles follow it) and a change marks exactly the trees above it.
import type { TorrentInfo } from '../content/torrent-info.js'
import type { VolumeSettings } from './volume-settings.js'

export const S_IFMT = 0o170000
export const S_IFREG = 0o100000
export const S_IFDIR = 0o040000
export const S_IFLNK = 0o120000
export const S_IFIFO = 0o010000
export const S_IFSOCK = 0o140000
export const S_IFCHR = 0o020000
export const S_IFBLK = 0o060000

/**
 * A FIFO, socket or device: a name, attributes, a type and (for a device) its number, and no
 * content. The kernel serves what opening one does, so the volume only keeps it.
 *
 * Also a symlink with more than one name (link(2) of a symlink, as `cp -al` and `rsync
 * --link-dest` make): a git symlink holds its target and nothing else, while the names of one
 * file are found again by what their entries hold (the linkId), so such a symlink is kept as a
 * file entry of type S_IFLNK with its target.
 */
export interface Special {
  /** S_IFIFO, S_IFSOCK, S_IFCHR, S_IFBLK, or S_IFLNK for a hard-linked symlink. */
  type: number
  /** A device's number as the kernel encodes it (new_encode_dev); 0 otherwise. */
  rdev: number
  /** A hard-linked symlink's target; absent for every other type. */
  target?: string
}

export const SPECIAL_TYPES: ReadonlyMap<number, string> = new Map([[S_IFIFO, 'fifo'], [S_IFSOCK, 'socket'], [S_IFCHR, 'char'], [S_IFBLK, 'block']])

export interface Attrs {
  /** Permission bits only (07777); the type comes from the node kind. */
  perm: number
  uid: number
  gid: number
  /** Milliseconds since the epoch (negative before 1970). */
  mtime: number
  ctime: number
  /**
   * Changed only when set explicitly (utimens), never by reads: the mount behaves as `noatime`,
   * since keeping read times would turn every read into a commit synced to every peer.
   */
  atime: number
  /**
   * Nanoseconds past mtime's (atime's) millisecond, 0 to 999,999; absent is 0. Only utimens sets
   * them, so a time copied from another disk (cp -p, tar, rsync, touch -d) reads back exactly; the
   * times this node stamps itself are whole milliseconds. ctime is only ever stamped.
   */
  mtimeNs?: number
  atimeNs?: number
}

/** mtime and ctime become `ms`, a time this node stamped: the content or the entries changed. */
export function stampModified (attrs: Attrs, ms: number): void {
  attrs.mtime = attrs.ctime = ms
  if (attrs.mtimeNs !== undefined) delete attrs.mtimeNs
}

/** The times a `stage` record carries: a writer's stamps, or an mtime set while the file was open. */
export function stagedTimes (attrs: Attrs): { mtime: number, mtimeNs?: number, ctime: number } {
  return attrs.mtimeNs ? { mtime: attrs.mtime, mtimeNs: attrs.mtimeNs, ctime: attrs.ctime } : { mtime: attrs.mtime, ctime: attrs.ctime }
}

/** Nanoseconds past a millisecond, as a peer or a record may hold them: anything else is 0. */
export function subMsNs (v: unknown): number {
  return Number.isSafeInteger(v) && (v as number) >= 0 && (v as number) < 1_000_000 ? v as number : 0
}

export interface ContentRef {
  infohash: string
  info: TorrentInfo
}

/** Bytes written and closed (or fsynced) that are not yet hashed into content. */
export interface Staged {
  id: string
  size: number
}

/** The highest inode number given or restored in this process. */
let lastInode = 0

/**
 * Numbers up to `max` are taken (restored from a snapshot): nodes made from now on get higher ones.
 * Call it before any node is made that is not restored.
 */
export function reserveInodes (max: number): void {
  lastInode = Math.max(lastInode, max)
}

/** An inode number no node of this process has had. */
export function newInode (): number {
  return ++lastInode
}

abstract class BaseNode {
  /**
   * The inode number stat shows (the mount passes it on with use_ino): one per node, so every
   * name of a file shows the same one, as tools that find hard links (cp -a, tar, du) expect.
   * A clean stop keeps it in the snapshot, so a restart shows the same numbers: git and backup
   * tools compare them to tell an unchanged file without reading it.
   */
  inode = newInode()
  parent: DirNode | null = null
  name = ''
  /** git object id of this node as last committed; undefined when it changed since. */
  oid: string | undefined = undefined
  /** Bumped on every change at or below this node, so a commit knows whether what it wrote is still current. */
  version = 0
  constructor (public attrs: Attrs) {}

  /** Marks this node and every directory above it as changed since the last commit. */
  touch (): void {
    for (let n: BaseNode | null = this; n !== null; n = n.parent) {
      n.oid = undefined
      n.version++
    }
  }

  path (): string {
    const parts: string[] = []
    for (let n: BaseNode | null = this; n !== null && n.parent !== null; n = n.parent) parts.push(n.name)
    return '/' + parts.reverse().join('/')
  }

  /** Still reachable from the root. */
  attached (): boolean {
    let n: BaseNode = this
    while (n.parent !== null) n = n.parent
    return n instanceof DirNode && n.isRoot
  }
}

/** One name of a file in a directory. */
export interface Place {
  dir: DirNode
  name: string
}

/**
 * A file, under one or more names (hard links): (parent, name) is its first name, `others` the
 * rest. Every name holds the same node, so a change through one is seen through all, and an open
 * file, its writes and its seal are one whatever name they came by. No name: parent is null.
 */
export class FileNode extends BaseNode {
  readonly kind = 'file'
  /** Last sealed content: what git holds. null for an empty file. */
  content: ContentRef | null = null
  size = 0
  staged: Staged | null = null
  /** The node that wrote this version (names a conflict copy of it); null when unknown. */
  by: string | null = null
  /** Set for a FIFO, socket or device, which is kept as an empty file of that type. */
  special: Special | null = null
  /** Its names beyond the first, in the order they were made. */
  others: Place[] = []
  /**
   * The id its names share in git (16 hex digits), so a load or a peer finds them to be one file;
   * null for a file that was never linked.
   */
  linkId: string | null = null

  /** How many names it has. */
  get links (): number {
    return this.parent === null ? 0 : 1 + this.others.length
  }

  addPlace (dir: DirNode, name: string): void {
    if (this.parent === null) {
      this.parent = dir
      this.name = name
    } else {
      this.others.push({ dir, name })
    }
  }

  /** Takes one name away; the next one becomes the first. */
  removePlace (dir: DirNode, name: string): void {
    if (this.parent === dir && this.name === name) {
      const next = this.others.shift()
      this.parent = next?.dir ?? null
      this.name = next?.name ?? ''
      return
    }
    const i = this.others.findIndex(p => p.dir === dir && p.name === name)
    if (i >= 0) this.others.splice(i, 1)
  }

  /** Forgets the names inside directories that are gone from the tree (a removed subtree). */
  dropDetachedPlaces (): void {
    const places: Place[] = this.parent === null ? [] : [{ dir: this.parent, name: this.name }, ...this.others]
    const kept = places.filter(p => p.dir.attached())
    if (kept.length === places.length) return
    this.parent = kept[0]?.dir ?? null
    this.name = kept[0]?.name ?? ''
    this.others = kept.slice(1)
  }

  override attached (): boolean {
    return super.attached() || this.others.some(p => p.dir.attached())
  }

  /** Every name's blob holds the file, so every name's trees change with it. */
  override touch (): void {
    super.touch()
    for (const p of this.others) p.dir.touch()
  }
}

export class SymlinkNode extends BaseNode {
  readonly kind = 'symlink'
  constructor (attrs: Attrs, public target: string) { super(attrs) }
}

/**
 * A directory's entries, counting its subdirectories as they come and go, so a directory's link
 * count (2 + subdirectories) costs nothing to answer however many entries it has. Every path that
 * fills a directory (ops, adoption of a peer's tree, loads from git and from a snapshot) goes
 * through set and delete.
 */
export class Children extends Map<string, Node> {
  dirs = 0

  override set (name: string, node: Node): this {
    const old = super.get(name)
    if (old?.kind === 'dir') this.dirs--
    if (node.kind === 'dir') this.dirs++
    return super.set(name, node)
  }

  override delete (name: string): boolean {
    if (super.get(name)?.kind === 'dir') this.dirs--
    return super.delete(name)
  }

  override clear (): void {
    this.dirs = 0
    super.clear()
  }
}

export class DirNode extends BaseNode {
  readonly kind = 'dir'
  readonly children = new Children()
  isRoot = false
  /** The volume's settings, as the root's marker holds them (null: none, the defaults apply); root only. */
  volume: VolumeSettings | null = null

  /** Gives `node` the name `name` here; a file that has a name already gets one more (a hard link). */
  add (name: string, node: Node): void {
    this.place(name, node)
    node.touch()
    this.touch()
  }

  remove (name: string): Node | undefined {
    const node = this.unplace(name)
    if (node !== undefined) this.touch()
    return node
  }

  /** add without marking anything changed: for loads and adoptions, which set the oids themselves. */
  place (name: string, node: Node): void {
    if (node.kind === 'file') {
      node.addPlace(this, name)
    } else {
      node.parent = this
      node.name = name
    }
    this.children.set(name, node)
  }

  /** remove without marking anything changed. */
  unplace (name: string): Node | undefined {
    const node = this.children.get(name)
    if (node === undefined) return undefined
    this.children.delete(name)
    if (node.kind === 'file') node.removePlace(this, name)
    else node.parent = null
    return node
  }
}

export type Node = FileNode | DirNode | SymlinkNode

export function visibleSize (node: Node): number {
  const target = symlinkTarget(node)
  if (target !== null) return Buffer.byteLength(target)
  if (node.kind === 'file') return node.staged !== null ? node.staged.size : node.size
  return 4096
}

/** What readlink gives: a symlink's target, also of one with several names; null for anything else. */
export function symlinkTarget (node: Node): string | null {
  if (node.kind === 'symlink') return node.target
  if (node.kind === 'file') return node.special?.target ?? null
  return null
}

export function typeBits (node: Node): number {
  return node.kind === 'file' ? node.special?.type ?? S_IFREG : node.kind === 'dir' ? S_IFDIR : S_IFLNK
}

/**
 * Every sealed content and staged id of a node just taken out of the tree (and of what is below
 * it), for releasing them; a file that keeps a name elsewhere (a hard link) keeps its data.
 */
export function collectData (node: Node, contents: string[], staged: string[], seen = new Set<FileNode>()): void {
  if (node.kind === 'file') {
    if (seen.has(node)) return
    seen.add(node)
    node.dropDetachedPlaces()
    if (node.parent !== null) return
    if (node.content !== null) contents.push(node.content.infohash)
    if (node.staged !== null) staged.push(node.staged.id)
  } else if (node.kind === 'dir') {
    for (const child of node.children.values()) collectData(child, contents, staged, seen)
  }
}

/** The paths of the files (every name of each) below `dir` whose content is one of `wanted`, by infohash. */
export function contentPaths (dir: DirNode, wanted: ReadonlySet<string>, out = new Map<string, string[]>()): Map<string, string[]> {
  for (const [name, child] of dir.children) {
    if (child.kind === 'dir') {
      contentPaths(child, wanted, out)
    } else if (child.kind === 'file' && child.content !== null && wanted.has(child.content.infohash)) {
      const at = dir.path()
      const paths = out.get(child.content.infohash) ?? []
      paths.push(at === '/' ? '/' + name : at + '/' + name)
      out.set(child.content.infohash, paths)
    }
  }
  return out
}

/**
 * Hard links as git keeps them: every name is an entry of its own, and the entries of one file
 * carry the same `linkId`. A load or an adoption reads each name as a file of its own; this joins the
 * names whose entries are the same blob with the same linkId into one file again. Names of one linkId
 * whose entries differ (changed apart on two peers at once, then merged) stay separate files, each
 * with its own bytes: a link may come apart that way, but nothing is lost.
 */
export class LinkJoiner {
  private readonly files = new Map<string, FileNode>()

  /** The file that `file`, just read from git, is a name of: one met before, or itself. */
  join (file: FileNode): FileNode {
    if (file.linkId === null || file.oid === undefined) return file
    const key = `${file.linkId}:${file.oid}`
    const known = this.files.get(key)
    if (known !== undefined) return known
    this.files.set(key, file)
    return file
  }

  /** Joins the names below `dir`, which was read from git; `onFile` sees every file once. */
  joinBelow (dir: DirNode, onFile: (file: FileNode) => void): void {
    for (const [name, child] of dir.children) {
      if (child.kind === 'dir') {
        this.joinBelow(child, onFile)
      } else if (child.kind === 'file') {
        const file = this.join(child)
        if (file === child) {
          onFile(file)
        } else {
          dir.children.set(name, file)
          file.others.push({ dir, name })
        }
      }
    }
  }
}

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
 */
export interface Special {
  /** S_IFIFO, S_IFSOCK, S_IFCHR or S_IFBLK. */
  type: number
  /** A device's number as the kernel encodes it (new_encode_dev); 0 otherwise. */
  rdev: number
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

abstract class BaseNode {
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

  add (name: string, node: Node): void {
    node.parent = this
    node.name = name
    this.children.set(name, node)
    node.touch()
    this.touch()
  }

  remove (name: string): Node | undefined {
    const node = this.children.get(name)
    if (node === undefined) return undefined
    this.children.delete(name)
    this.touch()
    node.parent = null
    return node
  }
}

export type Node = FileNode | DirNode | SymlinkNode

export function visibleSize (node: Node): number {
  if (node.kind === 'file') return node.staged !== null ? node.staged.size : node.size
  if (node.kind === 'symlink') return Buffer.byteLength(node.target)
  return 4096
}

export function typeBits (node: Node): number {
  return node.kind === 'file' ? node.special?.type ?? S_IFREG : node.kind === 'dir' ? S_IFDIR : S_IFLNK
}

/** Every sealed content and staged id below (and including) a node, for releasing them. */
export function collectData (node: Node, contents: string[], staged: string[]): void {
  if (node.kind === 'file') {
    if (node.content !== null) contents.push(node.content.infohash)
    if (node.staged !== null) staged.push(node.staged.id)
  } else if (node.kind === 'dir') {
    for (const child of node.children.values()) collectData(child, contents, staged)
  }
}

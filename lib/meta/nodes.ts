// The in-memory index that FUSE operations are served from. Nodes know their parent so a node keeps
// its identity across renames (open handles follow it) and a change marks exactly the trees above it.
import { createHash, randomBytes } from 'node:crypto'
import type { ContentRef, TorrentInfo } from '../core/torrent-info.js'
import { isConflictCopyName } from './names.js'
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

export type { ContentRef } from '../core/torrent-info.js'

/** Bytes written and closed (or fsynced) that are not yet hashed into content. */
export interface Staged {
  id: string
  size: number
}

/**
 * Inode numbers come in two ranges. Below 2^32, this process's own: a counter, for entries written
 * before numbers were stored and for nodes in no tree. From 2^32 up (to 2^53, what a JavaScript
 * number holds exactly), volume-wide: drawn at random when a file, directory or symlink is made,
 * stored in its entry and shown by every node, so git's index, rsync and backup tools see the same
 * file on every node. Random rather than counted, because nodes make files at the same time with no
 * one to ask: two draws meet with odds of about n²/2^54 (a volume of a million names: 1 in 18,000),
 * and `separateInodes` gives one of two that meet a number of its own.
 */
export const VOLUME_INODES_FROM = 2 ** 32
const VOLUME_INODES_TO = 2 ** 53

export function isVolumeInode (n: unknown): n is number {
  return Number.isSafeInteger(n) && (n as number) >= VOLUME_INODES_FROM
}

/** A volume-wide inode number for a node made on this node. */
export function drawVolumeInode (): number {
  for (;;) {
    const n = Number(randomBytes(8).readBigUInt64BE() % BigInt(VOLUME_INODES_TO))
    if (n >= VOLUME_INODES_FROM) return n
  }
}

/** The root: the same number on every node. */
export const ROOT_INODE = 1

/** The highest inode number of this process's own range given or restored in this process. */
let lastInode = ROOT_INODE

/**
 * Numbers up to `max` are taken (restored from a snapshot): nodes made from now on get higher ones.
 * Call it before any node is made that is not restored.
 */
export function reserveInodes (max: number): void {
  if (max < VOLUME_INODES_FROM) lastInode = Math.max(lastInode, max)
}

/** An inode number of this process's own range that no node of this process has had. */
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
  inode: number
  parent: DirNode | null = null
  name = ''
  /** git object id of this node as last committed; undefined when it changed since. */
  oid: string | undefined = undefined
  /** Bumped on every change at or below this node, so a commit knows whether what it wrote is still current. */
  version = 0
  /** `inode`: its number as saved (a snapshot); a new one of this process's range otherwise. */
  constructor (public attrs: Attrs, inode?: number) {
    this.inode = inode ?? newInode()
  }

  /** Marks this node and every directory above it as changed since the last commit. */
  touch (): void {
    for (let n: BaseNode | null = this; n !== null; n = n.parent) {
      n.oid = undefined
      n.version++
      n.parent?.children.changes?.add(n.name)
    }
  }

  /** Takes `oid` as what git holds for it (an adoption): its directory's next tree has it so (tree-cache.ts). */
  settle (oid: string): void {
    this.oid = oid
    this.parent?.children.changes?.add(this.name)
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
 * The `others` of every file with one name, shared: a file of its own array would cost 32 bytes
 * more each, at a million files a tenth of the index. Frozen, so a push on it fails loudly.
 */
const NO_OTHER_PLACES: Place[] = Object.freeze([]) as unknown as Place[]

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
  /** Its names beyond the first, in the order they were made (NO_OTHER_PLACES when it has none). */
  others: Place[] = NO_OTHER_PLACES
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
      this.addOther({ dir, name })
    }
  }

  /** One more name beyond the first. */
  addOther (place: Place): void {
    if (this.others === NO_OTHER_PLACES) this.others = [place]
    else this.others.push(place)
  }

  /** Takes one name away; the next one becomes the first. */
  removePlace (dir: DirNode, name: string): void {
    if (this.parent === dir && this.name === name) {
      const next = this.others[0]
      this.others = this.others.length > 1 ? this.others.slice(1) : NO_OTHER_PLACES
      this.parent = next?.dir ?? null
      this.name = next?.name ?? ''
      return
    }
    const i = this.others.findIndex(p => p.dir === dir && p.name === name)
    if (i < 0) return
    const rest = this.others.filter((_, j) => j !== i)
    this.others = rest.length === 0 ? NO_OTHER_PLACES : rest
  }

  /** Forgets the names inside directories that are gone from the tree (a removed subtree). */
  dropDetachedPlaces (): void {
    const places: Place[] = this.parent === null ? [] : [{ dir: this.parent, name: this.name }, ...this.others]
    const kept = places.filter(p => p.dir.attached())
    if (kept.length === places.length) return
    this.parent = kept[0]?.dir ?? null
    this.name = kept[0]?.name ?? ''
    this.others = kept.length > 1 ? kept.slice(1) : NO_OTHER_PLACES
  }

  override attached (): boolean {
    return super.attached() || this.others.some(p => p.dir.attached())
  }

  /** Every name's blob holds the file, so every name's trees change with it. */
  override touch (): void {
    super.touch()
    for (const p of this.others) {
      p.dir.children.changes?.add(p.name)
      p.dir.touch()
    }
  }

  override settle (oid: string): void {
    super.settle(oid)
    for (const p of this.others) p.dir.children.changes?.add(p.name)
  }
}

export class SymlinkNode extends BaseNode {
  readonly kind = 'symlink'
  constructor (attrs: Attrs, public target: string, inode?: number) { super(attrs, inode) }
}

/**
 * A directory's entries, counting its subdirectories (and symlinks) as they come and go, so a
 * directory's link count (2 + subdirectories) costs nothing to answer however many entries it has. Every path that
 * fills a directory (ops, adoption of a peer's tree, loads from git and from a snapshot) goes
 * through set and delete.
 */
export class Children extends Map<string, Node> {
  dirs = 0
  /** Symlinks among the entries: a commit looks for them (their times go in the directory's marker) only where there are some. */
  symlinks = 0
  /**
   * The names whose entries may have changed since the last commit planned this directory, for a
   * large one, which keeps its last tree (tree-cache.ts); null where nobody follows them.
   */
  changes: Set<string> | null = null

  override set (name: string, node: Node): this {
    const old = super.get(name)
    if (old?.kind === 'dir') this.dirs--
    else if (old?.kind === 'symlink') this.symlinks--
    if (node.kind === 'dir') this.dirs++
    else if (node.kind === 'symlink') this.symlinks++
    this.changes?.add(name)
    return super.set(name, node)
  }

  override delete (name: string): boolean {
    const old = super.get(name)
    if (old?.kind === 'dir') this.dirs--
    else if (old?.kind === 'symlink') this.symlinks--
    this.changes?.add(name)
    return super.delete(name)
  }

  override clear (): void {
    this.dirs = 0
    this.symlinks = 0
    // Which names changed is lost: the next commit writes the whole tree.
    this.changes = null
    super.clear()
  }

  /** The names noted since the last call, noting anew from now (null: none were noted until now). */
  takeChanges (): Set<string> | null {
    const taken = this.changes
    this.changes = new Set()
    return taken
  }

  /** Gives back what takeChanges took, for a commit that failed. */
  restoreChanges (taken: Set<string> | null): void {
    if (taken === null || this.changes === null) {
      this.changes = null
      return
    }
    for (const name of this.changes) taken.add(name)
    this.changes = taken
  }

  /** Stops noting (a directory no longer large). */
  forgetChanges (): void {
    this.changes = null
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
          file.addOther({ dir, name })
        }
      }
    }
  }
}

/**
 * Gives every node that shares its inode number with another a number of its own, so no two files
 * look like one to `mv`, `cp`, `diff` and `[ -ef ]` (which compare numbers before anything else).
 * Two entries carry one number when a merge keeps both versions of a file (a conflict copy, or a
 * file changed on one node while renamed on another) or when two draws meet. The rule depends only
 * on the tree, so every node that holds the same tree shows the same numbers: the name that is not
 * a conflict copy keeps it, then the first path in byte order; each other name gets a number
 * derived from the shared number and its path. The new number lives in memory and the snapshot, and
 * reaches git with the node's next change, so a peer's next load agrees. Returns how many changed.
 *
 * `suspects`: when only these numbers can be shared (those of the nodes an adoption placed), a
 * walk that only looks for them comes first; the full pass, which costs about ten times as much
 * (40 ms for 100,000 names), runs only when one of them is found twice. Without suspects (a load),
 * the numbers sorted tell first whether any is shared at all (a million names: ~0.15 s against the
 * full pass's 0.7 s), which is nearly never.
 */
export function separateInodes (root: DirNode, suspects?: ReadonlySet<number>): number {
  if (suspects !== undefined ? !anyShared(root, suspects) : !anyRepeated(root)) return 0
  const byInode = new Map<number, Node | Node[]>()
  const visit = (node: Node): void => {
    const known = byInode.get(node.inode)
    if (known === undefined) byInode.set(node.inode, node)
    else if (Array.isArray(known)) { if (!known.includes(node)) known.push(node) } else if (known !== node) byInode.set(node.inode, [known, node])
    if (node.kind === 'dir') for (const child of node.children.values()) visit(child)
  }
  visit(root)
  let changed = 0
  for (const [inode, nodes] of byInode) {
    if (!Array.isArray(nodes)) continue
    const ranked = nodes.map(node => ({ node, key: `${isConflictCopyName(node.name) ? 1 : 0}${node.path()}` }))
      .sort((a, b) => a.key < b.key ? -1 : a.key > b.key ? 1 : 0)
    for (const { node, key } of ranked.slice(1)) {
      let next = derivedInode(inode, key)
      while (byInode.has(next)) next = derivedInode(next, key)
      node.inode = next
      byInode.set(next, node)
      changed++
    }
  }
  return changed
}

/** Whether two nodes at or below `root` have one number (a file's other names are the file, not another node). */
function anyRepeated (root: DirNode): boolean {
  let numbers = new Float64Array(1024)
  let n = 0
  const linked = new Set<FileNode>()
  const visit = (dir: DirNode): void => {
    for (const child of dir.children.values()) {
      if (child.kind === 'file' && child.others.length > 0) {
        if (linked.has(child)) continue
        linked.add(child)
      }
      if (n === numbers.length) {
        const grown = new Float64Array(n * 2)
        grown.set(numbers)
        numbers = grown
      }
      numbers[n++] = child.inode
      if (child.kind === 'dir') visit(child)
    }
  }
  numbers[n++] = root.inode
  visit(root)
  const sorted = numbers.subarray(0, n).sort()
  for (let i = 1; i < n; i++) if (sorted[i] === sorted[i - 1]) return true
  return false
}

function anyShared (root: DirNode, suspects: ReadonlySet<number>): boolean {
  if (suspects.size === 0) return false
  const seen = new Map<number, Node>()
  const visit = (node: Node): boolean => {
    if (suspects.has(node.inode)) {
      const known = seen.get(node.inode)
      if (known !== undefined && known !== node) return true
      seen.set(node.inode, node)
    }
    if (node.kind === 'dir') for (const child of node.children.values()) if (visit(child)) return true
    return false
  }
  return visit(root)
}

/** Every node's number at or below `node`. */
export function inodesBelow (node: Node, out = new Set<number>()): Set<number> {
  out.add(node.inode)
  if (node.kind === 'dir') for (const child of node.children.values()) inodesBelow(child, out)
  return out
}

function derivedInode (inode: number, key: string): number {
  const n = Number(createHash('sha256').update(`${inode}\0${key}`).digest().readBigUInt64BE() % BigInt(VOLUME_INODES_TO - VOLUME_INODES_FROM))
  return VOLUME_INODES_FROM + n
}

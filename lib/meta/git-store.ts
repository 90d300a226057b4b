// The volume's git repository (bare, isomorphic-git): loading the index from a commit, and writing a
// commit that rewrites only the trees whose contents changed since the last one.
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import { dirname, join } from 'node:path'
import git from 'isomorphic-git'
import type { Logger } from '../core/log.js'
import { fsyncFile, writeFileDurable, syncDir } from '../core/durable.js'
import { isObjectId } from '../core/ids.js'
import { SwarmError } from '../core/errors.js'
import { BadObjectError } from './object-errors.js'
import { MAX_COMMIT_BYTES, parseCommit, type CommitInfo } from './object-store.js'
import { encodeTree, isSound, ObjectReader, ObjectWriter, readLooseObject, type EncodedTree, type ObjectBatch, type TreeEntry, type TreeItem } from './objects.js'
import { changeTree, CHECK_TREES, keptTreeOf, LARGE_TREE_ENTRIES } from './tree-cache.js'
import { decodeFile, decodeMarker, encodeDirMarker, encodeFile, isSymlinkTarget, type DirMarker, type MarkerLinks } from './entry-codec.js'
import { DIR_MARKER, fromGitName, isSafeName, toGitName } from './names.js'
import { DirNode, FileNode, isVolumeInode, ROOT_INODE, SymlinkNode, type Attrs, type Node } from './nodes.js'

export const BRANCH = 'refs/heads/main'
const MODE_FILE = '100644'
const MODE_EXEC = '100755'
const MODE_DIR = '040000'
const MODE_LINK = '120000'
/** Entries of one directory loaded at once (the object reader's own bound is 32 reads). */
const LOAD_SLICE = 32

export interface Signature { name: string, email: string }

export class GitStore {
  private readonly objects: ObjectReader
  private readonly writer: ObjectWriter
  private readonly syncedPacks = new Set<string>()
  /** The tree each large directory's last commit wrote (tree-cache.ts). */
  private readonly lastTrees = new WeakMap<DirNode, EncodedTree>()
  /** A buffer of the tree before the last, for the next one (see changeTree). */
  private readonly spareRooms = new WeakMap<DirNode, Buffer>()
  /** Large directories as loaded, with no commit of theirs yet: the tree git holds for them. */
  private readonly loadedTrees = new WeakMap<DirNode, EncodedTree>()
  /** `volumeId`: entries whose torrent info names another volume are refused (null: not checked). */
  constructor (readonly gitdir: string, private readonly log: Logger, private readonly volumeId: string | null = null) {
    this.objects = new ObjectReader(gitdir)
    this.writer = new ObjectWriter(gitdir)
  }

  /** Creates the repository (isomorphic-git writes it without syncing: synced here). */
  async init (): Promise<void> {
    await git.init({ fs, gitdir: this.gitdir, bare: true, defaultBranch: 'main' })
    for (const file of ['config', 'HEAD']) await fsyncFile(join(this.gitdir, file))
    const dirs = ['hooks', 'info', 'objects/info', 'objects/pack', 'objects', 'refs/heads', 'refs/tags', 'refs', '.', '..']
    for (const dir of dirs) await syncDir(join(this.gitdir, dir))
  }

  /**
   * Writes again what a repository needs to be one, when a power cut took it (a repository
   * created by a version that did not sync it): HEAD naming the branch, and the config.
   */
  async repairSkeleton (): Promise<string[]> {
    const repaired: string[] = []
    if (!fs.existsSync(this.gitdir)) return repaired
    const head = join(this.gitdir, 'HEAD')
    if (!(fs.readFileSync(head, { encoding: 'utf8', flag: 'a+' }).startsWith('ref: '))) {
      await writeFileDurable(head, `ref: ${BRANCH}\n`)
      repaired.push('HEAD')
    }
    const config = join(this.gitdir, 'config')
    if (!/^\[core\]/.test(fs.readFileSync(config, { encoding: 'utf8', flag: 'a+' }))) {
      await writeFileDurable(config, '[core]\n\trepositoryformatversion = 0\n\tfilemode = false\n\tbare = true\n\tsymlinks = false\n\tignorecase = true\n')
      repaired.push('config')
    }
    for (const dir of ['objects/pack', 'objects/info', 'refs/heads', 'refs/tags']) fs.mkdirSync(join(this.gitdir, dir), { recursive: true })
    return repaired
  }

  async head (): Promise<string | null> {
    try {
      return await git.resolveRef({ fs, gitdir: this.gitdir, ref: BRANCH })
    } catch {
      return null
    }
  }

  /** Whether the branch's file exists (HEAD may still not resolve: an empty or damaged file). */
  hasBranchFile (): boolean {
    return fs.existsSync(join(this.gitdir, BRANCH))
  }

  /**
   * Moves the branch atomically and durably (isomorphic-git writes refs in place: a crash could
   * empty it). The objects it names must be durable first (`syncObjects`).
   */
  async setHead (oid: string): Promise<void> {
    if (!isObjectId(oid)) throw new BadObjectError(oid, 'not a commit id')
    const path = join(this.gitdir, BRANCH)
    await fs.promises.mkdir(dirname(path), { recursive: true })
    // The temporary name git itself uses, which no reader takes for a branch.
    await writeFileDurable(path, oid + '\n', 0o644, path + '.lock')
  }

  /**
   * Makes every object this process wrote or fetched durable: loose objects were synced as they
   * were written (this syncs their directories), packs a fetch wrote are synced here.
   */
  async syncObjects (): Promise<void> {
    await this.writer.flush()
    const packDir = join(this.gitdir, 'objects', 'pack')
    const names = fs.existsSync(packDir) ? fs.readdirSync(packDir) : []
    const fresh = names.filter(n => !this.syncedPacks.has(n) && /\.(pack|idx)$/.test(n))
    if (fresh.length === 0) return
    await Promise.all(fresh.map(async n => await fsyncFile(join(packDir, n))))
    await syncDir(packDir)
    for (const n of fresh) this.syncedPacks.add(n)
  }

  /**
   * Removes what a power cut may have left damaged before any reader meets it: packs cut short
   * (their index's record of the pack's checksum is not the pack's own trailer), indexes without
   * their pack. Their objects come again from the peers that sent them. Returns what was removed.
   */
  repairPacks (): string[] {
    const packDir = join(this.gitdir, 'objects', 'pack')
    if (!fs.existsSync(packDir)) return []
    const names = fs.readdirSync(packDir)
    const removed: string[] = []
    for (const idx of names.filter(n => n.endsWith('.idx'))) {
      const base = idx.slice(0, -'.idx'.length)
      if (packIsWhole(join(packDir, idx), join(packDir, base + '.pack'))) continue
      for (const n of names.filter(n => n.startsWith(base + '.'))) fs.rmSync(join(packDir, n), { force: true })
      removed.push(base)
    }
    return removed
  }

  /**
   * Removes loose objects that do not read back whole (empty, cut short, garbage) and returns
   * their ids; a slow walk of every object, for a start that found the repository damaged.
   */
  removeDamagedObjects (): string[] {
    const removed: string[] = []
    for (const oid of this.looseObjects()) {
      if (isSound(this.gitdir, oid)) continue
      fs.rmSync(join(this.gitdir, 'objects', oid.slice(0, 2), oid.slice(2)), { force: true })
      removed.push(oid)
    }
    return removed
  }

  /** The loose commits, newest first (by committer time): where a start falls back to. */
  looseCommits (): string[] {
    const commits: Array<{ oid: string, time: number }> = []
    for (const oid of this.looseObjects()) {
      let obj: { type: string, body: Buffer } | null
      try {
        obj = readLooseObject(this.gitdir, oid)
      } catch {
        continue
      }
      if (obj?.type !== 'commit') continue
      const time = Number(/^committer .* (\d+) [+-]\d{4}$/m.exec(obj.body.toString('utf8'))?.[1] ?? 0)
      commits.push({ oid, time })
    }
    return commits.sort((a, b) => b.time - a.time || (a.oid < b.oid ? -1 : 1)).map(c => c.oid)
  }

  private looseObjects (): string[] {
    const objects = join(this.gitdir, 'objects')
    const oids: string[] = []
    for (const fan of fs.existsSync(objects) ? fs.readdirSync(objects) : []) {
      if (!/^[0-9a-f]{2}$/.test(fan)) continue
      let names: string[]
      try {
        names = fs.readdirSync(join(objects, fan))
      } catch {
        // Emptied and removed by a repack meanwhile.
        continue
      }
      for (const rest of names) if (/^[0-9a-f]{38}$/.test(rest)) oids.push(fan + rest)
    }
    return oids
  }

  /** The empty tree's id, the object written if missing. */
  async emptyTree (): Promise<string> {
    return await this.writer.writeTree([])
  }

  async treeOf (commit: string): Promise<string> {
    return (await this.commitInfo(commit)).tree
  }

  async parentsOf (commit: string): Promise<string[]> {
    return (await this.commitInfo(commit)).parents
  }

  /** Read natively, like every object (isomorphic-git would parse every pack index per call). */
  async commitInfo (commit: string): Promise<CommitInfo> {
    return parseCommit(commit, await this.objects.read(commit, 'commit', { maxBytes: MAX_COMMIT_BYTES }))
  }

  async hasObject (oid: string): Promise<boolean> {
    return await this.objects.has(oid)
  }

  /**
   * Builds the index from a commit; entries that fail validation are logged and left out. Nodes of
   * `reuse` (an older index) whose oid is unchanged are taken as they are instead of being read;
   * those read again at a name `reuse` has keep its node's inode number.
   */
  async load (commit: string | null, defaults: Attrs, reuse?: DirNode): Promise<DirNode> {
    const root = new DirNode({ ...defaults })
    root.isRoot = true
    root.inode = ROOT_INODE
    if (commit === null) return root
    await this.loadDir(root, await this.treeOf(commit), '', defaults, reuse)
    return root
  }

  private async loadDir (dir: DirNode, treeOid: string, path: string, defaults: Attrs, reuse?: DirNode): Promise<void> {
    if (reuse !== undefined && reuse.oid === treeOid) {
      dir.attrs = reuse.attrs
      if (dir.isRoot) dir.volume = reuse.volume
      for (const [name, child] of reuse.children) {
        dir.children.set(name, child)
        child.parent = dir
      }
      dir.oid = treeOid
      return
    }
    const tree = await this.objects.readTree(treeOid)
    let links: MarkerLinks = new Map()
    // Entries are taken in the tree's order, LOAD_SLICE files at a time and each subdirectory on
    // its own, as git walks a tree to pack it: a pack's entries are then read in about the order
    // they lie (meta/packs.ts reads ahead), where 32 directories at once read it all over. Reads of
    // local objects are synchronous, so more in parallel gain nothing; a whole tree of promises at
    // once held a cold load's every pending entry alive (a 100,000-file load peaked at 430 MB of
    // heap, against 200 MB in slices).
    const load = async (entry: TreeEntry): Promise<Node | null> => {
      if (entry.name === DIR_MARKER) {
        const marker = await this.readMarker(entry.oid, dir.attrs)
        dir.attrs = marker.attrs
        adoptMarkerInode(dir, marker.ino)
        links = marker.links
        // Settings in any other directory's marker mean nothing (a peer may have put them there).
        if (dir.isRoot) dir.volume = marker.volume
        return null
      }
      const name = fromGitName(entry.name)
      const old = reuse?.children.get(name)
      if (old !== undefined && old.oid === entry.oid && old.kind !== 'dir' && entry.type === 'blob') return old
      const node = await this.loadEntry(entry, path, defaults, old?.kind === 'dir' ? old : undefined)
      // A name read again keeps its inode number, unless its entry holds one: what changed is its
      // content, not which file it is.
      if (node !== null && old !== undefined && old.kind === node.kind && !isVolumeInode(node.inode)) node.inode = old.inode
      return node
    }
    const nodes: Array<Node | null> = []
    for (let from = 0; from < tree.length;) {
      let to = from + 1
      if (tree[from].type !== 'tree') while (to < tree.length && to - from < LOAD_SLICE && tree[to].type !== 'tree') to++
      nodes.push(...await Promise.all(tree.slice(from, to).map(load)))
      from = to
    }
    for (const node of nodes) {
      if (node === null) continue
      if (dir.children.has(node.name)) {
        this.log.warn('refused tree entry: duplicate name', { path: `${path}/${node.name}` })
        continue
      }
      dir.children.set(node.name, node)
      node.parent = dir
    }
    applyLinkAttrs(dir, links)
    dir.oid = treeOid
  }

  async readTree (oid: string): Promise<TreeEntry[]> {
    return await this.objects.readTree(oid)
  }

  /** A directory's own attributes, those of its symlinks and (the root's) the volume settings. */
  async readMarker (oid: string, fallback: Attrs): Promise<DirMarker> {
    return decodeMarker((await this.objects.readBlob(oid)).toString('utf8'), fallback)
  }

  /**
   * The node a tree entry describes (a directory with everything below it), named and with its
   * oid; null for an entry that fails validation, which is logged.
   */
  async loadEntry (entry: TreeEntry, parentPath: string, defaults: Attrs, reuse?: DirNode): Promise<Node | null> {
    const name = fromGitName(entry.name)
    const where = `${parentPath}/${name}`
    if (!isSafeName(name) || entry.name === DIR_MARKER) {
      this.log.warn('refused tree entry: unsafe name', { path: `${parentPath}/${JSON.stringify(entry.name)}` })
      return null
    }
    const read = async (oid: string): Promise<string> => (await this.objects.readBlob(oid)).toString('utf8')
    let node: Node
    if (entry.type === 'tree' && entry.mode === MODE_DIR) {
      const sub = new DirNode({ ...defaults })
      await this.loadDir(sub, entry.oid, where, defaults, reuse)
      node = sub
    } else if (entry.type === 'blob' && entry.mode === MODE_LINK) {
      const target = await read(entry.oid)
      if (!isSymlinkTarget(target)) {
        this.log.warn('refused tree entry: bad symlink target', { path: where })
        return null
      }
      node = new SymlinkNode({ ...defaults, perm: 0o777 }, target)
    } else if (entry.type === 'blob' && (entry.mode === MODE_FILE || entry.mode === MODE_EXEC)) {
      const text = await read(entry.oid)
      // A clone from a peer at join is first loaded here: every entry gets the full check but
      // the infohash's SHA-1 (the clone's objects were checked against their own ids).
      const decoded = decodeFile(text, { ...defaults, perm: 0o644 }, false, this.volumeId)
      if (typeof decoded === 'string') {
        this.log.warn('refused tree entry: ' + decoded, { path: where })
        return null
      }
      const file = new FileNode(decoded.attrs, decoded.ino ?? undefined)
      file.size = decoded.size
      file.content = decoded.content
      file.by = decoded.by
      file.special = decoded.special
      file.linkId = decoded.linkId
      node = file
    } else {
      this.log.warn('refused tree entry: unsupported type', { path: where, mode: entry.mode })
      return null
    }
    node.name = name
    node.oid = entry.oid
    return node
  }

  /**
   * Writes (durably: see `setHead`) the trees of every directory changed since the last commit and a commit on top of
   * `parents`. The tree is read synchronously into a plan first, so the commit is one consistent
   * state even while FUSE keeps changing the index during the writes.
   */
  async commit (root: DirNode, parents: string[], message: string, author: Signature, time: number): Promise<string> {
    const tracked: PlannedDir[] = []
    const plan = this.planDir(root, tracked)
    try {
      // One batch: a burst's thousands of new entries become one pack, not a synced file each.
      const batch = this.writer.batch()
      const written: Written[] = []
      const kept: Array<{ dir: DirNode, tree: EncodedTree }> = []
      const tree = await this.writePlan(plan, batch, written, kept)
      const sig = { ...author, timestamp: Math.floor(time / 1000), timezoneOffset: 0 }
      const commit = await batch.writeCommit({ message, tree, parent: parents, author: sig, committer: sig })
      await batch.finish()
      // Only now are the objects stored: a node that took its oid earlier would have a failed
      // commit's next attempt name an object that is not there.
      for (const w of written) if (w.node.version === w.version) w.node.oid = w.oid
      for (const k of kept) {
        const before = this.lastTrees.get(k.dir)
        this.lastTrees.set(k.dir, k.tree)
        // Nothing reads the tree before this one any more: the next is written into its buffer.
        if (before !== undefined && before.room !== k.tree.room) this.spareRooms.set(k.dir, before.room ?? before.body)
      }
      return commit
    } catch (err) {
      // The trees kept are still those of the last commit: the changes since it are noted again.
      // A write of the failed commit may still be reading a spare buffer: it is not reused.
      for (const p of tracked) {
        p.node.children.restoreChanges(p.taken ?? null)
        this.spareRooms.delete(p.node)
      }
      throw err
    }
  }

  /**
   * The large directories of a tree just loaded follow their changes from now on, and the trees
   * git holds for them are read in the background, so that their first commit starts from those
   * rather than from every entry (one still under way when that commit comes is not waited for).
   */
  keepTreesOf (root: DirNode): void {
    const walk = (dir: DirNode): void => {
      if (dir.oid !== undefined && dir.children.size >= LARGE_TREE_ENTRIES && dir.children.changes === null) {
        dir.children.changes = new Set()
        const oid = dir.oid
        void this.readKeptTree(oid).then(tree => {
          if (tree !== undefined && !this.lastTrees.has(dir)) this.loadedTrees.set(dir, tree)
        })
      }
      if (dir.children.dirs > 0) for (const child of dir.children.values()) if (child.kind === 'dir') walk(child)
    }
    walk(root)
  }

  /** A tree as tree-cache.ts keeps it; undefined when it does not read (the commit then writes it whole). */
  private async readKeptTree (oid: string): Promise<EncodedTree | undefined> {
    try {
      const body = await this.objects.readTreeBody(oid)
      if (createHash('sha1').update(`tree ${body.length}\0`).update(body).digest('hex') !== oid) return undefined
      return keptTreeOf(body) ?? undefined
    } catch (err) {
      this.log.debug('a large directory\'s tree did not read: its next commit writes it whole', { oid, err: (err as Error).message })
      return undefined
    }
  }

  /**
   * A plan of the directory's tree, read synchronously. A large directory with its last tree kept
   * is planned from the names changed since (tree-cache.ts), not from every entry.
   */
  private planDir (dir: DirNode, tracked: PlannedDir[]): PlannedDir {
    const marker: PlannedEntry = { name: DIR_MARKER, mode: MODE_FILE, blob: encodeDirMarker(dir) }
    const plan: PlannedDir = { node: dir, version: dir.version, entries: [marker] }
    if (dir.children.size < LARGE_TREE_ENTRIES) {
      if (dir.children.changes !== null) {
        dir.children.forgetChanges()
        this.lastTrees.delete(dir)
      }
    } else {
      plan.taken = dir.children.takeChanges()
      tracked.push(plan)
      const base = plan.taken !== null ? this.lastTrees.get(dir) ?? this.loadedTrees.get(dir) : undefined
      this.loadedTrees.delete(dir)
      if (plan.taken !== null && base !== undefined) {
        plan.base = base
        plan.gone = [DIR_MARKER]
        for (const name of plan.taken) plan.gone.push(toGitName(name))
        // Checked: every entry is planned as below, and writePlan picks the changed ones.
        if (!CHECK_TREES) {
          for (const name of plan.taken) {
            const node = dir.children.get(name)
            if (node !== undefined) plan.entries.push(this.planEntry(name, node, tracked))
          }
          return plan
        }
      }
    }
    for (const [name, node] of dir.children) plan.entries.push(this.planEntry(name, node, tracked))
    return plan
  }

  private planEntry (name: string, node: Node, tracked: PlannedDir[]): PlannedEntry {
    const gitName = toGitName(name)
    if (node.kind === 'dir') {
      return node.oid !== undefined
        ? { name: gitName, mode: MODE_DIR, oid: node.oid }
        : { name: gitName, mode: MODE_DIR, dir: this.planDir(node, tracked) }
    }
    const mode = node.kind === 'symlink' ? MODE_LINK : (node.attrs.perm & 0o111) !== 0 ? MODE_EXEC : MODE_FILE
    if (node.oid !== undefined) return { name: gitName, mode, oid: node.oid }
    const blob = node.kind === 'symlink' ? node.target : encodeFile(node)
    return { name: gitName, mode, blob, node, version: node.version }
  }

  private async writePlan (plan: PlannedDir, batch: ObjectBatch, written: Written[], kept: Array<{ dir: DirNode, tree: EncodedTree }>): Promise<string> {
    const entries: TreeItem[] = []
    const writes: Array<Promise<void>> = []
    for (const item of plan.entries) {
      if (item.oid !== undefined) {
        // Already a tree item: a million-entry directory makes no second million objects.
        entries.push(item as TreeItem)
        continue
      }
      const entry = { name: item.name, mode: item.mode, oid: '' }
      entries.push(entry)
      writes.push((async () => {
        entry.oid = item.dir !== undefined
          ? await this.writePlan(item.dir, batch, written, kept)
          : await batch.writeBlob(Buffer.from(item.blob ?? ''))
        if (item.node !== undefined && item.version !== undefined) written.push({ node: item.node, version: item.version, oid: entry.oid })
      })())
    }
    await Promise.all(writes)
    const room = this.spareRooms.get(plan.node)
    this.spareRooms.delete(plan.node)
    const tree = treeOfPlan(plan, entries, room)
    const oid = batch.writeTreeBody(tree.body)
    if (plan.taken !== undefined) kept.push({ dir: plan.node, tree })
    written.push({ node: plan.node, version: plan.version, oid })
    return oid
  }
}

/** The tree of a plan whose entries have their oids: whole, or from the directory's last tree. */
function treeOfPlan (plan: PlannedDir, entries: TreeItem[], room: Buffer | undefined): EncodedTree {
  if (plan.base === undefined || plan.gone === undefined) return encodeTree(entries)
  if (!CHECK_TREES) return changeTree(plan.base, plan.gone, entries, room)
  const changed = new Set(plan.gone)
  const tree = changeTree(plan.base, plan.gone, entries.filter(e => changed.has(e.name)), room)
  const whole = encodeTree(entries)
  if (!tree.body.equals(whole.body) || !Buffer.from(tree.starts.buffer).equals(Buffer.from(whole.starts.buffer))) {
    throw new SwarmError('SWARMFS_INTERNAL', `the tree of ${plan.node.path()} written from its last one differs from the whole one (${plan.gone.length} names changed)`)
  }
  return tree
}

/** A node and the oid its version was written as (taken once the commit's objects are stored). */
interface Written { node: Node, version: number, oid: string }

interface PlannedEntry {
  /** The git name (escaped). */
  name: string
  mode: string
  oid?: string
  blob?: string
  dir?: PlannedDir
  node?: Node
  version?: number
}

interface PlannedDir {
  node: DirNode
  version: number
  /** Every entry; with `base`, only those of the names that changed (all of them, checked). */
  entries: PlannedEntry[]
  /** A large directory's tree as its last commit wrote it (tree-cache.ts). */
  base?: EncodedTree
  /** With `base`: the git names whose entries there go (the marker's, and every one changed). */
  gone?: string[]
  /** A large directory: the changes this plan took (null: none noted), given back if the commit fails. */
  taken?: Set<string> | null
}

export type { MarkerLinks }

/** Gives a directory's symlinks the times and owner its marker holds for them. */
export function applyLinkAttrs (dir: DirNode, links: MarkerLinks): void {
  for (const [name, { attrs, ino }] of links) {
    const child = dir.children.get(name)
    if (child?.kind !== 'symlink') continue
    child.attrs = { ...child.attrs, ...attrs }
    if (ino !== null) child.inode = ino
  }
}

/** The root's number is the same on every node without being stored, so a marker cannot move it. */
export function adoptMarkerInode (dir: DirNode, ino: number | null): void {
  if (ino !== null && !dir.isRoot) dir.inode = ino
}

/** Whether a pack is whole: long enough, and its trailer is the checksum its index recorded for it. */
function packIsWhole (idxPath: string, packPath: string): boolean {
  try {
    const idx = fs.readFileSync(idxPath)
    const pack = fs.statSync(packPath)
    // An index ends with the pack's checksum, then its own; a pack with a 12-byte header and its checksum.
    if (idx.length < 8 + 256 * 4 + 40 || pack.size < 32) return false
    if (!createHash('sha1').update(idx.subarray(0, idx.length - 20)).digest().equals(idx.subarray(idx.length - 20))) return false
    const fd = fs.openSync(packPath, 'r')
    try {
      const trailer = Buffer.alloc(20)
      fs.readSync(fd, trailer, 0, 20, pack.size - 20)
      return trailer.equals(idx.subarray(idx.length - 40, idx.length - 20))
    } finally {
      fs.closeSync(fd)
    }
  } catch {
    return false
  }
}

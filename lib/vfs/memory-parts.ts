// Memory versions of the core's ports, for running the filesystem in a test process without a
// disk's metadata, a swarm or a full disk. The index is the same pure tree and ops Meta serves
// (nodes.ts, ops.ts), with no journal and no commits: every change is durable at once. (Meta itself
// cannot run without its git repository, and would test git, not the filesystem.) Contents stay
// in a ContentStore on a temporary directory: the core reads and writes them by fd, which is the
// path it takes on a real disk too. The remote reader's memory version is in test/conformance.
import { ContentRefs } from '../core/content-refs.js'
import { Counts } from '../core/counts.js'
import type fs from 'node:fs'
import { FsError } from '../core/errors.js'
import { applyOp, lookup, mustLookup, type Op, type Released } from '../meta/ops.js'
import { DirNode, type FileNode, type Node } from '../meta/nodes.js'
import type { MetadataIndex, SpacePort } from './ports.js'

export class MemoryIndex implements MetadataIndex {
  readonly root: DirNode
  readonly contentRefs = new ContentRefs()
  private readonly writing = new Set<FileNode>()
  private readonly staged = new Set<FileNode>()
  private readonly pinned = new Counts()

  /** `onReleased`: what no node refers to any more (the content store removes it). */
  constructor (private readonly onReleased: (released: Released) => void = () => {}) {
    const now = Date.now()
    this.root = new DirNode({ perm: 0o755, uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0, mtime: now, ctime: now, atime: now })
    this.root.isRoot = true
  }

  lookup (path: string): Node | undefined {
    return lookup(this.root, path)
  }

  mustLookup (path: string): Node {
    return mustLookup(this.root, path)
  }

  apply (op: Op): void {
    const released = applyOp(this.root, op)
    if (op.op === 'stage') this.staged.add(this.mustLookup(op.path) as FileNode)
    for (const ref of released.added) this.contentRefs.add(ref)
    const contents = released.contents.filter(ih => this.contentRefs.remove(ih) && !this.pinned.has(ih))
    if (contents.length > 0 || released.staged.length > 0) this.onReleased({ contents, staged: released.staged, added: [] })
  }

  beginWrite (file: FileNode): void {
    this.writing.add(file)
  }

  endWrite (file: FileNode): void {
    this.writing.delete(file)
  }

  /** Whether a write session is open on `file` (as Meta keeps it for a sync). */
  isWriting (file: FileNode): boolean {
    return this.writing.has(file)
  }

  pin (infohash: string): void {
    this.pinned.add(infohash)
  }

  unpin (infohash: string): void {
    this.pinned.remove(infohash)
  }

  letGo (infohash: string): void {
    if (!this.contentRefs.has(infohash) && !this.pinned.has(infohash)) this.onReleased({ contents: [infohash], staged: [], added: [] })
  }

  whenDurable (run: () => void): void {
    run()
  }

  stagedNow (): FileNode[] {
    return [...this.staged].filter(f => f.staged !== null && f.attached())
  }

  async syncJournalAsync (): Promise<void> {}

  syncDirectory (): void {}
}

/** A disk of `total` bytes, of which writes may take `free`; `df` shows it. */
export class MemorySpace implements SpacePort {
  constructor (private free = 1 << 30, private readonly total = 1 << 30) {}

  claim (bytes: number): void {
    if (bytes > this.free) throw new FsError('ENOSPC', 'ENOSPC: the memory disk is full', { free: this.free })
    this.free -= bytes
  }

  statfs (): fs.StatsFs {
    const bsize = 4096
    const blocks = Math.floor(this.total / bsize)
    const free = Math.floor(this.free / bsize)
    return { type: 0, bsize, blocks, bfree: free, bavail: free, files: 1 << 20, ffree: 1 << 20 }
  }
}

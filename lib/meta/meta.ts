// The metadata of a volume on one disk: the in-memory index FUSE is served from, the journal that
// makes acknowledged changes survive a crash, and the git commits they become, in batches.
import { ContentRefs } from '../core/content-refs.js'
import { Counts } from '../core/counts.js'
import fs from 'node:fs'
import { dirname, join } from 'node:path'
import { FsError, SwarmError } from '../core/errors.js'
import type { Logger } from '../core/log.js'
import { GitStore, type Signature } from './git-store.js'
import { Journal } from './journal.js'
import { applyOp, lookup, mustLookup, type Op, type Released } from './ops.js'
import { drawVolumeInode, LinkJoiner, separateInodes, stagedTimes, type Attrs, type DirNode, type FileNode, type Node } from './nodes.js'
import { loadSnapshot, saveSnapshot } from './snapshot.js'
import { fsyncDirSync, writeFileDurable } from '../core/durable.js'
import { applyAdoption, planAdoption, type ConflictNamer } from './adopt.js'
import { compareSettings, effectiveSettings, isValidCopies, isValidGraceMs, MAX_COPIES, MIN_COPIES, type VolumeSettings } from './volume-settings.js'

export interface MetaOptions {
  gitdir: string
  journalDir: string
  stateDir: string
  nodeId: string
  log: Logger
  /** Called when no node refers to a content or a staged file any more. */
  onReleased: (released: Released) => void
  /** Called after HEAD moved (a local commit or a commit taken from a peer). */
  onHead?: (head: string) => void
  /** Called after the volume settings in force changed (set here, or taken from a peer). */
  onVolumeSettings?: (settings: VolumeSettings) => void
  /** Delay between a change and the commit that carries it; changes arriving meanwhile join it. */
  commitDelayMs?: number
  /** The volume's id: torrent info naming another is refused (GitStore). */
  volumeId?: string
}

/** What a sync's merge produced: HEAD stays, moves to the peer's head, or to a merge commit. */
export interface MergeOutcome { kind: 'up-to-date' | 'fast-forward' | 'merged', commit: string }

interface CommitState { commit: string, seq: number }

/**
 * How long a batch may grow while changes keep coming with no pause. Each commit costs every peer
 * a fetch and a merge that read the changed directories whole, on the same cores as the burst:
 * once commits were cheap (packs), a burst of 10,000 creates became ~60 commits, and took 43-46 s
 * on A against 30-35 s before in alternating runs (noisy: 2 shared cores); with a commit a
 * second at most, 29-42 s. A single change, or a burst's end, is committed once quiet.
 */
const BURST_COMMIT_MS = 1000

export class Meta {
  private commitTimer: NodeJS.Timeout | null = null
  private committing: Promise<void> | null = null
  /** A sync moving HEAD to a peer's commit; local commits wait for it, and it for them. */
  private syncing: Promise<unknown> | null = null
  /** Files open for writing, as the filesystem tells (beginWrite, endWrite). */
  private readonly writing = new Set<Node>()
  /**
   * Nodes a sync must not replace: files open for writing or holding staged bytes. Their peer
   * versions are kept beside them as conflict copies.
   */
  private readonly busy = (node: Node): boolean => node.kind === 'file' && (node.staged !== null || this.writing.has(node))
  private dirty = false
  /**
   * How long the last commit took. A commit costs time in proportion to the directories it
   * rewrites, and runs on the thread FUSE shares, so the next one waits at least twice as long:
   * a burst of changes becomes a few commits and commits never take more than a third of the time.
   * Once changes stop (none for half as long as the last commit took, at least commitDelayMs), the
   * batch is committed at once: the end of a burst is what a peer waits for, and nothing competes
   * with the commit then. While they keep coming, a batch waits at least BURST_COMMIT_MS too.
   */
  private lastCommitMs = 0
  /** performance.now() of the latest change, and by when the batch under way is committed anyway. */
  private lastChangeAt = 0
  private commitDueAt = 0
  private closed = false
  /** Every content the tree refers to, with its torrent info (for a peer asking for one by infohash). */
  readonly contentRefs = new ContentRefs()
  /** Files with staged bytes; git does not hold those, so the journal must keep them. */
  private readonly stagedFiles = new Set<FileNode>()
  /**
   * What may happen only once the records through `seq` are durable (journal synced, or a commit
   * that covers them synced with its ref): removing the files the older state names. A power cut
   * may keep the removal and lose a record not yet synced, and the state on the disk would then
   * name a file that is gone.
   */
  private afterDurable: Array<{ seq: number, run: () => void }> = []
  /** The last record that changed names or attributes (not only a file's bytes). */
  private lastNameSeq = 0
  /** An op is being applied in `apply`; its record is appended after. */
  private applying = false
  /** Contents a seal is making durable and is about to name: not removed meanwhile. */
  private readonly pinned = new Counts()
  /** While an adoption is applied: its removals wait for the new HEAD to be durable, not for the journal. */
  private holding: Array<() => void> | null = null

  private constructor (
    private readonly opts: MetaOptions,
    private readonly git: GitStore,
    private readonly journal: Journal,
    public root: DirNode,
    public head: string | null,
    private committedSeq: number
  ) {}

  static async open (opts: MetaOptions): Promise<Meta> {
    const git = new GitStore(opts.gitdir, opts.log, opts.volumeId ?? null)
    fs.mkdirSync(opts.stateDir, { recursive: true })
    const repaired = await git.repairSkeleton()
    if (repaired.length > 0) opts.log.warn('wrote missing parts of the metadata repository again (a power cut?)', { repaired })
    // The names of the directories a new disk made (and of what they hold) durable before anything relies on them.
    for (const dir of new Set([dirname(opts.gitdir), dirname(opts.journalDir), dirname(opts.stateDir), opts.stateDir])) fsyncDirSync(dir)
    const removedPacks = git.repairPacks()
    if (removedPacks.length > 0) opts.log.warn('removed damaged packs (a power cut?); peers send their objects again', { packs: removedPacks })
    let head = await git.head()
    const state = readState(opts.stateDir)
    // The state names the commit a batch wrote before the ref moved: a crash between the two leaves
    // the ref one commit behind, which is finished here.
    if (state !== null && state.commit !== head && await git.hasObject(state.commit)) {
      const parents = await git.parentsOf(state.commit)
      // A ref that does not read (written in place by an older version, cut by a power loss) is
      // taken as one commit behind the state too.
      if (head === null ? parents.length === 0 || git.hasBranchFile() : parents.includes(head)) {
        await git.setHead(state.commit)
        head = state.commit
      }
    }
    const defaults = defaultAttrs()
    const snapshot = head !== null ? loadSnapshot(opts.stateDir) : null
    let root: DirNode
    try {
      root = snapshot !== null && snapshot.head === head ? snapshot.root : await git.load(head, defaults, snapshot?.root)
    } catch (err) {
      ({ head, root } = await loadDamaged(git, opts.log, err, [head, state?.commit ?? null, snapshot?.head ?? null], defaults))
    }
    // After a fall back to an older commit every record is replayed: one already in it no longer applies.
    const committedSeq = state !== null && state.commit === head ? state.seq : 0
    const { journal, records } = Journal.open(opts.journalDir, committedSeq)
    const meta = new Meta(opts, git, journal, root, head, committedSeq)
    // Before the replay: its changes are the first the large directories note.
    git.keepTreesOf(root)
    new LinkJoiner().joinBelow(root, file => {
      meta.countRef(file)
      if (file.staged !== null) meta.stagedFiles.add(file)
    })
    for (const { op } of records) {
      try {
        meta.applyLocal(op)
      } catch (err) {
        opts.log.warn('journal record no longer applies', { op: op.op, err })
      }
    }
    meta.separateSharedInodes()
    if (records.length > 0) {
      opts.log.info('replayed journal', { records: records.length })
      meta.dirty = true
      await meta.commitNow()
    }
    return meta
  }

  /** See nodes.ts: files that a merge or a chance left with one inode number get one each. */
  private separateSharedInodes (suspects?: ReadonlySet<number>): void {
    const changed = separateInodes(this.root, suspects)
    if (changed > 0) this.opts.log.debug('gave files that shared an inode number their own', { changed })
  }

  lookup (path: string): Node | undefined {
    return lookup(this.root, path)
  }

  mustLookup (path: string): Node {
    return mustLookup(this.root, path)
  }

  /** Applies a change and journals it; throws an FsError when POSIX forbids it. */
  apply (op: Op): void {
    if (this.closed) throw new SwarmError('SWARMFS_STOPPING', 'metadata is closed')
    // Drawn here, once, so the record carries it: a replay after a crash makes the same node.
    if ((op.op === 'mkdir' || op.op === 'create' || op.op === 'symlink') && op.ino === undefined) op = { ...op, ino: drawVolumeInode() }
    // What applying it lets go waits for its own record (appended next) to be durable.
    this.applying = true
    try {
      this.applyLocal(op)
    } finally {
      this.applying = false
    }
    const seq = this.journal.append(op)
    if (op.op !== 'stage' && op.op !== 'seal') this.lastNameSeq = seq
    this.lastChangeAt = performance.now()
    this.scheduleCommit()
  }

  /** A write session opened on `file`: a sync keeps a peer's version of it beside it, not over it. */
  beginWrite (file: FileNode): void {
    this.writing.add(file)
  }

  endWrite (file: FileNode): void {
    this.writing.delete(file)
  }

  /** The volume settings in force (the defaults where none were ever set). */
  volumeSettings (): VolumeSettings {
    return effectiveSettings(this.root.volume)
  }

  /**
   * Changes volume settings (what `change` leaves out keeps its value), durably as any other op;
   * throws an FsError (EINVAL) for a value out of range. Returns the settings now in force.
   */
  setVolumeSettings (change: { copies?: number, graceMs?: number }): VolumeSettings {
    const { copies, graceMs } = change
    if (copies !== undefined && !isValidCopies(copies)) {
      throw new FsError('EINVAL', `copies must be an integer from ${MIN_COPIES} to ${MAX_COPIES}`, { copies })
    }
    if (graceMs !== undefined && !isValidGraceMs(graceMs)) {
      throw new FsError('EINVAL', 'graceMs must be a non-negative integer (milliseconds)', { graceMs })
    }
    if (copies === undefined && graceMs === undefined) return this.volumeSettings()
    // Strictly after the settings in force, so a second change in the same millisecond (or after a
    // peer's clock ran ahead) still wins.
    const at = Math.max(Date.now(), this.volumeSettings().at + 1)
    this.apply({ op: 'setvolume', copies, graceMs, at })
    const settings = this.volumeSettings()
    this.opts.onVolumeSettings?.(settings)
    return settings
  }

  private applyLocal (op: Op): void {
    const released = applyOp(this.root, op)
    if (op.op === 'stage') this.stagedFiles.add(this.mustLookup(op.path) as FileNode)
    if (op.op === 'create' || op.op === 'stage' || op.op === 'seal' || op.op === 'setcontent' || op.op === 'setattr') {
      // This node wrote the version: a conflict copy of it will carry its id.
      const node = this.lookup(op.path)
      if (node?.kind === 'file') node.by = this.opts.nodeId
    }
    this.applyReleased(released)
  }

  /** Keeps content reference counts, and lets go of what nothing refers to any more. */
  private applyReleased (released: Released): void {
    for (const ref of released.added) this.contentRefs.add(ref)
    const unreferenced = released.contents.filter(ih => this.contentRefs.remove(ih))
    if (unreferenced.length > 0 || released.staged.length > 0) {
      this.whenDurable(() => {
        // Referenced again meanwhile (a seal of equal bytes): it stays.
        const contents = unreferenced.filter(ih => !this.contentRefs.has(ih) && !this.pinned.has(ih))
        if (contents.length > 0 || released.staged.length > 0) this.opts.onReleased({ contents, staged: released.staged, added: [] })
      })
    }
  }

  /** Runs `run` once every change applied so far is durable (at the latest after the next commit). */
  whenDurable (run: () => void): void {
    if (this.holding !== null) this.holding.push(run)
    else this.afterDurable.push({ seq: this.journal.lastSeq + (this.applying ? 1 : 0), run })
  }

  /** Keeps a content's file from being removed until `unpin` (see `pinned`). */
  pin (infohash: string): void {
    this.pinned.add(infohash)
  }

  unpin (infohash: string): void {
    this.pinned.remove(infohash)
  }

  /** A content a seal linked that no record names: removed as a released one is (see the port). */
  letGo (infohash: string): void {
    this.whenDurable(() => {
      if (!this.contentRefs.has(infohash) && !this.pinned.has(infohash)) this.opts.onReleased({ contents: [infohash], staged: [], added: [] })
    })
  }

  private durableThrough (seq: number): void {
    if (this.afterDurable.length === 0) return
    const due = this.afterDurable.filter(d => d.seq <= seq)
    this.afterDurable = this.afterDurable.filter(d => d.seq > seq)
    for (const d of due) {
      try {
        d.run()
      } catch (err) {
        this.opts.log.error('removing what a durable change replaced failed', { err })
      }
    }
  }

  /** Files whose staged bytes still wait to be sealed into content. */
  stagedNow (): FileNode[] {
    return [...this.stagedFiles].filter(f => f.staged !== null && f.attached())
  }

  /** Counts a loaded file's content (once, whatever number of names it has). */
  private countRef (file: FileNode): void {
    if (file.content !== null) this.contentRefs.add(file.content)
  }

  /**
   * fsync of a directory: its names and attributes durable. Records of bytes staged or sealed
   * since the last sync do not ask for one (an fsync of their file does), which spares the usual
   * fsync-file-then-directory a second sync of the journal.
   */
  syncDirectory (): void {
    if (this.lastNameSeq > this.journal.syncedThrough) this.syncJournal()
  }

  /** Makes every journaled change durable on disk (fsync). */
  syncJournal (): void {
    this.journal.sync()
    this.durableThrough(this.journal.lastSeq)
  }

  /** The same, off the thread FUSE shares (for an fsync(2), which waits for it anyway). */
  async syncJournalAsync (): Promise<void> {
    const through = this.journal.lastSeq
    await this.journal.syncAsync()
    this.durableThrough(through)
  }

  private scheduleCommit (): void {
    this.dirty = true
    if (this.commitTimer !== null || this.committing !== null) return
    const now = performance.now()
    const base = this.opts.commitDelayMs ?? 30
    this.commitDueAt = now + Math.max(base, 2 * this.lastCommitMs, BURST_COMMIT_MS)
    this.armCommit(base)
  }

  /** Commits at `commitDueAt`, or sooner once no change came for `quiet` ms (see lastCommitMs). */
  private armCommit (base: number): void {
    const quiet = Math.max(base, this.lastCommitMs / 2)
    const at = Math.min(this.commitDueAt, this.lastChangeAt + quiet)
    this.commitTimer = setTimeout(() => {
      this.commitTimer = null
      const now = performance.now()
      if (now < this.commitDueAt && now - this.lastChangeAt < quiet) {
        this.armCommit(base)
        return
      }
      void this.commitNow().catch(err => this.opts.log.error('commit failed', { err }))
    }, Math.max(0, at - performance.now()))
  }

  /** Commits every change so far, waiting for a commit already under way. */
  async commitNow (): Promise<void> {
    while (this.committing !== null || this.syncing !== null) await (this.committing ?? this.syncing)
    if (!this.dirty) return
    this.committing = this.commitBatch().catch(err => {
      // Nothing is lost: the changes stay in the journal, and the next attempt commits them.
      this.dirty = true
      this.lastCommitMs = Math.max(this.lastCommitMs, 500)
      throw err
    }).finally(() => {
      this.committing = null
      if (this.dirty && !this.closed) this.scheduleCommit()
    })
    await this.committing
  }

  private async commitBatch (): Promise<void> {
    this.dirty = false
    const seq = this.journal.lastSeq
    this.journal.rotate()
    // git holds only sealed contents: bytes staged but not yet sealed stay in the journal, carried
    // into the file that outlives this commit.
    const carried = this.carryStaged()
    const time = Date.now()
    const started = performance.now()
    const parents = this.head !== null ? [this.head] : []
    const author: Signature = { name: `swarmfs node ${this.opts.nodeId}`, email: `${this.opts.nodeId}@swarmfs` }
    // Each step durable before the next: the objects (git.commit syncs them; contents are
    // durable before a record names them), the state, the ref; only then may the journal
    // records it replaces go.
    const commit = await this.git.commit(this.root, parents, `swarmfs: changes from node ${this.opts.nodeId}\n`, author, time)
    // State first, then the ref: see `open` for how a crash between them is finished.
    await writeState(this.opts.stateDir, { commit, seq })
    await this.git.setHead(commit)
    this.head = commit
    this.committedSeq = seq
    // The staged records carried into the new file replace the (maybe fsynced) ones the dropped
    // file holds: durable first.
    if (carried > 0) await this.journal.syncAsync()
    this.journal.dropThrough(seq)
    this.durableThrough(seq)
    this.lastCommitMs = performance.now() - started
    this.opts.log.debug('committed', { commit, seq, ms: Math.round(this.lastCommitMs) })
    this.opts.onHead?.(commit)
  }

  /**
   * Takes a peer's head: commits what is pending (so the merge sees every local change), merges,
   * and moves the index and HEAD to the result. FUSE keeps being served meanwhile; changes made
   * during the merge stay (see adopt.ts) and are committed on top of it.
   */
  async integrate (theirs: string, merge: (ours: string, theirs: string) => Promise<MergeOutcome>, conflictName: ConflictNamer): Promise<MergeOutcome> {
    while (this.committing !== null || this.syncing !== null) await (this.committing ?? this.syncing)
    if (this.closed) throw new SwarmError('SWARMFS_STOPPING', 'metadata is closed')
    const work = this.integrateExclusive(theirs, merge, conflictName)
    this.syncing = work.catch(() => {}).finally(() => {
      this.syncing = null
      if (this.dirty && !this.closed) this.scheduleCommit()
    })
    return await work
  }

  private async integrateExclusive (theirs: string, merge: (ours: string, theirs: string) => Promise<MergeOutcome>, conflictName: ConflictNamer): Promise<MergeOutcome> {
    if (this.commitTimer !== null) clearTimeout(this.commitTimer)
    this.commitTimer = null
    if (this.dirty) await this.commitBatch()
    const ours = this.head
    if (ours === theirs) return { kind: 'up-to-date', commit: theirs }
    // No commit here (a repository a power cut left with none that loads): the peer's is taken whole.
    const t0 = performance.now()
    const outcome = ours === null ? { kind: 'fast-forward' as const, commit: theirs } : await merge(ours, theirs)
    const t1 = performance.now()
    if (outcome.kind === 'up-to-date' || outcome.commit === ours) return { kind: 'up-to-date', commit: ours ?? theirs }
    const [oursTree, newTree] = await Promise.all([ours === null ? this.git.emptyTree() : this.git.treeOf(ours), this.git.treeOf(outcome.commit)])
    const plan = await planAdoption(this.git, oursTree, newTree, '', defaultAttrs())
    const t2 = performance.now()
    const settingsBefore = this.volumeSettings()
    const adoption = applyAdoption(this.root, plan, this.busy, conflictName)
    this.separateSharedInodes(adoption.placedInodes)
    const held: Array<() => void> = this.holding = []
    try {
      this.applyReleased({ contents: adoption.released.contents, staged: adoption.released.staged, added: adoption.added })
    } finally {
      this.holding = null
    }
    // Until the new HEAD is durable, a commit of the index (which holds the adoption) is what
    // makes these removals safe.
    let heldRun = false
    const runHeld = (): void => {
      if (heldRun) return
      heldRun = true
      for (const run of held) run()
    }
    this.afterDurable.push({ seq: this.journal.lastSeq + 1, run: runHeld })
    // State first, then the ref, as for a local commit: the journal after committedSeq holds only
    // local changes, which a restart replays on top of the new HEAD. The fetched objects (packs)
    // and the merge commit are synced before either names them.
    await this.git.syncObjects()
    await writeState(this.opts.stateDir, { commit: outcome.commit, seq: this.committedSeq })
    await this.git.setHead(outcome.commit)
    this.head = outcome.commit
    runHeld()
    if (adoption.kept.length > 0) {
      this.dirty = true
      this.opts.log.info('kept local changes over a peer\'s; its versions are kept beside them', { paths: adoption.kept.slice(0, 20) })
    }
    // Where a sync's time goes (bench/sync.ts reads these with SWARMFS_BENCH_VERBOSE=1).
    const ms = (a: number, b: number): number => Math.round(b - a)
    this.opts.log.debug('took a peer\'s head', { kind: outcome.kind, commit: outcome.commit, mergeMs: ms(t0, t1), planMs: ms(t1, t2), totalMs: ms(t0, performance.now()) })
    this.opts.onHead?.(outcome.commit)
    const settings = this.volumeSettings()
    if (compareSettings(settings, settingsBefore) !== 0) this.opts.onVolumeSettings?.(settings)
    return outcome
  }

  /** Returns how many records it carried. */
  private carryStaged (): number {
    let carried = 0
    for (const file of this.stagedFiles) {
      if (file.staged === null || !file.attached()) this.stagedFiles.delete(file)
      else {
        this.journal.append({ op: 'stage', path: file.path(), staged: file.staged, ...stagedTimes(file.attrs) })
        carried++
      }
    }
    return carried
  }

  get pendingChanges (): boolean {
    return this.dirty || this.committing !== null
  }

  get committedThrough (): number {
    return this.committedSeq
  }

  /**
   * Commits what is left, syncs the journal, and keeps a snapshot of the index so the next start
   * is fast; then closes the journal. A second call waits for the first: the journal's fds are
   * closed once (a number closed twice may by then name another file of this process).
   */
  close (): Promise<void> {
    this.closing ??= this.closeOnce()
    return this.closing
  }

  private closing: Promise<void> | null = null

  private async closeOnce (): Promise<void> {
    if (this.commitTimer !== null) clearTimeout(this.commitTimer)
    this.commitTimer = null
    await this.commitNow()
    this.closed = true
    // Whatever still waits (changes a commit found nothing to write for) is durable once synced.
    this.syncJournal()
    if (this.head !== null) saveSnapshot(this.opts.stateDir, this.head, this.root)
    this.journal.close()
  }
}

export function defaultAttrs (): Attrs {
  const now = Date.now()
  return { perm: 0o755, uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0, mtime: now, ctime: now, atime: now }
}

function readState (dir: string): CommitState | null {
  try {
    const s = JSON.parse(fs.readFileSync(join(dir, 'commit-state.json'), 'utf8')) as CommitState
    return typeof s.commit === 'string' && Number.isSafeInteger(s.seq) ? s : null
  } catch {
    return null
  }
}

async function writeState (dir: string, state: CommitState): Promise<void> {
  await writeFileDurable(join(dir, 'commit-state.json'), JSON.stringify(state))
}

/**
 * The index of the newest commit that loads whole, when HEAD's does not (objects a power cut
 * damaged, written by a version that did not sync them): damaged loose objects are removed first,
 * then HEAD, the commit the state names, the snapshot's and every loose commit, newest first, are
 * tried. The branch moves there; the journal and the peers bring back what is newer. Never a
 * repository that cannot be opened: with no commit left, the volume starts empty and takes its
 * peers' head at the first sync.
 */
async function loadDamaged (git: GitStore, log: Logger, err: unknown, tried: Array<string | null>, defaults: Attrs): Promise<{ head: string | null, root: DirNode }> {
  log.error('the commit at HEAD does not load; looking for damaged objects', { head: tried[0], err })
  const removed = git.removeDamagedObjects()
  log.warn('removed damaged git objects', { count: removed.length, objects: removed.slice(0, 20) })
  const candidates = [...new Set([...tried.filter((c): c is string => c !== null), ...git.looseCommits()])]
  for (const commit of candidates) {
    try {
      const root = await git.load(commit, defaults)
      if (commit !== tried[0]) {
        await git.setHead(commit)
        log.warn('HEAD fell back to the newest commit that loads whole', { from: tried[0], to: commit })
      }
      return { head: commit, root }
    } catch (e) {
      log.debug('commit does not load', { commit, err: e })
    }
  }
  log.error('no commit of the repository loads; starting empty until a peer sends its head', {})
  return { head: null, root: await git.load(null, defaults) }
}

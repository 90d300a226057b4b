// The converging three-way merge of two volume heads, as pure logic over git objects.
//
// Every node that merges the same two heads must write the same commit, or nodes merging each
// other's merges never settle. So the merged tree is a pure, symmetric function of the base, ours
// and theirs trees; the commit's parents, author, time and message derive from the two heads only;
// and every tie is broken on object ids, never on which side is "ours".
//
// A head from a peer is hostile until checked: entries that could not have been written by an
// honest node (unsafe or non-canonical names, unknown modes, blobs that are not valid entries) are
// left out and reported, never thrown on. Our own head is trusted: it only ever holds what this
// node wrote or what an earlier merge validated.
import fs from 'node:fs'
import git, { type CommitObject } from 'isomorphic-git'
import { SwarmError } from '../core/errors.js'
import { silentLogger, type Logger } from '../core/log.js'
import { decodeDirMarker, decodeFile, decodeMarkerVolume, decodeWriter, isSymlinkTarget, withMarkerVolume } from './entry-codec.js'
import { CONFLICT_INFIX, DIR_MARKER, fromGitName, isSafeName, toGitName } from './names.js'
import { ObjectWriter, readLooseObject } from './objects.js'
import type { Attrs } from './nodes.js'
import { compareSettings, effectiveSettings, newerSettings, type VolumeSettings } from './volume-settings.js'

const MODE_FILE = '100644'
const MODE_EXEC = '100755'
const MODE_LINK = '120000'
const MODE_DIR = '040000'
/** No honest entry comes near this: a file entry of a 4 GiB+ file is about 110 KiB. */
const MAX_ENTRY_BYTES = 1 << 20
/** Only mtime matters here: a version without one counts as oldest. */
const FALLBACK_ATTRS: Attrs = { perm: 0o644, uid: 0, gid: 0, mtime: 0, ctime: 0, atime: 0 }
const MERGE_AUTHOR = { name: 'swarmfs', email: 'merge@swarmfs' }
/** The last instant whose year has four digits, so conflict names keep one shape. */
const MAX_STAMP_MS = Date.UTC(10000, 0, 1) - 1
const MAX_NAME_BYTES = 255
/** Bounds on merging merge bases (see baseTree); random three-node histories nest 4 deep and make ~10. */
const MAX_BASE_DEPTH = 8
const MAX_BASE_MERGES = 64

// ---------------------------------------------------------------------------------------------
// Conflict copies

/** What names the copies of one version of one name share: the name's stem, mode and object. */
function copyKeyOf (name: string, entry: { mode: string, oid: string }): string {
  const sample = conflictName(name, 0, 'x')
  return `${sample.slice(0, sample.indexOf(CONFLICT_INFIX))}\0${entry.mode}\0${entry.oid}`
}

/** The key of an entry that is a conflict copy, null for any other entry. */
function copyKey (entry: { name: string, mode: string, oid: string }): string | null {
  const name = fromGitName(entry.name)
  const at = name.indexOf(CONFLICT_INFIX)
  if (at <= 0 || entry.mode === MODE_DIR) return null
  return `${name.slice(0, at)}\0${entry.mode}\0${entry.oid}`
}

/**
 * One version kept as a conflict copy under two names (two merges numbered it differently) keeps
 * the first name only. A pure function of the merged entries, so every node drops the same one.
 */
function dedupeCopies<E extends { name: string, mode: string, oid: string }> (entries: E[]): E[] {
  const seen = new Set<string>()
  const drop = new Set<E>()
  for (const e of [...entries].sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0)) {
    const key = copyKey(e)
    if (key === null) continue
    if (seen.has(key)) drop.add(e)
    else seen.add(key)
  }
  return drop.size === 0 ? entries : entries.filter(e => !drop.has(e))
}

// ---------------------------------------------------------------------------------------------
// Errors

/** An object the merge needs is not in the store: the fetch was incomplete. Fetch again, then retry. */
export class MissingObjectError extends SwarmError {
  constructor (readonly oid: string) {
    super('SWARMFS_MISSING_OBJECT', `git object ${oid} is missing`, { oid })
  }
}

/** An object exists but is not what its reference claims (wrong type, unparsable, corrupt). */
export class BadObjectError extends SwarmError {
  constructor (readonly oid: string, why: string) {
    super('SWARMFS_BAD_OBJECT', `git object ${oid}: ${why}`, { oid })
  }
}

/** An object larger than its reader accepts; it was not inflated past that. */
export class ObjectTooLargeError extends BadObjectError {
  constructor (oid: string, readonly maxBytes: number) {
    super(oid, `larger than ${maxBytes} bytes`)
  }
}

// ---------------------------------------------------------------------------------------------
// The object store

/** One entry of a tree object as stored, before any validation. */
export interface RawTreeEntry {
  /** The git name (escaped); lossily decoded when `utf8` is false. */
  name: string
  /** As written, except that git's `40000` reads as `040000`. */
  mode: string
  oid: string
  utf8: boolean
}

export interface TreeItem { name: string, mode: string, oid: string }

/** What a merge needs of a commit. */
export interface CommitInfo {
  tree: string
  parents: string[]
  /** Committer time, seconds since the epoch; 0 when the commit has none that parses. */
  time: number
}

export type { CommitObject }

/**
 * The git operations a merge needs. Reads throw MissingObjectError for an absent object and
 * BadObjectError for one of the wrong type, shape or size; I/O errors pass through unchanged.
 */
export interface ObjectStore {
  /** Parses leniently: names git clients refuse are returned, so they can be refused one by one. */
  readTree (oid: string): Promise<RawTreeEntry[]>
  /** Throws ObjectTooLargeError beyond `maxBytes`. */
  readBlob (oid: string, maxBytes?: number): Promise<Uint8Array>
  writeBlob (body: Uint8Array): Promise<string>
  writeTree (entries: TreeItem[]): Promise<string>
  writeCommit (commit: CommitObject): Promise<string>
  readCommit (oid: string): Promise<CommitInfo>
  /** True when `ancestor` is a strict ancestor of `oid`. */
  isDescendent (oid: string, ancestor: string): Promise<boolean>
  /**
   * The best common ancestors (`git merge-base --all`), sorted. A side given as several commits
   * stands for a merge of them that was never written (a recursive merge's virtual base).
   */
  findMergeBase (sides: Array<string | string[]>): Promise<string[]>
}

const OID = /^[0-9a-f]{40}$/
/** Bounds what one object may inflate to; a directory of a million entries is a tree of about 50 MB. */
const MAX_OBJECT_BYTES = 256 << 20
const MAX_COMMIT_BYTES = 16 << 20
/** Commits are immutable, so their parents can be kept; past this many the cache starts over. */
const MAX_CACHED_COMMITS = 500_000

/**
 * An ObjectStore on a repository on disk. `cache` is isomorphic-git's cache (pack indexes); pass
 * the one the node's GitStore uses to share it.
 *
 * Loose objects are read with lib/meta/objects.ts (node:zlib, capped, SHA-1 checked):
 * isomorphic-git 1.44 on Node 20 inflates through DecompressionStream, measured at 2.6 ms per
 * object read against 0.1 ms, and a history walk reads every commit. Packed objects go through
 * isomorphic-git.
 */
export function gitObjectStore (gitdir: string, cache: object = {}): ObjectStore {
  const writer = new ObjectWriter(gitdir)
  // A merge reads the entries of a directory in parallel; this bounds the files open at once.
  const limit = limiter(32)
  const parents = new Map<string, string[]>()
  const read = async (oid: string, type: string, maxBytes: number): Promise<Uint8Array> => {
    if (!OID.test(oid)) throw new BadObjectError(oid, 'not an object id')
    const found = await limit(async () => await readLoose(gitdir, oid, maxBytes) ?? await readPacked(gitdir, cache, oid))
    if (found.type !== type) throw new BadObjectError(oid, `is a ${found.type}, not a ${type}`)
    if (found.object.length > maxBytes) throw new ObjectTooLargeError(oid, maxBytes)
    return found.object
  }
  const readCommit = async (oid: string): Promise<CommitInfo> => {
    const info = parseCommit(oid, await read(oid, 'commit', MAX_COMMIT_BYTES))
    if (parents.size >= MAX_CACHED_COMMITS) parents.clear()
    parents.set(oid, info.parents)
    return info
  }
  const parentsOf = async (oid: string): Promise<string[]> => parents.get(oid) ?? (await readCommit(oid)).parents
  return {
    readTree: async oid => parseTree(oid, await read(oid, 'tree', MAX_OBJECT_BYTES)),
    readBlob: async (oid, maxBytes = MAX_OBJECT_BYTES) => await read(oid, 'blob', maxBytes),
    // Written like the node's own commits: atomically (temporary file, then rename), so a crash
    // mid-merge never leaves a truncated object behind.
    writeBlob: async body => await writer.writeBlob(Buffer.from(body.buffer, body.byteOffset, body.byteLength)),
    writeTree: async entries => await writer.writeTree(entries.map(e => ({ path: e.name, mode: e.mode, oid: e.oid }))),
    writeCommit: async commit => await writer.writeCommit(commit),
    readCommit,
    isDescendent: async (oid, ancestor) => oid !== ancestor && (await ancestry(parentsOf, await parentsOf(oid), ancestor)).has(ancestor),
    findMergeBase: async sides => await mergeBases(parentsOf, sides.map(side => typeof side === 'string' ? [side] : side))
  }
}

interface StoredObject { type: string, object: Uint8Array }

/** A loose object, or null if there is none (it may be packed); capped and checked, as a peer may have sent it. */
async function readLoose (gitdir: string, oid: string, maxBytes: number): Promise<StoredObject | null> {
  try {
    const found = readLooseObject(gitdir, oid, { maxBytes, verify: true })
    return found === null ? null : { type: found.type, object: found.body }
  } catch (err) {
    const e = err as { code?: unknown, message?: string }
    if (e.code === 'SWARMFS_OBJECT_TOO_LARGE') throw new ObjectTooLargeError(oid, maxBytes)
    if (e.code === 'SWARMFS_BAD_OBJECT') throw new BadObjectError(oid, (e.message ?? '').replace(`git object ${oid}: `, ''))
    throw err
  }
}

async function readPacked (gitdir: string, cache: object, oid: string): Promise<StoredObject> {
  const result = await guard(oid, async () => await git.readObject({ fs, gitdir, oid, format: 'content', cache }))
  return { type: result.type, object: result.object as Uint8Array }
}

/** Maps isomorphic-git's errors onto the two the merge tells apart; system I/O errors pass through. */
async function guard<T> (oid: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run()
  } catch (err) {
    const code = (err as { code?: unknown }).code
    if (typeof code === 'string' && /^E[A-Z0-9]+$/.test(code)) throw err
    if (code === 'NotFoundError') throw new MissingObjectError(oid)
    throw new BadObjectError(oid, err instanceof Error ? err.message : String(err))
  }
}

function parseCommit (oid: string, bytes: Uint8Array): CommitInfo {
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8')
  const end = text.indexOf('\n\n')
  const headers = (end < 0 ? text : text.slice(0, end)).split('\n')
  const tree = /^tree ([0-9a-f]{40})$/.exec(headers[0] ?? '')?.[1]
  if (tree === undefined) throw new BadObjectError(oid, 'commit without a tree')
  const parents: string[] = []
  let time = 0
  for (const line of headers.slice(1)) {
    if (line.startsWith('parent ')) {
      const parent = line.slice(7)
      if (!OID.test(parent)) throw new BadObjectError(oid, 'malformed parent')
      parents.push(parent)
    } else if (line.startsWith('committer ')) {
      const seconds = Number(/ (\d+) [+-]\d{4}$/.exec(line)?.[1])
      time = Number.isSafeInteger(seconds) ? seconds : 0
    }
  }
  return { tree, parents, time }
}

/** Every commit reachable from `start` (included), stopping early once `target` is seen. */
async function ancestry (parentsOf: (oid: string) => Promise<string[]>, start: string[], target?: string): Promise<Set<string>> {
  const seen = new Set(start)
  const queue = [...start]
  for (let next = 0; next < queue.length && (target === undefined || !seen.has(target)); next++) {
    for (const parent of await parentsOf(queue[next] as string)) {
      if (seen.has(parent)) continue
      seen.add(parent)
      queue.push(parent)
    }
  }
  return seen
}

/** Common ancestors of all `sides` (each one commit or several) that are not ancestors of another common ancestor. */
async function mergeBases (parentsOf: (oid: string) => Promise<string[]>, sides: string[][]): Promise<string[]> {
  const reach: Array<Set<string>> = []
  for (const side of sides) reach.push(await ancestry(parentsOf, side))
  const common = [...(reach[0] ?? [])].filter(c => reach.every(r => r.has(c)))
  const belowCommon = await ancestry(parentsOf, (await Promise.all(common.map(parentsOf))).flat())
  return common.filter(c => !belowCommon.has(c)).sort()
}

const utf8 = new TextDecoder('utf-8', { fatal: true })

/** git's tree format: `<mode> <name>\0<20-byte oid>`, repeated. */
function parseTree (oid: string, bytes: Uint8Array): RawTreeEntry[] {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const entries: RawTreeEntry[] = []
  let at = 0
  while (at < buf.length) {
    const space = buf.indexOf(0x20, at)
    const nul = space < 0 ? -1 : buf.indexOf(0, space)
    if (space < 0 || nul < 0 || nul + 21 > buf.length) throw new BadObjectError(oid, 'malformed tree')
    const raw = buf.subarray(space + 1, nul)
    let name: string
    let isUtf8 = true
    try {
      name = utf8.decode(raw)
    } catch {
      name = raw.toString('utf8')
      isUtf8 = false
    }
    const mode = buf.toString('latin1', at, space)
    entries.push({ name, mode: mode === '40000' ? MODE_DIR : mode, oid: buf.toString('hex', nul + 1, nul + 21), utf8: isUtf8 })
    at = nul + 21
  }
  return entries
}

function limiter (max: number): <T>(run: () => Promise<T>) => Promise<T> {
  let active = 0
  const waiting: Array<() => void> = []
  return async run => {
    while (active >= max) await new Promise<void>(resolve => waiting.push(resolve))
    active++
    try {
      return await run()
    } finally {
      active--
      waiting.shift()?.()
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Conflict names

/**
 * Where the losing version of `name` goes: `stem.sync-conflict-YYYYMMDD-HHMMSS-writer.ext`, the time
 * being the loser's mtime in UTC. `attempt` > 1 appends `-<attempt>` before the extension, for
 * when that name is taken. Works on unescaped names; the result is always a safe name (the stem is
 * shortened to keep it within 255 bytes).
 */
export function conflictName (name: string, mtimeMs: number, writer: string, attempt = 1): string {
  const dot = name.lastIndexOf('.')
  const ext = dot > 0 && dot < name.length - 1 ? name.slice(dot) : ''
  const tail = `.sync-conflict-${stamp(mtimeMs)}-${writer}${attempt > 1 ? `-${attempt}` : ''}`
  // An extension too long to keep whole is kept as part of the stem instead.
  const [stem, suffix] = Buffer.byteLength(tail + ext) < MAX_NAME_BYTES
    ? [ext === '' ? name : name.slice(0, dot), tail + ext]
    : [name, tail]
  return truncateBytes(stem, MAX_NAME_BYTES - Buffer.byteLength(suffix)) + suffix
}

function stamp (ms: number): string {
  // A hostile or absurd mtime must still give a name, and the same one everywhere.
  const d = new Date(Number.isFinite(ms) && ms >= 0 && ms <= MAX_STAMP_MS ? ms : 0)
  const p = (n: number, w = 2): string => String(n).padStart(w, '0')
  return `${p(d.getUTCFullYear(), 4)}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}-` +
    `${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}`
}

/** Cuts whole code points off the end until the UTF-8 form fits. */
function truncateBytes (s: string, maxBytes: number): string {
  if (Buffer.byteLength(s) <= maxBytes) return s
  const points = Array.from(s)
  while (points.length > 0 && Buffer.byteLength(points.join('')) > maxBytes) points.pop()
  return points.join('')
}

// ---------------------------------------------------------------------------------------------
// Merging heads

export interface Conflict {
  /** The path that kept one version. */
  path: string
  /** Where the other version went. */
  copy: string
}

export interface Rejected {
  path: string
  reason: string
}

export interface MergeResult {
  kind: 'up-to-date' | 'fast-forward' | 'merged'
  commit: string
  conflicts: Conflict[]
  rejected: Rejected[]
}

/**
 * Merges `theirs` (a peer's head, untrusted) into `ours`. Throws MissingObjectError when the store
 * lacks objects the merge needs (an incomplete fetch: retrying after a fetch is the remedy, and
 * dropping the entries instead would propagate as deletions); never throws on hostile content.
 * `volumeId`: a file entry whose torrent info names another volume is refused (null: not checked).
 */
export async function mergeHeads (store: ObjectStore, ours: string, theirs: string, log: Logger, volumeId: string | null = null): Promise<MergeResult> {
  if (ours === theirs) return settled('up-to-date', ours)
  const graph = await readGraph(store, ours, theirs, volumeId)
  if (typeof graph === 'string') {
    log.warn('refused head from peer: ' + graph, { commit: theirs })
    return { ...settled('up-to-date', ours), rejected: [{ path: '/', reason: graph }] }
  }
  if (graph.relation === 'behind') return settled('up-to-date', ours)
  const merger = new TreeMerger(store, log, volumeId)
  const tree = await merger.mergeRoot(graph.base, graph.ours.tree, graph.theirs.tree)
  // Even a fast-forward goes through the merger, which checks whatever theirs adds; it takes
  // theirs as is only if nothing had to be left out or rewritten.
  if (graph.relation === 'ahead' && tree === graph.theirs.tree) return settled('fast-forward', theirs)
  const commit = await store.writeCommit(mergeCommit(tree, [ours, graph.ours], [theirs, graph.theirs]))
  return { kind: 'merged', commit, conflicts: merger.conflicts(), rejected: merger.rejections() }
}

function settled (kind: MergeResult['kind'], commit: string): MergeResult {
  return { kind, commit, conflicts: [], rejected: [] }
}

/** How the two heads relate: theirs is in our history, ours is in theirs, or neither. */
type Graph =
  | { relation: 'behind' }
  | {
    relation: 'ahead' | 'diverged'
    ours: CommitInfo
    theirs: CommitInfo
    /** The tree to merge against (ours' own for a fast-forward); undefined without a common ancestor. */
    base: string | undefined
  }

/** How the two heads relate, or why theirs is refused (its commit graph is malformed). */
async function readGraph (store: ObjectStore, ours: string, theirs: string, volumeId: string | null): Promise<Graph | string> {
  try {
    const theirsCommit = await store.readCommit(theirs)
    if (await store.isDescendent(ours, theirs)) return { relation: 'behind' }
    const oursCommit = await store.readCommit(ours)
    if (await store.isDescendent(theirs, ours)) return { relation: 'ahead', ours: oursCommit, theirs: theirsCommit, base: oursCommit.tree }
    return { relation: 'diverged', ours: oursCommit, theirs: theirsCommit, base: await baseTree(store, [ours], [theirs], volumeId) }
  } catch (err) {
    if (err instanceof BadObjectError) return `malformed history: ${err.message}`
    throw err
  }
}

/**
 * The tree to merge against, as git's recursive strategy finds it. With one best common ancestor
 * it is that commit's tree. With several (criss-cross merges, the everyday shape of a history
 * that several nodes merge at once) they are merged first, each pair against its own merge base,
 * and the result is the base. Taking any one of them instead reads a version that the other
 * already replaced as a concurrent change (a spurious conflict copy), and a file deleted after
 * one of them as still wanted (the deletion undone).
 *
 * Every node holding the two heads finds the same bases (they depend on the immutable commit
 * graph only) and merges them in oid order with the same symmetric merge, so every node merging
 * the two heads still writes the same commit. Past MAX_BASE_DEPTH nested levels, or once
 * MAX_BASE_MERGES merges of bases were made, the bases merged so far serve as they are: a bound on
 * the work a crafted history could demand, spent in the same order on every node. A base that
 * misses a change costs a conflict copy or a resurrected file, never a version.
 */
async function baseTree (store: ObjectStore, ours: string[], theirs: string[], volumeId: string | null, depth = 0, budget = { merges: MAX_BASE_MERGES }): Promise<string | undefined> {
  const bases = await store.findMergeBase([ours, theirs])
  const first = bases[0]
  if (first === undefined) return undefined
  let tree = (await store.readCommit(first)).tree
  const merged = [first]
  for (const next of bases.slice(1)) {
    if (depth >= MAX_BASE_DEPTH || budget.merges <= 0) break
    budget.merges--
    const under = await baseTree(store, merged, [next], volumeId, depth + 1, budget)
    // Bases may be a peer's commits exactly as sent (the parents of our merges): merged leniently,
    // and quietly, since whatever they hold only ever serves for comparison. An object of an old
    // base that is missing must not stop every later merge: the bases merged so far serve.
    try {
      tree = await new TreeMerger(store, silentLogger, volumeId, false).mergeRoot(under, tree, (await store.readCommit(next)).tree)
    } catch (err) {
      if (err instanceof MissingObjectError) break
      throw err
    }
    merged.push(next)
  }
  return tree
}

/** Everything but the tree derives from the two heads, in an order-free way. */
function mergeCommit (tree: string, a: [string, CommitInfo], b: [string, CommitInfo]): CommitObject {
  const [first, second] = [a[0], b[0]].sort() as [string, string]
  const sig = { ...MERGE_AUTHOR, timestamp: Math.max(a[1].time, b[1].time), timezoneOffset: 0 }
  return { message: `Merge ${first} and ${second}\n`, tree, parent: [first, second], author: sig, committer: sig }
}

// ---------------------------------------------------------------------------------------------
// Merging trees

interface Entry { name: string, mode: string, oid: string }
type Kind = 'dir' | 'file' | 'link'
type BlobKind = 'file' | 'link' | 'marker'

/** A non-directory version competing for a name. */
interface Version { entry: Entry, mtime: number, ctime: number, size: number, writer: string }

/** What one name of a directory becomes: the entry at the name, and a version moved aside. */
interface Outcome { own?: Entry, loser?: Version, path: string }

interface BlobFacts { problem: string | null, mtime: number, ctime: number, size: number, writer: string }

function kindOf (mode: string): Kind | null {
  if (mode === MODE_DIR) return 'dir'
  if (mode === MODE_FILE || mode === MODE_EXEC) return 'file'
  if (mode === MODE_LINK) return 'link'
  return null
}

function same (a: Entry | undefined, b: Entry | undefined): boolean {
  return a?.oid === b?.oid && a?.mode === b?.mode
}

function dirOid (e: Entry | undefined): string | undefined {
  return e?.mode === MODE_DIR ? e.oid : undefined
}

/**
 * Newest first: mtime, then ctime, then the larger size, then the larger oid, then the larger mode;
 * the same order on every node. ctime and size decide between two states of one write that fell in
 * the same millisecond (a file committed while being written, and its final version): the later,
 * longer one is the newer.
 */
function newerFirst (a: Version, b: Version): number {
  if (a.mtime !== b.mtime) return b.mtime - a.mtime
  if (a.ctime !== b.ctime) return b.ctime - a.ctime
  if (a.size !== b.size) return b.size - a.size
  if (a.entry.oid !== b.entry.oid) return a.entry.oid < b.entry.oid ? 1 : -1
  return a.entry.mode < b.entry.mode ? 1 : a.entry.mode > b.entry.mode ? -1 : 0
}

function byName (entries: Iterable<Entry>): Map<string, Entry> {
  const map = new Map<string, Entry>()
  // A base tree may come from a peer and hold a name twice; the first one is as good as any.
  for (const e of entries) if (!map.has(e.name)) map.set(e.name, e)
  return map
}

/** A name for paths in reports: as the user sees it, or quoted as stored when it is not one we write. */
function shown (gitName: string): string {
  const name = fromGitName(gitName)
  return gitName === DIR_MARKER || (isSafeName(name) && toGitName(name) === gitName) ? name : JSON.stringify(gitName)
}

function joinPath (path: string, gitName: string): string {
  return `${path}/${shown(gitName)}`
}

/** Why a peer's entry cannot be taken, judging by its name and mode alone; null if it can. */
function entryProblem (e: RawTreeEntry): string | null {
  if (!e.utf8) return 'name is not valid UTF-8'
  if (e.name === DIR_MARKER) return e.mode === MODE_FILE ? null : `directory marker has mode ${e.mode}`
  const name = fromGitName(e.name)
  if (!isSafeName(name)) return 'unsafe name'
  if (toGitName(name) !== e.name) return 'name is not escaped canonically'
  if (kindOf(e.mode) === null) return `unsupported mode ${e.mode}`
  return null
}

/**
 * One merge of three trees. Holds what was found along the way and memoizes per object, so a tree
 * that repeats one subtree many times (a cheap way to build an enormous tree) costs one visit.
 */
class TreeMerger {
  private readonly rejected: Rejected[] = []
  private readonly moved: Conflict[] = []
  private readonly subtrees = new Map<string, Promise<string | undefined>>()
  private readonly trees = new Map<string, Promise<RawTreeEntry[] | BadObjectError>>()
  private readonly blobs = new Map<string, Promise<BlobFacts>>()

  /** `trustOurs` false: ours may be a peer's commit as sent (merging merge bases), read like a base. */
  constructor (private readonly store: ObjectStore, private readonly log: Logger, private readonly volumeId: string | null, private readonly trustOurs = true) {}

  rejections (): Rejected[] {
    return [...this.rejected].sort((a, b) => a.path < b.path ? -1 : a.path > b.path ? 1 : a.reason < b.reason ? -1 : 1)
  }

  conflicts (): Conflict[] {
    return [...this.moved].sort((a, b) => a.path < b.path ? -1 : a.path > b.path ? 1 : 0)
  }

  async mergeRoot (base: string | undefined, ours: string, theirs: string): Promise<string> {
    const root = await this.readTree(theirs)
    if (root instanceof BadObjectError) {
      this.reject('/', `root is not a readable tree: ${root.message}`)
      return ours
    }
    // With ours and theirs both present nothing is dropped, so a tree comes back.
    return (await this.mergeSubtree('', base, ours, theirs)) ?? ours
  }

  /**
   * The merged directory, or undefined when it is gone. Undefined sides are absent directories.
   * Shortcuts apply the per-entry rules to whole subtrees, so equal subtrees are never read.
   */
  private async mergeSubtree (path: string, b?: string, o?: string, t?: string): Promise<string | undefined> {
    if (o === t || t === b) return o
    if (o === b && t === undefined) return undefined
    const key = `${b ?? ''}:${o ?? ''}:${t ?? ''}`
    let merged = this.subtrees.get(key)
    if (merged === undefined) {
      merged = this.mergeDirectory(path, b, o, t)
      this.subtrees.set(key, merged)
    }
    return await merged
  }

  private async mergeDirectory (path: string, b?: string, o?: string, t?: string): Promise<string | undefined> {
    const [bList, oList, tList] = await Promise.all([this.baseEntries(b), this.oursEntries(o), this.theirsEntries(t)])
    // Parsed trees are kept only between the parent's screening and this visit: a merge over a
    // large tree must not hold all of it.
    for (const oid of [b, o, t]) if (oid !== undefined) this.trees.delete(oid)
    const entries = await this.mergeEntries(path, bList, oList, tList, o !== undefined, t !== undefined)
    // A directory deleted on one side survives only to hold the other side's changes; if those
    // were deletions inside it or its own attributes, there is nothing left worth keeping.
    const resurrected = b !== undefined && (o === undefined || t === undefined)
    if (resurrected && entries.every(e => e.name === DIR_MARKER)) return undefined
    if (o !== undefined && sameEntries(entries, oList)) return o
    return await this.store.writeTree(entries)
  }

  private async mergeEntries (path: string, bList: Entry[], oList: Entry[], tList: RawTreeEntry[], oHas: boolean, tHas: boolean): Promise<Entry[]> {
    const bMap = byName(bList)
    const oMap = byName(oList)
    const tMap = await this.screenTheirs(path, tList, oMap, bMap)
    const names = [...new Set([...bMap.keys(), ...oMap.keys(), ...tMap.keys()])].filter(n => n !== DIR_MARKER).sort()
    const markers = [bMap.get(DIR_MARKER), oMap.get(DIR_MARKER), tMap.get(DIR_MARKER), oHas, tHas] as const
    const [marker, outcomes] = await Promise.all([
      path === '' ? this.mergeRootMarker(...markers) : this.mergeMarker(...markers),
      Promise.all(names.map(async n => await this.resolve(joinPath(path, n), n, bMap.get(n), oMap.get(n), tMap.get(n))))
    ])
    const entries: Entry[] = []
    if (marker !== undefined) entries.push(marker)
    for (const outcome of outcomes) if (outcome.own !== undefined) entries.push(outcome.own)
    this.placeLosers(path, entries, outcomes)
    return dedupeCopies(entries)
  }

  /** The merge of one name (not the marker); see the module's rules in the order they apply. */
  private async resolve (path: string, name: string, b?: Entry, o?: Entry, t?: Entry): Promise<Outcome> {
    // Unchanged on one side (or changed alike): the other side's, which may be a deletion.
    if (same(o, t) || same(t, b)) return { own: o, path }
    // Any directory here is merged with "absent" for a side holding something else: that side
    // deleted it, so only the other side's changes inside it survive.
    const dir = await this.mergeSubtree(path, dirOid(b), dirOid(o), dirOid(t))
    // A non-directory matters only where its side changed it; an unchanged one was replaced.
    const changed = [o, t].filter((e): e is Entry => e !== undefined && e.mode !== MODE_DIR && !same(e, b))
    const own = dir === undefined ? undefined : { name, mode: MODE_DIR, oid: dir }
    if (changed.length + (own === undefined ? 0 : 1) < 2) return { own: own ?? changed[0], path }
    const versions = (await Promise.all(changed.map(async e => await this.version(e)))).sort(newerFirst)
    // A directory always keeps the name: moving it would move everything below it.
    return own !== undefined ? { own, loser: versions[0], path } : { own: versions[0]?.entry, loser: versions[1], path }
  }

  private async version (entry: Entry): Promise<Version> {
    const facts = await this.blobFacts(entry.mode === MODE_LINK ? 'link' : 'file', entry.oid)
    return { entry, mtime: facts.mtime, ctime: facts.ctime, size: facts.size, writer: facts.writer }
  }

  /** Moves each losing version to its conflict name, in name order so every node numbers alike. */
  private placeLosers (path: string, entries: Entry[], outcomes: Outcome[]): void {
    const taken = new Set(entries.map(e => e.name))
    // A version the directory already holds as a conflict copy of the same name (made by an
    // earlier merge, seen as new against another merge base) is not copied again.
    const copies = new Set(entries.map(copyKey).filter((k): k is string => k !== null))
    for (const { loser, path: kept } of outcomes) {
      if (loser === undefined) continue
      const key = copyKeyOf(fromGitName(loser.entry.name), loser.entry)
      if (copies.has(key)) continue
      copies.add(key)
      const name = fromGitName(loser.entry.name)
      let gitName: string
      for (let attempt = 1; ; attempt++) {
        gitName = toGitName(conflictName(name, loser.mtime, loser.writer, attempt))
        if (!taken.has(gitName)) break
      }
      taken.add(gitName)
      entries.push({ ...loser.entry, name: gitName })
      this.moved.push({ path: kept, copy: joinPath(path, gitName) })
    }
  }

  /**
   * The directory's own attributes. A side without the directory has no say (the directory is
   * there because the other side changed something in it); otherwise changes beat deletions and
   * the newer mtime wins, ties going to the larger oid.
   */
  private async mergeMarker (b: Entry | undefined, o: Entry | undefined, t: Entry | undefined, oHas: boolean, tHas: boolean): Promise<Entry | undefined> {
    if (!oHas) return t
    if (!tHas || same(o, t) || same(t, b)) return o
    if (same(o, b)) return t
    if (o === undefined || t === undefined) return o ?? t
    const [om, tm] = await Promise.all([this.blobFacts('marker', o.oid), this.blobFacts('marker', t.oid)])
    if (om.mtime !== tm.mtime) return om.mtime > tm.mtime ? o : t
    return o.oid > t.oid ? o : t
  }

  /**
   * The root's marker also holds the volume settings, which are merged on their own: the newer
   * settings (by their `at`) win even when the other side's marker wins on mtime, and are written
   * into the winning marker. A side's unreadable or malformed settings count as none.
   */
  private async mergeRootMarker (b: Entry | undefined, o: Entry | undefined, t: Entry | undefined, oHas: boolean, tHas: boolean): Promise<Entry | undefined> {
    const chosen = await this.mergeMarker(b, o, t, oHas, tHas)
    if (chosen === undefined) return chosen
    const [oSide, tSide] = await Promise.all([this.markerSide(o), this.markerSide(t)])
    const chosenSide = chosen === o ? oSide : tSide
    const newest = newerSettings(oSide.volume, tSide.volume)
    if (newest === null || compareSettings(newest, effectiveSettings(chosenSide.volume)) === 0) return chosen
    const grafted = chosenSide.text === null ? null : withMarkerVolume(chosenSide.text, newest)
    // A winning marker that is not a JSON object has nothing to keep: the one with the settings is taken whole.
    if (grafted === null) return chosen === o ? t : o
    return { name: DIR_MARKER, mode: MODE_FILE, oid: await this.store.writeBlob(Buffer.from(grafted)) }
  }

  /** A marker's text and the volume settings in it; ours may exceed the cap on a peer's entries, theirs was screened. */
  private async markerSide (entry: Entry | undefined): Promise<{ text: string | null, volume: VolumeSettings | null }> {
    if (entry === undefined) return { text: null, volume: null }
    try {
      const text = Buffer.from(await this.store.readBlob(entry.oid)).toString('utf8')
      return { text, volume: decodeMarkerVolume(text) }
    } catch (err) {
      if (err instanceof BadObjectError) return { text: null, volume: null }
      throw err
    }
  }

  /**
   * Theirs' entries by name, each either checked or replaced by ours' entry at that name: a refused
   * entry counts as a change that never happened, so it cannot delete anything of ours either.
   * Entries equal to ours or to the base are not read; they add nothing (the marker excepted,
   * which is taken from theirs alone when ours lacks the directory).
   */
  private async screenTheirs (path: string, tList: RawTreeEntry[], oMap: Map<string, Entry>, bMap: Map<string, Entry>): Promise<Map<string, Entry>> {
    const accepted = new Map<string, Entry>()
    const refuse = (e: RawTreeEntry | Entry, reason: string): void => {
      this.reject(joinPath(path, e.name), reason)
      const ours = oMap.get(e.name)
      if (ours === undefined) accepted.delete(e.name)
      else accepted.set(e.name, ours)
    }
    const counts = new Map<string, number>()
    for (const e of tList) counts.set(e.name, (counts.get(e.name) ?? 0) + 1)
    const pending: Entry[] = []
    for (const raw of tList) {
      const problem = (counts.get(raw.name) ?? 0) > 1 ? 'duplicate name' : entryProblem(raw)
      if (problem !== null) {
        refuse(raw, problem)
        continue
      }
      const e = { name: raw.name, mode: raw.mode, oid: raw.oid }
      accepted.set(e.name, e)
      const o = oMap.get(e.name)
      if (!same(e, o) && (!same(e, bMap.get(e.name)) || e.name === DIR_MARKER)) pending.push(e)
    }
    await Promise.all(pending.map(async e => {
      const problem = await this.contentProblem(e)
      if (problem !== null) refuse(e, problem)
    }))
    return accepted
  }

  /** Why a peer's entry cannot be taken, judging by the object it names; null if it can. */
  private async contentProblem (e: Entry): Promise<string | null> {
    if (e.mode === MODE_DIR) {
      const tree = await this.readTree(e.oid)
      return tree instanceof BadObjectError ? `not a readable tree: ${tree.message}` : null
    }
    const kind: BlobKind = e.name === DIR_MARKER ? 'marker' : e.mode === MODE_LINK ? 'link' : 'file'
    return (await this.blobFacts(kind, e.oid)).problem
  }

  /** What a blob says as an entry of that kind. Used for both sides; only theirs is refused on a problem. */
  private async blobFacts (kind: BlobKind, oid: string): Promise<BlobFacts> {
    const key = `${kind}:${oid}`
    let facts = this.blobs.get(key)
    if (facts === undefined) {
      facts = this.readBlobFacts(kind, oid)
      this.blobs.set(key, facts)
    }
    return await facts
  }

  private async readBlobFacts (kind: BlobKind, oid: string): Promise<BlobFacts> {
    const unknown = { mtime: 0, ctime: 0, size: 0, writer: oid.slice(0, 8) }
    let bytes: Uint8Array
    try {
      bytes = await this.store.readBlob(oid, MAX_ENTRY_BYTES)
    } catch (err) {
      if (err instanceof ObjectTooLargeError) return { ...unknown, problem: 'entry is larger than 1 MiB' }
      if (err instanceof BadObjectError) return { ...unknown, problem: `not a readable blob: ${err.message}` }
      throw err
    }
    const text = Buffer.from(bytes).toString('utf8')
    if (kind === 'marker') return { ...unknown, problem: null, mtime: decodeDirMarker(text, FALLBACK_ATTRS).mtime }
    if (kind === 'link') {
      return { ...unknown, problem: isSymlinkTarget(text) ? null : 'bad symlink target' }
    }
    const decoded = decodeFile(text, FALLBACK_ATTRS, true, this.volumeId)
    if (typeof decoded === 'string') return { ...unknown, problem: decoded }
    return { problem: null, mtime: decoded.attrs.mtime, ctime: decoded.attrs.ctime, size: decoded.size, writer: decodeWriter(text) ?? unknown.writer }
  }

  private async readTree (oid: string): Promise<RawTreeEntry[] | BadObjectError> {
    let tree = this.trees.get(oid)
    if (tree === undefined) {
      tree = this.store.readTree(oid).catch(err => {
        if (err instanceof BadObjectError) return err
        throw err
      })
      this.trees.set(oid, tree)
    }
    return await tree
  }

  /** The base may be a peer's commit we once merged and sanitized: unreadable parts count as empty. */
  private async baseEntries (oid?: string): Promise<Entry[]> {
    if (oid === undefined) return []
    const tree = await this.readTree(oid)
    return tree instanceof BadObjectError ? [] : tree
  }

  /** Ours is trusted: a broken tree of ours is a damaged repository, not a peer's doing. */
  private async oursEntries (oid?: string): Promise<Entry[]> {
    if (!this.trustOurs) return await this.baseEntries(oid)
    if (oid === undefined) return []
    const tree = await this.readTree(oid)
    if (tree instanceof BadObjectError) throw tree
    return tree
  }

  /** Screened by the caller before it gets here, so a bad tree is not expected. */
  private async theirsEntries (oid?: string): Promise<RawTreeEntry[]> {
    if (oid === undefined) return []
    const tree = await this.readTree(oid)
    return tree instanceof BadObjectError ? [] : tree
  }

  private reject (path: string, reason: string): void {
    this.rejected.push({ path, reason })
    this.log.warn('refused tree entry from peer: ' + reason, { path })
  }
}

function sameEntries (merged: Entry[], original: Entry[]): boolean {
  if (merged.length !== original.length) return false
  const byNameOriginal = byName(original)
  return merged.every(e => same(e, byNameOriginal.get(e.name)))
}

// The merge of three trees (base, ours, theirs) into one: a pure, symmetric function of them, every
// tie broken on object ids. Theirs is screened entry by entry as it is read (merge.ts says why).
import type { Logger } from '../core/log.js'
import { decodeDirMarker, decodeFile, decodeMarkerVolume, isSymlinkTarget, withMarkerVolume } from './entry-codec.js'
import { conflictName, copyKey, copyKeyOf, dedupeCopies } from './conflict-names.js'
import { DIR_MARKER, fromGitName, isSafeName, toGitName } from './names.js'
import type { Attrs } from './nodes.js'
import { BadObjectError, ObjectTooLargeError, type ObjectStore, type RawTreeEntry } from './object-store.js'
import { compareSettings, effectiveSettings, newerSettings, type VolumeSettings } from './volume-settings.js'

const MODE_FILE = '100644'
const MODE_EXEC = '100755'
const MODE_LINK = '120000'
const MODE_DIR = '040000'
/** No honest entry comes near this: a file entry of a 4 GiB+ file is about 110 KiB. */
const MAX_ENTRY_BYTES = 1 << 20
/** Only mtime matters here: a version without one counts as oldest. */
const FALLBACK_ATTRS: Attrs = { perm: 0o644, uid: 0, gid: 0, mtime: 0, ctime: 0, atime: 0 }

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

/** Entries of one directory worked on at once (per level: 4,096 blobs for two levels). */
const MERGE_WIDTH = 64

/**
 * `fn` over `items`, MERGE_WIDTH at a time, the results in order. Every entry in flight holds an
 * async frame and its promises (~1 KB): with all of them started at once, the screening of a
 * clone of 100,000 files held 300 MB live and a million ran out of a 4 GB heap.
 */
async function mapBounded<T, R> (items: T[], fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = []
  for (let i = 0; i < items.length; i += MERGE_WIDTH) out.push(...await Promise.all(items.slice(i, i + MERGE_WIDTH).map(fn)))
  return out
}

/**
 * One merge of three trees. Holds what was found along the way and memoizes per object, so a tree
 * that repeats one subtree many times (a cheap way to build an enormous tree) costs one visit.
 */
export class TreeMerger {
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
      mapBounded(names, async n => await this.resolve(joinPath(path, n), n, bMap.get(n), oMap.get(n), tMap.get(n)))
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
    await mapBounded(pending, async e => {
      const problem = await this.contentProblem(e)
      if (problem !== null) refuse(e, problem)
    })
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
    return { problem: null, mtime: decoded.attrs.mtime, ctime: decoded.attrs.ctime, size: decoded.size, writer: decoded.by ?? unknown.writer }
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

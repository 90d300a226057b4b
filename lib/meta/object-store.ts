// The git operations a merge needs, over lib/meta/objects.ts (the one object reader and tree
// parser), with the commit graph walks (ancestry, merge bases) a merge asks for.
import type { CommitObject } from 'isomorphic-git'
import { isObjectId } from '../core/ids.js'
import { BadObjectError } from './object-errors.js'
import { ObjectReader, ObjectWriter, type TreeEntry, type TreeItem } from './objects.js'

export { BadObjectError, MissingObjectError, ObjectTooLargeError } from './object-errors.js'
export type { CommitObject, TreeItem }
/** One entry of a tree object as stored, before any validation (objects.ts). */
export type RawTreeEntry = TreeEntry

/** What a merge needs of a commit. */
export interface CommitInfo {
  tree: string
  parents: string[]
  /** Committer time, seconds since the epoch; 0 when the commit has none that parses. */
  time: number
}

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

/** Bounds what one object may inflate to; a directory of a million entries is a tree of about 50 MB. */
const MAX_OBJECT_BYTES = 256 << 20
export const MAX_COMMIT_BYTES = 16 << 20
/** Commits are immutable, so their parents can be kept; past this many the cache starts over. */
const MAX_CACHED_COMMITS = 500_000

/**
 * An ObjectStore on a repository on disk. `cache` is isomorphic-git's cache (pack indexes); pass
 * the one the node's GitStore uses to share it. Loose objects are read natively (objects.ts says
 * why: a history walk reads every commit), capped and SHA-1 checked, since a peer may have sent
 * them; packed ones go through isomorphic-git.
 */
export function gitObjectStore (gitdir: string, cache: object = {}): ObjectStore {
  // A merge reads the entries of a directory in parallel; the reader bounds the files open at once.
  const reader = new ObjectReader(gitdir, 32, cache)
  const writer = new ObjectWriter(gitdir)
  const parents = new Map<string, string[]>()
  const readCommit = async (oid: string): Promise<CommitInfo> => {
    const info = parseCommit(oid, await reader.read(oid, 'commit', { maxBytes: MAX_COMMIT_BYTES, verify: true }))
    if (parents.size >= MAX_CACHED_COMMITS) parents.clear()
    parents.set(oid, info.parents)
    return info
  }
  const parentsOf = async (oid: string): Promise<string[]> => parents.get(oid) ?? (await readCommit(oid)).parents
  return {
    readTree: async oid => await reader.readTree(oid, { maxBytes: MAX_OBJECT_BYTES, verify: true }),
    readBlob: async (oid, maxBytes = MAX_OBJECT_BYTES) => await reader.readBlob(oid, { maxBytes, verify: true }),
    // Written like the node's own commits: atomically (temporary file, then rename), so a crash
    // mid-merge never leaves a truncated object behind.
    writeBlob: async body => await writer.writeBlob(Buffer.from(body.buffer, body.byteOffset, body.byteLength)),
    writeTree: async entries => await writer.writeTree(entries),
    writeCommit: async commit => await writer.writeCommit(commit),
    readCommit,
    isDescendent: async (oid, ancestor) => oid !== ancestor && (await ancestry(parentsOf, await parentsOf(oid), ancestor)).has(ancestor),
    findMergeBase: async sides => await mergeBases(parentsOf, sides.map(side => typeof side === 'string' ? [side] : side))
  }
}

export function parseCommit (oid: string, bytes: Uint8Array): CommitInfo {
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
      if (!isObjectId(parent)) throw new BadObjectError(oid, 'malformed parent')
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

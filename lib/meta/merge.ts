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
import type { Logger } from '../core/log.js'
import { silentLogger } from '../core/log.js'
import { BadObjectError, MissingObjectError, type CommitInfo, type CommitObject, type ObjectStore } from './object-store.js'
import { TreeMerger, type Conflict, type Rejected } from './tree-merge.js'

export type { Conflict, Rejected }

const MERGE_AUTHOR = { name: 'swarmfs', email: 'merge@swarmfs' }
/** Bounds on merging merge bases (see baseTree); random three-node histories nest 4 deep and make ~10. */
const MAX_BASE_DEPTH = 8
const MAX_BASE_MERGES = 64

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

// Moving the live index from one commit to another that a sync produced (a fast-forward to a peer's
// head, or a merge with it), without stopping FUSE: what changed between the two trees is read from
// git first (asynchronously), then applied in one synchronous step. Local changes made since the
// old commit (dirty nodes) and files open for writing are never overwritten: the step reports them,
// and the caller commits its own changes and merges again, so the merge rules decide.
import { DIR_MARKER, fromGitName } from './names.js'
import { adoptMarkerInode, applyLinkAttrs, type GitStore } from './git-store.js'
import type { DirMarker } from './entry-codec.js'
import type { TreeEntry } from './objects.js'
import { collectData, inodesBelow, isVolumeInode, LinkJoiner, type Attrs, type ContentRef, type DirNode, type Node } from './nodes.js'
import { newerSettings } from './volume-settings.js'

type Change =
  | { kind: 'remove', oursOid: string }
  | { kind: 'set', oursOid: string | undefined, node: Node }
  | { kind: 'descend', oursOid: string, plan: DirPlan }

export interface DirPlan {
  oursOid: string
  newOid: string
  marker: DirMarker | null
  changes: Map<string, Change>
}

/** Reads what differs between two trees (the new side fully, where it is new). */
export async function planAdoption (git: GitStore, oursTree: string, newTree: string, path: string, defaults: Attrs): Promise<DirPlan> {
  const plan: DirPlan = { oursOid: oursTree, newOid: newTree, marker: null, changes: new Map() }
  if (oursTree === newTree) return plan
  const [ours, next] = await Promise.all([git.readTree(oursTree), git.readTree(newTree)])
  const oursByName = new Map(ours.map(e => [e.name, e]))
  const nextByName = new Map(next.map(e => [e.name, e]))
  const work: Array<Promise<void>> = []
  for (const entry of next) {
    const old = oursByName.get(entry.name)
    if (old !== undefined && old.oid === entry.oid && old.mode === entry.mode) continue
    if (entry.name === DIR_MARKER) {
      work.push(git.readMarker(entry.oid, defaults).then(marker => { plan.marker = marker }))
      continue
    }
    const name = fromGitName(entry.name)
    if (old !== undefined && isDir(old) && isDir(entry)) {
      work.push(planAdoption(git, old.oid, entry.oid, `${path}/${name}`, defaults).then(sub => {
        plan.changes.set(name, { kind: 'descend', oursOid: old.oid, plan: sub })
      }))
      continue
    }
    work.push(git.loadEntry(entry, path, defaults).then(node => {
      if (node !== null) plan.changes.set(name, { kind: 'set', oursOid: old?.oid, node })
      else if (old !== undefined) plan.changes.set(name, { kind: 'remove', oursOid: old.oid })
    }))
  }
  for (const old of ours) {
    if (old.name !== DIR_MARKER && !nextByName.has(old.name)) plan.changes.set(fromGitName(old.name), { kind: 'remove', oursOid: old.oid })
  }
  await Promise.all(work)
  return plan
}

const isDir = (e: TreeEntry): boolean => e.mode === '040000'

export interface Adoption {
  /** Paths whose local change (or open writer) kept the new commit's version out. */
  kept: string[]
  /** Contents and staged ids nothing refers to any more; contents that now are. */
  released: { contents: string[], staged: string[] }
  added: ContentRef[]
  /** The inode numbers of every node placed (the only ones that can now be shared; see separateInodes). */
  placedInodes: Set<number>
}

/**
 * Applies a plan to the index in one synchronous step. `busy` tells which nodes must not be
 * replaced (files open for writing, bytes staged but not yet sealed).
 */
export function applyAdoption (dir: DirNode, plan: DirPlan, busy: (node: Node) => boolean, conflictName: ConflictNamer): Adoption {
  const result: Adoption = { kept: [], released: { contents: [], staged: [] }, added: [], placedInodes: new Set() }
  applyDir(dir, plan, busy, conflictName, result, new LinkJoiner())
  return result
}

/**
 * Gives a node read from git a name in `dir`. A file with names elsewhere in the same change (a hard
 * link: a peer changes every name of a file together) becomes one file with them; only what is new
 * counts as added content.
 */
function placeNew (dir: DirNode, name: string, node: Node, links: LinkJoiner, out: Adoption): void {
  const placed = node.kind === 'file' ? links.join(node) : node
  dir.place(name, placed)
  inodesBelow(placed, out.placedInodes)
  if (placed !== node) return
  if (node.kind === 'file') {
    if (node.content !== null) out.added.push(node.content)
  } else if (node.kind === 'dir') {
    links.joinBelow(node, file => { if (file.content !== null) out.added.push(file.content) })
  }
}

export type ConflictNamer = (name: string, mtimeMs: number, writer: string, attempt?: number) => string

function setAside (dir: DirNode, name: string, node: Node, conflictName: ConflictNamer, links: LinkJoiner, out: Adoption): void {
  const writer = node.kind === 'file' && node.by !== null ? node.by : (node.oid ?? '').slice(0, 8)
  let aside = conflictName(name, node.attrs.mtime, writer)
  for (let n = 2; dir.children.has(aside); n++) aside = conflictName(name, node.attrs.mtime, writer, n)
  placeNew(dir, aside, node, links, out)
  // A name that is not in either commit: written with the next one.
  dir.children.get(aside)?.touch()
}

function applyDir (dir: DirNode, plan: DirPlan, busy: (node: Node) => boolean, conflictName: ConflictNamer, out: Adoption, links: LinkJoiner): void {
  const wasClean = dir.oid === plan.oursOid
  const keptBefore = out.kept.length
  if (plan.marker !== null) adoptMarker(dir, plan.marker)
  for (const [name, change] of plan.changes) {
    const current = dir.children.get(name)
    // A node still as committed in the old tree is ours to replace; anything else was changed here.
    const untouched = current !== undefined && current.oid === change.oursOid && !subtreeBusy(current, busy)
    if (change.kind === 'descend') {
      if (current?.kind === 'dir') applyDir(current, change.plan, busy, conflictName, out, links)
      else out.kept.push(dir.path() + '/' + name)
      continue
    }
    if (current !== undefined && !untouched) {
      out.kept.push(pathOf(dir, name))
      // Changed on both sides: the version that came in is kept beside ours, as a merge would.
      if (change.kind === 'set') setAside(dir, name, change.node, conflictName, links, out)
      continue
    }
    // (Deleted here and changed there falls through: the change is kept.)
    if (current !== undefined) {
      // As on a load: a name read again keeps its number, unless its entry holds one.
      if (change.kind === 'set' && change.node.kind === current.kind && !isVolumeInode(change.node.inode)) change.node.inode = current.inode
      dir.unplace(name)
      collectData(current, out.released.contents, out.released.staged)
    }
    if (change.kind === 'set') placeNew(dir, name, change.node, links, out)
  }
  if (plan.marker !== null) {
    applyLinkAttrs(dir, plan.marker.links)
    // A marker may have given the directory or its symlinks their stored numbers.
    out.placedInodes.add(dir.inode)
    for (const name of plan.marker.links.keys()) {
      const child = dir.children.get(name)
      if (child !== undefined) out.placedInodes.add(child.inode)
    }
  }
  if (wasClean && out.kept.length === keptBefore) {
    // The directory is now exactly the new tree; what is above it is settled by the caller.
    dir.settle(plan.newOid)
  } else {
    dir.touch()
  }
}

function adoptMarker (dir: DirNode, marker: DirMarker): void {
  dir.attrs = marker.attrs
  adoptMarkerInode(dir, marker.ino)
  // Settings changed here while the merge ran are newer than either head's: they stay, and the
  // root, touched by that change, is committed with them.
  if (dir.isRoot) dir.volume = newerSettings(dir.volume, marker.volume)
}

function pathOf (dir: DirNode, name: string): string {
  const base = dir.path()
  return base === '/' ? '/' + name : base + '/' + name
}

function subtreeBusy (node: Node, busy: (node: Node) => boolean): boolean {
  if (node.kind === 'dir') {
    for (const child of node.children.values()) if (subtreeBusy(child, busy)) return true
    return false
  }
  return busy(node)
}

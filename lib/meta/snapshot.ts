// A copy of the index as of one commit, written at a clean stop. Loading a large volume from git
// trees reads every entry blob; the snapshot is one file read, and where HEAD has moved on since
// (a crash), only the subtrees that changed are read from git.
import fs from 'node:fs'
import { join } from 'node:path'
import v8 from 'node:v8'
import { writeFileDurableSync } from '../core/durable.js'
import { DirNode, FileNode, isVolumeInode, reserveInodes, ROOT_INODE, SymlinkNode, type Attrs, type Node, type Special } from './nodes.js'
import { parseVolumeSettings } from './volume-settings.js'

const FILE = 'index-snapshot.v8'
/** 3: the root's volume settings. An older snapshot is not read (the index is loaded from git). */
const VERSION = 3

/**
 * A row written before atimes were kept has five numbers: its atime is its mtime, as in git. Two
 * more, the nanoseconds past mtime's and atime's millisecond, only where either is not 0.
 */
type AttrsRow = [number, number, number, number, number, number?, number?, number?]
/** The last field of each row, its inode number, is missing from snapshots written before they were kept. */
type Row =
  | ['f', string, AttrsRow, string | undefined, number, unknown, string | null, Special | null | undefined, (string | null)?, number?]
  | ['l', string, AttrsRow, string | undefined, string, number?]
  | ['d', string, AttrsRow, string | undefined, Row[], number?]

function attrsRow (a: Attrs): AttrsRow {
  const row: AttrsRow = [a.perm, a.uid, a.gid, a.mtime, a.ctime, a.atime]
  if (a.mtimeNs || a.atimeNs) row.push(a.mtimeNs ?? 0, a.atimeNs ?? 0)
  return row
}

function attrsOf (r: AttrsRow): Attrs {
  const attrs: Attrs = { perm: r[0], uid: r[1], gid: r[2], mtime: r[3], ctime: r[4], atime: r[5] ?? r[3] }
  if (r[6]) attrs.mtimeNs = r[6]
  if (r[7]) attrs.atimeNs = r[7]
  return attrs
}

/** One row per name: a file with several (hard links) has a row at each, which a load joins again by `linkId`. */
function toRow (node: Node, name: string): Row {
  if (node.kind === 'file') return ['f', name, attrsRow(node.attrs), node.oid, node.size, node.content, node.by, node.special, node.linkId, node.inode]
  if (node.kind === 'symlink') return ['l', name, attrsRow(node.attrs), node.oid, node.target, node.inode]
  return ['d', name, attrsRow(node.attrs), node.oid, [...node.children].map(([childName, child]) => toRow(child, childName)), node.inode]
}

/**
 * Gives every node its inode number from the snapshot, or a new one (an older snapshot); returns
 * the highest of this process's own range (volume-wide numbers are drawn, not counted).
 */
function restoreInodes (row: Row, node: Node): number {
  const saved = row[0] === 'f' ? row[9] : row[5]
  if (Number.isSafeInteger(saved) && (saved as number) > 0) node.inode = saved as number
  let max = isVolumeInode(node.inode) ? 0 : node.inode
  if (row[0] === 'd' && node.kind === 'dir') {
    for (const childRow of row[4]) max = Math.max(max, restoreInodes(childRow, node.children.get(childRow[1]) as Node))
  }
  return max
}

function fromRow (row: Row): Node {
  let node: Node
  if (row[0] === 'f') {
    const file = new FileNode(attrsOf(row[2]))
    file.size = row[4]
    file.content = row[5] as FileNode['content']
    // What is staged is not the commit's and is not kept here: the journal after it says so, as it
    // does for a load from git.
    file.by = row[6]
    // Rows of a snapshot from before special files have no eighth field.
    file.special = row[7] ?? null
    file.linkId = row[8] ?? null
    node = file
  } else if (row[0] === 'l') {
    node = new SymlinkNode(attrsOf(row[2]), row[4])
  } else {
    const dir = new DirNode(attrsOf(row[2]))
    for (const childRow of row[4]) {
      const child = fromRow(childRow)
      dir.children.set(child.name, child)
      child.parent = dir
    }
    node = dir
  }
  node.name = row[1]
  node.oid = row[3]
  return node
}

export function saveSnapshot (dir: string, head: string, root: DirNode): void {
  writeFileDurableSync(join(dir, FILE), v8.serialize({ version: VERSION, head, root: toRow(root, ''), volume: root.volume }))
}

/**
 * The snapshot and the commit it was taken at, whatever HEAD is now: after a crash HEAD is a few
 * commits further, and the loader reuses every subtree whose oid has not changed since.
 */
export function loadSnapshot (dir: string): { head: string, root: DirNode } | null {
  let data: { version: number, head: string, root: Row, volume: unknown }
  try {
    data = v8.deserialize(fs.readFileSync(join(dir, FILE)))
  } catch {
    return null
  }
  if (data.version !== VERSION || typeof data.head !== 'string') return null
  const root = fromRow(data.root) as DirNode
  // The numbers the nodes were given while being made here are replaced by the saved ones; nodes made
  // next (read from git, created) are numbered above every saved one, so no two nodes share one.
  reserveInodes(restoreInodes(data.root, root))
  root.inode = ROOT_INODE
  root.isRoot = true
  root.volume = parseVolumeSettings(data.volume)
  return { head: data.head, root }
}

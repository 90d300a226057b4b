// A copy of the index as of one commit, written at a clean stop. Loading a large volume from git
// trees reads every entry blob; the snapshot is one file read, and where HEAD has moved on since
// (a crash), only the subtrees that changed are read from git.
//
// Lines of JSON, in depth-first order: a header line (the commit, the volume settings, the root's
// row), then each directory's rows (10,000 to a line), its subdirectories' lines after the line
// that holds them. JSON because V8 parses it ~1.8x as fast as v8.deserialize reads the same rows
// (100,000 files: 0.37 s against 0.68 s); lines because one JSON string of a million files would
// be ~360 MB, near the longest string V8 makes, and held whole while parsed.
import fs from 'node:fs'
import { join } from 'node:path'
import v8 from 'node:v8'
import { fsyncDirSync, writeDurableSync } from '../core/durable.js'
import { sharedIds } from '../core/interner.js'
import { compactInfo, pieceLengthFor, type ContentRef } from '../core/torrent-info.js'
import { DirNode, FileNode, isVolumeInode, reserveInodes, ROOT_INODE, SymlinkNode, type Attrs, type Node, type Special } from './nodes.js'
import { parseVolumeSettings } from './volume-settings.js'

const FILE = 'index-snapshot.jsonl'
/** 4: lines of JSON. */
const VERSION = 4
/** Version 3 (the whole tree in one v8.serialize), still read once after an upgrade. */
const V8_FILE = 'index-snapshot.v8'
const V8_VERSION = 3
/**
 * Rows of one directory on one line: a directory of a million entries would otherwise be one
 * line of ~240 MB, held whole while it is parsed (RSS after mount 1.07 GB against 0.73 GB for a
 * million files in 1,000 directories).
 */
const LINE_ROWS = 10_000
/** Lines are written out in pieces this large. */
const WRITE_CHUNK = 1 << 20

/**
 * A row written before atimes were kept has five numbers: its atime is its mtime, as in git. Two
 * more, the nanoseconds past mtime's and atime's millisecond, only where either is not 0.
 */
type AttrsRow = [number, number, number, number, number, number?, number?, number?]
/**
 * The oid is null (JSON) or undefined (v8) for a node changed since the commit. A directory's
 * children are its lines (0 here), or nested rows in a version 3 snapshot. The last field of each
 * row, its inode number, is missing from snapshots written before they were kept.
 */
type Row =
  | ['f', string, AttrsRow, string | null | undefined, number, unknown, string | null, Special | null | undefined, (string | null)?, number?]
  | ['l', string, AttrsRow, string | null | undefined, string, number?]
  | ['d', string, AttrsRow, string | null | undefined, Row[] | 0, number?]

/** An integer V8 holds unboxed where it fits 30 bits (every mode; every uid and gid but the largest). */
function small (n: number): number {
  return n >= 0 && n < 0x40000000 ? n | 0 : n
}

function attrsRow (a: Attrs): AttrsRow {
  const row: AttrsRow = [a.perm, a.uid, a.gid, a.mtime, a.ctime, a.atime]
  if (a.mtimeNs || a.atimeNs) row.push(a.mtimeNs ?? 0, a.atimeNs ?? 0)
  return row
}

/**
 * A row's numbers come in an array that also holds times (doubles), so V8 keeps them all as
 * doubles; stored as they come, they would make every Attrs keep perm, uid and gid as boxed
 * doubles too (16 bytes each, ~48 MB at a million files). `small` gives them back as integers.
 */
function attrsOf (r: AttrsRow): Attrs {
  const attrs: Attrs = { perm: small(r[0]), uid: small(r[1]), gid: small(r[2]), mtime: r[3], ctime: r[4], atime: r[5] ?? r[3] }
  if (r[6]) attrs.mtimeNs = r[6]
  if (r[7]) attrs.atimeNs = r[7]
  return attrs
}

/**
 * A content as a row keeps it: its infohash and pieces, and the rest of its torrent info only
 * where it is not what the row implies: its name (the volume id) as the last one written, its
 * length the file's size, its piece length the one that size implies. A third of each row's bytes.
 */
type ContentRow = [string, string] | [string, string, string, number, number]

function contentRow (content: ContentRef, size: number, writing: Writing): ContentRow {
  const { infohash, info } = content
  if (info.name === writing.name && info.length === size && info.pieceLength === pieceLengthFor(size)) return [infohash, info.pieces]
  writing.name = info.name
  return [infohash, info.pieces, info.name, info.length, info.pieceLength]
}

/** A row's content: a ContentRow, or (version 3) the ContentRef itself. */
function contentOf (saved: unknown, size: number, reading: Reading): ContentRef | null {
  if (saved === null || saved === undefined) return null
  if (!Array.isArray(saved)) {
    const ref = saved as ContentRef
    return { infohash: ref.infohash, info: compactInfo(ref.info) }
  }
  const [infohash, pieces, name, length, pieceLength] = saved as [string, string, string?, number?, number?]
  if (name !== undefined) reading.name = sharedIds.of(name)
  if (reading.name === null) throw new Error('a content row names no volume')
  return { infohash, info: { name: reading.name, length: length ?? size, pieceLength: pieceLength ?? pieceLengthFor(size), pieces } }
}

/** What a save carries from row to row: the last content name written in full. */
interface Writing {
  name: string | null
}

/** What a load carries from row to row: the highest inode number of this process's range, the last content name. */
interface Reading {
  maxOwn: number
  name: string | null
}

/**
 * One row per name: a file with several (hard links) has a row at each, which a load joins again
 * by `linkId`. A directory's row holds its own fields; its children are the lines after it.
 */
function toRow (node: Node, name: string, writing: Writing): Row {
  if (node.kind === 'file') return ['f', name, attrsRow(node.attrs), node.oid ?? null, node.size, node.content === null ? null : contentRow(node.content, node.size, writing), node.by, node.special, node.linkId, node.inode]
  if (node.kind === 'symlink') return ['l', name, attrsRow(node.attrs), node.oid ?? null, node.target, node.inode]
  return ['d', name, attrsRow(node.attrs), node.oid ?? null, 0, node.inode]
}

/**
 * The node a row describes, with everything below it. Each node gets its saved inode number as it
 * is made, before it has other fields: giving 100,000 made nodes a number they did not have (a
 * double in place of a small integer) made V8 migrate each one, 0.3 s. `reading.maxOwn` is the
 * highest number of this process's own range seen (volume-wide numbers are drawn, not counted).
 */
/** A row's saved inode number, or undefined (an older snapshot): the node then gets a new one. */
function savedInode (saved: unknown, reading: Reading): number | undefined {
  if (!Number.isSafeInteger(saved) || (saved as number) <= 0) return undefined
  if (!isVolumeInode(saved)) reading.maxOwn = Math.max(reading.maxOwn, saved as number)
  return saved as number
}

/** `readChildren` fills a directory whose children are in the lines after its row. */
function fromRow (row: Row, reading: Reading, readChildren: (dir: DirNode) => void): Node {
  let node: Node
  if (row[0] === 'f') {
    const file = new FileNode(attrsOf(row[2]), savedInode(row[9], reading))
    file.size = row[4]
    file.content = contentOf(row[5], row[4], reading)
    // What is staged is not the commit's and is not kept here: the journal after it says so, as it
    // does for a load from git.
    file.by = row[6] === null ? null : sharedIds.of(row[6])
    // Rows of a snapshot from before special files have no eighth field.
    file.special = row[7] ?? null
    file.linkId = row[8] ?? null
    node = file
  } else if (row[0] === 'l') {
    node = new SymlinkNode(attrsOf(row[2]), row[4], savedInode(row[5], reading))
  } else {
    const dir = new DirNode(attrsOf(row[2]), savedInode(row[5], reading))
    if (Array.isArray(row[4])) placeRows(dir, row[4], reading, readChildren)
    else readChildren(dir)
    node = dir
  }
  node.name = row[1]
  node.oid = row[3] ?? undefined
  return node
}

function placeRows (dir: DirNode, rows: Row[], reading: Reading, readChildren: (dir: DirNode) => void): void {
  for (const childRow of rows) {
    const child = fromRow(childRow, reading, readChildren)
    dir.children.set(child.name, child)
    child.parent = dir
  }
}

/** Appends lines to a file, in pieces of about WRITE_CHUNK bytes. */
class LineWriter {
  private parts: string[] = []
  private pending = 0
  constructor (private readonly fd: number) {}

  line (text: string): void {
    this.parts.push(text, '\n')
    this.pending += text.length + 1
    if (this.pending >= WRITE_CHUNK) this.flush()
  }

  flush (): void {
    if (this.parts.length > 0) fs.writeSync(this.fd, this.parts.join(''))
    this.parts = []
    this.pending = 0
  }
}

/**
 * A directory's rows, LINE_ROWS to a line; a line that the directory's next line follows ends with
 * 0. After each line, the lines of the subdirectories it holds.
 */
function writeDirLines (out: LineWriter, dir: DirNode, writing: Writing): void {
  let rows: Array<Row | 0> = []
  let subdirs: DirNode[] = []
  let left = dir.children.size
  for (const [name, child] of dir.children) {
    rows.push(toRow(child, name, writing))
    if (child.kind === 'dir') subdirs.push(child)
    left--
    if (rows.length === LINE_ROWS || left === 0) {
      if (left > 0) rows.push(0)
      out.line(JSON.stringify(rows))
      for (const sub of subdirs) writeDirLines(out, sub, writing)
      rows = []
      subdirs = []
    }
  }
  if (dir.children.size === 0) out.line('[]')
}

/** Written as every state file is (core/durable.ts); the older format's file goes. */
export function saveSnapshot (dir: string, head: string, root: DirNode): void {
  writeDurableSync(join(dir, FILE), fd => {
    const out = new LineWriter(fd)
    const writing: Writing = { name: null }
    out.line(JSON.stringify({ version: VERSION, head, volume: root.volume, root: toRow(root, '', writing) }))
    writeDirLines(out, root, writing)
    out.flush()
  })
  if (fs.existsSync(join(dir, V8_FILE))) {
    fs.rmSync(join(dir, V8_FILE), { force: true })
    fsyncDirSync(dir)
  }
}

interface Header { version: number, head: string, root: Row, volume: unknown }

/** The lines of a snapshot file, parsed one at a time; `ended` says whether every line was read. */
function lineReader (bytes: Buffer): { next: () => unknown, ended: () => boolean } {
  let at = 0
  return {
    next: () => {
      const end = bytes.indexOf(10, at)
      if (end < 0) throw new Error('snapshot ends inside a line')
      const text = bytes.toString('utf8', at, end)
      at = end + 1
      return JSON.parse(text)
    },
    ended: () => at === bytes.length
  }
}

/**
 * The snapshot and the commit it was taken at, whatever HEAD is now: after a crash HEAD is a few
 * commits further, and the loader reuses every subtree whose oid has not changed since. null when
 * there is none or it does not read (the index is then loaded from git).
 */
export function loadSnapshot (dir: string): { head: string, root: DirNode } | null {
  try {
    let bytes: Buffer
    try {
      bytes = fs.readFileSync(join(dir, FILE))
    } catch {
      return loadV8Snapshot(dir)
    }
    const { next, ended } = lineReader(bytes)
    const header = next() as Header
    if (header.version !== VERSION || typeof header.head !== 'string') return null
    const reading: Reading = { maxOwn: 0, name: null }
    const readChildren = (d: DirNode): void => {
      for (;;) {
        const rows = next()
        if (!Array.isArray(rows)) throw new Error('a directory line is not a list of rows')
        const more = rows.length > 0 && rows[rows.length - 1] === 0
        if (more) rows.pop()
        placeRows(d, rows as Row[], reading, readChildren)
        if (!more) return
      }
    }
    const root = rootOf(header, reading, readChildren)
    // Lines left over: the directories above did not hold what was written (a line lost).
    return ended() ? { head: header.head, root } : null
  } catch {
    return null
  }
}

function loadV8Snapshot (dir: string): { head: string, root: DirNode } | null {
  let data: Header
  try {
    data = v8.deserialize(fs.readFileSync(join(dir, V8_FILE)))
  } catch {
    return null
  }
  if (data.version !== V8_VERSION || typeof data.head !== 'string') return null
  const reading: Reading = { maxOwn: 0, name: null }
  return { head: data.head, root: rootOf(data, reading, () => { throw new Error('a version 3 directory row holds its children') }) }
}

function rootOf (header: Header, reading: Reading, readChildren: (dir: DirNode) => void): DirNode {
  const root = fromRow(header.root, reading, readChildren) as DirNode
  // Nodes made next (read from git, created) are numbered above every saved one, so no two nodes share one.
  reserveInodes(reading.maxOwn)
  root.inode = ROOT_INODE
  root.isRoot = true
  root.volume = parseVolumeSettings(header.volume)
  return root
}

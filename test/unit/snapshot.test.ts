// The index snapshot: one line of JSON per directory, read back into the same tree (names in the
// same order, every field of every node), the older v8 format still read once, anything broken
// refused whole so the index is loaded from git instead.
import t, { type Test } from 'tap'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import v8 from 'node:v8'
import { buildInfo, infoHash } from '../../lib/core/torrent-info.js'
import { DirNode, FileNode, ROOT_INODE, SymlinkNode, VOLUME_INODES_FROM, type Attrs, type Node } from '../../lib/meta/nodes.js'
import { loadSnapshot, saveSnapshot } from '../../lib/meta/snapshot.js'

const VOLUME = 'v'.repeat(16)
const HEAD = 'c'.repeat(40)

function tempDir (t: Test): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'swarmfs-snapshot-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

function attrs (n: number): Attrs {
  return { perm: 0o644, uid: 1000 + n, gid: 100, mtime: 1_700_000_000_000 + n, ctime: 1_700_000_000_500 + n, atime: 1_600_000_000_000 - n }
}

function file (n: number): FileNode {
  const f = new FileNode(attrs(n), VOLUME_INODES_FROM + n * 7919)
  if (n % 3 !== 0) {
    const info = buildInfo(VOLUME, 100 + n, 1 << 20, [Buffer.alloc(20, n)])
    f.content = { infohash: infoHash(info), info }
    f.size = 100 + n
  }
  f.oid = n % 5 === 0 ? undefined : n.toString(16).padStart(40, '0')
  f.by = n % 2 === 0 ? 'a'.repeat(16) : null
  if (n % 7 === 3) f.attrs.mtimeNs = n * 1000
  return f
}

/**
 * Directories between files in the order they were made, nested four deep, with names a line
 * format must carry whole (a newline, quotes, backslashes, characters beyond ASCII).
 */
function tree (): DirNode {
  const root = new DirNode(attrs(0), ROOT_INODE)
  root.isRoot = true
  root.volume = { copies: 3, graceMs: 10, at: 5 }
  let n = 1
  const fill = (dir: DirNode, depth: number): void => {
    for (let i = 0; i < 6; i++) {
      const name = ['plain', 'with\nnewline', 'q"uote\\', 'ünï ☃', `n${n}`, '.hidden'][i] + `-${depth}`
      if (i % 2 === 1 && depth < 4) {
        const sub = new DirNode({ ...attrs(n++), perm: 0o755 }, depth % 2 === 0 ? VOLUME_INODES_FROM + n : undefined)
        sub.oid = depth === 2 ? undefined : 'd'.repeat(40)
        dir.place(name, sub)
        fill(sub, depth + 1)
      } else if (i === 4) {
        const link = new SymlinkNode({ ...attrs(n++), perm: 0o777 }, '../a target\nwith a newline', VOLUME_INODES_FROM + n)
        link.oid = 'e'.repeat(40)
        dir.place(name, link)
      } else {
        dir.place(name, file(n++))
      }
    }
  }
  fill(root, 0)
  return root
}

/** Every field a snapshot keeps, of every node, with each directory's names in their order. */
function describe (node: Node): unknown {
  const common = { kind: node.kind, name: node.name, attrs: node.attrs, oid: node.oid, inode: node.inode }
  if (node.kind === 'file') return { ...common, size: node.size, content: node.content, by: node.by, special: node.special, linkId: node.linkId }
  if (node.kind === 'symlink') return { ...common, target: node.target }
  return { ...common, children: [...node.children].map(([name, child]) => [name, describe(child)]) }
}

t.test('a tree comes back whole: every node, every field, names in their order', async t => {
  const dir = tempDir(t)
  const root = tree()
  saveSnapshot(dir, HEAD, root)
  const loaded = loadSnapshot(dir)
  if (loaded === null) throw new Error('the snapshot does not load')
  t.equal(loaded.head, HEAD)
  t.ok(loaded.root.isRoot)
  t.same(loaded.root.volume, root.volume, 'volume settings')
  t.same(describe(loaded.root), describe(root))
  let parentsRight = true
  const walk = (d: DirNode): void => { for (const c of d.children.values()) { if (c.parent !== d) parentsRight = false; if (c.kind === 'dir') walk(c) } }
  walk(loaded.root)
  t.ok(parentsRight, 'every node knows its parent')
  const lines = fs.readFileSync(path.join(dir, 'index-snapshot.jsonl'), 'utf8').split('\n')
  t.equal(lines.length, 1 + 1 + 3 + 9 + 27 + 81 + 1, 'a header, one line per directory, a final newline')
})

t.test('an empty volume, and a directory of many entries with subdirectories among them', async t => {
  const dir = tempDir(t)
  const root = new DirNode(attrs(0), ROOT_INODE)
  root.isRoot = true
  saveSnapshot(dir, HEAD, root)
  t.same(describe(loadSnapshot(dir)!.root), describe(root), 'empty')
  const big = new DirNode(attrs(1))
  root.place('big', big)
  for (let i = 0; i < 25_000; i++) {
    big.place(`f${i}`, file(i))
    // Subdirectories in the first, a middle and the last of the directory's lines (10,000 rows each).
    if (i === 3 || i === 12_345 || i === 24_999) {
      const sub = new DirNode(attrs(i))
      big.place(`sub${i}`, sub)
      for (let j = 0; j < 3; j++) sub.place(`g${j}`, file(j))
      sub.place('empty', new DirNode(attrs(7)))
    }
  }
  // Torrent info a row cannot imply: another name (as a foreign entry would carry), a length that
  // is not the file's size, a piece length its size does not give.
  const odd = [buildInfo('w'.repeat(16), 5, 1 << 20, [Buffer.alloc(20, 1)]), buildInfo(VOLUME, 7, 1 << 20, [Buffer.alloc(20, 2)]), buildInfo(VOLUME, 9, 1 << 21, [Buffer.alloc(20, 3)])]
  odd.forEach((info, i) => {
    const f = file(1)
    f.content = { infohash: infoHash(info), info }
    f.size = i === 1 ? 8 : info.length
    big.place(`odd${i}`, f)
    big.place(`after-odd${i}`, file(2))
  })
  saveSnapshot(dir, HEAD, root)
  // Compared as text: a deep comparison of 25,000 nodes takes the test runner seconds.
  t.equal(JSON.stringify(describe(loadSnapshot(dir)!.root)), JSON.stringify(describe(root)), '25,000 entries in one directory, over three lines')
})

t.test('a broken snapshot is refused whole', async t => {
  const dir = tempDir(t)
  saveSnapshot(dir, HEAD, tree())
  const file = path.join(dir, 'index-snapshot.jsonl')
  const whole = fs.readFileSync(file)
  fs.writeFileSync(file, whole.subarray(0, whole.length - 40))
  t.equal(loadSnapshot(dir), null, 'cut short')
  const lines = whole.toString('utf8').split('\n')
  fs.writeFileSync(file, lines.filter((_, i) => i !== 3).join('\n'))
  t.equal(loadSnapshot(dir), null, 'a directory line missing')
  fs.writeFileSync(file, [JSON.stringify({ version: 99, head: HEAD, root: null }), ...lines.slice(1)].join('\n'))
  t.equal(loadSnapshot(dir), null, 'another version')
  fs.writeFileSync(file, '{"version":4,"head":')
  t.equal(loadSnapshot(dir), null, 'not JSON')
})

t.test('a version 3 snapshot (v8) is read after an upgrade, and replaced by the next save', async t => {
  const dir = tempDir(t)
  const row = (mtime: number): number[] => [0o755, 0, 0, mtime, mtime, mtime]
  const nested = ['d', '', row(1), undefined, [['d', 'sub', row(2), 'f'.repeat(40), [['f', 'x', row(3), undefined, 0, null, null, null, null, 7]], 6], ['l', 'l', row(4), undefined, 'sub/x', 8]], 1]
  fs.writeFileSync(path.join(dir, 'index-snapshot.v8'), v8.serialize({ version: 3, head: HEAD, root: nested, volume: null }))
  const loaded = loadSnapshot(dir)
  if (loaded === null) throw new Error('the v8 snapshot does not load')
  const sub = loaded.root.children.get('sub') as DirNode
  t.equal(sub.oid, 'f'.repeat(40))
  t.equal(sub.inode, 6)
  t.equal(sub.children.get('x')?.inode, 7)
  t.equal((loaded.root.children.get('l') as SymlinkNode).target, 'sub/x')
  saveSnapshot(dir, HEAD, loaded.root)
  t.notOk(fs.existsSync(path.join(dir, 'index-snapshot.v8')), 'the old file is gone')
  t.same(describe(loadSnapshot(dir)!.root), describe(loaded.root))
})

// Inode numbers as pure logic: volume-wide numbers in file entries, directory markers and symlink
// attributes (and how entries of older releases and malformed values read), the same numbers on a
// node that merges another's commit, and the rule that gives files sharing a number one each.
import t from 'tap'
import path from 'node:path'
import { silentLogger } from '../../lib/core/log.js'
import { decodeFile, decodeMarker, encodeDirMarker, encodeFile } from '../../lib/meta/entry-codec.js'
import { GitStore } from '../../lib/meta/git-store.js'
import type { Meta } from '../../lib/meta/meta.js'
import { DirNode, drawVolumeInode, FileNode, isVolumeInode, separateInodes, SymlinkNode, VOLUME_INODES_FROM, type Attrs, type Node } from '../../lib/meta/nodes.js'
import { applyOp, mustLookup } from '../../lib/meta/ops.js'
import { openMeta, pullInto, tempDir } from '../helpers/meta.js'


const T0 = Date.UTC(2024, 4, 1, 12, 0, 0)
const attrs = (mtime = T0): Attrs => ({ perm: 0o644, uid: 1000, gid: 100, mtime, ctime: mtime, atime: mtime })
const X = VOLUME_INODES_FROM + 12345

function root (): DirNode {
  const r = new DirNode(attrs())
  r.isRoot = true
  return r
}

t.test('drawn numbers are volume-wide, distinct and exact as JavaScript numbers', async t => {
  const drawn = Array.from({ length: 1000 }, drawVolumeInode)
  t.ok(drawn.every(isVolumeInode), 'every one at least 2^32 and a safe integer')
  t.equal(new Set(drawn).size, drawn.length, 'no two alike')
  t.notOk(isVolumeInode(VOLUME_INODES_FROM - 1), 'this process\'s own range is not volume-wide')
})

t.test('a file entry holds a volume-wide number, and only that', async t => {
  const file = new FileNode(attrs())
  const local = encodeFile(file)
  t.notOk('ino' in JSON.parse(local), 'a number of this process\'s own range is not written')
  t.equal((decodeFile(local, attrs()) as { ino: number | null }).ino, null, 'an entry without one reads as none')
  file.inode = X
  const entry = encodeFile(file)
  t.equal(JSON.parse(entry).ino, X, 'written')
  t.equal((decodeFile(entry, attrs()) as { ino: number | null }).ino, X, 'read back')
  for (const bad of [VOLUME_INODES_FROM - 1, 2 ** 53, X + 0.5, -X, String(X), null]) {
    const decoded = decodeFile(JSON.stringify({ ...JSON.parse(entry), ino: bad }), attrs())
    t.equal(typeof decoded === 'string' ? decoded : decoded.ino, null, `ino ${JSON.stringify(bad)} from a peer reads as none, the entry is kept`)
  }
})

t.test('a directory marker holds the directory\'s number and its symlinks\'', async t => {
  const dir = new DirNode(attrs())
  dir.inode = X
  const link = new SymlinkNode({ ...attrs(), perm: 0o777 }, 'target')
  link.inode = X + 1
  const oldLink = new SymlinkNode({ ...attrs(), perm: 0o777 }, 'other')
  dir.place('l', link)
  dir.place('old', oldLink)
  const text = encodeDirMarker(dir)
  const raw = JSON.parse(text)
  t.equal(raw.ino, X, 'the directory\'s')
  t.same(raw.links.l, [T0, T0, 1000, 100, T0, 0, 0, X + 1], 'a symlink\'s: eight numbers, the last its inode number')
  t.same(raw.links.old, [T0, T0, 1000, 100], 'a symlink numbered by this process alone: as an older release writes it')
  const marker = decodeMarker(text, attrs(0))
  t.equal(marker.ino, X)
  t.equal(marker.links.get('l')?.ino, X + 1)
  t.same(marker.links.get('l')?.attrs, { mtime: T0, ctime: T0, uid: 1000, gid: 100, atime: T0 })
  t.equal(marker.links.get('old')?.ino, null)
  t.equal(decodeMarker(JSON.stringify({ ...raw, ino: 'x', links: { l: [T0, T0, 1000, 100, T0, 0, 0, 7] } }), attrs(0)).ino, null, 'a malformed number reads as none')
  t.equal(decodeMarker(JSON.stringify({ ...raw, links: { l: [T0, T0, 1000, 100, T0, 0, 0, 7] } }), attrs(0)).links.get('l')?.ino, null, '... a symlink\'s too, its times kept')
})

t.test('numbers survive a commit and a load from git; the root is 1', async t => {
  const git = new GitStore(path.join(tempDir(t), 'meta'), silentLogger)
  await git.init()
  const r = root()
  applyOp(r, { op: 'mkdir', path: '/d', attrs: attrs(), ino: X })
  applyOp(r, { op: 'create', path: '/d/f', attrs: attrs(), ino: X + 1 })
  applyOp(r, { op: 'symlink', path: '/d/l', target: 'f', attrs: attrs(), ino: X + 2 })
  applyOp(r, { op: 'link', from: '/d/f', to: '/g', time: T0, linkId: '0123456789abcdef' })
  applyOp(r, { op: 'create', path: '/old', attrs: attrs() })
  const commit = await git.commit(r, [], 'test\n', { name: 't', email: 't@t' }, T0)
  const loaded = await git.load(commit, attrs(0))
  t.same(['/d', '/d/f', '/d/l', '/g'].map(p => mustLookup(loaded, p).inode), [X, X + 1, X + 2, X + 1])
  t.equal(loaded.inode, 1, 'the root')
  t.notOk(isVolumeInode(mustLookup(loaded, '/old').inode), 'a record of an older release (no number): one of this process\'s own')
})

t.test('a node that merges another\'s commit shows its numbers; a conflict copy gets one of its own', async t => {
  const [aDir, bDir] = [tempDir(t), tempDir(t)]
  const a = await openMeta(t, aDir, 'aaaaaaaaaaaaaaaa')
  const b = await openMeta(t, bDir, 'bbbbbbbbbbbbbbbb')
  b.apply({ op: 'mkdir', path: '/b-only', attrs: attrs() })
  await b.commitNow()
  a.apply({ op: 'mkdir', path: '/d', attrs: attrs() })
  a.apply({ op: 'create', path: '/d/f', attrs: attrs() })
  a.apply({ op: 'symlink', path: '/d/l', target: 'f', attrs: attrs() })
  await a.commitNow()
  const paths = ['/d', '/d/f', '/d/l']
  const numbersOn = (m: Meta, ps = paths): number[] => ps.map(p => m.lookup(p)?.inode ?? -1)
  t.ok(numbersOn(a).every(isVolumeInode), 'nodes made through Meta get volume-wide numbers')
  await pullInto(a, aDir, b, bDir)
  t.same(numbersOn(b), numbersOn(a), 'B shows A\'s numbers')

  // Changed on both at once: the merge keeps one version at the name and the other as a copy.
  a.apply({ op: 'setattr', path: '/d/f', attrs: { mtime: T0 + 1000, ctime: T0 + 1000 } })
  b.apply({ op: 'setattr', path: '/d/f', attrs: { mtime: T0 + 2000, ctime: T0 + 2000 } })
  await Promise.all([a.commitNow(), b.commitNow()])
  await pullInto(a, aDir, b, bDir)
  const names = [...(b.lookup('/d') as DirNode).children.keys()].sort()
  const copy = names.find(n => n.includes('.sync-conflict-'))
  t.ok(copy, 'B keeps a conflict copy', { names })
  const both = ['/d/f', `/d/${copy ?? ''}`]
  const [atName, atCopy] = numbersOn(b, both)
  t.equal(atName, numbersOn(a, ['/d/f'])[0], 'the name keeps its number')
  t.ok(isVolumeInode(atCopy) && atCopy !== atName, 'the copy has a number of its own', { atName, atCopy })
  await pullInto(b, bDir, a, aDir)
  t.same(numbersOn(a, both), numbersOn(b, both), 'A, taking B\'s merge, shows the same two numbers')
})

t.test('files sharing a number get one each, by a rule of the tree alone', async t => {
  /** Builds one tree, its names added in `order`. */
  const build = (order: string[]): DirNode => {
    const r = root()
    applyOp(r, { op: 'mkdir', path: '/d', attrs: attrs(), ino: X + 9 })
    const shared = new Map<string, number>([['/f', X], ['/d/f.sync-conflict-20240501-120000-aaaaaaaaaaaaaaaa', X], ['/d/z', X], ['/e', X + 1]])
    for (const p of order) applyOp(r, { op: 'create', path: p, attrs: attrs(), ino: shared.get(p) })
    applyOp(r, { op: 'link', from: '/e', to: '/d/e2', time: T0, linkId: '0123456789abcdef' })
    return r
  }
  const names = ['/f', '/d/f.sync-conflict-20240501-120000-aaaaaaaaaaaaaaaa', '/d/z', '/e']
  const one = build(names)
  const other = build([...names].reverse())
  t.equal(separateInodes(one, new Set([X + 1, X + 9])), 0, 'told which numbers may be shared (an adoption\'s), it looks only for those')
  t.equal(separateInodes(one, new Set([X])), 2, 'two of the three that shared one are changed')
  t.equal(separateInodes(other), 2)
  const numbers = (r: DirNode): number[] => [...names, '/d/e2'].map(p => mustLookup(r, p).inode)
  t.equal(mustLookup(one, '/d/z').inode, X, 'the first path in byte order that is not a conflict copy keeps it')
  t.same(numbers(other), numbers(one), 'a tree built in another order gets the same numbers')
  const all: Node[] = []
  const walk = (n: Node): void => { all.push(n); if (n.kind === 'dir') for (const c of n.children.values()) walk(c) }
  walk(one)
  t.equal(new Set(all.map(n => n.inode)).size, new Set(all).size, 'now no two nodes share one')
  t.equal(mustLookup(one, '/d/e2').inode, X + 1, 'names of one file (a hard link) are not separated')
  t.equal(separateInodes(one), 0, 'a second pass changes nothing')
})

// Hard links as pure logic: the ops (one file under several names, its data let go only with its
// last name), how the names are written to git and read back as one file (by a load or from a
// peer), and the snapshot.
import t, { type Test } from 'tap'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { applyAdoption, type DirPlan } from '../../lib/meta/adopt.js'
import { decodeFile, encodeFile } from '../../lib/meta/entry-codec.js'
import { DirNode, FileNode, LinkJoiner, S_IFLNK, symlinkTarget, typeBits, visibleSize, type Attrs, type ContentRef } from '../../lib/meta/nodes.js'
import { applyOp, mustLookup, type Released } from '../../lib/meta/ops.js'
import { loadSnapshot, saveSnapshot } from '../../lib/meta/snapshot.js'

const T0 = Date.UTC(2024, 4, 1, 12, 0, 0)
const attrs = (): Attrs => ({ perm: 0o644, uid: 1000, gid: 100, mtime: T0, ctime: T0, atime: T0 })
const LINK_ID = '0123456789abcdef'
const CONTENT: ContentRef = {
  infohash: 'a'.repeat(40),
  // The piece length its size implies (1 MiB): a decoded entry with any other is refused.
  info: { name: 'b'.repeat(40), length: 5, pieceLength: 1 << 20, pieces: Buffer.alloc(20).toString('base64') }
}

function volume (): DirNode {
  const root = new DirNode(attrs())
  root.isRoot = true
  return root
}

function fileAt (root: DirNode, p: string): FileNode {
  const node = mustLookup(root, p)
  if (node.kind !== 'file') throw new Error(`${p} is not a file`)
  return node
}

/** /a with content, linked as /b and /d/c. */
function linked (): { root: DirNode, file: FileNode } {
  const root = volume()
  applyOp(root, { op: 'create', path: '/a', attrs: attrs() })
  applyOp(root, { op: 'setcontent', path: '/a', size: 5, content: CONTENT, mtime: T0 })
  applyOp(root, { op: 'mkdir', path: '/d', attrs: attrs() })
  applyOp(root, { op: 'link', from: '/a', to: '/b', time: T0 + 1, linkId: LINK_ID })
  applyOp(root, { op: 'link', from: '/b', to: '/d/c', time: T0 + 2, linkId: 'ffffffffffffffff' })
  return { root, file: fileAt(root, '/a') }
}

t.test('link: one file under every name', async t => {
  const { root, file } = linked()
  t.equal(fileAt(root, '/b'), file, '/b is the same file')
  t.equal(fileAt(root, '/d/c'), file, '/d/c too')
  t.equal(file.links, 3, 'three names')
  t.equal(file.linkId, LINK_ID, 'the id given with the first link stays')
  t.equal(file.attrs.ctime, T0 + 2, 'a link changes the file\'s ctime')
  t.equal(mustLookup(root, '/d').attrs.mtime, T0 + 2, 'and the directory\'s mtime')
  applyOp(root, { op: 'setattr', path: '/d/c', attrs: { perm: 0o600 } })
  t.equal(fileAt(root, '/a').attrs.perm, 0o600, 'a chmod through one name shows through the others')
  t.ok(file.attached(), 'attached')
  t.equal(new Set(['/a', '/b', '/d/c'].map(p => mustLookup(root, p).inode)).size, 1, 'one inode number')
})

t.test('link: what POSIX refuses', async t => {
  const { root } = linked()
  applyOp(root, { op: 'symlink', path: '/s', target: 'a', attrs: attrs() })
  t.throws(() => applyOp(root, { op: 'link', from: '/d', to: '/e', time: T0, linkId: LINK_ID }), { code: 'EPERM' }, 'a directory')
  t.throws(() => applyOp(root, { op: 'link', from: '/a', to: '/b', time: T0, linkId: LINK_ID }), { code: 'EEXIST' }, 'onto a name that exists')
  t.throws(() => applyOp(root, { op: 'link', from: '/nope', to: '/e', time: T0, linkId: LINK_ID }), { code: 'ENOENT' }, 'a name that does not exist')
  t.throws(() => applyOp(root, { op: 'link', from: '/a', to: '/nope/e', time: T0, linkId: LINK_ID }), { code: 'ENOENT' }, 'into a directory that does not exist')
})

t.test('link of a symlink: one symlink under both names, kept as an entry of type symlink', async t => {
  const root = volume()
  applyOp(root, { op: 'mkdir', path: '/d', attrs: attrs() })
  applyOp(root, { op: 'symlink', path: '/s', target: '../x y', attrs: { ...attrs(), perm: 0o777 } })
  const inode = mustLookup(root, '/s').inode
  t.throws(() => applyOp(root, { op: 'link', from: '/s', to: '/d', time: T0 + 1, linkId: LINK_ID }), { code: 'EEXIST' }, 'onto a name that exists: refused')
  t.equal(mustLookup(root, '/s').kind, 'symlink', '... and the symlink is left as it was')
  applyOp(root, { op: 'link', from: '/s', to: '/d/t', time: T0 + 1, linkId: LINK_ID })
  const s = fileAt(root, '/s')
  t.equal(fileAt(root, '/d/t'), s, 'both names are one node')
  t.same([s.links, s.inode, s.linkId, s.attrs.ctime, s.attrs.perm], [2, inode, LINK_ID, T0 + 1, 0o777], 'two links, its inode number, the id, the ctime of the link')
  t.same([typeBits(s), symlinkTarget(s), visibleSize(s)], [S_IFLNK, '../x y', 6], 'still a symlink to the same target')
  const entry = decodeFile(encodeFile(s), attrs())
  t.same(entry, { size: 0, attrs: s.attrs, content: null, special: { type: S_IFLNK, rdev: 0, target: '../x y' }, linkId: LINK_ID, ino: null, by: null }, 'its entry reads back whole')
  applyOp(root, { op: 'unlink', path: '/s', time: T0 + 2 })
  t.same([s.links, symlinkTarget(fileAt(root, '/d/t'))], [1, '../x y'], 'the other name stays when one goes')
})

t.test('a peer\'s malformed symlink entry is refused', async t => {
  const entry = (extra: Record<string, unknown>): string => JSON.stringify({ v: 1, size: 0, perm: 0o777, uid: 0, gid: 0, mtime: T0, ctime: T0, type: 'symlink', target: 'a', ...extra })
  t.type(decodeFile(entry({}), attrs()), 'object', 'a sound one is read')
  for (const [bad, why] of [[{ target: undefined }, 'no target'], [{ target: '' }, 'an empty target'], [{ target: 'a\0b' }, 'a NUL in the target'], [{ target: 7 }, 'a target that is not a string'], [{ rdev: 5 }, 'a device number'], [{ size: 1 }, 'a size'], [{ type: 'fifo' }, 'a target on a FIFO']] as const) {
    t.type(decodeFile(entry(bad), attrs()), 'string', why)
  }
})

t.test('unlink: the data goes with the last name only', async t => {
  const { root, file } = linked()
  const released: Released[] = []
  released.push(applyOp(root, { op: 'unlink', path: '/a', time: T0 + 10 }))
  t.same(released[0]!.contents, [], 'the first name: nothing let go')
  t.equal(file.links, 2, 'two names left')
  t.equal(file.attrs.ctime, T0 + 10, 'an unlink changes the ctime of the file that stays')
  t.equal(file.path(), '/b', 'its path is one of the names left')
  released.push(applyOp(root, { op: 'rename', from: '/d/c', to: '/e', ctime: T0 + 11 }))
  t.same(released[1]!.contents, [], 'a rename of one name lets nothing go')
  t.equal(fileAt(root, '/e'), file, 'the renamed name is the same file')
  t.same(applyOp(root, { op: 'rename', from: '/b', to: '/e', ctime: T0 + 12 }), { contents: [], staged: [], added: [] }, 'a rename onto another name of the same file does nothing')
  t.equal(file.links, 2, 'both names are still there')
  released.push(applyOp(root, { op: 'unlink', path: '/b', time: T0 + 13 }))
  t.same(released[2]!.contents, [], 'the second name: nothing let go')
  released.push(applyOp(root, { op: 'unlink', path: '/e', time: T0 + 14 }))
  t.same(released[3]!.contents, [CONTENT.infohash], 'the last name: the content is let go, once')
  t.equal(file.links, 0, 'no name left')
  t.notOk(file.attached(), 'not attached')
})

t.test('a rename over a name of a linked file keeps the file under its other names', async t => {
  const { root, file } = linked()
  applyOp(root, { op: 'create', path: '/other', attrs: attrs() })
  const released = applyOp(root, { op: 'rename', from: '/other', to: '/b', ctime: T0 + 20 })
  t.same(released.contents, [], 'nothing let go')
  t.equal(file.links, 2, 'two names left')
  t.not(fileAt(root, '/b'), file, '/b is the other file now')
})

t.test('entries: the id is written and read back; a malformed one is ignored', async t => {
  const { file } = linked()
  const text = encodeFile(file)
  t.equal(JSON.parse(text).linkId, LINK_ID, 'written')
  const decoded = decodeFile(text, attrs(), false)
  t.equal(typeof decoded === 'string' ? decoded : decoded.linkId, LINK_ID, 'read back')
  t.notOk('linkId' in JSON.parse(encodeFile(new FileNode(attrs()))), 'a file never linked is written as before')
  for (const bad of ['../../etc', 'ABCDEF0123456789', 42, '0123']) {
    const entry = JSON.stringify({ ...JSON.parse(text), linkId: bad })
    const read = decodeFile(entry, attrs(), false)
    t.equal(typeof read === 'string' ? read : read.linkId, null, `${JSON.stringify(bad)}: the file reads, as a file of its own`)
  }
})

/** A file read from git, as a load reads every name. */
function readFromGit (oid: string, linkId: string | null): FileNode {
  const file = new FileNode(attrs())
  file.content = CONTENT
  file.size = 5
  file.linkId = linkId
  file.oid = oid
  return file
}

t.test('a load joins names of one id and one blob into one file, and only those', async t => {
  const root = volume()
  const sub = new DirNode(attrs())
  root.place('x', readFromGit('1'.repeat(40), LINK_ID))
  root.place('sub', sub)
  sub.place('y', readFromGit('1'.repeat(40), LINK_ID))
  root.place('apart', readFromGit('2'.repeat(40), LINK_ID))
  root.place('plain1', readFromGit('1'.repeat(40), null))
  root.place('plain2', readFromGit('1'.repeat(40), null))
  const seen: FileNode[] = []
  new LinkJoiner().joinBelow(root, f => seen.push(f))
  const x = fileAt(root, '/x')
  t.equal(fileAt(root, '/sub/y'), x, 'same id, same blob: one file')
  t.equal(x.links, 2, 'with two names')
  t.equal(x.path(), '/x', 'its first name is the first met')
  t.not(fileAt(root, '/apart'), x, 'same id, another blob (changed apart on two peers): a file of its own')
  t.not(fileAt(root, '/plain1'), fileAt(root, '/plain2'), 'no id: files of their own, whatever their blob')
  t.equal(seen.length, 4, 'each file is seen once')
})

/** The volume saved to a snapshot and loaded back, its names joined as a load joins them. */
function throughSnapshot (t: Test, root: DirNode): { root: DirNode } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'swarmfs-links-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  saveSnapshot(dir, 'a'.repeat(40), root)
  const loaded = loadSnapshot(dir)
  if (loaded === null) throw new Error('the snapshot does not load')
  new LinkJoiner().joinBelow(loaded.root, () => {})
  return loaded
}

t.test('the snapshot keeps the names of one file as one file', async t => {
  const { root, file } = linked()
  // A snapshot is written after a commit, when every node has its oid.
  file.oid = '3'.repeat(40)
  const loaded = throughSnapshot(t, root)
  const a = fileAt(loaded.root, '/a')
  t.equal(fileAt(loaded.root, '/b'), a, '/b')
  t.equal(fileAt(loaded.root, '/d/c'), a, '/d/c')
  t.equal(a.links, 3, 'three names')
  t.equal(a.linkId, LINK_ID, 'the id')
})

t.test('the snapshot keeps a hard-linked symlink', async t => {
  const root = volume()
  applyOp(root, { op: 'symlink', path: '/s', target: 't', attrs: attrs() })
  applyOp(root, { op: 'link', from: '/s', to: '/s2', time: T0 + 1, linkId: LINK_ID })
  fileAt(root, '/s').oid = '4'.repeat(40)
  const loaded = throughSnapshot(t, root)
  const s = fileAt(loaded.root, '/s')
  t.equal(fileAt(loaded.root, '/s2'), s, 'one node under both names')
  t.same([s.links, symlinkTarget(s), typeBits(s)], [2, 't', S_IFLNK], 'two links, a symlink to its target')
})

t.test('the snapshot keeps inode numbers; nodes made after a load are numbered above them', async t => {
  const { root, file } = linked()
  file.oid = '3'.repeat(40)
  applyOp(root, { op: 'symlink', path: '/d/s', target: 'a', attrs: attrs() })
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'swarmfs-links-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const numbers = (r: DirNode): number[] => ['/', '/a', '/b', '/d', '/d/c', '/d/s'].map(p => mustLookup(r, p).inode)
  const before = numbers(root)
  saveSnapshot(dir, 'a'.repeat(40), root)
  // Stands for the nodes of a new process: numbers below, at and above the saved ones are in use.
  for (let i = 0; i < 50; i++) new FileNode(attrs())
  const loaded = loadSnapshot(dir)
  if (loaded === null) throw new Error('the snapshot does not load')
  new LinkJoiner().joinBelow(loaded.root, () => {})
  t.same(numbers(loaded.root), [1, ...before.slice(1)], 'every node, and each name of the linked file, has its number again; the root has 1, as on every node')
  const made = new FileNode(attrs())
  t.ok(made.inode > Math.max(...before), 'a node made after the load has a number no restored node has')
})

t.test('a peer\'s change to every name of a file is taken as one file; its content counted once', async t => {
  const { root, file } = linked()
  file.oid = '3'.repeat(40)
  for (const d of [root, mustLookup(root, '/d') as DirNode]) d.oid = 'tree-' + d.path()
  const next = (): FileNode => {
    const f = readFromGit('4'.repeat(40), LINK_ID)
    f.content = { ...CONTENT, infohash: 'c'.repeat(40) }
    return f
  }
  const sub: DirPlan = { oursOid: 'tree-/d', newOid: 'new-d', marker: null, changes: new Map([['c', { kind: 'set', oursOid: '3'.repeat(40), node: next() }]]) }
  const plan: DirPlan = {
    oursOid: 'tree-/',
    newOid: 'new-root',
    marker: null,
    changes: new Map([
      ['a', { kind: 'remove', oursOid: '3'.repeat(40) }],
      ['b', { kind: 'set', oursOid: '3'.repeat(40), node: next() }],
      ['d', { kind: 'descend', oursOid: 'tree-/d', plan: sub }]
    ])
  }
  const adoption = applyAdoption(root, plan, () => false, n => n + '.conflict')
  t.same(adoption.kept, [], 'nothing kept')
  const b = fileAt(root, '/b')
  t.equal(fileAt(root, '/d/c'), b, 'the two names left are one file')
  t.equal(b.links, 2, 'with two names')
  t.same(adoption.added.map(r => r.infohash), ['c'.repeat(40)], 'the new content is counted once')
  t.same(adoption.released.contents, [CONTENT.infohash], 'the old one is let go once, with its last name')
  t.notOk(file.attached(), 'the old file has no name left')
})

// Attributes as pure logic: atime in file entries, directory markers, symlinks' times and the
// snapshot (and how entries of older releases read), directories' subdirectory counts, long names
// in lookups, and the signed times utimens is handed.
import t from 'tap'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import v8 from 'node:v8'
import { FsError } from '../../lib/core/errors.js'
import Fuse from 'fuse-native'
import { silentLogger } from '../../lib/core/log.js'
import { decodeDirMarker, decodeFile, decodeMarker, encodeDirMarker, encodeFile } from '../../lib/meta/entry-codec.js'
import { GitStore } from '../../lib/meta/git-store.js'
import { DirNode, FileNode, SymlinkNode, type Attrs } from '../../lib/meta/nodes.js'
import { applyOp, mustLookup } from '../../lib/meta/ops.js'
import { loadSnapshot, saveSnapshot } from '../../lib/meta/snapshot.js'
import { openMeta, pullInto } from '../helpers/meta.js'

type Tt = Parameters<Parameters<typeof t.test>[0]>[0]

const T0 = Date.UTC(2024, 4, 1, 12, 0, 0)
const attrs = (mtime: number, atime = mtime): Attrs => ({ perm: 0o644, uid: 1000, gid: 100, mtime, ctime: T0 + 9, atime })

function tempDir (tt: Tt): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'swarmfs-attrs-'))
  tt.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

function root (): DirNode {
  const r = new DirNode(attrs(T0))
  r.isRoot = true
  return r
}

t.test('a file entry holds its atime only where it differs from its mtime', async t => {
  const file = new FileNode(attrs(T0))
  const same = encodeFile(file)
  t.notOk('atime' in JSON.parse(same), 'atime = mtime: not written')
  t.equal(same, JSON.stringify({ v: 1, size: 0, perm: 0o644, uid: 1000, gid: 100, mtime: T0, ctime: T0 + 9 }) + '\n', 'the bytes an older release writes')
  t.same(decodeFile(same, attrs(0)), { size: 0, attrs: attrs(T0), content: null, special: null, linkId: null, ino: null, by: null })

  file.attrs = attrs(T0, T0 - 5000)
  const apart = encodeFile(file)
  t.equal(JSON.parse(apart).atime, T0 - 5000)
  t.same(decodeFile(apart, attrs(0)), { size: 0, attrs: attrs(T0, T0 - 5000), content: null, special: null, linkId: null, ino: null, by: null })

  file.attrs = attrs(-315619200000, -1000)
  t.same(decodeFile(encodeFile(file), attrs(0)), { size: 0, attrs: attrs(-315619200000, -1000), content: null, special: null, linkId: null, ino: null, by: null }, 'times before 1970')
})

t.test('an entry without an atime, or with one that is not a time, reads as atime = mtime', async t => {
  const entry = (extra: Record<string, unknown>): string => JSON.stringify({ v: 1, size: 0, perm: 0o600, uid: 0, gid: 0, mtime: T0, ctime: T0, ...extra })
  for (const atime of [undefined, 'yesterday', null, [1], { t: 1 }, true]) {
    const decoded = decodeFile(entry(atime === undefined ? {} : { atime }), attrs(0))
    t.equal(typeof decoded === 'string' ? decoded : decoded.attrs.atime, T0, JSON.stringify(atime) ?? 'absent')
  }
  const noMtime = decodeFile(JSON.stringify({ v: 1, size: 0 }), attrs(777))
  t.equal(typeof noMtime === 'string' ? noMtime : noMtime.attrs.atime, 777, 'no mtime either: the fallback\'s mtime')
  t.equal(decodeDirMarker(JSON.stringify({ v: 1, perm: 0o755, mtime: T0 }), attrs(0)).atime, T0, 'a marker of an older release')
})

t.test('a directory marker holds its atime, and its symlinks\' atimes as a fifth number', async t => {
  const dir = new DirNode(attrs(T0, T0 - 1))
  const plain = new SymlinkNode(attrs(T0 + 1), 'x')
  const touched = new SymlinkNode(attrs(T0 + 2, -1000), 'y')
  dir.add('plain', plain)
  dir.add('touched', touched)
  const text = encodeDirMarker(dir)
  const json = JSON.parse(text)
  t.equal(json.atime, T0 - 1)
  t.same(json.links, { plain: [T0 + 1, T0 + 9, 1000, 100], touched: [T0 + 2, T0 + 9, 1000, 100, -1000] }, 'four numbers where atime = mtime, as before')
  const decoded = decodeMarker(text, attrs(0))
  t.same(decoded.attrs, attrs(T0, T0 - 1))
  t.same(decoded.links.get('plain')?.attrs, { mtime: T0 + 1, ctime: T0 + 9, uid: 1000, gid: 100, atime: T0 + 1 })
  t.same(decoded.links.get('touched')?.attrs, { mtime: T0 + 2, ctime: T0 + 9, uid: 1000, gid: 100, atime: -1000 })

  const odd = decodeMarker(JSON.stringify({ v: 1, links: { six: [1, 2, 3, 4, 5, 6], bad: [1, 2, 3, 4, 'x'], three: [1, 2, 3] } }), attrs(0))
  t.same([...odd.links.keys()], [], 'other shapes are refused')
})

t.test('a symlink\'s atime survives a commit and a load from git', async t => {
  const git = new GitStore(path.join(tempDir(t), 'meta'), silentLogger)
  await git.init()
  const r = root()
  applyOp(r, { op: 'mkdir', path: '/d', attrs: attrs(T0, T0 - 7) })
  applyOp(r, { op: 'symlink', path: '/d/l', target: 'x', attrs: attrs(T0) })
  applyOp(r, { op: 'setattr', path: '/d/l', attrs: { atime: -5, ctime: T0 + 9 } })
  applyOp(r, { op: 'create', path: '/d/f', attrs: attrs(T0, T0 + 3) })
  // A later change of the directory (a new entry) would set its own times: put them back.
  applyOp(r, { op: 'setattr', path: '/d', attrs: attrs(T0, T0 - 7) })
  const commit = await git.commit(r, [], 'test\n', { name: 't', email: 't@t' }, T0)
  const loaded = await git.load(commit, attrs(0))
  t.same(mustLookup(loaded, '/d').attrs, attrs(T0, T0 - 7), 'directory')
  t.same(mustLookup(loaded, '/d/l').attrs, { ...attrs(T0, -5), perm: 0o777 }, 'symlink')
  t.same(mustLookup(loaded, '/d/f').attrs, attrs(T0, T0 + 3), 'file')
})

t.test('the snapshot keeps atimes; a row of an older snapshot reads as atime = mtime', async t => {
  const dir = tempDir(t)
  const r = root()
  applyOp(r, { op: 'create', path: '/f', attrs: attrs(T0, -1) })
  saveSnapshot(dir, 'a'.repeat(40), r)
  t.same(loadSnapshot(dir)?.root.children.get('f')?.attrs, attrs(T0, -1))
  const row = (mtime: number): number[] => [0o644, 0, 0, mtime, mtime]
  fs.rmSync(path.join(dir, 'index-snapshot.jsonl'))
  fs.writeFileSync(path.join(dir, 'index-snapshot.v8'), v8.serialize({ version: 3, head: 'a'.repeat(40), root: ['d', '', row(1), undefined, [['f', 'f', row(T0), undefined, 0, null, null]]], volume: null }))
  t.same(loadSnapshot(dir)?.root.children.get('f')?.attrs, { perm: 0o644, uid: 0, gid: 0, mtime: T0, ctime: T0, atime: T0 })
})

t.test('nanoseconds past the millisecond: written only where not 0, read back, anything malformed read as 0', async t => {
  const file = new FileNode(attrs(T0))
  file.attrs.mtimeNs = 123456
  const fine = encodeFile(file)
  t.same([JSON.parse(fine).mtimeNs, 'atime' in JSON.parse(fine)], [123456, true], 'atime = mtime to the millisecond only: atime written (its nanoseconds are 0)')
  t.same(decodeFile(fine, attrs(0)), { size: 0, attrs: { ...attrs(T0), mtimeNs: 123456 }, content: null, special: null, linkId: null, ino: null, by: null })
  file.attrs.atimeNs = 123456
  const same = JSON.parse(encodeFile(file))
  t.same([same.mtimeNs, same.atime, same.atimeNs], [123456, undefined, undefined], 'atime = mtime to the nanosecond: neither atime field')
  t.same(decodeFile(encodeFile(file), attrs(0)), { size: 0, attrs: { ...attrs(T0), mtimeNs: 123456, atimeNs: 123456 }, content: null, special: null, linkId: null, ino: null, by: null })
  file.attrs = { ...attrs(T0, T0 - 1), atimeNs: 999999 }
  t.same(decodeFile(encodeFile(file), attrs(0)), { size: 0, attrs: { ...attrs(T0, T0 - 1), atimeNs: 999999 }, content: null, special: null, linkId: null, ino: null, by: null }, 'atime apart, only its nanoseconds')

  const entry = (extra: Record<string, unknown>): string => JSON.stringify({ v: 1, size: 0, perm: 0o600, uid: 0, gid: 0, mtime: T0, ctime: T0, atime: T0, ...extra })
  for (const ns of [-1, 1_000_000, 1.5, '7', null, [1], 2 ** 53]) {
    const decoded = decodeFile(entry({ mtimeNs: ns, atimeNs: ns }), attrs(0))
    t.same(typeof decoded === 'string' ? decoded : [decoded.attrs.mtimeNs, decoded.attrs.atimeNs], [undefined, undefined], `${JSON.stringify(ns)} reads as 0`)
  }

  const dir = new DirNode(attrs(T0))
  const link = new SymlinkNode({ ...attrs(T0 + 1), mtimeNs: 1 }, 'x')
  dir.add('l', link)
  t.same(JSON.parse(encodeDirMarker(dir)).links.l, [T0 + 1, T0 + 9, 1000, 100, T0 + 1, 1, 0], 'a symlink\'s: seven numbers')
  t.same(decodeMarker(encodeDirMarker(dir), attrs(0)).links.get('l')?.attrs, { mtime: T0 + 1, ctime: T0 + 9, uid: 1000, gid: 100, atime: T0 + 1, mtimeNs: 1 })
  const odd = decodeMarker(JSON.stringify({ v: 1, links: { six: [1, 2, 3, 4, 5, 6], bad: [1, 2, 3, 4, 5, -1, 1e6] } }), attrs(0))
  t.same([[...odd.links.keys()], odd.links.get('bad')?.attrs], [['bad'], { mtime: 1, ctime: 2, uid: 3, gid: 4, atime: 5 }], 'six numbers are refused; malformed nanoseconds read as 0')

  const snap = tempDir(t)
  const r = root()
  applyOp(r, { op: 'create', path: '/f', attrs: { ...attrs(T0, -1), mtimeNs: 5, atimeNs: 6 } })
  saveSnapshot(snap, 'a'.repeat(40), r)
  t.same(loadSnapshot(snap)?.root.children.get('f')?.attrs, { ...attrs(T0, -1), mtimeNs: 5, atimeNs: 6 }, 'the snapshot keeps them')
})

t.test('a time the node stamps replaces a time set to the nanosecond; a stage record keeps ctime apart', async t => {
  const r = root()
  applyOp(r, { op: 'mkdir', path: '/d', attrs: attrs(T0) })
  applyOp(r, { op: 'create', path: '/d/f', attrs: attrs(T0) })
  applyOp(r, { op: 'setattr', path: '/d', attrs: { mtime: 1000, mtimeNs: 7, ctime: T0 + 1 } })
  applyOp(r, { op: 'create', path: '/d/g', attrs: attrs(T0 + 2) })
  t.same([mustLookup(r, '/d').attrs.mtime, mustLookup(r, '/d').attrs.mtimeNs], [T0 + 9, undefined], 'a new entry stamps its directory (with its ctime)')

  const staged = { id: 's1', size: 3 }
  applyOp(r, { op: 'stage', path: '/d/f', staged, mtime: 1000, mtimeNs: 8, ctime: T0 + 3 })
  const f = mustLookup(r, '/d/f').attrs
  t.same([f.mtime, f.mtimeNs, f.ctime], [1000, 8, T0 + 3], 'an mtime set while open, and a ctime of now')
  applyOp(r, { op: 'stage', path: '/d/f', staged, mtime: T0 + 4 })
  t.same([f.mtime, f.mtimeNs, f.ctime], [T0 + 4, undefined, T0 + 4], 'a record of an older release: ctime = mtime, whole milliseconds')
  applyOp(r, { op: 'setattr', path: '/d/f', attrs: { mtime: 1000, mtimeNs: 9 } })
  applyOp(r, { op: 'setcontent', path: '/d/f', size: 0, content: null, mtime: T0 + 5 })
  t.same([f.mtime, f.mtimeNs, f.ctime], [T0 + 5, undefined, T0 + 5], 'a new content stamps mtime whole')
})

t.test('a journal record of an older release (no atime) makes a node with atime = mtime', async t => {
  const r = root()
  const old = { perm: 0o644, uid: 0, gid: 0, mtime: T0, ctime: T0 } as Attrs
  applyOp(r, { op: 'create', path: '/f', attrs: old })
  applyOp(r, { op: 'mkdir', path: '/d', attrs: old })
  applyOp(r, { op: 'symlink', path: '/l', target: 'f', attrs: old })
  for (const p of ['/f', '/d', '/l']) t.equal(mustLookup(r, p).attrs.atime, T0, p)
})

t.test('atimes set on one node reach another\'s index through a merge, as mtimes do', async t => {
  const [aDir, bDir] = [tempDir(t), tempDir(t)]
  const a = await openMeta(t, aDir, 'aaaaaaaaaaaaaaaa')
  const b = await openMeta(t, bDir, 'bbbbbbbbbbbbbbbb')
  b.apply({ op: 'mkdir', path: '/b-only', attrs: attrs(T0) })
  await b.commitNow()
  a.apply({ op: 'mkdir', path: '/d', attrs: attrs(T0) })
  a.apply({ op: 'create', path: '/d/f', attrs: attrs(T0) })
  a.apply({ op: 'symlink', path: '/d/l', target: 'f', attrs: attrs(T0) })
  a.apply({ op: 'setattr', path: '/d/f', attrs: { atime: -1000, ctime: T0 + 1 } })
  a.apply({ op: 'setattr', path: '/d/l', attrs: { atime: T0 - 5, ctime: T0 + 1 } })
  a.apply({ op: 'setattr', path: '/d', attrs: { atime: T0 - 7, ctime: T0 + 1 } })
  await a.commitNow()
  const outcome = await pullInto(a, aDir, b, bDir)
  t.equal(outcome.kind, 'merged')
  t.same(['/d', '/d/f', '/d/l'].map(p => b.lookup(p)?.attrs.atime), [T0 - 7, -1000, T0 - 5])
  t.equal((b.lookup('/') as DirNode).children.dirs, 2, 'the root counts the directory that came in')
})

t.test('a directory counts its subdirectories through every change', async t => {
  const r = root()
  const dirs = (p: string): number => (mustLookup(r, p) as DirNode).children.dirs
  applyOp(r, { op: 'mkdir', path: '/a', attrs: attrs(T0) })
  for (const n of ['1', '2', '3']) applyOp(r, { op: 'mkdir', path: `/a/${n}`, attrs: attrs(T0) })
  applyOp(r, { op: 'create', path: '/a/f', attrs: attrs(T0) })
  applyOp(r, { op: 'symlink', path: '/a/l', target: '1', attrs: attrs(T0) })
  t.same([dirs('/'), dirs('/a')], [1, 3], 'files and symlinks do not count')
  applyOp(r, { op: 'mkdir', path: '/b', attrs: attrs(T0) })
  applyOp(r, { op: 'rename', from: '/a/3', to: '/b/3', ctime: T0 })
  t.same([dirs('/a'), dirs('/b')], [2, 1], 'a directory moved to another parent')
  applyOp(r, { op: 'rename', from: '/a/2', to: '/a/two', ctime: T0 })
  t.equal(dirs('/a'), 2, 'renamed in place')
  applyOp(r, { op: 'rename', from: '/b/3', to: '/a/two', ctime: T0 })
  t.same([dirs('/a'), dirs('/b')], [2, 0], 'a directory over an empty directory')
  applyOp(r, { op: 'rename', from: '/a/f', to: '/b/f', ctime: T0 })
  t.same([dirs('/a'), dirs('/b')], [2, 0], 'a file moved')
  applyOp(r, { op: 'rmdir', path: '/a/1', time: T0 })
  t.equal(dirs('/a'), 1, 'rmdir')
  const d = mustLookup(r, '/a') as DirNode
  d.children.set('two', new FileNode(attrs(T0)))
  t.equal(dirs('/a'), 0, 'a directory replaced by a file under the same name')
  d.children.clear()
  t.equal(dirs('/a'), 0)
})

t.test('a lookup through a name over 255 bytes fails with ENAMETOOLONG', async t => {
  const r = root()
  applyOp(r, { op: 'mkdir', path: '/d', attrs: attrs(T0) })
  applyOp(r, { op: 'create', path: '/f', attrs: attrs(T0) })
  const code = (p: string): unknown => {
    try {
      return mustLookup(r, p).name
    } catch (err) {
      return err instanceof FsError ? err.code : err
    }
  }
  t.equal(code('/' + 'x'.repeat(256)), 'ENAMETOOLONG')
  t.equal(code('/d/' + 'x'.repeat(256)), 'ENAMETOOLONG')
  t.equal(code('/' + 'x'.repeat(256) + '/f'), 'ENAMETOOLONG', 'an intermediate name')
  t.equal(code('/' + 'é'.repeat(128)), 'ENAMETOOLONG', '128 characters of two bytes')
  t.equal(code('/' + '😀'.repeat(64)), 'ENAMETOOLONG', '64 characters of four bytes (128 UTF-16 units)')
  t.equal(code('/f/' + 'x'.repeat(256)), 'ENOTDIR', 'a file on the way comes first, as in Linux\'s walk')
  t.equal(code('/' + 'x'.repeat(255)), 'ENOENT', '255 bytes is an ordinary name')
  t.equal(code('/' + 'é'.repeat(127)), 'ENOENT', '254 bytes')
  t.equal(code('/' + '€'.repeat(85)), 'ENOENT', '85 characters of three bytes: 255 bytes')
  t.equal(code('/' + '€'.repeat(86)), 'ENAMETOOLONG', '86 characters of three bytes: 258 bytes')
})

t.test('utimens times from the two halves vendor/fuse-native passes: signed milliseconds', async t => {
  const halves = (ms: bigint): [number, number] => {
    const u = BigInt.asUintN(64, ms)
    return [Number(u & 0xffffffffn), Number(u >> 32n)]
  }
  for (const ms of [0n, 1n, 1796154091106n, 981173106000n, -1000n, -500n, -315619200000n, -62135596800000n, 253402300799999n]) {
    t.equal(Fuse.getTimeArg(...halves(ms)), Number(ms), String(ms))
  }
  t.equal(Fuse.getTimeArg(...halves(-(2n ** 63n))), Fuse.UTIME_NOW, 'UTIME_NOW')
  t.equal(Fuse.getTimeArg(...halves(-(2n ** 63n) + 1n)), Fuse.UTIME_OMIT, 'UTIME_OMIT')
  t.not(Fuse.UTIME_NOW, -1, 'UTIME_NOW is no time (-1 ms is 1969-12-31 23:59:59.999)')
})

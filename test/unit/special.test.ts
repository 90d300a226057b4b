// FIFOs, sockets and devices as pure logic: how their entries are written and read back (and how a
// peer's malformed one is refused), and that the snapshot and the ops keep them.
import t from 'tap'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { decodeFile, encodeFile } from '../../lib/meta/entry-codec.js'
import { DirNode, FileNode, S_IFBLK, S_IFCHR, S_IFIFO, S_IFREG, S_IFSOCK, typeBits, type Attrs } from '../../lib/meta/nodes.js'
import { applyOp, mustLookup } from '../../lib/meta/ops.js'
import { loadSnapshot, saveSnapshot } from '../../lib/meta/snapshot.js'

const T0 = Date.UTC(2024, 4, 1, 12, 0, 0)
const attrs = (): Attrs => ({ perm: 0o640, uid: 1000, gid: 100, mtime: T0, ctime: T0, atime: T0 })

function special (type: number, rdev = 0): FileNode {
  const file = new FileNode(attrs())
  file.special = { type, rdev }
  return file
}

t.test('an entry keeps the type and the device number', async t => {
  for (const [type, rdev] of [[S_IFIFO, 0], [S_IFSOCK, 0], [S_IFCHR, (1 << 8) | 7], [S_IFBLK, 0xfffff]]) {
    const decoded = decodeFile(encodeFile(special(type, rdev)), attrs())
    t.same(decoded, { size: 0, attrs: attrs(), content: null, special: { type, rdev }, linkId: null, ino: null, by: null }, `type ${type.toString(8)}, rdev ${rdev}`)
  }
  const plain = JSON.parse(encodeFile(new FileNode(attrs())))
  t.notOk('type' in plain, 'a regular file\'s entry is as before: no type')
  t.same(decodeFile(encodeFile(new FileNode(attrs())), attrs()), { size: 0, attrs: attrs(), content: null, special: null, linkId: null, ino: null, by: null }, 'and reads as a regular file')
})

t.test('a peer\'s malformed special entry is refused', async t => {
  const entry = (extra: Record<string, unknown>): string => JSON.stringify({ v: 1, size: 0, perm: 0o644, uid: 0, gid: 0, mtime: T0, ctime: T0, ...extra })
  t.type(decodeFile(entry({ type: 'door' }), attrs()), 'string', 'an unknown type')
  t.type(decodeFile(entry({ type: 'char', rdev: -1 }), attrs()), 'string', 'a negative device number')
  t.type(decodeFile(entry({ type: 'char', rdev: 2 ** 32 }), attrs()), 'string', 'a device number past 32 bits')
  t.type(decodeFile(entry({ type: 'block', rdev: 1.5 }), attrs()), 'string', 'a fractional device number')
  t.type(decodeFile(entry({ type: 'fifo', size: 3 }), attrs()), 'string', 'a special file with a size')
  t.type(decodeFile(entry({ type: 'fifo', infohash: 'a'.repeat(40) }), attrs()), 'string', 'a special file with content')
})

t.test('ops and the snapshot keep special files', async t => {
  const root = new DirNode(attrs())
  root.isRoot = true
  applyOp(root, { op: 'create', path: '/fifo', attrs: attrs(), special: { type: S_IFIFO, rdev: 0 } })
  applyOp(root, { op: 'create', path: '/dev', attrs: attrs(), special: { type: S_IFCHR, rdev: 263 } })
  applyOp(root, { op: 'create', path: '/file', attrs: attrs() })
  const bits = (p: string): number => typeBits(mustLookup(root, p))
  t.same([bits('/fifo'), bits('/dev'), bits('/file')], [S_IFIFO, S_IFCHR, S_IFREG], 'types after create')

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'swarmfs-special-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  saveSnapshot(dir, 'a'.repeat(40), root)
  const loaded = loadSnapshot(dir)
  t.ok(loaded, 'the snapshot loads')
  if (loaded === null) return
  const dev = mustLookup(loaded.root, '/dev')
  t.same(dev.kind === 'file' ? dev.special : null, { type: S_IFCHR, rdev: 263 }, 'a device and its number')
  const file = mustLookup(loaded.root, '/file')
  t.equal(file.kind === 'file' ? file.special : undefined, null, 'a regular file stays regular')
})

// A start after a power cut (files an older version wrote without syncing, packs a fetch was
// cutting short): the repository is repaired at open, never left unopenable. Real files in a
// temporary directory; the power cut itself is test/power/power-cut.test.ts.
import t from 'tap'
import type { Test } from 'tap'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { silentLogger } from '../../lib/core/log.js'
import { GitStore } from '../../lib/meta/git-store.js'
import { Journal } from '../../lib/meta/journal.js'
import { Meta } from '../../lib/meta/meta.js'
import { isSound, ObjectWriter } from '../../lib/meta/objects.js'
import { openMeta, pullInto, tempDir } from '../helpers/meta.js'

/** A Meta on `dir`; closed at the end of the test unless `crash` (left as a killed node leaves it). */
async function open (tt: Test, dir: string, crash = false): Promise<Meta> {
  const gitdir = path.join(dir, 'meta')
  if (!fs.existsSync(gitdir)) await new GitStore(gitdir, silentLogger).init()
  const meta = await Meta.open({ gitdir, journalDir: path.join(dir, 'journal'), stateDir: path.join(dir, 'state'), nodeId: '0123456789abcdef', log: silentLogger, onReleased: () => {}, commitDelayMs: 5 })
  if (!crash) tt.teardown(async () => await meta.close())
  return meta
}

/** A Meta that committed a directory per name, one commit each, and was then left as a crash leaves it; the heads, in order. */
async function committed (tt: Test, dir: string, names: string[]): Promise<string[]> {
  const meta = await open(tt, dir, true)
  const heads: string[] = []
  for (const name of names) {
    meta.apply({ op: 'mkdir', path: `/${name}`, attrs })
    await meta.commitNow()
    heads.push(meta.head as string)
  }
  return heads
}

const objectPath = (dir: string, oid: string): string => path.join(dir, 'meta', 'objects', oid.slice(0, 2), oid.slice(2))
const attrs = { perm: 0o755, uid: 0, gid: 0, mtime: 1, ctime: 1, atime: 1 }

t.test('a damaged commit at HEAD: the repository opens at the newest commit that loads whole', async t => {
  const dir = tempDir(t)
  const [good, damaged] = await committed(t, dir, ['a', 'b'])
  t.not(damaged, good, 'two commits')
  // What a power cut did to an object written without fsync: its name is there, its bytes are not.
  fs.chmodSync(objectPath(dir, damaged), 0o644)
  fs.writeFileSync(objectPath(dir, damaged), Buffer.alloc(37))
  const again = await open(t, dir)
  t.equal(again.head, good, 'HEAD fell back to the commit before')
  t.equal(await new GitStore(path.join(dir, 'meta'), silentLogger).head(), good, 'and the branch says so on the disk')
  t.equal(again.lookup('/a')?.kind, 'dir', 'its tree is there')
  t.notOk(fs.existsSync(objectPath(dir, damaged)), 'the damaged object was removed')
  again.apply({ op: 'mkdir', path: '/c', attrs })
  await again.commitNow()
  t.not(again.head, good, 'and it commits on top of it')
})

t.test('a branch file and HEAD left empty are written again', async t => {
  const dir = tempDir(t)
  const [head] = await committed(t, dir, ['a'])
  fs.writeFileSync(path.join(dir, 'meta', 'refs', 'heads', 'main'), '')
  fs.writeFileSync(path.join(dir, 'meta', 'HEAD'), '')
  const again = await open(t, dir)
  t.equal(again.head, head, 'the branch is the commit the state names')
  t.equal(fs.readFileSync(path.join(dir, 'meta', 'HEAD'), 'utf8'), 'ref: refs/heads/main\n', 'HEAD names the branch again')
  t.equal(again.lookup('/a')?.kind, 'dir', 'the tree is there')
  const fsck = execFileSync('git', ['--git-dir', path.join(dir, 'meta'), 'rev-parse', 'HEAD'], { encoding: 'utf8' }).trim()
  t.equal(fsck, head, 'git reads it as a repository again')
})

t.test('an object that exists but is cut short is written again, not taken as it is', async t => {
  const dir = tempDir(t)
  await new GitStore(path.join(dir, 'meta'), silentLogger).init()
  const writer = new ObjectWriter(path.join(dir, 'meta'))
  const body = Buffer.from('an entry blob '.repeat(100))
  const oid = await writer.writeBlob(body)
  const file = objectPath(dir, oid)
  const whole = fs.readFileSync(file)
  fs.chmodSync(file, 0o644)
  fs.writeFileSync(file, whole.subarray(0, whole.length >> 1))
  t.notOk(isSound(path.join(dir, 'meta'), oid), 'cut short, it does not read back')
  t.equal(await writer.writeBlob(body), oid, 'written again under its id')
  t.ok(isSound(path.join(dir, 'meta'), oid), 'and now it reads back whole')
})

t.test('a pack cut short is removed at open; what it held comes again from peers', async t => {
  const dir = tempDir(t)
  await committed(t, dir, ['a'])
  const gitdir = path.join(dir, 'meta')
  // A pack of the repository's objects, as a fetch writes one, then its tail lost.
  execFileSync('sh', ['-c', 'git --git-dir "$1" rev-list --objects --all | git --git-dir "$1" pack-objects -q "$1/objects/pack/pack"', 'sh', gitdir])
  const packs = fs.readdirSync(path.join(gitdir, 'objects', 'pack')).filter(n => n.endsWith('.pack'))
  t.equal(packs.length, 1, 'one pack')
  const pack = path.join(gitdir, 'objects', 'pack', packs[0])
  fs.truncateSync(pack, fs.statSync(pack).size - 10)
  const again = await open(t, dir)
  t.same(fs.readdirSync(path.join(gitdir, 'objects', 'pack')), [], 'the pack and its index are gone')
  t.equal(again.lookup('/a')?.kind, 'dir', 'the loose objects still hold the tree')
})

t.test('with no commit left that loads, the volume opens empty and takes a peer\'s head whole', async t => {
  const dir = tempDir(t)
  for (const oid of await committed(t, dir, ['lost'])) {
    fs.chmodSync(objectPath(dir, oid), 0o644)
    fs.writeFileSync(objectPath(dir, oid), '')
  }
  const damaged = await open(t, dir)
  t.equal(damaged.head, null, 'no commit')
  t.same([...damaged.root.children.keys()], [], 'an empty volume')
  const peerDir = tempDir(t)
  const peer = await openMeta(t, peerDir, 'fedcba9876543210')
  peer.apply({ op: 'mkdir', path: '/from-peer', attrs })
  await peer.commitNow()
  const outcome = await pullInto(peer, peerDir, damaged, dir)
  t.equal(outcome.kind, 'fast-forward', 'a fast-forward')
  t.equal(damaged.head, peer.head, 'to the peer\'s head')
  t.equal(damaged.lookup('/from-peer')?.kind, 'dir', 'with its tree')
})

t.test('a journal file whose name outlived the records before it does not take later records with it', async t => {
  const dir = tempDir(t)
  // Records 1 to 3 reached the disk; 4 to 9 did not, but the file the next commit started (10) did.
  const rec = (seq: number): string => JSON.stringify({ seq, op: { op: 'mkdir', path: `/d${seq}`, attrs } }) + '\n'
  fs.writeFileSync(path.join(dir, 'journal-1.log'), rec(1) + rec(2) + rec(3))
  fs.writeFileSync(path.join(dir, 'journal-10.log'), '')
  const { journal, records } = Journal.open(dir, 0)
  t.same(records.map(r => r.seq), [1, 2, 3], 'the records that reached the disk are replayed')
  const first = journal.append({ op: 'mkdir', path: '/after', attrs })
  t.ok(first > 10, `numbered after every file there (${first})`)
  journal.rotate()
  journal.dropThrough(first - 1)
  const { records: left } = Journal.open(dir, first - 1)
  t.same(left.map(r => r.seq), [first], 'a drop of what a commit covers keeps the record after it')
  journal.close()
})

// Objects read straight out of packs (lib/meta/packs.ts): every object of a pack git wrote with
// deltas reads back as `git cat-file` shows it, and a pack whose index is not whole is left to the
// fallback (isomorphic-git) rather than read. And packs written (lib/meta/pack-writer.ts): a commit
// of many new files is one pack that git checks whole, a restart loads, and a peer takes.
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { applyDelta, PackSet } from '../../lib/meta/packs.js'
import { ObjectReader } from '../../lib/meta/objects.js'
import { silentLogger } from '../../lib/core/log.js'
import { GitStore } from '../../lib/meta/git-store.js'
import { openMeta, pullInto, tempDir } from '../helpers/meta.js'

const git = (gitdir: string, args: string[], input?: string): string =>
  execFileSync('git', ['--git-dir', gitdir, ...args], { encoding: 'utf8', input })

/** A bare repository with one pack of many similar blobs (so git writes deltas), a tree and a commit. */
function packedRepo (dir: string): { gitdir: string, oids: string[] } {
  const gitdir = path.join(dir, 'repo.git')
  execFileSync('git', ['init', '-q', '--bare', gitdir])
  const oids: string[] = []
  const base = Array.from({ length: 200 }, (_, i) => `line ${i} of a file entry that repeats\n`).join('')
  for (let i = 0; i < 60; i++) oids.push(git(gitdir, ['hash-object', '-w', '--stdin'], base + `changed ${i}\n`.repeat(i % 7)).trim())
  const tree = git(gitdir, ['mktree'], oids.map((oid, i) => `100644 blob ${oid}\tf${i}\n`).join('')).trim()
  oids.push(tree)
  oids.push(git(gitdir, ['-c', 'user.name=t', '-c', 'user.email=t@t', 'commit-tree', tree, '-m', 'packed']).trim())
  // repack takes only what a ref reaches.
  git(gitdir, ['update-ref', 'refs/heads/main', oids[oids.length - 1]])
  git(gitdir, ['repack', '-adq', '--window=50', '--depth=10'])
  return { gitdir, oids }
}

t.test('every object of a pack git wrote with deltas reads back as git shows it', async t => {
  const { gitdir, oids } = packedRepo(tempDir(t))
  t.ok(git(gitdir, ['verify-pack', '-v', ...fs.readdirSync(path.join(gitdir, 'objects', 'pack')).filter(n => n.endsWith('.idx')).map(n => path.join(gitdir, 'objects', 'pack', n))]).includes('chain length'), 'the pack holds deltas')
  const packs = new PackSet(gitdir)
  for (const oid of oids) {
    const found = packs.read(oid)
    t.ok(found !== undefined, `${oid} found`)
    t.equal(found?.type, git(gitdir, ['cat-file', '-t', oid]).trim())
    t.equal(found?.body.toString('latin1'), execFileSync('git', ['--git-dir', gitdir, 'cat-file', found?.type ?? 'blob', oid]).toString('latin1'))
  }
  t.equal(packs.read('0'.repeat(40)), undefined, 'an object in no pack')
  t.throws(() => packs.read(oids[0], 10), RangeError, 'an object larger than the caller takes is refused before it is inflated')
  // The reader the index loads and the merge reads through takes packed objects the same way.
  const reader = new ObjectReader(gitdir)
  t.equal((await reader.readTree(oids[60], { verify: true })).length, 60)
})

t.test('a pack of more delta bases than are kept reads whole in any order, beside another pack', async t => {
  const gitdir = path.join(tempDir(t), 'repo.git')
  execFileSync('git', ['init', '-q', '--bare', gitdir])
  // 1,500 pairs of blobs, each pair alike and unlike every other: git writes one of each pair as a
  // delta of the other, so there are more bases than the reader keeps (1,024). git looks for a
  // delta among objects of about the same size whose names end alike: every name ends the same,
  // each pair's size is its own.
  const files = path.join(gitdir, '..', 'files')
  fs.mkdirSync(files)
  const names: string[] = []
  const entries: string[] = []
  for (let i = 0; i < 1500; i++) {
    const unique = randomBytes(1700).toString('base64').slice(0, 600 + i)
    fs.writeFileSync(path.join(files, `a${i}`), unique)
    fs.writeFileSync(path.join(files, `b${i}`), unique + 'zz')
    names.push(path.join(files, `a${i}`), path.join(files, `b${i}`))
    entries.push(`a${String(i).padStart(6, '0')}----------------`, `b${String(i).padStart(6, '0')}----------------`)
  }
  const oids = git(gitdir, ['hash-object', '-w', ...names]).trim().split('\n')
  const tree = git(gitdir, ['mktree'], oids.map((oid, i) => `100644 blob ${oid}\t${entries[i]}\n`).join('')).trim()
  git(gitdir, ['update-ref', 'refs/heads/main', git(gitdir, ['-c', 'user.name=t', '-c', 'user.email=t@t', 'commit-tree', tree, '-m', 'pairs']).trim()])
  git(gitdir, ['repack', '-adq'])
  const stats = git(gitdir, ['verify-pack', '-s', ...fs.readdirSync(path.join(gitdir, 'objects', 'pack')).filter(n => n.endsWith('.idx')).map(n => path.join(gitdir, 'objects', 'pack', n))])
  t.ok(Number(/chain length = 1: (\d+)/.exec(stats)?.[1]) > 1024, 'more than 1,024 deltas of distinct bases: ' + stats.trim().split('\n').join('; '))
  // A second pack, read in between, moves the shared read window away and back.
  const other = packedRepo(tempDir(t))
  const packs = new PackSet(gitdir)
  const otherPacks = new PackSet(other.gitdir)
  const expected = new Map(names.map((name, i) => [oids[i], fs.readFileSync(name, 'latin1')]))
  const orders = [oids, [...oids].reverse(), [...oids].sort(() => Math.random() - 0.5)]
  let wrong = 0
  for (const order of orders) {
    for (const [i, oid] of order.entries()) {
      if (packs.read(oid)?.body.toString('latin1') !== expected.get(oid)) wrong++
      if (i % 7 === 0 && otherPacks.read(other.oids[i % other.oids.length]) === undefined) wrong++
    }
  }
  t.equal(wrong, 0, `${oids.length} objects read 3 times (in order, reversed, shuffled), all as written`)
})

t.test('a pack whose index is not whole is not read here', async t => {
  const { gitdir, oids } = packedRepo(tempDir(t))
  const dir = path.join(gitdir, 'objects', 'pack')
  const idx = path.join(dir, fs.readdirSync(dir).find(n => n.endsWith('.idx')) as string)
  const bytes = fs.readFileSync(idx)
  fs.writeFileSync(idx, bytes.subarray(0, bytes.length - 100))
  t.equal(new PackSet(gitdir).read(oids[0]), undefined)
})

t.test('deltas that point outside their base or claim other sizes are refused', async t => {
  const base = Buffer.from('0123456789')
  // base size 10, result 4: copy 4 bytes from offset 8 (past the end of the base).
  t.throws(() => applyDelta(base, Buffer.from([10, 4, 0x91, 8, 4]), 100))
  t.throws(() => applyDelta(base, Buffer.from([11, 4, 0x91, 0, 4]), 100), 'wrong base size')
  t.throws(() => applyDelta(base, Buffer.from([10, 5, 0x91, 0, 4]), 100), 'result shorter than claimed')
  t.throws(() => applyDelta(base, Buffer.from([10, 200, 1]), 100), RangeError, 'result larger than allowed')
  t.equal(applyDelta(base, Buffer.from([10, 6, 0x91, 2, 4, 2, 0x41, 0x42]), 100).toString(), '2345AB')
})

t.test('a commit of many new files writes them as one pack that git, a restart and a peer all read', async t => {
  const dirA = tempDir(t)
  const dirB = tempDir(t)
  const a = await openMeta(t, dirA, '0123456789abcdef')
  const b = await openMeta(t, dirB, 'fedcba9876543210')
  const attrs = { perm: 0o644, uid: 0, gid: 0, mtime: 1_700_000_000_000, ctime: 1_700_000_000_000, atime: 1_700_000_000_000 }
  a.apply({ op: 'mkdir', path: '/burst', attrs: { ...attrs, perm: 0o755 } })
  for (let i = 0; i < 300; i++) a.apply({ op: 'create', path: `/burst/f${i}`, attrs })
  await a.commitNow()
  const gitdirA = path.join(dirA, 'meta')
  const packDir = path.join(gitdirA, 'objects', 'pack')
  t.equal(fs.readdirSync(packDir).filter(n => n.endsWith('.idx')).length, 1, 'one pack')
  execFileSync('git', ['--git-dir', gitdirA, 'fsck', '--strict', '--no-dangling'])
  t.equal(git(gitdirA, ['ls-tree', '--name-only', `${a.head as string}:burst`]).split('\n').filter(n => n.startsWith('f')).length, 300, 'git lists every file')
  t.equal(git(gitdirA, ['cat-file', '-t', a.head as string]).trim(), 'commit')
  t.ok(fs.existsSync(path.join(gitdirA, 'objects', (a.head as string).slice(0, 2), (a.head as string).slice(2))), 'the commit itself is loose (a damaged start falls back among loose commits)')

  const outcome = await pullInto(a, dirA, b, dirB)
  t.equal(outcome.kind, 'fast-forward')
  const listed = b.lookup('/burst')
  t.equal(listed?.kind === 'dir' ? listed.children.size : 0, 300, 'the peer lists every file')

  // A start without a snapshot loads the index from the pack.
  const store = new GitStore(gitdirA, silentLogger)
  const root = await store.load(a.head, { perm: 0o755, uid: 0, gid: 0, mtime: 0, ctime: 0, atime: 0 })
  const loaded = root.children.get('burst')
  t.equal(loaded?.kind === 'dir' ? loaded.children.size : 0, 300, 'a start loads every file')
})

t.test('a few new files stay loose objects', async t => {
  const dir = tempDir(t)
  const a = await openMeta(t, dir, '0123456789abcdef')
  const attrs = { perm: 0o644, uid: 0, gid: 0, mtime: 1_700_000_000_000, ctime: 1_700_000_000_000, atime: 1_700_000_000_000 }
  for (let i = 0; i < 5; i++) a.apply({ op: 'create', path: `/f${i}`, attrs })
  await a.commitNow()
  const packDir = path.join(dir, 'meta', 'objects', 'pack')
  t.same(fs.existsSync(packDir) ? fs.readdirSync(packDir) : [], [], 'no pack')
  execFileSync('git', ['--git-dir', path.join(dir, 'meta'), 'fsck', '--strict', '--no-dangling'])
})

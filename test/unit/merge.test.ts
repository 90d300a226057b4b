import t from 'tap'
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import git from 'isomorphic-git'
import { buildInfo, infoHash, pieceLengthFor } from '../../lib/core/torrent-info.js'
import { silentLogger, type Logger } from '../../lib/core/log.js'
import { DIR_MARKER, fromGitName, isSafeName } from '../../lib/meta/names.js'
import { conflictName } from '../../lib/meta/conflict-names.js'
import { mergeHeads, type MergeResult } from '../../lib/meta/merge.js'
import { gitObjectStore, MissingObjectError, type ObjectStore, type RawTreeEntry } from '../../lib/meta/object-store.js'

/** The type of a subtest's `t`. */
type Tt = Parameters<Parameters<typeof t.test>[0]>[0]

// ---------------------------------------------------------------------------------------------
// Trees as JS objects: a plain object is a directory (marker mtime 0), the rest are explicit.

class File {
  /** `atime`, when given, is written as a newer release writes one that differs from mtime; `ctime` defaults to mtime. */
  constructor (readonly content: string, readonly mtime: number, readonly by?: string, readonly exec = false, readonly atime?: number, readonly ctime = mtime) {}
}
class Link {
  constructor (readonly target: string) {}
}
class Dir {
  /** `volume` goes into the marker as it is, valid or not. */
  constructor (readonly children: Plain, readonly mtime = 0, readonly volume?: unknown, readonly atime?: number) {}
}
type Spec = File | Link | Dir
interface Plain { [name: string]: Spec | Plain }

const T0 = Date.UTC(2024, 4, 1, 12, 0, 0)
const f = (content: string, mtime = T0, by?: string): File => new File(content, mtime, by)
const ln = (target: string): Link => new Link(target)
const d = (children: Plain, mtime = 0, volume?: unknown): Dir => new Dir(children, mtime, volume)
/** A file whose atime was set apart from its mtime (touch -a: ctime moves too). */
const fa = (content: string, mtime: number, atime: number, ctime: number): File => new File(content, mtime, undefined, false, atime, ctime)
const NODE_A = 'aaaaaaaaaaaaaaaa'
const NODE_B = 'bbbbbbbbbbbbbbbb'

const contents = new Map<string, string>()

function entryJson (file: File): string {
  const bytes = Buffer.from(file.content)
  const e: Record<string, unknown> = { v: 1, size: bytes.length, perm: file.exec ? 0o755 : 0o644, uid: 0, gid: 0, mtime: file.mtime, ctime: file.ctime }
  if (file.atime !== undefined) e.atime = file.atime
  if (bytes.length > 0) {
    const pieceLength = pieceLengthFor(bytes.length)
    const digests: Buffer[] = []
    for (let at = 0; at < bytes.length; at += pieceLength) digests.push(createHash('sha1').update(bytes.subarray(at, at + pieceLength)).digest())
    const info = buildInfo('volume-under-test', bytes.length, pieceLength, digests)
    e.infohash = infoHash(info)
    e.info = info
    contents.set(e.infohash as string, file.content)
  }
  if (file.by !== undefined) e.by = file.by
  return JSON.stringify(e) + '\n'
}

const markerJson = (mtime: number, volume?: unknown, atime?: number): string =>
  JSON.stringify({ v: 1, perm: 0o755, uid: 0, gid: 0, mtime, ctime: mtime, atime, volume }) + '\n'

function toGit (name: string): string {
  // names.ts escapes; the tests use the same function the code under test trusts.
  return name === '.git' || name.startsWith('.swarmfs~') || name === DIR_MARKER ? '.swarmfs~' + name : name
}

function markerShown (marker: { mtime: number, atime?: number, volume?: unknown }): string {
  return `dir@${marker.mtime}` + (marker.atime !== undefined ? ` atime=${marker.atime}` : '') + (marker.volume !== undefined ? ` volume=${JSON.stringify(marker.volume)}` : '')
}

class Repo {
  readonly store: ObjectStore
  private constructor (readonly gitdir: string) {
    this.store = gitObjectStore(gitdir)
  }

  static async create (tt: Tt): Promise<Repo> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'swarmfs-merge-'))
    tt.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
    await git.init({ fs, gitdir: dir, bare: true, defaultBranch: 'main' })
    return new Repo(dir)
  }

  // isomorphic-git deflates an object before it finds it already stored: remember what was written.
  private readonly written = new Map<string, string>()

  async blob (text: string | Buffer): Promise<string> {
    const key = 'blob ' + Buffer.from(text).toString('base64')
    const known = this.written.get(key)
    if (known !== undefined) return known
    const oid = await git.writeBlob({ fs, gitdir: this.gitdir, blob: Buffer.from(text) })
    this.written.set(key, oid)
    return oid
  }

  async node (spec: Spec | Plain): Promise<{ mode: string, oid: string }> {
    if (spec instanceof File) return { mode: spec.exec ? '100755' : '100644', oid: await this.blob(entryJson(spec)) }
    if (spec instanceof Link) return { mode: '120000', oid: await this.blob(spec.target) }
    return { mode: '040000', oid: await this.tree(spec) }
  }

  async tree (spec: Dir | Plain): Promise<string> {
    const dir = spec instanceof Dir ? spec : new Dir(spec)
    const tree = [{ name: DIR_MARKER, mode: '100644', oid: await this.blob(markerJson(dir.mtime, dir.volume, dir.atime)) }]
    for (const [name, child] of Object.entries(dir.children)) tree.push({ name: toGit(name), ...await this.node(child) })
    const key = 'tree ' + JSON.stringify(tree)
    const known = this.written.get(key)
    if (known !== undefined) return known
    const oid = await this.store.writeTree(tree)
    this.written.set(key, oid)
    return oid
  }

  /** A tree object written byte for byte, so it can hold what git clients refuse. */
  async rawTree (entries: Array<[string, string | Buffer, string]>): Promise<string> {
    const object = Buffer.concat(entries.map(([mode, name, oid]) =>
      Buffer.concat([Buffer.from(`${mode} `), Buffer.from(name), Buffer.from([0]), Buffer.from(oid, 'hex')])))
    return await git.writeObject({ fs, gitdir: this.gitdir, type: 'tree', object, format: 'content' })
  }

  async rawEntries (tree: string): Promise<Array<[string, string, string]>> {
    return (await this.store.readTree(tree)).map(e => [e.mode === '040000' ? '40000' : e.mode, e.name, e.oid])
  }

  async commit (spec: Plain | Dir | string, parents: string[], time: number): Promise<string> {
    const tree = typeof spec === 'string' ? spec : await this.tree(spec)
    const sig = { name: 'test', email: 'test@test', timestamp: time, timezoneOffset: 0 }
    return await git.writeCommit({ fs, gitdir: this.gitdir, commit: { message: `at ${time}\n`, tree, parent: parents, author: sig, committer: sig } })
  }

  async treeOf (commit: string): Promise<string> {
    return (await this.store.readCommit(commit)).tree
  }

  /** The tree as path → readable description (markers at `dir/`). */
  async flat (tree: string, prefix = '', out: Record<string, string> = {}): Promise<Record<string, string>> {
    for (const e of await this.store.readTree(tree)) {
      const text = e.mode === '040000' ? '' : Buffer.from(await this.store.readBlob(e.oid)).toString()
      if (e.name === DIR_MARKER) out[prefix + '/'] = markerShown(JSON.parse(text))
      else if (e.mode === '040000') await this.flat(e.oid, `${prefix}/${fromGitName(e.name)}`, out)
      else if (e.mode === '120000') out[`${prefix}/${fromGitName(e.name)}`] = `-> ${text}`
      else {
        const entry = JSON.parse(text)
        out[`${prefix}/${fromGitName(e.name)}`] = `${entry.size === 0 ? '' : contents.get(entry.infohash) ?? '?'}@${entry.mtime as number}` +
          (entry.atime !== undefined ? ` atime=${entry.atime as number} ctime=${entry.ctime as number}` : '')
      }
    }
    return out
  }

  async flatCommit (commit: string): Promise<Record<string, string>> {
    return await this.flat(await this.treeOf(commit))
  }

  /** Every non-tree entry by path (markers under their git name). */
  async entries (tree: string, prefix = '', out = new Map<string, string>()): Promise<Map<string, string>> {
    for (const e of await this.store.readTree(tree)) {
      const p = `${prefix}/${e.name === DIR_MARKER ? e.name : fromGitName(e.name)}`
      if (e.mode === '040000') await this.entries(e.oid, p, out)
      else out.set(p, `${e.mode} ${e.oid}`)
    }
    return out
  }
}

interface Recorder extends Logger { warnings: Array<{ msg: string, fields?: Record<string, unknown> }> }
function recorder (): Recorder {
  const warnings: Recorder['warnings'] = []
  const log: Recorder = { ...silentLogger, warnings, warn: (msg, fields) => { warnings.push({ msg, fields }) }, child: () => log }
  return log
}

async function expectTree (tt: Tt, repo: Repo, commit: string, expected: Plain | Dir): Promise<void> {
  const want = await repo.tree(expected)
  tt.same(await repo.flatCommit(commit), await repo.flat(want), 'merged tree')
  tt.equal(await repo.treeOf(commit), want, 'merged tree, byte for byte')
}

interface Scenario { repo: Repo, base: string, ours: string, theirs: string, result: MergeResult }

/** base → ours and base → theirs, merged both ways round: the commit must be the same. */
async function scenario (tt: Tt, base: Plain | Dir, ours: Plain | Dir, theirs: Plain | Dir): Promise<Scenario> {
  const repo = await Repo.create(tt)
  const b = await repo.commit(base, [], 1000)
  const o = await repo.commit(ours, [b], 2000)
  const th = await repo.commit(theirs, [b], 3000)
  const result = await mergeHeads(repo.store, o, th, silentLogger)
  const reverse = await mergeHeads(repo.store, th, o, silentLogger)
  tt.equal(result.kind, 'merged')
  tt.equal(reverse.commit, result.commit, 'the same commit whichever side merges')
  tt.same(reverse.conflicts, result.conflicts, 'the same conflicts whichever side merges')
  tt.same(result.rejected, [])
  return { repo, base: b, ours: o, theirs: th, result }
}

const stamp = (ms: number): string => new Date(ms).toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15)

// ---------------------------------------------------------------------------------------------

t.test('conflict names', async t => {
  const at = Date.UTC(2024, 0, 2, 3, 4, 5, 678)
  t.equal(conflictName('report.pdf', at, '0123456789abcdef'), 'report.sync-conflict-20240102-030405-0123456789abcdef.pdf')
  t.equal(conflictName('archive.tar.gz', at, 'w'), 'archive.tar.sync-conflict-20240102-030405-w.gz')
  t.equal(conflictName('.bashrc', at, 'w'), '.bashrc.sync-conflict-20240102-030405-w', 'a leading dot is no extension')
  t.equal(conflictName('.config.json', at, 'w'), '.config.sync-conflict-20240102-030405-w.json')
  t.equal(conflictName('Makefile', at, 'w'), 'Makefile.sync-conflict-20240102-030405-w')
  t.equal(conflictName('trailing.', at, 'w'), 'trailing..sync-conflict-20240102-030405-w', 'an empty extension is none')
  t.equal(conflictName('report.pdf', at, 'w', 3), 'report.sync-conflict-20240102-030405-w-3.pdf')
  t.equal(conflictName('x', Number.NaN, 'w'), 'x.sync-conflict-19700101-000000-w')
  t.equal(conflictName('x', 1e300, 'w'), 'x.sync-conflict-19700101-000000-w')
  t.equal(conflictName('x', -5, 'w'), 'x.sync-conflict-19700101-000000-w')
  const long = conflictName('x'.repeat(250) + '.txt', at, '0123456789abcdef', 12)
  t.ok(isSafeName(long) && long.endsWith('-12.txt') && Buffer.byteLength(long) === 255, 'a long name is shortened to 255 bytes')
  const wide = conflictName('é'.repeat(127), at, 'w')
  t.ok(isSafeName(wide) && !wide.includes('\ufffd'), 'shortened on whole characters')
  const hugeExt = conflictName('a.' + 'e'.repeat(250), at, 'w')
  t.ok(isSafeName(hugeExt) && hugeExt.includes('.sync-conflict-'), 'an extension too long to keep is part of the stem')
})

t.test('heads in one line of history: up to date, fast-forward', async t => {
  const repo = await Repo.create(t)
  const a = await repo.commit({ 'x.txt': f('x') }, [], 1000)
  const b = await repo.commit({ 'x.txt': f('x'), sub: { 'y.txt': f('y') } }, [a], 2000)
  t.same(await mergeHeads(repo.store, b, a, silentLogger), { kind: 'up-to-date', commit: b, conflicts: [], rejected: [] })
  t.same(await mergeHeads(repo.store, a, a, silentLogger), { kind: 'up-to-date', commit: a, conflicts: [], rejected: [] })
  t.same(await mergeHeads(repo.store, a, b, silentLogger), { kind: 'fast-forward', commit: b, conflicts: [], rejected: [] })
})

t.test('the merge commit derives from the two heads only', async t => {
  const repo = await Repo.create(t)
  const base = await repo.commit({ 'x.txt': f('x') }, [], 1000)
  const o = await repo.commit({ 'x.txt': f('x'), 'o.txt': f('o') }, [base], 5000)
  const th = await repo.commit({ 'x.txt': f('x'), 't.txt': f('t') }, [base], 3000)
  const r = await mergeHeads(repo.store, o, th, silentLogger)
  const { commit } = await git.readCommit({ fs, gitdir: repo.gitdir, oid: r.commit })
  const [a, b] = [o, th].sort()
  const sig = { name: 'swarmfs', email: 'merge@swarmfs', timestamp: 5000, timezoneOffset: 0 }
  t.same(commit.parent, [a, b])
  t.same(commit.author, sig)
  t.same(commit.committer, sig)
  t.equal(commit.message, `Merge ${a} and ${b}\n`)
  await expectTree(t, repo, r.commit, { 'x.txt': f('x'), 'o.txt': f('o'), 't.txt': f('t') })
})

t.test('changes on one side, and the same change on both', async t => {
  const base = { keep: f('keep'), a: { 'x.txt': f('x'), deep: { 'y.txt': f('y') } }, b: { 'z.txt': f('z') }, gone: f('gone') }
  const ours = { keep: f('keep'), a: { 'x.txt': f('x2', T0 + 5), deep: { 'y.txt': f('y') } }, b: { 'z.txt': f('z') }, same: f('s', T0, NODE_A), n: f('new-o') }
  const theirs = { keep: f('keep'), a: { 'x.txt': f('x'), deep: { 'y.txt': f('y3', T0 + 9) } }, b: { 'z.txt': f('z'), w: ln('target') }, same: f('s', T0, NODE_A) }
  const { repo, result } = await scenario(t, base, ours, theirs)
  t.same(result.conflicts, [])
  await expectTree(t, repo, result.commit, {
    keep: f('keep'),
    a: { 'x.txt': f('x2', T0 + 5), deep: { 'y.txt': f('y3', T0 + 9) } },
    b: { 'z.txt': f('z'), w: ln('target') },
    same: f('s', T0, NODE_A),
    n: f('new-o')
  })
})

t.test('subtrees equal on two sides are not read', async t => {
  const repo = await Repo.create(t)
  const big: Plain = {}
  for (let i = 0; i < 50; i++) big[`f${i}`] = f(`content ${i}`)
  const base = await repo.commit({ big, o: { x: f('x') }, t: { y: f('y') } }, [], 1000)
  const o = await repo.commit({ big, o: { x: f('x2') }, t: { y: f('y') } }, [base], 2000)
  const th = await repo.commit({ big, o: { x: f('x') }, t: { y: f('y2') } }, [base], 3000)
  const reads: string[] = []
  const store: ObjectStore = { ...repo.store, readTree: async oid => { reads.push(oid); return await repo.store.readTree(oid) } }
  const bigOid = await repo.tree(big)
  await mergeHeads(store, o, th, silentLogger)
  t.notOk(reads.includes(bigOid), 'diverged merge: the unchanged subtree is taken by oid')
  reads.length = 0
  const ff = await repo.commit({ big, o: { x: f('x2') }, t: { y: f('y'), more: f('m') } }, [o], 4000)
  t.equal((await mergeHeads(store, o, ff, silentLogger)).kind, 'fast-forward')
  t.notOk(reads.includes(bigOid), 'fast-forward check: only subtrees theirs changed are read')
  t.notOk(reads.includes(await repo.tree({ x: f('x2') })))
})

t.test('a file changed on both sides: the newer keeps the name, the other a conflict name', async t => {
  const base = { docs: { 'notes.txt': f('base') } }
  const older = T0 + 1000
  const newer = T0 + 2000
  const { repo, result } = await scenario(t, base,
    { docs: { 'notes.txt': f('ours', newer, NODE_A) } },
    { docs: { 'notes.txt': f('theirs', older, NODE_B) } })
  const copy = `notes.sync-conflict-${stamp(older)}-${NODE_B}.txt`
  t.equal(copy, 'notes.sync-conflict-20240501-120001-bbbbbbbbbbbbbbbb.txt')
  await expectTree(t, repo, result.commit, { docs: { 'notes.txt': f('ours', newer, NODE_A), [copy]: f('theirs', older, NODE_B) } })
  t.same(result.conflicts, [{ path: '/docs/notes.txt', copy: `/docs/${copy}` }])
})

t.test('without a valid writer id the conflict name uses the blob oid; equal mtimes go to the larger oid', async t => {
  const repoForOids = await Repo.create(t)
  const one = f('one', T0, 'not-a-node-id')
  const two = f('two', T0)
  const [oidOne, oidTwo] = [await repoForOids.blob(entryJson(one)), await repoForOids.blob(entryJson(two))]
  const [winner, loser, loserOid] = oidOne > oidTwo ? [one, two, oidTwo] : [two, one, oidOne]
  const { repo, result } = await scenario(t, { 'a.md': f('base') }, { 'a.md': one }, { 'a.md': two })
  await expectTree(t, repo, result.commit, { 'a.md': winner, [`a.sync-conflict-${stamp(T0)}-${loserOid.slice(0, 8)}.md`]: loser })
})

t.test('equal mtimes: the longer version wins whatever the oids (a file committed while written, then whole)', async t => {
  const partial = f('', T0, NODE_B)
  // A whole version whose blob oid is the smaller one, so the oid alone would pick the partial one.
  const repoForOids = await Repo.create(t)
  const partialOid = await repoForOids.blob(entryJson(partial))
  let whole = f('the whole file, written in the same millisecond', T0, NODE_B)
  for (let i = 0; await repoForOids.blob(entryJson(whole)) > partialOid; i++) whole = f(`the whole file, version ${i}`, T0, NODE_B)
  for (const [ours, theirs] of [[partial, whole], [whole, partial]]) {
    const { repo, result } = await scenario(t, { 'a.bin': f('base') }, { 'a.bin': ours }, { 'a.bin': theirs })
    await expectTree(t, repo, result.commit, { 'a.bin': whole, [conflictName('a.bin', T0, NODE_B)]: partial })
  }
})

t.test('a conflict name already taken gets -2, -3', async t => {
  const copy = conflictName('a.txt', T0, NODE_B)
  const copy2 = conflictName('a.txt', T0, NODE_B, 2)
  const { repo, result } = await scenario(t,
    { 'a.txt': f('base'), [copy]: f('old conflict') },
    { 'a.txt': f('ours', T0 + 1, NODE_A), [copy]: f('old conflict') },
    { 'a.txt': f('theirs', T0, NODE_B), [copy]: f('old conflict'), [copy2]: f('another') })
  t.equal(copy2, `a.sync-conflict-${stamp(T0)}-${NODE_B}-2.txt`)
  await expectTree(t, repo, result.commit, {
    'a.txt': f('ours', T0 + 1, NODE_A),
    [copy]: f('old conflict'),
    [copy2]: f('another'),
    [conflictName('a.txt', T0, NODE_B, 3)]: f('theirs', T0, NODE_B)
  })
})

t.test('names that need escaping are compared and renamed unescaped', async t => {
  const { repo, result } = await scenario(t,
    { '.git': f('base') },
    { '.git': f('ours', T0 + 1, NODE_A) },
    { '.git': f('theirs', T0, NODE_B) })
  const copy = conflictName('.git', T0, NODE_B)
  t.equal(copy, `.git.sync-conflict-${stamp(T0)}-${NODE_B}`)
  await expectTree(t, repo, result.commit, { '.git': f('ours', T0 + 1, NODE_A), [copy]: f('theirs', T0, NODE_B) })
  const entries = await repo.store.readTree(await repo.treeOf(result.commit))
  t.ok(entries.some(e => e.name === '.swarmfs~.git'), 'still escaped in git')
})

t.test('delete against change keeps the change; delete against unchanged deletes', async t => {
  const { repo, result } = await scenario(t,
    { a: f('a'), b: f('b'), c: f('c'), d: f('d') },
    { a: f('a2', T0 + 1), c: f('c') },
    { b: f('b2', T0 + 1), c: f('c') })
  await expectTree(t, repo, result.commit, { a: f('a2', T0 + 1), b: f('b2', T0 + 1), c: f('c') })
  t.same(result.conflicts, [])
})

t.test('a directory deleted on one side keeps only what the other side changed in it', async t => {
  const base = { dir: d({ old: f('old'), changed: f('c'), sub: { deep: f('deep'), also: f('also') }, removed: f('r') }, T0) }
  const { repo, result } = await scenario(t, base,
    {},
    { dir: d({ old: f('old'), changed: f('c2', T0 + 5), sub: { deep: f('deep'), also: f('also'), fresh: f('fresh') }, added: { empty: {} } }, T0 + 7) })
  await expectTree(t, repo, result.commit, {
    dir: d({ changed: f('c2', T0 + 5), sub: { fresh: f('fresh') }, added: { empty: {} } }, T0 + 7)
  })
})

t.test('a directory deleted on one side, the other only deleting in it, is gone', async t => {
  const { repo, result } = await scenario(t,
    { dir: d({ a: f('a'), b: f('b') }, T0), other: f('o') },
    { dir: d({ a: f('a') }, T0 + 1), other: f('o') },
    { other: f('o') })
  await expectTree(t, repo, result.commit, { other: f('o') })
})

t.test('file against directory: the directory keeps the name', async t => {
  const { repo, result } = await scenario(t,
    { x: f('x') },
    { x: { inner: f('i') } },
    { x: f('x2', T0 + 3, NODE_B) })
  await expectTree(t, repo, result.commit, { x: { inner: f('i') }, [conflictName('x', T0 + 3, NODE_B)]: f('x2', T0 + 3, NODE_B) })
  t.same(result.conflicts, [{ path: '/x', copy: `/${conflictName('x', T0 + 3, NODE_B)}` }])
})

t.test('directory replaced by a file on one side, changed on the other: both kept', async t => {
  const { repo, result } = await scenario(t,
    { x: { a: f('a'), b: f('b') } },
    { x: { a: f('a2', T0 + 1), b: f('b') } },
    { x: f('now a file', T0 + 2, NODE_B) })
  await expectTree(t, repo, result.commit, { x: { a: f('a2', T0 + 1) }, [conflictName('x', T0 + 2, NODE_B)]: f('now a file', T0 + 2, NODE_B) })
})

t.test('directory replaced by a file on one side, unchanged on the other: replaced', async t => {
  const { repo, result } = await scenario(t,
    { x: { a: f('a') }, y: f('y') },
    { x: { a: f('a') }, y: f('y2', T0 + 1) },
    { x: f('file'), y: f('y') })
  await expectTree(t, repo, result.commit, { x: f('file'), y: f('y2', T0 + 1) })
})

t.test('symlink against directory: the directory keeps the name', async t => {
  const { repo, result } = await scenario(t,
    {},
    { l: ln('/somewhere') },
    { l: { inside: f('i') } })
  const linkOid = await repo.blob('/somewhere')
  await expectTree(t, repo, result.commit, { l: { inside: f('i') }, [conflictName('l', 0, linkOid.slice(0, 8))]: ln('/somewhere') })
})

t.test('file against symlink: the file is newer unless its mtime is 0', async t => {
  const s = await scenario(t, {}, { x: f('file', T0, NODE_A) }, { x: ln('target') })
  const linkOid = await s.repo.blob('target')
  await expectTree(t, s.repo, s.result.commit, { x: f('file', T0, NODE_A), [conflictName('x', 0, linkOid.slice(0, 8))]: ln('target') })

  const zero = f('file', 0, NODE_A)
  const z = await scenario(t, {}, { x: zero }, { x: ln('target') })
  const fileOid = await z.repo.blob(entryJson(zero))
  const expected: Plain = fileOid > linkOid
    ? { x: zero, [conflictName('x', 0, linkOid.slice(0, 8))]: ln('target') }
    : { x: ln('target'), [conflictName('x', 0, NODE_A)]: zero }
  await expectTree(t, z.repo, z.result.commit, expected)
})

t.test('symlinks changed on both sides: the larger oid keeps the name', async t => {
  const { repo, result } = await scenario(t, { l: ln('base') }, { l: ln('one') }, { l: ln('two') })
  const [one, two] = [await repo.blob('one'), await repo.blob('two')]
  const [win, lose, loseOid] = one > two ? ['one', 'two', two] : ['two', 'one', one]
  await expectTree(t, repo, result.commit, { l: ln(win), [conflictName('l', 0, loseOid.slice(0, 8))]: ln(lose) })
})

t.test('directory attributes changed on both sides: the newer mtime wins', async t => {
  const { repo, result } = await scenario(t,
    { dir: d({ a: f('a') }, T0), other: d({}, T0) },
    { dir: d({ a: f('a') }, T0 + 50), other: d({}, T0 + 1) },
    { dir: d({ a: f('a') }, T0 + 20), other: d({}, T0 + 2) })
  await expectTree(t, repo, result.commit, { dir: d({ a: f('a') }, T0 + 50), other: d({}, T0 + 2) })
  t.same(result.conflicts, [])
})

t.test('an atime set on one side only is taken, with no conflict copy', async t => {
  const { repo, result } = await scenario(t,
    { 'a.txt': f('a'), 'b.txt': f('b'), sub: d({ x: f('x') }, T0) },
    { 'a.txt': fa('a', T0, T0 - 50_000, T0 + 5), 'b.txt': f('b'), sub: new Dir({ x: f('x') }, T0, undefined, -1000) },
    { 'a.txt': f('a'), 'b.txt': fa('b', T0, -315619200000, T0 + 6), sub: d({ x: f('x') }, T0), 'new.txt': f('n') })
  await expectTree(t, repo, result.commit, {
    'a.txt': fa('a', T0, T0 - 50_000, T0 + 5),
    'b.txt': fa('b', T0, -315619200000, T0 + 6),
    sub: new Dir({ x: f('x') }, T0, undefined, -1000),
    'new.txt': f('n')
  })
  t.same(result.conflicts, [])
})

t.test('atimes set on both sides: the later change (ctime) keeps the name, as for any attribute, the same everywhere', async t => {
  const earlier = fa('a', T0, T0 - 50_000, T0 + 5)
  const later = fa('a', T0, T0 - 80_000, T0 + 7)
  const s = await scenario(t, { 'a.txt': f('a') }, { 'a.txt': earlier }, { 'a.txt': later })
  const loserOid = await s.repo.blob(entryJson(earlier))
  const copy = conflictName('a.txt', T0, loserOid.slice(0, 8))
  await expectTree(t, s.repo, s.result.commit, { 'a.txt': later, [copy]: earlier })
  t.same(s.result.conflicts, [{ path: '/a.txt', copy: `/${copy}` }])
  await sameTreeBothWays(t, s)
})

t.test('an entry of an older release (no atime) against a newer one\'s: merged by mtime and ctime as ever', async t => {
  // Only the atime differs from the base on one side; the other side wrote the file again.
  const s = await scenario(t, { 'a.txt': f('a') }, { 'a.txt': fa('a', T0, T0 - 1, T0 + 1) }, { 'a.txt': f('rewritten', T0 + 2, NODE_B) })
  const copy = conflictName('a.txt', T0, (await s.repo.blob(entryJson(fa('a', T0, T0 - 1, T0 + 1)))).slice(0, 8))
  await expectTree(t, s.repo, s.result.commit, { 'a.txt': f('rewritten', T0 + 2, NODE_B), [copy]: fa('a', T0, T0 - 1, T0 + 1) })
})

t.test('a directory\'s atime is in its marker: against another change of the directory, the newer mtime wins', async t => {
  const { repo, result } = await scenario(t,
    { sub: d({ x: f('x') }, T0) },
    { sub: new Dir({ x: f('x') }, T0, undefined, T0 - 9) },
    { sub: d({ x: f('x'), y: f('y') }, T0 + 20) })
  await expectTree(t, repo, result.commit, { sub: d({ x: f('x'), y: f('y') }, T0 + 20) })
})

const vol = (copies: number, graceMs: number, at: number): { copies: number, graceMs: number, at: number } => ({ copies, graceMs, at })

/** Both ways round, the same tree; the checks of `scenario` come on top. */
async function sameTreeBothWays (t: Tt, s: Scenario): Promise<void> {
  const reverse = await mergeHeads(s.repo.store, s.theirs, s.ours, silentLogger)
  t.equal(await s.repo.treeOf(reverse.commit), await s.repo.treeOf(s.result.commit), 'the same tree id whichever side merges')
}

t.test('root volume settings: the newer at wins, even against the root marker with the newer mtime', async t => {
  const base = d({ a: f('a') }, T0)
  const older = vol(3, 1000, T0 + 10)
  const newer = vol(4, 2000, T0 + 30)
  const s = await scenario(t, base, d({ a: f('a'), o: f('o') }, T0 + 50, older), d({ a: f('a'), t: f('t') }, T0 + 20, newer))
  await sameTreeBothWays(t, s)
  await expectTree(t, s.repo, s.result.commit, d({ a: f('a'), o: f('o'), t: f('t') }, T0 + 50, newer))

  const none = await scenario(t, base, d({ a: f('a'), o: f('o') }, T0 + 5, older), d({ a: f('a'), t: f('t') }, T0 + 60))
  await sameTreeBothWays(t, none)
  await expectTree(t, none.repo, none.result.commit, d({ a: f('a'), o: f('o'), t: f('t') }, T0 + 60, older))
})

t.test('root volume settings set at the same instant: more copies, then the longer grace, everywhere', async t => {
  const base = d({}, T0)
  const s = await scenario(t, base, d({ o: f('o') }, T0 + 9, vol(3, 50, T0 + 1)), d({ t: f('t') }, T0 + 2, vol(5, 10, T0 + 1)))
  await sameTreeBothWays(t, s)
  await expectTree(t, s.repo, s.result.commit, d({ o: f('o'), t: f('t') }, T0 + 9, vol(5, 10, T0 + 1)))
  const g = await scenario(t, base, d({ o: f('o') }, T0 + 9, vol(3, 50, T0 + 1)), d({ t: f('t') }, T0 + 2, vol(3, 70, T0 + 1)))
  await expectTree(t, g.repo, g.result.commit, d({ o: f('o'), t: f('t') }, T0 + 9, vol(3, 70, T0 + 1)))
})

t.test('root volume settings changed on one side, the marker on both: the changed settings are kept; a fast-forward stays one', async t => {
  const base = d({ a: f('a') }, T0, vol(3, 1000, T0))
  const s = await scenario(t, base, d({ a: f('a'), o: f('o') }, T0 + 50, vol(3, 1000, T0)), d({ a: f('a') }, T0 + 20, vol(6, 1000, T0 + 5)))
  await expectTree(t, s.repo, s.result.commit, d({ a: f('a'), o: f('o') }, T0 + 50, vol(6, 1000, T0 + 5)))

  const repo = await Repo.create(t)
  const b = await repo.commit(base, [], 1000)
  const ahead = await repo.commit(d({ a: f('a') }, T0, vol(1, 0, T0 + 7)), [b], 2000)
  t.same(await mergeHeads(repo.store, b, ahead, silentLogger), { kind: 'fast-forward', commit: ahead, conflicts: [], rejected: [] })
})

t.test('malformed root volume settings from a peer count as none', async t => {
  const base = d({ a: f('a') }, T0)
  const ours = vol(3, 1000, T0 + 10)
  const hostile = [{ copies: 99, graceMs: 1, at: T0 + 1000 }, { copies: 4, graceMs: -1, at: T0 + 1000 }, { copies: 4, graceMs: 1, at: 'later' }, 'all of them']
  for (const bad of hostile) {
    const s = await scenario(t, base, d({ a: f('a'), o: f('o') }, T0 + 5, ours), d({ a: f('a'), t: f('t') }, T0 + 50, bad))
    await sameTreeBothWays(t, s)
    await expectTree(t, s.repo, s.result.commit, d({ a: f('a'), o: f('o'), t: f('t') }, T0 + 50, ours))
  }

  // A peer's head that descends from ours cannot undo our settings with malformed ones either.
  const repo = await Repo.create(t)
  const mine = await repo.commit(d({ a: f('a') }, T0, ours), [], 1000)
  const theirs = await repo.commit(d({ a: f('a') }, T0 + 50, hostile[0]), [mine], 2000)
  const r = await mergeHeads(repo.store, mine, theirs, silentLogger)
  t.equal(r.kind, 'merged')
  await expectTree(t, repo, r.commit, d({ a: f('a') }, T0 + 50, ours))
})

t.test('volume settings in any other directory\'s marker are no settings: that marker merges as before', async t => {
  const { repo, result } = await scenario(t,
    { sub: d({ a: f('a') }, T0) },
    { sub: d({ a: f('a') }, T0 + 50) },
    { sub: d({ a: f('a') }, T0 + 20, vol(9, 9, T0 + 99)) })
  await expectTree(t, repo, result.commit, { sub: d({ a: f('a') }, T0 + 50) })
})

t.test('convergence: both nodes write the same merge, and merging it settles', async t => {
  const base: Plain = { shared: f('s'), doc: f('base') }
  const a: Plain = { shared: f('s'), doc: f('from a', T0 + 1, NODE_A), onlyA: f('a') }
  const b: Plain = { shared: f('s'), doc: f('from b', T0 + 2, NODE_B), onlyB: { x: f('b') } }
  const [r1, r2] = [await Repo.create(t), await Repo.create(t)]
  const heads = []
  for (const repo of [r1, r2]) {
    const c = await repo.commit(base, [], 1000)
    heads.push([await repo.commit(a, [c], 2000), await repo.commit(b, [c], 3000)])
  }
  t.same(heads[0], heads[1], 'both repositories hold the same objects')
  const [ha, hb] = heads[0] as [string, string]
  const onA = await mergeHeads(r1.store, ha, hb, silentLogger)
  const onB = await mergeHeads(r2.store, hb, ha, silentLogger)
  t.equal(onA.kind, 'merged')
  t.equal(onA.commit, onB.commit, 'the same commit on both nodes')
  const m = onA.commit
  t.same(await mergeHeads(r1.store, m, hb, silentLogger), { kind: 'up-to-date', commit: m, conflicts: [], rejected: [] })
  t.same(await mergeHeads(r2.store, m, ha, silentLogger), { kind: 'up-to-date', commit: m, conflicts: [], rejected: [] })
  t.same(await mergeHeads(r1.store, ha, m, silentLogger), { kind: 'fast-forward', commit: m, conflicts: [], rejected: [] })
  t.same(await mergeHeads(r2.store, m, m, silentLogger), { kind: 'up-to-date', commit: m, conflicts: [], rejected: [] })
})

t.test('criss-cross merges: the bases are merged first, the same everywhere', async t => {
  const repo = await Repo.create(t)
  const base = await repo.commit({ f: f('base'), g: f('g') }, [], 1000)
  const a1 = await repo.commit({ f: f('a1', T0 + 1, NODE_A), g: f('g') }, [base], 2000)
  const b1 = await repo.commit({ f: f('b1', T0 + 2, NODE_B), g: f('g') }, [base], 2100)
  const b2 = await repo.commit({ f: f('b1', T0 + 2, NODE_B), g: f('g2', T0 + 3) }, [b1], 2200)
  const mA = (await mergeHeads(repo.store, a1, b1, silentLogger)).commit
  const mB = (await mergeHeads(repo.store, b2, a1, silentLogger)).commit
  t.equal((await repo.store.findMergeBase([mA, mB])).length, 2, 'two best common ancestors')
  const r = await mergeHeads(repo.store, mA, mB, silentLogger)
  const r2 = await mergeHeads(repo.store, mB, mA, silentLogger)
  t.equal(r.kind, 'merged')
  t.equal(r.commit, r2.commit)
  const copy = conflictName('f', T0 + 1, NODE_A)
  await expectTree(t, repo, r.commit, { f: f('b1', T0 + 2, NODE_B), [copy]: f('a1', T0 + 1, NODE_A), g: f('g2', T0 + 3) })
  t.equal((await mergeHeads(repo.store, r.commit, mA, silentLogger)).kind, 'up-to-date')
  t.equal((await mergeHeads(repo.store, mB, r.commit, silentLogger)).kind, 'fast-forward')
})

/**
 * Two merges of the same two lines made at different times (one node merged an earlier commit of
 * a line, another node a later one) have two best common ancestors. Either base alone misreads
 * the history. Each case is built with several commit times, so that each of the two bases sorts
 * first in some of them.
 */
async function crissCross (tt: Tt, lines: { root: Plain, a1: Plain, a2: Plain, b1: Plain }, time: number): Promise<{ repo: Repo, result: MergeResult, aFirst: boolean }> {
  const repo = await Repo.create(tt)
  const root = await repo.commit(lines.root, [], 1000)
  const a1 = await repo.commit(lines.a1, [root], time)
  const a2 = await repo.commit(lines.a2, [a1], time + 10)
  const b1 = await repo.commit(lines.b1, [root], 1500)
  const early = (await mergeHeads(repo.store, a1, b1, silentLogger)).commit
  const late = (await mergeHeads(repo.store, a2, b1, silentLogger)).commit
  tt.same(await repo.store.findMergeBase([early, late]), [a1, b1].sort(), 'two best common ancestors: the earlier A commit and B\'s')
  const result = await mergeHeads(repo.store, early, late, silentLogger)
  const reverse = await mergeHeads(repo.store, late, early, silentLogger)
  tt.equal(reverse.commit, result.commit, 'the same commit whichever side merges')
  tt.equal((await mergeHeads(repo.store, result.commit, late, silentLogger)).kind, 'up-to-date')
  return { repo, result, aFirst: a1 < b1 }
}

t.test('criss-cross: a version that replaced another on its own line is not a conflict', async t => {
  // A writes `same/inside` empty, then whole (`>` then the write); B makes `same` a file meanwhile.
  const orders = new Set<boolean>()
  for (let time = 2000; orders.size < 2 && time < 2020; time++) {
    const inside = { empty: f('', T0 + 1, NODE_A), whole: f('0123456789', T0 + 2, NODE_A) }
    const bFile = f('from b', T0 + 3, NODE_B)
    const { repo, result, aFirst } = await crissCross(t, {
      root: { keep: f('k') },
      a1: { keep: f('k'), same: { inside: inside.empty } },
      a2: { keep: f('k'), same: { inside: inside.whole } },
      b1: { keep: f('k'), same: bFile }
    }, time)
    await expectTree(t, repo, result.commit, { keep: f('k'), same: { inside: inside.whole }, [conflictName('same', T0 + 3, NODE_B)]: bFile })
    t.same(result.conflicts, [], 'no new conflict copy')
    orders.add(aFirst)
  }
  t.equal(orders.size, 2, 'each base sorted first in some case')
})

t.test('criss-cross: a file deleted after one base stays deleted', async t => {
  const orders = new Set<boolean>()
  for (let time = 2000; orders.size < 2 && time < 2020; time++) {
    const { repo, result, aFirst } = await crissCross(t, {
      root: { keep: f('k') },
      a1: { keep: f('k'), gone: f('deleted later', T0 + 1, NODE_A) },
      a2: { keep: f('k') },
      b1: { keep: f('k'), fromB: f('b', T0 + 2, NODE_B) }
    }, time)
    await expectTree(t, repo, result.commit, { keep: f('k'), fromB: f('b', T0 + 2, NODE_B) })
    orders.add(aFirst)
  }
  t.equal(orders.size, 2, 'each base sorted first in some case')
})

t.test('histories without a common ancestor merge against an empty base', async t => {
  const repo = await Repo.create(t)
  const a = await repo.commit({ x: f('x', T0, NODE_A), same: f('s') }, [], 1000)
  const b = await repo.commit({ x: f('y', T0 + 1, NODE_B), other: f('o') }, [], 2000)
  const r = await mergeHeads(repo.store, a, b, silentLogger)
  t.equal(r.commit, (await mergeHeads(repo.store, b, a, silentLogger)).commit)
  await expectTree(t, repo, r.commit, { x: f('y', T0 + 1, NODE_B), [conflictName('x', T0, NODE_A)]: f('x', T0, NODE_A), same: f('s'), other: f('o') })
})

// ---------------------------------------------------------------------------------------------
// Hostile trees

/** `good` plus one entry of every kind a peer must not get into our tree. */
async function hostileRoot (repo: Repo, good: Plain): Promise<string> {
  const entries: Array<[string, string | Buffer, string]> = await repo.rawEntries(await repo.tree(good))
  const ok = await repo.blob(entryJson(f('fine')))
  const okTree = await repo.tree({ inner: f('inner') })
  const commit = await repo.commit({}, [], 1)
  const badMarkerDir = await repo.rawTree([['100755', DIR_MARKER, await repo.blob(markerJson(T0))], ['100644', 'in.txt', ok]])
  const withNul = Buffer.concat([Buffer.from('100644 a'), Buffer.from([0]), Buffer.from('b'), Buffer.from([0]), Buffer.from(ok, 'hex')])
  const nulTree = await git.writeObject({ fs, gitdir: repo.gitdir, type: 'tree', object: withNul, format: 'content' })
  const nested = await repo.rawTree([['40000', '..', okTree], ['100644', 'fine.txt', ok]])
  entries.push(
    ['40000', '..', okTree],
    ['100644', '.', ok],
    ['100644', 'a/b', ok],
    ['100644', '.git', ok],
    ['100644', '.swarmfs~plain', ok],
    ['160000', 'submodule', commit],
    ['100664', 'oldmode', ok],
    ['100644', 'undecodable', await repo.blob('{"size":5}')],
    ['100644', 'notjson', await repo.blob('hello')],
    ['100644', 'huge', await repo.blob(Buffer.alloc((1 << 20) + 1, 0x20))],
    ['120000', 'emptylink', await repo.blob('')],
    ['120000', 'nullink', await repo.blob('a\0b')],
    ['100644', 'dup', ok],
    ['100644', 'dup', ok],
    ['40000', 'notatree', ok],
    ['100644', 'blobisatree', okTree],
    ['40000', 'badmarker', badMarkerDir],
    ['40000', 'nul', nulTree],
    ['40000', 'nested', nested],
    ['100644', Buffer.from([0x66, 0xff, 0xfe]), ok],
    ['100644', 'ok.txt', ok]
  )
  return await repo.rawTree(entries)
}

function checkRejected (t: Tt, result: MergeResult, log: Recorder): void {
  const paths = result.rejected.map(r => r.path)
  const want = ['/"."', '/".."', '/"a/b"', '/".git"', '/".swarmfs~plain"', '/badmarker/.swarmfs-dir', '/blobisatree', '/dup', '/dup', '/emptylink',
    '/f\ufffd\ufffd', '/huge', '/nested/".."', '/notatree', '/notjson', '/nul', '/nullink', '/oldmode', '/submodule', '/undecodable']
  t.same([...paths].sort(), [...want].sort(), 'every hostile entry is refused, and nothing else')
  const reason = (p: string): string => result.rejected.find(r => r.path === p)?.reason ?? ''
  t.equal(reason('/".."'), 'unsafe name')
  t.equal(reason('/".git"'), 'name is not escaped canonically')
  t.equal(reason('/submodule'), 'unsupported mode 160000')
  t.equal(reason('/undecodable'), 'infohash is not 40 hex characters')
  t.equal(reason('/notjson'), 'entry is not a JSON object')
  t.equal(reason('/huge'), 'entry is larger than 1 MiB')
  t.equal(reason('/dup'), 'duplicate name')
  t.equal(reason('/emptylink'), 'bad symlink target')
  t.equal(reason('/f\ufffd\ufffd'), 'name is not valid UTF-8')
  t.match(reason('/notatree'), /^not a readable tree/)
  t.match(reason('/blobisatree'), /^not a readable blob/)
  t.match(reason('/nul'), /^not a readable tree: .*malformed tree/)
  t.equal(log.warnings.length, result.rejected.length, 'each refusal is logged')
  t.ok(log.warnings.every(w => w.msg.startsWith('refused tree entry from peer: ') && typeof w.fields?.path === 'string'))
}

t.test('a fast-forward to a hostile head becomes a sanitized merge', async t => {
  const repo = await Repo.create(t)
  const good: Plain = { 'keep.txt': f('keep'), sub: { x: f('x') } }
  const ours = await repo.commit(good, [], 1000)
  const tree = await hostileRoot(repo, good)
  const theirs = await repo.commit(tree, [ours], 2000)
  const log = recorder()
  const r = await mergeHeads(repo.store, ours, theirs, log)
  t.equal(r.kind, 'merged')
  checkRejected(t, r, log)
  const { commit } = await git.readCommit({ fs, gitdir: repo.gitdir, oid: r.commit })
  t.same(commit.parent, [ours, theirs].sort())
  t.same(await repo.flatCommit(r.commit), {
    '/': 'dir@0',
    '/keep.txt': `keep@${T0}`,
    '/sub/': 'dir@0',
    '/sub/x': `x@${T0}`,
    '/ok.txt': `fine@${T0}`,
    '/badmarker/in.txt': `fine@${T0}`,
    '/nested/fine.txt': `fine@${T0}`
  })
  t.equal((await mergeHeads(repo.store, r.commit, theirs, silentLogger)).kind, 'up-to-date', 'the hostile head is merged, once')
  const again = await mergeHeads(repo.store, theirs, r.commit, silentLogger)
  t.same(again, { kind: 'fast-forward', commit: r.commit, conflicts: [], rejected: [] }, 'the sanitized merge passes the check')
})

t.test('torrent info that does not follow from its size, or names another volume, is refused', async t => {
  const repo = await Repo.create(t)
  const good: Plain = { 'keep.txt': f('keep') }
  const ours = await repo.commit(good, [], 1000)
  /** An entry for `content` whose info is changed by `change`, with the infohash of that info. */
  const entry = async (content: string, change: Record<string, unknown>): Promise<string> => {
    const e = JSON.parse(entryJson(f(content))) as { info: Record<string, unknown>, infohash: string }
    e.info = { ...e.info, ...change }
    e.infohash = infoHash(e.info as unknown as Parameters<typeof infoHash>[0])
    return await repo.blob(JSON.stringify(e) + '\n')
  }
  const entries = await repo.rawEntries(await repo.tree(good))
  entries.push(
    ['100644', 'small-pieces', await entry('16 KiB pieces for 11 bytes', { pieceLength: 16384 })],
    ['100644', 'huge-piece', await entry('a GiB piece for a small file', { pieceLength: 1 << 30 })],
    ['100644', 'other-volume', await entry('info of another volume', { name: 'another-volume' })],
    ['100644', 'fine', await repo.blob(entryJson(f('fine')))]
  )
  const theirs = await repo.commit(await repo.rawTree(entries), [ours], 2000)
  const log = recorder()
  const r = await mergeHeads(repo.store, ours, theirs, log, 'volume-under-test')
  t.same(r.rejected.map(x => x.path).sort(), ['/huge-piece', '/other-volume', '/small-pieces'], 'those three are refused')
  t.match(r.rejected.find(x => x.path === '/small-pieces')?.reason, /^piece length 16384 is not the 1048576 its size implies/)
  t.equal(r.rejected.find(x => x.path === '/other-volume')?.reason, 'torrent info names another volume')
  t.equal(log.warnings.length, 3, 'each refusal is logged')
  t.same(await repo.flatCommit(r.commit), { '/': 'dir@0', '/keep.txt': `keep@${T0}`, '/fine': `fine@${T0}` }, 'the rest is merged')
})

t.test('a diverged hostile head: refused entries are left out, the rest merges', async t => {
  const repo = await Repo.create(t)
  const good: Plain = { 'keep.txt': f('keep'), sub: { x: f('x') } }
  const base = await repo.commit(good, [], 1000)
  const ours = await repo.commit({ ...good, mine: f('mine') }, [base], 2000)
  const tree = await hostileRoot(repo, good)
  const theirs = await repo.commit(tree, [base], 3000)
  const log = recorder()
  const r = await mergeHeads(repo.store, ours, theirs, log)
  checkRejected(t, r, log)
  const flat = await repo.flatCommit(r.commit)
  t.same(Object.keys(flat).sort(), ['/', '/badmarker/in.txt', '/keep.txt', '/mine', '/nested/fine.txt', '/ok.txt', '/sub/', '/sub/x'])
})

t.test('a refused change never deletes or replaces what we have', async t => {
  const repo = await Repo.create(t)
  const good: Plain = { 'keep.txt': f('keep'), sub: { x: f('x') }, link: ln('t'), changed: f('c') }
  const base = await repo.commit(good, [], 1000)
  const oursSpec = { ...good, changed: f('c2', T0 + 1) }
  const ours = await repo.commit(oursSpec, [base], 2000)
  const notATree = await repo.blob('plain bytes')
  const emptyTarget = await repo.blob('')
  const entries = (await repo.rawEntries(await repo.tree(good))).map(([mode, name, oid]): [string, string, string] => {
    if (name === 'keep.txt') return ['160000', name, base]
    if (name === 'sub') return ['40000', name, notATree]
    if (name === 'link') return ['120000', name, emptyTarget]
    if (name === 'changed') return ['100644', name, notATree]
    return [mode, name, oid]
  })
  const theirs = await repo.commit(await repo.rawTree(entries), [base], 3000)
  const log = recorder()
  const r = await mergeHeads(repo.store, ours, theirs, log)
  t.equal(r.kind, 'merged')
  t.same(r.rejected.map(x => x.path), ['/changed', '/keep.txt', '/link', '/sub'])
  t.equal(await repo.treeOf(r.commit), await repo.tree(oursSpec), 'ours, untouched')
})

t.test('hostile heads and roots never throw', async t => {
  const repo = await Repo.create(t)
  const ours = await repo.commit({ a: f('a') }, [], 1000)
  const blob = await repo.blob('not a commit')
  const log = recorder()
  const r = await mergeHeads(repo.store, ours, blob, log)
  t.equal(r.kind, 'up-to-date')
  t.equal(r.commit, ours)
  t.match(r.rejected, [{ path: '/', reason: /^malformed history/ }])
  t.equal(log.warnings.length, 1)

  const blobRoot = await repo.commit(blob, [ours], 2000)
  const r2 = await mergeHeads(repo.store, ours, blobRoot, silentLogger)
  t.equal(r2.kind, 'merged')
  t.equal(await repo.treeOf(r2.commit), await repo.treeOf(ours), 'an unreadable root changes nothing')
  t.match(r2.rejected, [{ path: '/', reason: /^root is not a readable tree/ }])

  const badParent = await repo.commit({ a: f('a') }, [blob], 3000)
  const r3 = await mergeHeads(repo.store, ours, badParent, silentLogger)
  t.equal(r3.kind, 'up-to-date')
  t.match(r3.rejected, [{ path: '/', reason: /^malformed history/ }])
})

/** Moves every loose object into one pack with its index, as a fetch leaves a repository. */
async function packAll (repo: Repo): Promise<void> {
  const objects = path.join(repo.gitdir, 'objects')
  const dirs = fs.readdirSync(objects).filter(d => /^[0-9a-f]{2}$/.test(d))
  const oids = dirs.flatMap(d => fs.readdirSync(path.join(objects, d)).map(rest => d + rest))
  const { filename } = await git.packObjects({ fs, dir: repo.gitdir, gitdir: repo.gitdir, oids, write: true })
  await git.indexPack({ fs, dir: repo.gitdir, gitdir: repo.gitdir, filepath: `objects/pack/${filename}` })
  for (const d of dirs) fs.rmSync(path.join(objects, d), { recursive: true })
}

t.test('packed objects merge the same as loose ones', async t => {
  const base: Plain = { doc: f('base'), dir: { x: f('x') } }
  const a: Plain = { doc: f('a', T0 + 1, NODE_A), dir: { x: f('x'), y: f('y') } }
  const b: Plain = { doc: f('b', T0 + 2, NODE_B) }
  const results: string[] = []
  for (const pack of [false, true]) {
    const repo = await Repo.create(t)
    const c = await repo.commit(base, [], 1000)
    const [ha, hb] = [await repo.commit(a, [c], 2000), await repo.commit(b, [c], 3000)]
    if (pack) await packAll(repo)
    t.equal(fs.existsSync(path.join(repo.gitdir, 'objects', ha.slice(0, 2))), !pack)
    const r = await mergeHeads(gitObjectStore(repo.gitdir), ha, hb, silentLogger)
    results.push(r.commit)
    t.same(await repo.flatCommit(r.commit), {
      '/': 'dir@0',
      '/doc': `b@${T0 + 2}`,
      [`/${conflictName('doc', T0 + 1, NODE_A)}`]: `a@${T0 + 1}`,
      '/dir/': 'dir@0',
      '/dir/y': `y@${T0}`
    })
  }
  t.equal(results[0], results[1])
})

t.test('a packed hostile head is refused the same', async t => {
  const repo = await Repo.create(t)
  const good: Plain = { 'keep.txt': f('keep'), sub: { x: f('x') } }
  const ours = await repo.commit(good, [], 1000)
  const theirs = await repo.commit(await hostileRoot(repo, good), [ours], 2000)
  await packAll(repo)
  const log = recorder()
  const r = await mergeHeads(gitObjectStore(repo.gitdir), ours, theirs, log)
  checkRejected(t, r, log)
})

t.test('a head that is not an object id is refused', async t => {
  const repo = await Repo.create(t)
  const ours = await repo.commit({ a: f('a') }, [], 1000)
  for (const bad of ['../../../etc/passwd', 'HEAD', '', ours.toUpperCase()]) {
    const r = await mergeHeads(repo.store, ours, bad, silentLogger)
    t.equal(r.kind, 'up-to-date')
    t.match(r.rejected, [{ path: '/', reason: /not an object id/ }], JSON.stringify(bad))
  }
})

t.test('missing objects are an incomplete fetch: thrown, not dropped', async t => {
  const repo = await Repo.create(t)
  const ours = await repo.commit({ a: f('a') }, [], 1000)
  const missingBlob = '1234567890123456789012345678901234567890'
  const tree = await repo.rawTree([...await repo.rawEntries(await repo.tree({ a: f('a') })), ['100644', 'ghost', missingBlob]])
  const theirs = await repo.commit(tree, [ours], 2000)
  await t.rejects(mergeHeads(repo.store, ours, theirs, silentLogger), MissingObjectError)
  await t.rejects(mergeHeads(repo.store, ours, missingBlob, silentLogger), MissingObjectError)
})

// ---------------------------------------------------------------------------------------------
// Random trees and edits

function mulberry32 (seed: number): () => number {
  return () => {
    seed = (seed + 0x6D2B79F5) | 0
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

class Random {
  constructor (readonly next: () => number) {}
  int (n: number): number { return Math.floor(this.next() * n) }
  pick<T> (items: readonly T[]): T { return items[this.int(items.length)] as T }
}

// Few names, contents and times, so that the two sides often touch the same entries and tie.
const NAMES = ['a', 'b', 'c.txt', 'd.md', '.e']
const randomFile = (r: Random): File => f(`v${r.int(4)}`, T0 + 1000 * r.int(3), r.pick([NODE_A, NODE_B, undefined]))
const randomLink = (r: Random): Link => ln(`target${r.int(3)}`)

function randomDir (r: Random, depth: number): Dir {
  const children: Record<string, Spec> = {}
  for (let i = r.int(5); i > 0; i--) {
    const x = r.next()
    children[r.pick(NAMES)] = depth > 0 && x < 0.35 ? randomDir(r, depth - 1) : x < 0.5 ? randomLink(r) : randomFile(r)
  }
  return new Dir(children, 1000 * r.int(3))
}

function cloneDir (dir: Dir): Dir {
  const children: Record<string, Spec> = {}
  for (const [name, child] of Object.entries(dir.children)) children[name] = child instanceof Dir ? cloneDir(child) : child as Spec
  return new Dir(children, dir.mtime)
}

function dirsIn (dir: Dir): Dir[] {
  return [dir, ...Object.values(dir.children).flatMap(c => c instanceof Dir ? dirsIn(c) : [])]
}

/** Edits in place; returns the root, whose mtime may have changed. */
function edit (r: Random, root: Dir, count: number): Dir {
  for (let i = 0; i < count; i++) {
    const dirs = dirsIn(root)
    const dir = r.pick(dirs)
    const name = r.pick(NAMES)
    const children = dir.children as Record<string, Spec>
    switch (r.int(6)) {
      case 0: children[name] = randomFile(r); break
      case 1: delete children[name]; break
      case 2: children[name] = randomDir(r, 1); break
      case 3: children[name] = randomLink(r); break
      case 4: {
        const touched = new Dir(dir.children, dir.mtime + 1000 * (1 + r.int(2)))
        if (dir === root) root = touched
        else for (const parent of dirs) for (const [n, c] of Object.entries(parent.children)) if (c === dir) (parent.children as Record<string, Spec>)[n] = touched
        break
      }
      default: {
        const victim = r.pick(Object.keys(children))
        if (victim !== undefined) delete children[victim]
      }
    }
  }
  return root
}

function conflictPrefix (p: string): string {
  const slash = p.lastIndexOf('/')
  return p.slice(0, slash + 1) + conflictName(p.slice(slash + 1), 0, 'w').split('.sync-conflict-')[0] + '.sync-conflict-'
}

const isMarker = (p: string): boolean => p.endsWith('/' + DIR_MARKER)

/** What must hold of any merge of clean heads; returns the violations. */
function checkMerge (B: Map<string, string>, O: Map<string, string>, T: Map<string, string>, M: Map<string, string>): string[] {
  const bad: string[] = []
  for (const [side, S] of [['ours', O], ['theirs', T]] as const) {
    for (const [p, v] of S) {
      if (isMarker(p) || B.get(p) === v) continue
      const kept = M.get(p) === v || [...M].some(([q, w]) => w === v && q.startsWith(conflictPrefix(p)))
      if (!kept) bad.push(`${side} wrote ${p} (${v}): not in the merge`)
    }
  }
  for (const [p, v] of O) if (T.get(p) === v && M.get(p) !== v) bad.push(`${p} equal on both sides, lost`)
  const written = new Set([...O.values(), ...T.values()])
  for (const [q, w] of M) if (!written.has(w)) bad.push(`${q} (${w}) comes from neither side`)
  for (const [p, v] of B) {
    if (isMarker(p)) continue
    const deletedBy = (X: Map<string, string>, Y: Map<string, string>): boolean => !X.has(p) && Y.get(p) === v
    if ((deletedBy(O, T) || deletedBy(T, O)) && M.get(p) === v) bad.push(`${p} deleted on one side, unchanged on the other, still there`)
  }
  return bad
}

t.test('random trees and edits on two sides', async t => {
  const seed = 20240501
  const r = new Random(mulberry32(seed))
  const repo = await Repo.create(t)
  const rounds = 300
  let conflicts = 0
  let failures = 0
  for (let i = 0; i < rounds && failures < 5; i++) {
    const baseSpec = randomDir(r, 2)
    const oursSpec = edit(r, cloneDir(baseSpec), 1 + r.int(4))
    const theirsSpec = edit(r, cloneDir(baseSpec), 1 + r.int(4))
    const base = await repo.commit(baseSpec, [], 1000 + i)
    const ours = await repo.commit(oursSpec, [base], 2000 + i)
    const theirs = await repo.commit(theirsSpec, [base], 3000 + i)
    const m1 = await mergeHeads(repo.store, ours, theirs, silentLogger)
    const m2 = await mergeHeads(repo.store, theirs, ours, silentLogger)
    const [B, O, T, M] = await Promise.all([base, ours, theirs, m1.commit].map(async c => await repo.entries(await repo.treeOf(c))))
    const bad = checkMerge(B as Map<string, string>, O as Map<string, string>, T as Map<string, string>, M as Map<string, string>)
    if (m1.commit !== m2.commit) bad.push('depends on which side merges')
    if (m1.rejected.length + m2.rejected.length > 0) bad.push('refused entries of clean heads: ' + JSON.stringify(m1.rejected))
    for (const [head, kind] of [[ours, 'up-to-date'], [theirs, 'up-to-date']] as const) {
      if ((await mergeHeads(repo.store, m1.commit, head, silentLogger)).kind !== kind) bad.push('the merge does not contain a parent')
      const back = await mergeHeads(repo.store, head, m1.commit, silentLogger)
      if (back.kind !== 'fast-forward' || back.commit !== m1.commit) bad.push('a parent does not fast-forward to the merge')
    }
    conflicts += m1.conflicts.length
    if (bad.length > 0) {
      failures++
      t.same(bad, [], `round ${i} (seed ${seed})`)
    }
  }
  t.equal(failures, 0, `${rounds} random merges hold every rule`)
  t.ok(conflicts > 20, `the random edits conflict often enough to matter (${conflicts} conflicts)`)
})

t.test('random histories of three nodes merging each other: files with one writer never conflict', async t => {
  // Each node writes and deletes only its own files, and merges whichever node's head it likes,
  // as nodes syncing in any order do: criss-cross merges at every turn. What a node's head must
  // hold follows from what it has seen: for each writer, the latest of that writer's states that
  // reached it through any chain of merges. So every merge is checked against that, and none may
  // make a conflict copy (there is never a concurrent change to one name).
  const seed = 20261123
  const r = new Random(mulberry32(seed))
  const repo = await Repo.create(t)
  const NODES = 3
  const writers = [NODE_A, NODE_B, 'cccccccccccccccc']
  const ownNames = (n: number): string[] => [`top${n}`, `f${n}.txt`, 'x', 'y'].map((name, i) => i < 2 ? name : `shared-dir/${name}${n}`)
  /** Each writer's states, oldest first: path → content, absent when deleted. */
  const states: Array<Array<Map<string, string>>> = writers.map(() => [new Map()])
  const root = await repo.commit({}, [], 1000)
  const heads = writers.map(() => root)
  const seen = writers.map(() => writers.map(() => 0))
  const fetched = writers.map(() => writers.map(() => ({ head: root, seen: writers.map(() => 0) })))
  const expected = (k: number): Plain => {
    const spec: Plain = {}
    for (let w = 0; w < NODES; w++) {
      for (const [p, content] of states[w]?.[seen[k]?.[w] ?? 0] ?? []) {
        const [dir, name] = p.includes('/') ? p.split('/') as [string, string] : [undefined, p]
        const file = f(content, T0 + Number(content.split(':')[1]), writers[w])
        if (dir === undefined) spec[name] = file
        else spec[dir] = { ...(spec[dir] as Plain | undefined), [name]: file }
      }
    }
    return spec
  }
  const problems: string[] = []
  let crissCrosses = 0
  for (let step = 1; step <= 600 && problems.length < 5; step++) {
    const k = r.int(NODES)
    const own = seen[k] as number[]
    if (r.next() < 0.45) {
      const mine = new Map(states[k]?.[own[k] as number])
      const name = r.pick(ownNames(k))
      if (mine.has(name) && r.next() < 0.3) mine.delete(name)
      else mine.set(name, `${writers[k]}:${step}`)
      states[k]?.push(mine)
      own[k] = (states[k]?.length ?? 1) - 1
      heads[k] = await repo.commit(expected(k), [heads[k] as string], 2000 + step)
      continue
    }
    const l = (k + 1 + r.int(NODES - 1)) % NODES
    if (r.next() < 0.5) {
      // A fetch: what k will merge of l next, which may be stale by the time it merges.
      fetched[k][l] = { head: heads[l] as string, seen: [...seen[l] as number[]] }
      continue
    }
    const theirs = fetched[k][l] as { head: string, seen: number[] }
    const result = await mergeHeads(repo.store, heads[k] as string, theirs.head, silentLogger)
    if (result.kind === 'merged' && r.next() < 0.3) {
      const reverse = await mergeHeads(repo.store, theirs.head, heads[k] as string, silentLogger)
      if (reverse.commit !== result.commit) problems.push(`step ${step}: the merge depends on which side merges`)
    }
    if (result.kind === 'merged' && (await repo.store.findMergeBase([heads[k] as string, theirs.head])).length > 1) crissCrosses++
    heads[k] = result.commit
    for (let w = 0; w < NODES; w++) own[w] = Math.max(own[w] as number, theirs.seen[w] ?? 0)
    if (result.conflicts.length > 0) problems.push(`step ${step}: node ${k} merging ${l} made conflict copies ${JSON.stringify(result.conflicts)}`)
    const want = await repo.flat(await repo.tree(expected(k)))
    const got = await repo.flatCommit(result.commit)
    if (JSON.stringify(got) !== JSON.stringify(want)) problems.push(`step ${step}: node ${k} merging ${l}: ${JSON.stringify({ got, want })}`)
  }
  t.same(problems, [], `seed ${seed}`)
  t.ok(crissCrosses > 20, `merges with several best common ancestors happened often enough to matter (${crissCrosses})`)
})

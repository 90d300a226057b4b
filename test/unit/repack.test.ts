// The metadata repository's packs and loose objects rolled together by git's geometric repack
// (lib/meta/repack.ts), with the system's git: nothing is lost (unreachable objects included),
// git finds the repository whole, a large pack is left as it is when little is new, a failed
// repack leaves everything as it was, and this process lets go of the packs git removed.
import t, { type Test } from 'tap'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import { join } from 'node:path'
import { ObjectReader, ObjectWriter } from '../../lib/meta/objects.js'
import { repackObjects } from '../../lib/meta/repack.js'
import { tempDir } from '../helpers/meta.js'

const gitEnv = { ...process.env, GIT_CONFIG_NOSYSTEM: '1', HOME: '/nonexistent', GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@t', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@t' }
const git = (cwd: string, args: string[], input?: string): string => execFileSync('git', args, { cwd, env: gitEnv, encoding: 'utf8', input })

/**
 * A bare repository whose history is in `packs` packs (one per commit, as each fetch leaves one),
 * then `loose` more commits left loose, and one loose blob nothing refers to (a commit in flight
 * writes its objects before the commit that names them). Returns every object id.
 */
function repo (dir: string, packs: number, loose: number, filesPerCommit = 1): { gitdir: string, oids: string[], dangling: string } {
  const work = join(dir, 'work')
  const gitdir = join(dir, 'meta')
  fs.mkdirSync(work)
  git(work, ['init', '-q'])
  git(dir, ['init', '-q', '--bare', gitdir])
  for (let i = 0; i < packs + loose; i++) {
    fs.mkdirSync(join(work, `d${i}`))
    for (let f = 0; f < filesPerCommit; f++) fs.writeFileSync(join(work, `d${i}`, `f${f}`), `file ${i} ${f}\n`)
    git(work, ['add', '-A'])
    git(work, ['commit', '-q', '-m', `commit ${i}`])
    git(work, ['push', '-q', gitdir, 'HEAD:refs/heads/main'])
    if (i < packs) git(gitdir, ['repack', '-d', '-q'])
  }
  const dangling = git(gitdir, ['hash-object', '-w', '--stdin'], 'written by a commit still in flight\n').trim()
  const oids = git(gitdir, ['rev-list', '--objects', '--all']).split('\n').filter(Boolean).map(l => l.slice(0, 40))
  return { gitdir, oids: [...oids, dangling].sort(), dangling }
}

/** git's finished packs (not one a stopped repack was still making). */
const packsOf = (gitdir: string): string[] => fs.readdirSync(join(gitdir, 'objects', 'pack')).filter(n => /^pack-.*\.pack$/.test(n)).sort()
const looseCount = (gitdir: string): number => Number(/^count: (\d+)$/m.exec(git(gitdir, ['count-objects', '-v']))?.[1])

async function allRead (t: Test, gitdir: string, oids: string[]): Promise<void> {
  const reader = new ObjectReader(gitdir)
  let read = 0
  for (const oid of oids) {
    if (await reader.has(oid)) read++
    else t.fail(`${oid} is missing`)
  }
  t.equal(read, oids.length, `all ${oids.length} objects read`)
}

t.test('packs and loose objects become one pack; every object stays, unreachable ones too', async t => {
  const { gitdir, oids, dangling } = repo(tempDir(t), 5, 3)
  t.equal(packsOf(gitdir).length, 5, '5 packs to begin with')
  t.ok(looseCount(gitdir) > 3, 'and loose objects')
  t.same(await repackObjects(gitdir), { packsBefore: 5, packsAfter: 1 })
  t.equal(packsOf(gitdir).length, 1, 'one pack')
  t.equal(looseCount(gitdir), 0, 'no loose object left')
  await allRead(t, gitdir, oids)
  t.equal(git(gitdir, ['cat-file', '-p', dangling]), 'written by a commit still in flight\n', 'the object nothing refers to yet is kept')
  t.equal(git(gitdir, ['fsck', '--strict', '--no-dangling']).trim(), '', 'git fsck finds nothing wrong')
  t.same(await repackObjects(gitdir), { packsBefore: 1, packsAfter: 1 }, 'a second time changes nothing')
})

t.test('a large pack is left as it is when a few objects are new', async t => {
  const { gitdir, oids } = repo(tempDir(t), 1, 0, 300)
  const [large] = packsOf(gitdir)
  const work = join(gitdir, '..', 'work')
  fs.writeFileSync(join(work, 'new'), 'one more file\n')
  git(work, ['add', '-A'])
  git(work, ['commit', '-q', '-m', 'one more'])
  git(work, ['push', '-q', gitdir, 'HEAD:refs/heads/main'])
  const all = git(gitdir, ['rev-list', '--objects', '--all']).split('\n').filter(Boolean).map(l => l.slice(0, 40))
  await repackObjects(gitdir)
  const after = packsOf(gitdir)
  t.ok(after.includes(large), 'the pack of 300 files is not rewritten')
  t.equal(after.length, 2, 'the new objects are a pack of their own')
  t.equal(looseCount(gitdir), 0)
  await allRead(t, gitdir, [...new Set([...oids, ...all])])
})

t.test('a repack that fails leaves every pack and loose object where it was', async t => {
  const { gitdir, oids } = repo(tempDir(t), 2, 1)
  const before = packsOf(gitdir)
  const loose = looseCount(gitdir)
  // One pack's data cut short: git cannot read its objects, so none of them may be lost.
  const packPath = join(gitdir, 'objects', 'pack', before[0])
  const whole = fs.readFileSync(packPath)
  fs.chmodSync(packPath, 0o644)
  fs.writeFileSync(packPath, whole.subarray(0, 40))
  await t.rejects(repackObjects(gitdir), /git repack failed/)
  t.same(packsOf(gitdir), before, 'both packs are still there')
  t.equal(looseCount(gitdir), loose, 'and the loose objects')
  fs.writeFileSync(packPath, whole)
  t.same(await repackObjects(gitdir), { packsBefore: 2, packsAfter: 1 }, 'once the pack reads again, it is rolled up')
  await allRead(t, gitdir, oids)
})

t.test('a pack git was asked to keep (.keep) is left as it is; a crashed unpacking of an older release is cleared', async t => {
  const { gitdir, oids } = repo(tempDir(t), 3, 0)
  const packDir = join(gitdir, 'objects', 'pack')
  const [kept] = packsOf(gitdir)
  fs.writeFileSync(join(packDir, kept.replace(/\.pack$/, '.keep')), '')
  fs.mkdirSync(join(gitdir, 'unpacking-crashed', 'ab'), { recursive: true })
  await repackObjects(gitdir)
  t.ok(packsOf(gitdir).includes(kept), 'the kept pack remains')
  t.equal(packsOf(gitdir).length, 2, 'the other two are one')
  t.notOk(fs.existsSync(join(gitdir, 'unpacking-crashed')), 'the old staging directory is gone')
  await allRead(t, gitdir, oids)
})

t.test('the reader lets go of the packs git removed', async t => {
  const { gitdir, oids } = repo(tempDir(t), 4, 0)
  // Every pack opened by this process's reader.
  await allRead(t, gitdir, oids)
  const open = (): string[] => fs.readdirSync('/proc/self/fd').map(fd => { try { return fs.readlinkSync(`/proc/self/fd/${fd}`) } catch { return '' } }).filter(l => l.startsWith(join(gitdir, 'objects', 'pack')))
  t.equal(open().length, 4, 'four packs open')
  await repackObjects(gitdir)
  t.same(open().filter(l => l.endsWith('(deleted)')), [], 'none of the removed ones is still held open')
  await allRead(t, gitdir, oids)
})

t.test('a repack asked to stop leaves everything as it was', async t => {
  const { gitdir, oids } = repo(tempDir(t), 3, 1)
  const before = packsOf(gitdir)
  const stop = new AbortController()
  stop.abort()
  await t.rejects(repackObjects(gitdir, stop.signal), { code: 'SWARMFS_STOPPING' })
  t.same(packsOf(gitdir), before)
  await allRead(t, gitdir, oids)
  t.same(await repackObjects(gitdir), { packsBefore: 3, packsAfter: 1 }, 'the next repack does the work')
  t.same(fs.readdirSync(join(gitdir, 'objects', 'pack')).filter(n => !/^pack-/.test(n)), [], 'and leaves no temporary pack of the stopped one')
})

t.test('a writer whose object directory the repack removed writes and syncs on', async t => {
  const { gitdir, oids } = repo(tempDir(t), 2, 0)
  const writer = new ObjectWriter(gitdir)
  // Loose objects written, their directories not yet synced (a commit syncs them before its ref).
  const written = await Promise.all(Array.from({ length: 40 }, async (_, i) => await writer.writeBlob(Buffer.from(`object ${i}\n`))))
  const fans = new Set(written.map(oid => oid.slice(0, 2)))
  await repackObjects(gitdir)
  const gone = [...fans].filter(fan => !fs.existsSync(join(gitdir, 'objects', fan)))
  t.ok(gone.length > 0, `the repack removed object directories it emptied (${gone.length} of ${fans.size})`)
  await t.resolves(writer.flush(), 'the sync of directories that are gone is not an error')
  // Into a removed directory again: made anew.
  const fan = gone[0]
  let again = ''
  for (let i = 0; !again.startsWith(fan); i++) again = await writer.writeBlob(Buffer.from(`again ${i}\n`))
  await t.resolves(writer.flush())
  t.ok(fs.existsSync(join(gitdir, 'objects', fan, again.slice(2))), 'the new object is there, loose')
  await allRead(t, gitdir, [...oids, ...written, again])
})

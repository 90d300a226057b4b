// Packs of the metadata repository turned into loose objects, with the system's git: nothing is
// lost, git finds the repository whole, and a failed unpack leaves the packs as they were.
import t from 'tap'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import { join } from 'node:path'
import { readLooseObject } from '../../lib/meta/objects.js'
import { oidsOfIndex, unpackPacks } from '../../lib/meta/unpack-packs.js'
import { tempDir } from '../helpers/meta.js'

const gitEnv = { ...process.env, GIT_CONFIG_NOSYSTEM: '1', HOME: '/nonexistent', GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@t', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@t' }
const git = (cwd: string, ...args: string[]): string => execFileSync('git', args, { cwd, env: gitEnv, encoding: 'utf8' })

/** A bare repository whose objects are in `packs` packs (one per commit), and its object ids. */
function packedRepo (dir: string, packs: number): { gitdir: string, oids: string[] } {
  const work = join(dir, 'work')
  const gitdir = join(dir, 'meta')
  fs.mkdirSync(work)
  git(work, 'init', '-q')
  git(dir, 'init', '-q', '--bare', gitdir)
  for (let i = 0; i < packs; i++) {
    fs.mkdirSync(join(work, `d${i}`))
    fs.writeFileSync(join(work, `d${i}`, 'f'), `file ${i}\n`)
    git(work, 'add', '-A')
    git(work, 'commit', '-q', '-m', `commit ${i}`)
    git(work, 'push', '-q', gitdir, 'HEAD:refs/heads/main')
    // Only the objects still loose: one more pack per commit, as each fetch leaves one.
    git(gitdir, 'repack', '-d', '-q')
  }
  const oids = git(gitdir, 'rev-list', '--objects', '--all').split('\n').filter(Boolean).map(l => l.slice(0, 40)).sort()
  return { gitdir, oids }
}

const packFiles = (gitdir: string): string[] => fs.readdirSync(join(gitdir, 'objects', 'pack')).filter(n => /\.(pack|idx)$/.test(n))

t.test('every object of every pack becomes loose, the packs go, git finds the repository whole', async t => {
  const { gitdir, oids } = packedRepo(tempDir(t), 5)
  t.equal(packFiles(gitdir).length, 10, '5 packs to begin with')
  const listed = packFiles(gitdir).filter(n => n.endsWith('.idx')).flatMap(n => oidsOfIndex(fs.readFileSync(join(gitdir, 'objects', 'pack', n)))).sort()
  t.same(listed, oids, 'the indexes list exactly the repository\'s objects')

  t.equal(await unpackPacks(gitdir), 5)
  t.same(packFiles(gitdir), [], 'no pack left')
  for (const oid of oids) t.ok(readLooseObject(gitdir, oid, { verify: true }), `${oid} is loose`)
  t.equal(git(gitdir, 'fsck', '--strict', '--no-dangling').trim(), '', 'git fsck finds nothing wrong')
  t.equal(await unpackPacks(gitdir), 0, 'nothing to do a second time')
})

t.test('a staging directory left by a crash is removed; a pack that fails to unpack stays', async t => {
  const { gitdir, oids } = packedRepo(tempDir(t), 2)
  fs.mkdirSync(join(gitdir, 'unpacking-crashed', 'ab'), { recursive: true })
  fs.writeFileSync(join(gitdir, 'unpacking-crashed', 'ab', 'cd'), 'partial')
  // One pack's data cut short: git cannot read its objects, so none of them may be lost.
  const pack = packFiles(gitdir).find(n => n.endsWith('.pack')) as string
  const packPath = join(gitdir, 'objects', 'pack', pack)
  const whole = fs.readFileSync(packPath)
  fs.writeFileSync(packPath, whole.subarray(0, 40))
  await t.rejects(unpackPacks(gitdir), /git pack-objects \| unpack-objects failed/)
  t.notOk(fs.existsSync(join(gitdir, 'unpacking-crashed')), 'the crashed staging directory is gone')
  t.same(fs.readdirSync(gitdir).filter(n => n.startsWith('unpacking-')), [], 'and this one\'s too')
  t.equal(packFiles(gitdir).length, 4, 'both packs are still there')
  fs.writeFileSync(packPath, whole)
  t.equal(await unpackPacks(gitdir), 2, 'once the pack reads again, it unpacks')
  for (const oid of oids) t.ok(readLooseObject(gitdir, oid, { verify: true }), `${oid} is loose`)
})

t.test('pack index parsing refuses what is not an index', async t => {
  t.throws(() => oidsOfIndex(Buffer.alloc(10)), /cut short/)
  const v3 = Buffer.alloc(8 + 1024)
  v3.writeUInt32BE(0xff744f63, 0)
  v3.writeUInt32BE(3, 4)
  t.throws(() => oidsOfIndex(v3), /version 3/)
  const lying = Buffer.alloc(8 + 1024)
  lying.writeUInt32BE(0xff744f63, 0)
  lying.writeUInt32BE(2, 4)
  lying.writeUInt32BE(1000, 8 + 255 * 4)
  t.throws(() => oidsOfIndex(lying), /cut short/, 'a count the file cannot hold')
})

t.test('a pack git was asked to keep (.keep) is left as it is; git\'s files beside a pack go with it', async t => {
  const { gitdir, oids } = packedRepo(tempDir(t), 2)
  const packDir = join(gitdir, 'objects', 'pack')
  const [kept, other] = packFiles(gitdir).filter(n => n.endsWith('.pack')).sort()
  fs.writeFileSync(join(packDir, kept.replace(/\.pack$/, '.keep')), '')
  fs.writeFileSync(join(packDir, other.replace(/\.pack$/, '.rev')), '')
  t.equal(await unpackPacks(gitdir), 1)
  t.same(fs.readdirSync(packDir).sort(), [kept.replace(/\.pack$/, '.idx'), kept.replace(/\.pack$/, '.keep'), kept].sort(), 'the kept pack alone remains, the other\'s .rev went with it')
  t.equal(git(gitdir, 'fsck', '--strict', '--no-dangling').trim(), '', 'git fsck finds nothing wrong')
  t.equal(git(gitdir, 'rev-list', '--objects', '--all').split('\n').filter(Boolean).length, oids.length)
})

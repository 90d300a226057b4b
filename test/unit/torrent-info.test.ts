// Torrent info from a peer is checked by one validator (infoProblem, lib/core/torrent-info.ts)
// wherever it enters: a file entry decoded (entry-codec), the index loaded at start (GitStore), and
// the clone at join (screened as a merge; the merge itself is tested in merge.test.ts). A hostile
// entry is refused and logged; the node goes on with the rest.
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import git from 'isomorphic-git'
import t from 'tap'
import { buildInfo, infoHash, infoProblem, pieceLengthFor, type TorrentInfo } from '../../lib/core/torrent-info.js'
import { silentLogger, type Logger } from '../../lib/core/log.js'
import { decodeFile } from '../../lib/meta/entry-codec.js'
import { GitStore } from '../../lib/meta/git-store.js'
import { defaultAttrs } from '../../lib/meta/meta.js'
import { DIR_MARKER } from '../../lib/meta/names.js'
import type { FileNode } from '../../lib/meta/nodes.js'
import { screenClone } from '../../lib/node/join.js'

const VOLUME = 'c'.repeat(40)

/** The info of `bytes` as an honest node makes it, then `change` applied. */
function infoOf (bytes: Buffer, change: Partial<TorrentInfo> = {}, volume = VOLUME): TorrentInfo {
  const pieceLength = change.pieceLength ?? pieceLengthFor(bytes.length)
  const digests: Buffer[] = []
  for (let at = 0; at < bytes.length; at += pieceLength) digests.push(createHash('sha1').update(bytes.subarray(at, at + pieceLength)).digest())
  return { ...buildInfo(volume, bytes.length, pieceLength, digests), ...change }
}

/** A file entry whose infohash is that of its info, so only the info itself can be at fault. */
function entryText (info: TorrentInfo, size = info.length): string {
  return JSON.stringify({ v: 1, size, perm: 0o644, uid: 0, gid: 0, mtime: 1000, ctime: 1000, infohash: infoHash(info), info }) + '\n'
}

const bytes = Buffer.from('the bytes of a file of this volume\n'.repeat(100))
const hostile: Array<[string, TorrentInfo, number?]> = [
  ['a piece length its size does not imply', infoOf(bytes, { pieceLength: 16384 })],
  ['a piece length of a GiB for a small file', infoOf(bytes, { pieceLength: 1 << 30 })],
  ['the name of another volume', infoOf(bytes, {}, 'd'.repeat(40))],
  ['a size other than the entry\'s', infoOf(bytes), bytes.length + 1],
  ['piece hashes one byte short', infoOf(bytes, { pieces: Buffer.alloc(19).toString('base64') })],
  ['piece hashes with characters base64 skips', infoOf(bytes, { pieces: '!' + Buffer.alloc(20).toString('base64').slice(1) })]
]

t.test('infoProblem takes honest info and refuses what does not follow from the size and volume', async t => {
  for (const size of [1, 1 << 20, (1 << 20) + 1, 5 * 2 ** 30]) {
    const info = { name: VOLUME, length: size, pieceLength: pieceLengthFor(size), pieces: Buffer.alloc(20 * Math.ceil(size / pieceLengthFor(size))).toString('base64') }
    t.equal(infoProblem(info, size, VOLUME), null, `${size} bytes at ${info.pieceLength} a piece`)
  }
  for (const [why, info, size] of hostile) t.type(infoProblem(info, size ?? info.length, VOLUME), 'string', why)
  t.match(infoProblem(infoOf(bytes, { pieceLength: 16384 }), bytes.length, VOLUME), /piece length 16384 is not the 1048576 its size implies/)
  t.equal(infoProblem(infoOf(bytes, {}, 'd'.repeat(40)), bytes.length, null), null, 'the name is not checked where the volume is not known')
  t.type(infoProblem(null, 1, VOLUME), 'string', 'not an object')
  t.type(infoProblem([], 1, VOLUME), 'string', 'an array')
})

t.test('a file entry with hostile torrent info is refused with the reason', async t => {
  t.type(decodeFile(entryText(infoOf(bytes)), defaultAttrs(), true, VOLUME), 'object', 'an honest entry is read')
  for (const [why, info, size] of hostile) {
    const decoded = decodeFile(entryText(info, size), defaultAttrs(), true, VOLUME)
    t.type(decoded, 'string', why, { decoded })
  }
})

interface Recorder extends Logger { warnings: Array<{ msg: string, fields?: Record<string, unknown> }> }
function recorder (): Recorder {
  const warnings: Recorder['warnings'] = []
  const log: Recorder = { ...silentLogger, warnings, warn: (msg, fields) => { warnings.push({ msg, fields }) }, child: () => log }
  return log
}

/** A bare repository whose main holds `good` and one file per hostile case (`bad-0` ...). */
async function hostileRepo (tt: Parameters<Parameters<typeof t.test>[0]>[0]): Promise<{ gitdir: string, head: string }> {
  const gitdir = fs.mkdtempSync(path.join(os.tmpdir(), 'swarmfs-info-'))
  tt.teardown(() => fs.rmSync(gitdir, { recursive: true, force: true }))
  await git.init({ fs, gitdir, bare: true, defaultBranch: 'main' })
  const blob = async (text: string): Promise<string> => await git.writeBlob({ fs, gitdir, blob: Buffer.from(text) })
  const marker = await blob(JSON.stringify({ v: 1, perm: 0o755, uid: 0, gid: 0, mtime: 1000, ctime: 1000 }) + '\n')
  const tree = [
    { path: DIR_MARKER, mode: '100644', oid: marker, type: 'blob' as const },
    { path: 'good', mode: '100644', oid: await blob(entryText(infoOf(bytes))), type: 'blob' as const }
  ]
  for (const [i, [, info, size]] of hostile.entries()) tree.push({ path: `bad-${i}`, mode: '100644', oid: await blob(entryText(info, size)), type: 'blob' as const })
  const sig = { name: 'peer', email: 'peer@peer', timestamp: 1, timezoneOffset: 0 }
  const head = await git.writeCommit({ fs, gitdir, commit: { message: 'peer\n', tree: await git.writeTree({ fs, gitdir, tree }), parent: [], author: sig, committer: sig } })
  await git.writeRef({ fs, gitdir, ref: 'refs/heads/main', value: head, force: true })
  return { gitdir, head }
}

t.test('the index loaded at start leaves hostile entries out, and logs each', async t => {
  const { gitdir, head } = await hostileRepo(t)
  const log = recorder()
  const root = await new GitStore(gitdir, log, VOLUME).load(head, defaultAttrs())
  t.same([...root.children.keys()], ['good'], 'only the honest file is in the index')
  t.equal((root.children.get('good') as FileNode).content?.info.name, VOLUME)
  t.equal(log.warnings.length, hostile.length, 'each refusal is logged')
  t.ok(log.warnings.every(w => w.msg.startsWith('refused tree entry: ') && /^\/bad-\d$/.test(String(w.fields?.path))), 'with the entry\'s path', { warnings: log.warnings })
})

t.test('a clone at join with hostile entries becomes a screened commit on top of it', async t => {
  const { gitdir, head } = await hostileRepo(t)
  const log = recorder()
  await screenClone(gitdir, head, VOLUME, log)
  const store = new GitStore(gitdir, silentLogger, VOLUME)
  const screened = await store.head()
  t.not(screened, head, 'main moved off the peer\'s head')
  t.ok(screened !== null && (await store.parentsOf(screened)).includes(head), 'to a commit that has it as a parent (peers fast-forward to it)')
  const names = (await git.readTree({ fs, gitdir, oid: await store.treeOf(screened ?? '') })).tree.map(e => e.path)
  t.same(names.sort(), [DIR_MARKER, 'good'].sort(), 'whose tree holds only the honest entries')
  t.equal(log.warnings.filter(w => w.msg.startsWith('refused tree entry from peer: ')).length, hostile.length, 'each refusal is logged')
})

t.test('a clean clone at join stays the peer\'s head', async t => {
  const gitdir = fs.mkdtempSync(path.join(os.tmpdir(), 'swarmfs-info-'))
  t.teardown(() => fs.rmSync(gitdir, { recursive: true, force: true }))
  await git.init({ fs, gitdir, bare: true, defaultBranch: 'main' })
  const good = await git.writeBlob({ fs, gitdir, blob: Buffer.from(entryText(infoOf(bytes))) })
  const tree = await git.writeTree({ fs, gitdir, tree: [{ path: 'good', mode: '100644', oid: good, type: 'blob' }] })
  const sig = { name: 'peer', email: 'peer@peer', timestamp: 1, timezoneOffset: 0 }
  const head = await git.writeCommit({ fs, gitdir, commit: { message: 'peer\n', tree, parent: [], author: sig, committer: sig } })
  await git.writeRef({ fs, gitdir, ref: 'refs/heads/main', value: head, force: true })
  const log = recorder()
  await screenClone(gitdir, head, VOLUME, log)
  t.equal(await new GitStore(gitdir, silentLogger).head(), head)
  t.same(log.warnings, [], 'nothing refused, nothing logged')
})

t.test('a clone at join whose history is refused whole is refused with a clear error', async t => {
  const gitdir = fs.mkdtempSync(path.join(os.tmpdir(), 'swarmfs-info-'))
  t.teardown(() => fs.rmSync(gitdir, { recursive: true, force: true }))
  await git.init({ fs, gitdir, bare: true, defaultBranch: 'main' })
  // A commit whose tree is a blob: there is no root directory to take.
  const notATree = await git.writeBlob({ fs, gitdir, blob: Buffer.from('plain bytes') })
  const sig = { name: 'peer', email: 'peer@peer', timestamp: 1, timezoneOffset: 0 }
  const head = await git.writeCommit({ fs, gitdir, commit: { message: 'peer\n', tree: notATree, parent: [], author: sig, committer: sig } })
  await git.writeRef({ fs, gitdir, ref: 'refs/heads/main', value: head, force: true })
  await t.rejects(screenClone(gitdir, head, VOLUME, recorder()), { code: 'SWARMFS_USER', message: /^the metadata the peer sent was refused: root is not a readable tree/ })
  t.equal(await new GitStore(gitdir, silentLogger).head(), head, 'main is left as it was (the join then removes the disk)')
})

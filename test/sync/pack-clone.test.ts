// pack-clone.ts against real git: an upload-pack answer (NAK, then the pack on side band 1, with
// progress on band 2) is stored by `git index-pack` as a pack git reads; a peer's error on band 3,
// an answer cut short, a damaged pack and malformed pkt-lines are refused, and leave no pack.
import t, { type Test } from 'tap'
import fs from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { spawnSync } from 'node:child_process'
import { advertisedRef, indexPackFrom, pktLines, wantRequest } from '../../lib/sync/pack-clone.js'

function git (args: string[], cwd: string, input?: Buffer): Buffer {
  const r = spawnSync('git', ['-c', 'user.email=t@swarmfs', '-c', 'user.name=t', ...args], { cwd, input })
  if (r.status !== 0) throw new Error(`git ${args.join(' ')}: ${r.stderr.toString()}`)
  return r.stdout
}

function pkt (payload: Buffer): Buffer {
  return Buffer.concat([Buffer.from((payload.length + 4).toString(16).padStart(4, '0')), payload])
}

/** An upload-pack answer carrying `pack`, in side-band pieces of at most `piece` bytes. */
function answer (pack: Buffer, piece = 1000, tail = Buffer.from('0000')): Buffer {
  const parts = [pkt(Buffer.from('NAK\n')), pkt(Buffer.from('\x02counting objects\n'))]
  for (let at = 0; at < pack.length; at += piece) parts.push(pkt(Buffer.concat([Buffer.from([1]), pack.subarray(at, at + piece)])))
  parts.push(tail)
  return Buffer.concat(parts)
}

/** A source repository of a few commits, its head, and the pack of its whole history. */
function source (t: Test): { head: string, pack: Buffer } {
  const dir = fs.mkdtempSync(join(os.tmpdir(), 'swarmfs-pack-clone-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  git(['init', '-q', '-b', 'main'], dir)
  for (let i = 0; i < 3; i++) {
    fs.writeFileSync(join(dir, `f${i}`), `file ${i}\n`.repeat(100 * (i + 1)))
    git(['add', '.'], dir)
    git(['commit', '-q', '-m', `c${i}`], dir)
  }
  const head = git(['rev-parse', 'HEAD'], dir).toString().trim()
  const pack = git(['pack-objects', '--stdout', '--revs', '-q'], dir, Buffer.from(`${head}\n`))
  return { head, pack }
}

function bare (t: Test): string {
  const dir = fs.mkdtempSync(join(os.tmpdir(), 'swarmfs-pack-clone-dst-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  git(['init', '-q', '--bare', dir], dir)
  return dir
}

const packs = (gitdir: string): string[] => fs.readdirSync(join(gitdir, 'objects', 'pack')).filter(n => n.endsWith('.pack') || n.endsWith('.idx'))

t.test('an answer in side-band pieces is stored as one pack git reads', async t => {
  const { head, pack } = source(t)
  const dst = bare(t)
  // Chunks that cut pkt-lines anywhere, as a socket does.
  const bytes = answer(pack, 777)
  const chunks: Buffer[] = []
  for (let at = 0; at < bytes.length; at += 313) chunks.push(bytes.subarray(at, at + 313))
  await indexPackFrom(dst, Readable.from(chunks))
  t.equal(packs(dst).length, 2, 'a pack and its index')
  t.equal(git(['cat-file', '-t', head], dst).toString().trim(), 'commit', 'the head is there')
  git(['update-ref', 'refs/heads/main', head], dst)
  t.equal(spawnSync('git', ['fsck', '--strict', '--no-dangling'], { cwd: dst }).status, 0, 'git fsck finds the history whole')
})

t.test('what is refused leaves no pack', async t => {
  const { pack } = source(t)
  const cases: Array<[string, Buffer, RegExp]> = [
    ['an error on band 3', Buffer.concat([pkt(Buffer.from('NAK\n')), pkt(Buffer.from('\x03access denied'))]), /upload-pack failed: access denied/],
    ['an answer cut short', answer(pack).subarray(0, 200), /ended early/],
    // git stops at the header while megabytes more are on their way: refused, not a hang.
    ['a pack git stops reading at once', answer(Buffer.concat([Buffer.from('JUNK'), Buffer.alloc(8 << 20)]), 65000), /index-pack refused/],
    ['a pack with a byte changed', answer(Buffer.concat([pack.subarray(0, 100), Buffer.from([pack[100] ^ 0xff]), pack.subarray(101)])), /index-pack refused/],
    ['no NAK first', pkt(Buffer.from('ACK 1234\n')), /where NAK was due/],
    ['a malformed length', Buffer.from('zz12NAK\n'), /malformed pkt-line/]
  ]
  for (const [what, bytes, message] of cases) {
    const dst = bare(t)
    await t.rejects(indexPackFrom(dst, Readable.from([bytes])), { code: 'SWARMFS_PEER_BAD_RESPONSE', message }, what)
    t.same(packs(dst), [], `${what}: no pack left`)
  }
})

t.test('the advertisement gives main and the side band; the request wants it', async t => {
  const oid = 'ab'.repeat(20)
  const ad = Buffer.concat([pkt(Buffer.from('# service=git-upload-pack\n')), Buffer.from('0000'),
    pkt(Buffer.from(`${'cd'.repeat(20)} HEAD\0multi_ack side-band-64k ofs-delta\n`)), pkt(Buffer.from(`${oid} refs/heads/main\n`)), Buffer.from('0000')])
  t.same(advertisedRef(ad, 'refs/heads/main'), { oid, sideBand: true })
  const empty = Buffer.concat([pkt(Buffer.from('# service=git-upload-pack\n')), Buffer.from('0000'),
    pkt(Buffer.from(`${'0'.repeat(40)} capabilities^{}\0multi_ack ofs-delta\n`)), Buffer.from('0000')])
  t.same(advertisedRef(empty, 'refs/heads/main'), { oid: null, sideBand: false }, 'an empty repository has no main')
  t.same(pktLines(wantRequest(oid)), [`want ${oid} side-band-64k ofs-delta no-progress agent=swarmfs\n`, null, 'done\n'])
  t.throws(() => pktLines(Buffer.from('0010abc')), { code: 'SWARMFS_PEER_BAD_RESPONSE' }, 'a line past the end')
})

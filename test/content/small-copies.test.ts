// Small contents copied from a holder over the peer API (lib/node/small-copies.ts): a real peer
// server over the volume's TLS serves a real content store's file, another store takes it. The
// bytes are kept only when every piece matches the index's info; a holder without the content, one
// that sends other bytes, more bytes, or a client without the key gets nothing kept, and the
// caller falls back to BitTorrent.
import t from 'tap'
import type { Test } from 'tap'
import fs from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import { silentLogger } from '../../lib/core/log.js'
import type { ContentRef } from '../../lib/core/torrent-info.js'
import { ContentStore } from '../../lib/content/store.js'
import { PeerServer } from '../../lib/http/peer-server.js'
import { copySmall, SMALL_COPY_BYTES } from '../../lib/node/small-copies.js'
import { closePeerConnections, fetchContent } from '../../lib/sync/peer-client.js'

const KEY = 'a'.repeat(64)
const VOLUME = 'b'.repeat(32)

function tmpdir (t: Test): string {
  const dir = fs.mkdtempSync(join(os.tmpdir(), 'swarmfs-small-copies-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** A content sealed into `store` the way a write through the mount seals one. */
async function sealed (store: ContentStore, data: Buffer): Promise<ContentRef> {
  const { id, fd, hasher } = await store.stage(null)
  try {
    fs.writeSync(fd, data, 0, data.length, 0)
    hasher.write(0, data)
  } finally {
    fs.closeSync(fd)
  }
  const ref = await store.seal(id, data.length, hasher)
  store.remove([], [id])
  if (ref === null) throw new Error('empty')
  return ref
}

/** A peer server whose contents are `file(infohash)`. */
async function holder (t: Test, file: (infohash: string) => string | null): Promise<number> {
  const dir = tmpdir(t)
  const server = new PeerServer({ gitdir: join(dir, 'meta'), volumeKey: KEY, host: '127.0.0.1', port: 0, log: silentLogger, onNotify: () => {}, status: () => ({}), contentFile: file })
  const port = await server.start()
  t.teardown(() => { closePeerConnections(); server.stop() })
  return port
}

const stagingLeft = async (store: ContentStore): Promise<string[]> => {
  await store.settle()
  return fs.readdirSync(store.stagingDir)
}

t.test('a content the holder has whole is copied, checked, and announced to the store\'s watchers', async t => {
  const held = new ContentStore(tmpdir(t), VOLUME, silentLogger)
  const data = Buffer.alloc(300_000)
  for (let i = 0; i < data.length; i++) data[i] = (i * 7 + (i >> 9)) & 0xff
  const ref = await sealed(held, data)
  const port = await holder(t, ih => held.has(ih) ? held.contentPath(ih) : null)

  const copier = new ContentStore(tmpdir(t), VOLUME, silentLogger)
  const seen: Array<[string, boolean]> = []
  copier.watch((ih, present) => seen.push([ih, present]))
  t.equal(await copySmall({ host: '127.0.0.1', port, key: KEY }, ref.infohash, ref.info, copier, silentLogger), true)
  t.ok(fs.readFileSync(copier.contentPath(ref.infohash)).equals(data), 'the copy holds the same bytes')
  t.same(seen, [[ref.infohash, true]], 'the watchers are told once')
  t.same(await stagingLeft(copier), [], 'no staging file is left')
  t.equal(await copySmall({ host: '127.0.0.1', port, key: KEY }, ref.infohash, ref.info, copier, silentLogger), true, 'a second copy finds it there')
  t.same(seen.length, 1, 'and tells no one again')
})

t.test('nothing is kept from a holder that lacks the content, sends other bytes, or sends more', async t => {
  const source = new ContentStore(tmpdir(t), VOLUME, silentLogger)
  const data = Buffer.from('the bytes the index names\n'.repeat(1000))
  const ref = await sealed(source, data)
  const other = join(tmpdir(t), 'other')
  fs.writeFileSync(other, Buffer.from(data).fill(0x41, 5000, 5001))
  const longer = join(tmpdir(t), 'longer')
  fs.writeFileSync(longer, Buffer.concat([data, Buffer.from('and more')]))

  const copier = new ContentStore(tmpdir(t), VOLUME, silentLogger)
  for (const [what, file] of [['lacks it', null], ['sends one byte changed', other], ['sends more bytes', longer]] as const) {
    const port = await holder(t, () => file)
    t.equal(await copySmall({ host: '127.0.0.1', port, key: KEY }, ref.infohash, ref.info, copier, silentLogger), false, `a holder that ${what}: left to BitTorrent`)
    t.notOk(copier.has(ref.infohash), 'nothing in content/')
    t.same(await stagingLeft(copier), [], 'nor in staging/')
  }
  await t.rejects(copier.adoptWhole(ref.infohash, ref.info, Buffer.from(data).fill(0, 0, 1)), { code: 'SWARMFS_PEER_BAD_RESPONSE' }, 'adoptWhole refuses bytes that fail a piece hash')
  await t.rejects(copier.adoptWhole(ref.infohash, { ...ref.info, length: ref.info.length + 1 }, data), { code: 'SWARMFS_INTERNAL' }, 'and info that is not the content\'s')
})

t.test('a client without the key gets no content; a content above the bound is not asked for', async t => {
  const held = new ContentStore(tmpdir(t), VOLUME, silentLogger)
  const ref = await sealed(held, Buffer.from('secret\n'))
  let asked = 0
  const port = await holder(t, ih => { asked++; return held.has(ih) ? held.contentPath(ih) : null })
  await t.rejects(fetchContent({ host: '127.0.0.1', port, key: 'c'.repeat(64), timeoutMs: 5000 }, ref.infohash, ref.info.length), 'a wrong key is refused')
  t.equal(asked, 0, 'the server was never asked')
  const copier = new ContentStore(tmpdir(t), VOLUME, silentLogger)
  t.equal(await copySmall({ host: '127.0.0.1', port, key: KEY }, ref.infohash, { ...ref.info, length: SMALL_COPY_BYTES + 1 }, copier, silentLogger), false)
  t.equal(asked, 0, 'a large content is left to BitTorrent without a request')
  t.equal((await fetchContent({ host: '127.0.0.1', port, key: KEY, timeoutMs: 5000 }, ref.infohash, ref.info.length)).toString(), 'secret\n', 'with the key it comes')
  await t.rejects(fetchContent({ host: '127.0.0.1', port, key: KEY, timeoutMs: 5000 }, 'not-an-infohash', 1000), /HTTP 404/)
})

t.test('adoptWhole checks every piece of a content of several', async t => {
  const source = new ContentStore(tmpdir(t), VOLUME, silentLogger)
  const data = Buffer.alloc(2.5 * 2 ** 20)
  for (let i = 0; i < data.length; i += 4) data.writeUInt32LE(i, i)
  const ref = await sealed(source, data)
  t.equal(Math.ceil(ref.info.length / ref.info.pieceLength), 3, 'three pieces')
  const copier = new ContentStore(tmpdir(t), VOLUME, silentLogger)
  const lastPieceWrong = Buffer.from(data)
  lastPieceWrong[data.length - 1] ^= 1
  await t.rejects(copier.adoptWhole(ref.infohash, ref.info, lastPieceWrong), /piece 2 /, 'a byte wrong in the last piece')
  t.notOk(copier.has(ref.infohash))
  t.equal(await copier.adoptWhole(ref.infohash, ref.info, data), true)
  t.ok(fs.readFileSync(copier.contentPath(ref.infohash)).equals(data))
  t.equal(await copier.adoptWhole(ref.infohash, ref.info, data), false, 'already there')
  t.same(await stagingLeft(copier), [])
})

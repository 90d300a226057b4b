// The core with memory parts reading and changing a content this disk does not hold: reads go to
// the remote reader, a write first fetches the whole content onto the disk.
import t from 'tap'
import fs from 'node:fs'
import { createHash } from 'node:crypto'
import { buildInfo, infoHash, pieceLengthFor, type ContentRef } from '../../lib/core/torrent-info.js'
import { memoryVolume } from './memory-driver.js'

function refOf (bytes: Buffer): ContentRef {
  const pieceLength = pieceLengthFor(bytes.length)
  const digests: Buffer[] = []
  for (let at = 0; at < bytes.length; at += pieceLength) digests.push(createHash('sha1').update(bytes.subarray(at, at + pieceLength)).digest())
  const info = buildInfo('conformance', bytes.length, pieceLength, digests)
  return { infohash: infoHash(info), info }
}

t.test('a content held elsewhere: read through the remote reader, fetched whole for a write', async t => {
  const vol = memoryVolume()
  t.teardown(async () => {
    await vol.vfs.settle()
    fs.rmSync(vol.dir, { recursive: true, force: true })
  })
  const bytes = Buffer.from('bytes that another node holds')
  const ref = refOf(bytes)
  vol.remote.contents.set(ref.infohash, bytes)
  const now = Date.now()
  vol.index.apply({ op: 'create', path: '/far', attrs: { perm: 0o644, uid: 0, gid: 0, mtime: now, ctime: now, atime: now } })
  vol.index.apply({ op: 'setcontent', path: '/far', size: bytes.length, content: ref, mtime: now })
  t.notOk(vol.content.has(ref.infohash), 'not on this disk')
  t.equal(vol.vfs.getattr('/far').size, bytes.length, 'its size')

  let fh = await vol.vfs.open('/far', fs.constants.O_RDONLY)
  const buf = Buffer.alloc(100)
  const n = await vol.vfs.read(fh, buf, 100, 6)
  t.equal(buf.subarray(0, n).toString(), 'that another node holds', 'a read from the remote reader')
  t.equal(await vol.vfs.read(fh, buf, 100, bytes.length), 0, 'nothing past the end')
  await vol.vfs.release(fh)

  fh = await vol.vfs.open('/far', fs.constants.O_WRONLY)
  t.ok(vol.content.has(ref.infohash), 'a writer fetched it whole first')
  await vol.vfs.write(fh, Buffer.from('BYTES'), 5, 0)
  await vol.vfs.flush(fh)
  await vol.vfs.release(fh)
  await vol.vfs.settle()
  fh = await vol.vfs.open('/far', fs.constants.O_RDONLY)
  const m = await vol.vfs.read(fh, buf, 100, 0)
  t.equal(buf.subarray(0, m).toString(), 'BYTES that another node holds', 'the change on top of the fetched bytes')
  await vol.vfs.release(fh)
  const far = vol.index.mustLookup('/far')
  t.ok(far.kind === 'file' && far.content !== null && far.content.infohash !== ref.infohash && vol.content.has(far.content.infohash), 'sealed into a new content on this disk')
  t.notOk(vol.content.has(ref.infohash), 'the old content, referred to by nothing, is let go')

  vol.remote.contents.clear()
  vol.index.apply({ op: 'setcontent', path: '/far', size: bytes.length, content: ref, mtime: now })
  fh = await vol.vfs.open('/far', fs.constants.O_RDONLY)
  await t.rejects(vol.vfs.read(fh, buf, 100, 0), { code: 'EIO' }, 'EIO when no node holds it')
  await vol.vfs.release(fh)
})

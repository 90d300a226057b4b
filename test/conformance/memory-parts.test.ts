// The core with memory parts reading and changing a content this disk does not hold: reads go to
// the remote reader, a write first fetches the whole content onto the disk. And seals of equal
// bytes while another file of them goes: the content stays on the disk for the file that names it.
import t, { type Test } from 'tap'
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

/** Writes `bytes` to a new file and closes it; its seal then runs in the background. */
async function writeNew (vol: ReturnType<typeof memoryVolume>, path: string, bytes: Buffer): Promise<void> {
  const fh = await vol.vfs.create(path, 0o644)
  await vol.vfs.write(fh, bytes, bytes.length, 0)
  await vol.vfs.release(fh)
}

/**
 * Seals are held at a gate each, in the order they come, and `after(n)` runs in the step the n-th
 * seal's store call returns in: before the core's own code after its await.
 */
function gateSeals (vol: ReturnType<typeof memoryVolume>, after: (n: number) => void): Array<() => void> {
  const seal = vol.content.seal.bind(vol.content)
  const gates: Array<() => void> = []
  let n = 0
  vol.content.seal = async (...args) => {
    const mine = n++
    await new Promise<void>(resolve => gates.push(resolve))
    const ref = await seal(...args)
    after(mine)
    return ref
  }
  return gates
}

async function until (what: () => boolean): Promise<void> {
  while (!what()) await new Promise(resolve => setImmediate(resolve))
}

t.test('equal bytes sealed while another file of them goes: the content stays for the one that names it', async t => {
  const bytes = Buffer.from('the same bytes in two files')
  const ref = refOf(bytes)
  const secondHoldsIt = async (t: Test, vol: ReturnType<typeof memoryVolume>): Promise<void> => {
    t.notOk(vol.index.lookup('/first'), 'the first file is gone')
    const second = vol.index.mustLookup('/second')
    t.equal(second.kind === 'file' ? second.content?.infohash : undefined, ref.infohash, 'the second names the content')
    t.ok(vol.content.has(ref.infohash), 'and its file is on the disk')
    const fh = await vol.vfs.open('/second', fs.constants.O_RDONLY)
    const buf = Buffer.alloc(100)
    const got = await vol.vfs.read(fh, buf, 100, 0)
    t.equal(buf.subarray(0, got).toString(), bytes.toString(), 'and it reads back')
    await vol.vfs.release(fh)
  }

  await t.test('the other file named it, and goes just as this seal finds the content', async t => {
    const vol = memoryVolume()
    t.teardown(() => fs.rmSync(vol.dir, { recursive: true, force: true }))
    const gates = gateSeals(vol, n => { if (n === 1) vol.vfs.unlink('/first') })
    await writeNew(vol, '/first', bytes)
    await until(() => gates.length === 1)
    gates[0]()
    await vol.vfs.settle()
    t.ok(vol.content.has(ref.infohash), 'the first file sealed into the content')
    await writeNew(vol, '/second', bytes)
    await until(() => gates.length === 2)
    gates[1]()
    await vol.vfs.settle()
    await secondHoldsIt(t, vol)
  })

  await t.test('the other file linked it, and goes before its seal could name it', async t => {
    const vol = memoryVolume()
    t.teardown(() => fs.rmSync(vol.dir, { recursive: true, force: true }))
    const gates = gateSeals(vol, n => { if (n === 1) vol.vfs.unlink('/first') })
    await writeNew(vol, '/first', bytes)
    await writeNew(vol, '/second', bytes)
    await until(() => gates.length === 2)
    // The first links the content and waits for its name to be durable; the second then finds
    // it, and the first file goes meanwhile: its seal names the content nowhere.
    gates[0]()
    await until(() => vol.content.has(ref.infohash))
    gates[1]()
    await vol.vfs.settle()
    await secondHoldsIt(t, vol)
    vol.vfs.unlink('/second')
    await vol.vfs.settle()
    t.notOk(vol.content.has(ref.infohash), 'let go once nothing names it')
  })
})

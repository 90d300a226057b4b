// PieceFile (lib/content/piece-file.ts) on a real file:
//   - dropCached: pieces written and synced are in the page cache, and leave it when dropped,
//     while their bytes stay on the disk (`fincore`, util-linux, reads the page cache's view of the
//     file: mincore);
//   - punch: punched pieces give their blocks back (st_blocks) and read as zeros, the others keep
//     their bytes;
//   - claim: a piece whose claim rejects (a full disk) is not written;
//   - reads copy what the page cache holds at once (fileops.readCached, RWF_NOWAIT) and go to the
//     thread pool only for what is not cached, with the same bytes either way;
//   - a piece read whole to serve a peer's blocks goes back to the serving pool once it has
//     expired, even when no request follows (the last pieces of every active torrent stayed),
//     and all files together keep at most 8 MiB of such pieces.
import fs from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import { createHash, randomBytes } from 'node:crypto'
import t from 'tap'
import { PieceFile } from '../../lib/content/piece-file.js'
import { servingBuffers } from '../../lib/content/serving-buffers.js'
import type { TorrentInfo } from '../../lib/core/torrent-info.js'
import { residentBytes } from '../helpers/volume.js'

const MiB = 1 << 20

function put (store: PieceFile, index: number, data: Buffer): Promise<void> {
  return new Promise((resolve, reject) => store.put(index, Uint8Array.from(data), err => err ? reject(err) : resolve()))
}

t.test('synced pieces leave the page cache when dropped, and keep their bytes', async t => {
  const dir = fs.mkdtempSync(join(os.tmpdir(), 'swarmfs-piece-file-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const pieceLength = MiB
  const pieces = Array.from({ length: 8 }, () => randomBytes(pieceLength))
  const info: TorrentInfo = { name: 'f00dfeed00112233', length: 8 * pieceLength, pieceLength, pieces: '' }
  const path = join(dir, 'partial')
  const store = await PieceFile.open(path, info, true)
  t.teardown(() => store.release())
  for (const [i, data] of pieces.entries()) await put(store, i, data)
  await store.fdatasync()
  t.equal(residentBytes(path), 8 * MiB, 'written and synced: all 8 MiB in the page cache')

  await store.dropCached(0, 3 * pieceLength)
  t.equal(residentBytes(path), 5 * MiB, 'pieces 0-2 dropped, 3-7 still cached')
  await store.dropCached(3 * pieceLength, 5 * pieceLength)
  t.equal(residentBytes(path), 0, 'all dropped')

  const whole = createHash('sha256')
  for (const data of pieces) whole.update(data)
  const read = await store.readAt(0, info.length)
  t.equal(createHash('sha256').update(read).digest('hex'), whole.digest('hex'), 'the bytes read back from the disk are the ones written')
})

t.test('punched pieces take no space and read as zeros; the others keep their bytes', async t => {
  const dir = fs.mkdtempSync(join(os.tmpdir(), 'swarmfs-piece-file-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const pieceLength = MiB
  const pieces = Array.from({ length: 6 }, () => randomBytes(pieceLength))
  const info: TorrentInfo = { name: 'f00dfeed00112233', length: 6 * pieceLength - 1000, pieceLength, pieces: '' }
  pieces[5] = pieces[5]!.subarray(0, pieceLength - 1000)
  const path = join(dir, 'partial')
  const store = await PieceFile.open(path, info, true)
  t.teardown(() => store.release())
  for (const [i, data] of pieces.entries()) await put(store, i, data)
  await store.fdatasync()
  const blocks = (): number => fs.statSync(path).blocks * 512
  t.ok(blocks() >= info.length, `written: the file takes its ${info.length} bytes (${blocks()})`)

  await store.punch(pieceLength, 2 * pieceLength)
  await store.punch(5 * pieceLength, pieceLength - 1000)
  // The file's last block, partly past its end, is zeroed rather than freed.
  t.ok(blocks() <= 3 * pieceLength + 4096, `pieces 1, 2 and the short last one punched: ${blocks()} bytes taken, at most 3 MiB and a block`)
  t.equal(fs.statSync(path).size, info.length, 'the file keeps its length')
  for (const [i, data] of pieces.entries()) {
    const read = await store.readAt(i * pieceLength, data.length)
    const punched = i === 1 || i === 2 || i === 5
    t.ok(punched ? read.every(b => b === 0) : read.equals(data), punched ? `piece ${i} reads as zeros` : `piece ${i} keeps its bytes`)
  }
})

t.test('a piece whose claim is refused is not written', async t => {
  const dir = fs.mkdtempSync(join(os.tmpdir(), 'swarmfs-piece-file-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const info: TorrentInfo = { name: 'f00dfeed00112233', length: 2 * MiB, pieceLength: MiB, pieces: '' }
  const path = join(dir, 'partial')
  const claims: number[] = []
  const store = await PieceFile.open(path, info, true, async bytes => {
    claims.push(bytes)
    if (claims.length === 2) throw Object.assign(new Error('ENOSPC: full'), { code: 'ENOSPC' })
  })
  t.teardown(() => store.release())
  await put(store, 0, randomBytes(MiB))
  const err = await put(store, 1, randomBytes(MiB)).then(() => null, (e: Error & { code?: string }) => e)
  t.equal(err?.code, 'ENOSPC', 'the second put fails with the claim\'s error')
  t.same(claims, [MiB, MiB], 'each put claimed its piece\'s length')
  const second = await store.readAt(MiB, MiB)
  t.ok(second.every(b => b === 0), 'the refused piece was not written')
})

t.test('a read takes cached bytes at once, and reads the rest from the disk', async t => {
  const { readCached, fadvise, POSIX_FADV_DONTNEED } = (await import('@swarmfs/fileops')).default
  const dir = fs.mkdtempSync(join(os.tmpdir(), 'swarmfs-piece-file-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const path = join(dir, 'file')
  const data = randomBytes(2 * MiB + 1000)
  fs.writeFileSync(path, data)
  const fd = fs.openSync(path, 'r')
  t.teardown(() => fs.closeSync(fd))
  fs.fsyncSync(fd)
  fs.readFileSync(path)
  const buf = Buffer.alloc(MiB)
  t.equal(readCached(fd, buf, 0, MiB, 0), MiB, 'a cached MiB is read whole at once')
  t.ok(buf.equals(data.subarray(0, MiB)), 'with the file\'s bytes')
  t.equal(readCached(fd, buf, 100, 5000, 2 * MiB), 1000, 'across the end of the file: the bytes there are')
  t.ok(buf.subarray(100, 1100).equals(data.subarray(2 * MiB)), 'at the offset asked in the buffer')
  t.equal(readCached(fd, buf, 0, 10, data.length), 0, 'at the end of the file: 0')

  await fadvise(fd, 0, 0, POSIX_FADV_DONTNEED)
  t.equal(residentBytes(path), 0, 'dropped from the page cache')
  // On a miss the kernel starts readahead and looks again: when the disk answers within that
  // (a fast disk, a busy machine), the read takes those bytes. So not cached is -1 with the
  // buffer untouched, or bytes read just now, and they are the file's.
  buf.fill(7)
  const n = readCached(fd, buf, 0, MiB, MiB)
  if (n === -1) t.ok(buf.every(b => b === 7), 'not cached: nothing read, -1, and the buffer untouched')
  else {
    t.ok(n > 0 && n <= MiB, `not cached: nothing read, or bytes the disk gave at once (${n})`)
    t.ok(buf.subarray(0, n).equals(data.subarray(MiB, MiB + n)) && buf.subarray(n).every(b => b === 7), '... the file\'s bytes, and nothing past them')
  }
  const info: TorrentInfo = { name: 'f00dfeed00112233', length: data.length, pieceLength: MiB, pieces: '' }
  const store = await PieceFile.open(path, info, false)
  t.teardown(() => store.release())
  const read = await store.readAt(MiB - 10, MiB + 20)
  t.ok(read.equals(data.subarray(MiB - 10, 2 * MiB + 10)), 'a read of bytes partly cached, partly not, has the file\'s bytes')

  t.throws(() => readCached(fd, buf, MiB - 5, 10, 0), RangeError, 'a range past the buffer throws a RangeError')
  t.throws(() => readCached(fd, 'x' as unknown as Buffer, 0, 1, 0), TypeError, 'a buffer that is not one throws a TypeError')
  t.throws(() => readCached(-1, buf, 0, 10, 0), { code: 'EBADF' }, 'a bad descriptor throws, with EBADF as the code')
})

t.test('a bad descriptor is an error, not a crash', async t => {
  const { fadvise, POSIX_FADV_DONTNEED } = (await import('@swarmfs/fileops')).default
  const err = await fadvise(-1, 0, 0, POSIX_FADV_DONTNEED).then(() => null, (e: Error & { errno?: number }) => e)
  t.equal(err?.errno, 9, 'EBADF, as the errno of the error')
  t.throws(() => fadvise(3, 0, 0, undefined as unknown as number), TypeError, 'a missing argument throws a TypeError')
  const { punchHole } = (await import('@swarmfs/fileops')).default
  const punchErr = await punchHole(-1, 0, 4096).then(() => null, (e: Error & { errno?: number, code?: string }) => e)
  t.equal(punchErr?.code, 'EBADF', 'punchHole on a bad descriptor: EBADF, as the code of the error')
  t.throws(() => punchHole(3, 0, undefined as unknown as number), TypeError, 'a missing argument throws a TypeError')
})

t.test('a piece cached to serve blocks goes back to the pool without a later request', async t => {
  const dir = fs.mkdtempSync(join(os.tmpdir(), 'swarmfs-piece-file-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const pieceLength = MiB
  const info: TorrentInfo = { name: 'f00dfeed00112233', length: 2 * pieceLength, pieceLength, pieces: '' }
  const store = await PieceFile.open(join(dir, 'partial'), info, true)
  t.teardown(() => store.release())
  const data = randomBytes(pieceLength)
  await put(store, 1, data)
  const before = servingBuffers.freeBytes
  const block = await new Promise<Buffer>((resolve, reject) => store.get(1, { offset: 128 * 1024, length: 128 * 1024 }, (err, b) => err ? reject(err) : resolve(b as Buffer)))
  t.ok(block.equals(data.subarray(128 * 1024, 256 * 1024)), 'a block is served from the piece read whole')
  // Not lent through a socket here: nothing else holds the piece once the cache lets it go.
  servingBuffers.written(block)
  const deadline = Date.now() + 30_000
  while (servingBuffers.freeBytes <= before && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 50))
  t.ok(servingBuffers.freeBytes > before, 'the piece\'s buffer is back in the pool, with no request after it')
})

t.test('all content files together keep at most 8 MiB of pieces to serve blocks from', async t => {
  const dir = fs.mkdtempSync(join(os.tmpdir(), 'swarmfs-piece-file-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const pieceLength = MiB
  const info: TorrentInfo = { name: 'f00dfeed00112233', length: pieceLength, pieceLength, pieces: '' }
  // 40 contents of one piece each, a block of each asked for at once (a new disk copying them).
  const stores = await Promise.all(Array.from({ length: 40 }, async (_, i) => {
    const store = await PieceFile.open(join(dir, `c${i}`), info, true)
    t.teardown(() => store.release())
    await put(store, 0, Buffer.alloc(pieceLength, i))
    return store
  }))
  const blocks = await Promise.all(stores.map(async store => await new Promise<Buffer>((resolve, reject) =>
    store.get(0, { offset: 0, length: 128 * 1024 }, (err, b) => err ? reject(err) : resolve(b as Buffer)))))
  t.ok(blocks.every((b, i) => b.every(x => x === i)), 'every file served its own bytes')
  t.ok(PieceFile.servedCacheBytes > 0, 'pieces are kept to serve the next blocks from ...')
  t.ok(PieceFile.servedCacheBytes <= 8 * MiB, `... ${PieceFile.servedCacheBytes / MiB} MiB of them, not one per file`)
  for (const b of blocks) servingBuffers.written(b)
})

// PieceFile.dropCached (lib/content/piece-file.ts) on a real file: pieces written and synced are in
// the page cache, and leave it when dropped, while their bytes stay on the disk. `fincore`
// (util-linux) reads the page cache's view of the file (mincore).
import fs from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import { createHash, randomBytes } from 'node:crypto'
import t from 'tap'
import { PieceFile } from '../../lib/content/piece-file.js'
import type { TorrentInfo } from '../../lib/content/torrent-info.js'
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

t.test('a bad descriptor is an error, not a crash', async t => {
  const { fadvise, POSIX_FADV_DONTNEED } = (await import('@swarmfs/fadvise')).default
  const err = await fadvise(-1, 0, 0, POSIX_FADV_DONTNEED).then(() => null, (e: Error & { errno?: number }) => e)
  t.equal(err?.errno, 9, 'EBADF, as the errno of the error')
  t.throws(() => fadvise(3, 0, 0, undefined as unknown as number), TypeError, 'a missing argument throws a TypeError')
})

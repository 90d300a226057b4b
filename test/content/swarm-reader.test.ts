// The swarm reader (lib/content/swarm-reader.ts) and its memory version (memory-reader.ts): the
// shape vfs's RemoteContent asks for, the failure memory, and reads failing at once once closed.
import t from 'tap'
import { FsError } from '../../lib/core/errors.js'
import { buildInfo, infoHash, type ContentRef, type TorrentInfo } from '../../lib/core/torrent-info.js'
import { MemoryReader } from '../../lib/content/memory-reader.js'
import { SwarmReader, type PieceSource } from '../../lib/content/swarm-reader.js'
import type { RemoteContent } from '../../lib/vfs/volume-fs.js'

function refOf (bytes: Buffer): ContentRef {
  const info = buildInfo('volume', bytes.length, 16384, [Buffer.alloc(20)])
  return { infohash: infoHash(info), info }
}

t.test('the memory reader serves its contents and fails with EIO for one made unavailable', async t => {
  const bytes = Buffer.from('hello, swarm')
  const ref = refOf(bytes)
  const fetched: string[] = []
  const reader: RemoteContent = new MemoryReader(new Map([[ref.infohash, bytes]]), r => fetched.push(r.infohash))
  const memory = reader as MemoryReader
  const into = Buffer.alloc(64)
  t.equal(await reader.read(ref, 7, 64, into), 5, 'a read near the end gets what is there')
  t.equal(into.subarray(0, 5).toString(), 'swarm')
  t.equal(await reader.read(ref, 12, 4, into), 0, 'at the end: nothing')
  await reader.fetchAll(ref)
  t.same(fetched, [ref.infohash], 'a whole fetch is told with the bytes')
  memory.setAvailable(ref.infohash, false)
  await t.rejects(reader.read(ref, 0, 4, into), { code: 'EIO' }, 'unavailable: EIO, like a missing holder')
  await t.rejects(reader.fetchAll(ref), { code: 'EIO' })
  memory.setAvailable(ref.infohash, true)
  t.equal(await reader.read(ref, 0, 5, into), 5, 'available again')
  const other = refOf(Buffer.from('other'))
  await t.rejects(reader.read({ ...other, infohash: 'f'.repeat(40) }, 0, 1, into), { code: 'EIO' }, 'a content no one has: EIO')
  memory.close()
  await t.rejects(reader.read(ref, 0, 5, into), { code: 'EIO' }, 'closed: EIO at once')
  t.same(memory.counts, { reads: 3, fetches: 1 }, 'reads and fetches served are counted')
})

t.test('the swarm reader remembers a piece that failed, but not a full disk, and fails at once once closed', async t => {
  const bytes = Buffer.alloc(40000, 7)
  const ref = refOf(bytes)
  let calls = 0
  let failWith: FsError | null = null
  let held = false
  const fetched: number[] = []
  const source: PieceSource = {
    read: async (_ih: string, _info: TorrentInfo, offset: number, length: number, _deadline: number, into?: Buffer) => {
      calls++
      if (failWith !== null) throw failWith
      const out = into ?? Buffer.alloc(length)
      return out.subarray(0, bytes.copy(out, 0, offset, offset + length))
    },
    fetch: async (_ih, _info, offset) => { fetched.push(offset) },
    completed: async () => { held = true; return true }
  }
  const reader: RemoteContent = new SwarmReader(source, { has: () => held })
  const swarm = reader as SwarmReader
  const into = Buffer.alloc(100)
  t.equal(await reader.read(ref, 0, 100, into), 100)
  failWith = new FsError('ENOSPC', 'ENOSPC: no room')
  await t.rejects(reader.read(ref, 0, 100, into), { code: 'ENOSPC' })
  await t.rejects(reader.read(ref, 0, 100, into), { code: 'ENOSPC' }, 'a full disk is asked again')
  t.equal(calls, 3)
  failWith = new FsError('EIO', 'EIO: pieces did not arrive in time')
  await t.rejects(reader.read(ref, 0, 100, into), { code: 'EIO' })
  failWith = null
  await t.rejects(reader.read(ref, 50, 10, into), { message: 'EIO: that piece could not be fetched just now' }, 'the same piece again: at once')
  t.equal(calls, 4, 'without asking the torrents')
  t.equal(await reader.read(ref, 16384, 10, into), 10, 'another piece is read')
  await reader.fetchAll(ref)
  t.same(fetched, [0], 'a whole fetch in one step for a small content')
  swarm.close()
  await t.rejects(reader.read(ref, 16384, 10, into), { message: 'EIO: the node is stopping' })
  await t.rejects(reader.fetchAll(ref), { code: 'EIO' })
})

// Writes many new objects at once as one pack (and its v2 index) instead of one loose file each. A
// commit of a burst writes thousands of entry blobs; as loose objects each was a file created,
// synced and renamed (~1 ms apiece here, 2-3 s for a commit of 2,000 new files, which the next
// commit and every peer waited for). A pack is two files synced once. git, isomorphic-git and
// packs.ts read it like a fetched one; the syncer's repack (repack.ts) later rolls it together with
// the others.
import { createHash, randomBytes } from 'node:crypto'
import fs from 'node:fs'
import { join } from 'node:path'
import { once } from 'node:events'
import zlib from 'node:zlib'
import { syncDir, writeSynced } from '../core/durable.js'

const TYPE_CODES: Record<string, number> = { commit: 1, tree: 2, blob: 3, tag: 4 }

export interface PackObject { oid: string, type: string, body: Buffer }

/**
 * Objects this large deflate in the thread pool: the 36 MB tree of a million-entry directory took
 * 0.8 s of the thread FUSE is served on, at each commit of a change in it. A small one costs
 * less on the thread than the hop to the pool.
 */
const DEFLATE_IN_POOL_FROM = 256 * 1024
/**
 * An entry's blob (a few hundred bytes) deflates with a 1 KiB window and little memory: zlib's
 * default state is ~270 KB made for each, 55 µs a blob against 12 µs, and in a node with a large
 * heap ~0.5 ms (1,000 new files' blobs in a commit: 0.5 s on the thread FUSE is served on). The
 * stream is as valid: its header names its window.
 */
const SMALL_OBJECT = 1024
const SMALL_DEFLATE: zlib.ZlibOptions = { windowBits: 10, memLevel: 2 }

/**
 * An object's bytes (given in parts) as git stores them, loose or in a pack, in parts too: a large
 * one is never copied into one buffer on this thread (a fresh 36 MB buffer cost ~130 ms here,
 * most of it the kernel handing out its pages).
 */
export async function deflateObject (parts: Buffer[]): Promise<Buffer[]> {
  const size = parts.reduce((n, p) => n + p.length, 0)
  if (size < DEFLATE_IN_POOL_FROM) return [zlib.deflateSync(parts.length === 1 ? parts[0] : Buffer.concat(parts, size), size <= SMALL_OBJECT ? SMALL_DEFLATE : {})]
  // Output in chunks of 4 MiB: 16 KiB chunks were thousands of buffers made on this thread.
  const deflate = zlib.createDeflate({ chunkSize: Math.min(4 << 20, size + 1024) })
  const out: Buffer[] = []
  deflate.on('data', (chunk: Buffer) => out.push(chunk))
  const ended = once(deflate, 'end')
  for (const part of parts) deflate.write(part)
  deflate.end()
  await ended
  return out
}

/** The entry header: type and size, 7 bits a byte after the first 4. */
function entryHeader (type: number, size: number): Buffer {
  const bytes: number[] = []
  let byte = (type << 4) | (size & 15)
  let rest = Math.floor(size / 16)
  while (rest > 0) {
    bytes.push(byte | 0x80)
    byte = rest & 0x7f
    rest = Math.floor(rest / 128)
  }
  bytes.push(byte)
  return Buffer.from(bytes)
}

/** The pack's bytes (in parts) and its index's, for objects with distinct ids. */
export async function buildPack (objects: PackObject[]): Promise<{ pack: Buffer[], idx: Buffer, name: string }> {
  const head = Buffer.alloc(12)
  head.write('PACK', 0, 'latin1')
  head.writeUInt32BE(2, 4)
  head.writeUInt32BE(objects.length, 8)
  const pack: Buffer[] = [head]
  const hash = createHash('sha1').update(head)
  const entries: Array<{ oid: Buffer, offset: number, crc: number }> = []
  let offset = 12
  for (const o of objects) {
    const code = TYPE_CODES[o.type]
    if (code === undefined) throw new Error(`cannot pack an object of type ${o.type}`)
    const entry = [entryHeader(code, o.body.length), ...await deflateObject([o.body])]
    let crc = 0
    for (const part of entry) {
      crc = zlib.crc32(part, crc)
      hash.update(part)
      pack.push(part)
      offset += part.length
    }
    entries.push({ oid: Buffer.from(o.oid, 'hex'), offset: offset - entry.reduce((n, p) => n + p.length, 0), crc })
  }
  const checksum = hash.digest()
  pack.push(checksum)

  entries.sort((a, b) => Buffer.compare(a.oid, b.oid))
  const n = entries.length
  const large = entries.filter(e => e.offset >= 0x80000000)
  const idx = Buffer.alloc(8 + 256 * 4 + n * 28 + large.length * 8 + 40)
  idx.writeUInt32BE(0xff744f63, 0)
  idx.writeUInt32BE(2, 4)
  let at = 8
  for (let b = 0, i = 0; b < 256; b++) {
    while (i < n && entries[i].oid[0] <= b) i++
    idx.writeUInt32BE(i, at)
    at += 4
  }
  for (const e of entries) at += e.oid.copy(idx, at)
  for (const e of entries) at = idx.writeUInt32BE(e.crc >>> 0, at)
  let nextLarge = 0
  const largeAt = at + n * 4
  for (const e of entries) {
    if (e.offset < 0x80000000) {
      at = idx.writeUInt32BE(e.offset, at)
    } else {
      at = idx.writeUInt32BE((0x80000000 | nextLarge) >>> 0, at)
      idx.writeBigUInt64BE(BigInt(e.offset), largeAt + nextLarge * 8)
      nextLarge++
    }
  }
  at = largeAt + large.length * 8
  at += checksum.copy(idx, at)
  createHash('sha1').update(idx.subarray(0, at)).digest().copy(idx, at)
  return { pack, idx, name: `pack-${checksum.toString('hex')}` }
}

/**
 * Writes the pack durably: the pack, then its index (readers take a pack only with an index that
 * matches it), each synced, renamed into place, then the directory synced. A crash leaves at
 * worst a pack without an index, which no reader uses.
 */
export async function writePack (gitdir: string, objects: PackObject[]): Promise<void> {
  const { pack, idx, name } = await buildPack(objects)
  const dir = join(gitdir, 'objects', 'pack')
  await fs.promises.mkdir(dir, { recursive: true })
  const tag = randomBytes(4).toString('hex')
  for (const [ext, data] of [['pack', pack], ['idx', [idx]]] satisfies Array<[string, Buffer[]]>) {
    const tmp = join(dir, `tmp_${name}.${tag}.${ext}`)
    await writeSynced(tmp, data, 0o444)
    await fs.promises.rename(tmp, join(dir, `${name}.${ext}`))
  }
  await syncDir(dir)
}

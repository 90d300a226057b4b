// Reads objects out of the repository's packs natively: the pack index (v2) searched in memory, the
// entry inflated with node:zlib, deltas applied here. A fetch from a peer leaves a pack; read
// through isomorphic-git a packed object cost ~2.6 ms (it lists the pack directory and inflates in
// JavaScript per object), so taking a burst of 2,000 new entries from a peer spent seconds reading
// them twice (the merge's screening, then the adoption). Here one costs a binary search and an
// inflate. Anything this reader does not take for sound (an index being written, another index
// version, a damaged entry) answers undefined, and the caller falls back to isomorphic-git.
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import { join } from 'node:path'
import zlib from 'node:zlib'

const IDX_MAGIC = 0xff744f63
const TYPES = ['', 'commit', 'tree', 'blob', 'tag'] as const
const OFS_DELTA = 6
const REF_DELTA = 7
/** git itself stops at 50 by default; a chain longer than this is refused, not followed. */
const MAX_DELTA_DEPTH = 64
/** What a caller that names no bound gets (a directory of a million entries is a tree of ~50 MB). */
const MAX_OBJECT_BYTES = 256 << 20
/**
 * Entries are read through a window of up to this much: a load from a pack this node wrote reads
 * its entries in the order they were written, so one pread serves hundreds of small entries.
 */
const WINDOW_BYTES = 256 << 10
/** The smallest window: a pack git wrote is in its own order (by type, then for deltas), not the tree's. */
const MIN_WINDOW_BYTES = 4 << 10
/**
 * One window for every pack of the process, refilled in place (a fresh 256 KiB buffer per refill
 * left RSS ~170 MiB higher after a cold load: glibc keeps what it handed out). Its size adapts
 * like a kernel's readahead: doubled when reads went on past half of it, halved when they did
 * not. A fixed 256 KiB window read 256 GB for a million entries of a pack in git's order.
 */
const window = { buf: Buffer.allocUnsafe(WINDOW_BYTES), owner: null as object | null, start: 0, length: 0, size: MIN_WINDOW_BYTES, reach: 0 }

export interface PackedObject { type: string, body: Buffer }

/**
 * Delta bases kept per pack, as git keeps its delta_base_cache: a pack git wrote holds most entry
 * blobs as deltas of a few hundred bases (a million-file clone: 943,794 deltas, chains of 1 to 3),
 * and each base was read and inflated again for every delta, moving the read window away and back.
 */
const BASE_CACHE_ENTRIES = 1024
const PACK_INDEX = /^pack-[0-9a-f]{40,64}\.idx$/
const BASE_CACHE_BYTES = 16 << 20

/** One pack and its index, read whole once (an index is 28 bytes an object plus 1 KiB). */
class Pack {
  private readonly count: number
  /** Offsets in pack order, for where an entry ends. */
  private sorted: Float64Array | null = null
  private fd: number | null = null
  private readonly bases = new Map<number, PackedObject>()
  private basesBytes = 0

  constructor (private readonly idx: Buffer, private readonly packPath: string, private readonly packSize: number) {
    this.count = idx.readUInt32BE(8 + 255 * 4)
  }

  /** The entry's offset in the pack, or -1. */
  offsetOf (oid: Buffer): number {
    const first = oid[0]
    let lo = first === 0 ? 0 : this.idx.readUInt32BE(8 + (first - 1) * 4)
    let hi = this.idx.readUInt32BE(8 + first * 4)
    const names = 8 + 256 * 4
    const idx = this.idx
    // Word by word in JavaScript: Buffer.compare per step was a third of a cold load.
    const w0 = oid.readUInt32BE(0)
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      const at = names + mid * 20
      let c = idx.readUInt32BE(at) - w0
      for (let i = 4; c === 0 && i < 20; i += 4) c = idx.readUInt32BE(at + i) - oid.readUInt32BE(i)
      if (c === 0) return this.offsetAt(mid)
      if (c < 0) lo = mid + 1
      else hi = mid
    }
    return -1
  }

  private offsetAt (i: number): number {
    const table = 8 + 256 * 4 + this.count * 24
    const small = this.idx.readUInt32BE(table + i * 4)
    if ((small & 0x80000000) === 0) return small
    const large = table + this.count * 4 + (small & 0x7fffffff) * 8
    return Number(this.idx.readBigUInt64BE(large))
  }

  /** Where the entry at `offset` ends: the next entry, or the pack's trailer. */
  private endOf (offset: number): number {
    if (this.sorted === null) {
      const all = new Float64Array(this.count)
      for (let i = 0; i < this.count; i++) all[i] = this.offsetAt(i)
      this.sorted = all.sort()
    }
    const s = this.sorted
    let lo = 0
    let hi = s.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (s[mid] <= offset) lo = mid + 1
      else hi = mid
    }
    return lo < s.length ? s[lo] : this.packSize - 20
  }

  /**
   * The pack's bytes [start, end): a view of the shared window when they fit in it (valid until the
   * next read of any pack), else a buffer of their own.
   */
  private bytes (start: number, end: number): Buffer {
    if (window.owner === this && start >= window.start && end <= window.start + window.length) {
      window.reach = Math.max(window.reach, end - window.start)
      return window.buf.subarray(start - window.start, end - window.start)
    }
    if (this.fd === null) this.fd = fs.openSync(this.packPath, 'r')
    if (end - start > WINDOW_BYTES / 4) {
      const buf = Buffer.allocUnsafe(end - start)
      if (fs.readSync(this.fd, buf, 0, buf.length, start) !== buf.length) throw new Error('pack cut short')
      return buf
    }
    if (window.owner !== null) {
      window.size = window.reach > window.length / 2 ? Math.min(WINDOW_BYTES, window.size * 2) : Math.max(MIN_WINDOW_BYTES, window.size / 2)
    }
    const length = Math.min(Math.max(window.size, end - start), this.packSize - start)
    window.owner = null
    if (fs.readSync(this.fd, window.buf, 0, length, start) !== length) throw new Error('pack cut short')
    window.owner = this
    window.start = start
    window.length = length
    window.reach = end - start
    return window.buf.subarray(0, end - start)
  }

  /** The object at `offset`, its deltas applied; `base` finds a REF_DELTA's base by id. */
  read (offset: number, maxBytes: number, base: (oid: Buffer, depth: number) => PackedObject | undefined, depth = 0): PackedObject {
    if (depth === 0) return this.readEntry(offset, maxBytes, base, depth)
    const cached = this.bases.get(offset)
    if (cached !== undefined) {
      // Most recently used last: the Map's order is the eviction order.
      this.bases.delete(offset)
      this.bases.set(offset, cached)
      if (cached.body.length > maxBytes) throw new RangeError('too large')
      return cached
    }
    const found = this.readEntry(offset, maxBytes, base, depth)
    if (found.body.length <= BASE_CACHE_BYTES / 16) {
      this.bases.set(offset, found)
      this.basesBytes += found.body.length
      for (const [at, old] of this.bases) {
        if (this.bases.size <= BASE_CACHE_ENTRIES && this.basesBytes <= BASE_CACHE_BYTES) break
        this.bases.delete(at)
        this.basesBytes -= old.body.length
      }
    }
    return found
  }

  private readEntry (offset: number, maxBytes: number, base: (oid: Buffer, depth: number) => PackedObject | undefined, depth: number): PackedObject {
    if (depth > MAX_DELTA_DEPTH) throw new Error('delta chain too long')
    const end = this.endOf(offset)
    if (end <= offset || end > this.packSize - 20) throw new Error('entry outside the pack')
    let entry = this.bytes(offset, end)
    let at = 0
    let byte = entry[at++]
    const type = (byte >> 4) & 7
    let size = byte & 15
    for (let shift = 4; (byte & 0x80) !== 0; shift += 7) {
      if (at >= entry.length || shift > 49) throw new Error('bad entry header')
      byte = entry[at++]
      size += (byte & 0x7f) * 2 ** shift
    }
    if (size > maxBytes) throw new RangeError('too large')
    let baseObject: PackedObject | undefined
    if (type === OFS_DELTA) {
      byte = entry[at++]
      let back = byte & 0x7f
      while ((byte & 0x80) !== 0) {
        if (at >= entry.length || back > 2 ** 45) throw new Error('bad delta offset')
        byte = entry[at++]
        back = (back + 1) * 128 + (byte & 0x7f)
      }
      if (back <= 0 || back > offset) throw new Error('bad delta offset')
      baseObject = this.read(offset - back, maxBytes, base, depth + 1)
    } else if (type === REF_DELTA) {
      baseObject = base(Buffer.from(entry.subarray(at, at + 20)), depth + 1)
      at += 20
      if (baseObject === undefined) throw new Error('delta base missing')
    } else if (TYPES[type] === undefined || TYPES[type] === '') {
      throw new Error(`unknown entry type ${type}`)
    }
    // Reading the base may have moved the window.
    if (baseObject !== undefined) entry = this.bytes(offset, end)
    // One chunk of the object's own size: the default 16 KiB chunk per small entry was most of a
    // cold load's allocation (and its GC).
    const data = zlib.inflateSync(entry.subarray(at), { maxOutputLength: Math.max(1, size), chunkSize: Math.max(64, size) })
    if (data.length !== size) throw new Error('entry size mismatch')
    if (baseObject === undefined) return { type: TYPES[type], body: data }
    return { type: baseObject.type, body: applyDelta(baseObject.body, data, maxBytes) }
  }

  close (): void {
    if (this.fd !== null) fs.closeSync(this.fd)
    this.fd = null
    if (window.owner === this) window.owner = null
    this.bases.clear()
    this.basesBytes = 0
  }
}

/** git's delta format: the base's size, the result's, then copy and insert instructions. */
export function applyDelta (base: Buffer, delta: Buffer, maxBytes: number): Buffer {
  let at = 0
  const varint = (): number => {
    let n = 0
    let byte
    let shift = 0
    do {
      if (at >= delta.length || shift > 49) throw new Error('bad delta header')
      byte = delta[at++]
      n += (byte & 0x7f) * 2 ** shift
      shift += 7
    } while ((byte & 0x80) !== 0)
    return n
  }
  if (varint() !== base.length) throw new Error('delta base size mismatch')
  const size = varint()
  if (size > maxBytes) throw new RangeError('too large')
  const out = Buffer.allocUnsafe(size)
  let written = 0
  while (at < delta.length) {
    const op = delta[at++]
    if ((op & 0x80) !== 0) {
      let offset = 0
      let length = 0
      for (let i = 0; i < 4; i++) if ((op & (1 << i)) !== 0) offset += delta[at++] * 2 ** (8 * i)
      for (let i = 0; i < 3; i++) if ((op & (16 << i)) !== 0) length += delta[at++] * 2 ** (8 * i)
      if (length === 0) length = 0x10000
      if (offset + length > base.length || written + length > size) throw new Error('delta copy out of range')
      base.copy(out, written, offset, offset + length)
      written += length
    } else if (op !== 0) {
      if (at + op > delta.length || written + op > size) throw new Error('delta insert out of range')
      delta.copy(out, written, at, at + op)
      at += op
      written += op
    } else {
      throw new Error('delta opcode 0')
    }
  }
  if (written !== size) throw new Error('delta result size mismatch')
  return out
}

/** Whether an index is whole and matches its pack (a fetch writes the index after the pack). */
function loadPack (idxPath: string, packPath: string): Pack | null {
  try {
    const idx = fs.readFileSync(idxPath)
    const packSize = fs.statSync(packPath).size
    if (idx.length < 8 + 256 * 4 + 40 || idx.readUInt32BE(0) !== IDX_MAGIC || idx.readUInt32BE(4) !== 2 || packSize < 32) return null
    if (!createHash('sha1').update(idx.subarray(0, idx.length - 20)).digest().equals(idx.subarray(idx.length - 20))) return null
    const count = idx.readUInt32BE(8 + 255 * 4)
    if (idx.length < 8 + 256 * 4 + count * 28 + 40) return null
    const trailer = Buffer.alloc(20)
    const fd = fs.openSync(packPath, 'r')
    try {
      fs.readSync(fd, trailer, 0, 20, packSize - 20)
    } finally {
      fs.closeSync(fd)
    }
    if (!trailer.equals(idx.subarray(idx.length - 40, idx.length - 20))) return null
    return new Pack(idx, packPath, packSize)
  } catch {
    return null
  }
}

/** The packs of one repository, as last listed; listed again when an object is not in them. */
export class PackSet {
  private packs = new Map<string, Pack>()

  constructor (private readonly gitdir: string) {}

  /**
   * The object, undefined when no sound pack holds it (or a pack holding it does not read here).
   * Throws RangeError when it would inflate beyond `maxBytes`.
   */
  read (oid: string, maxBytes = MAX_OBJECT_BYTES): PackedObject | undefined {
    return this.readListed(oid, maxBytes) ?? this.readRelisted(oid, maxBytes)
  }

  /** As read, but only from the packs already listed: a miss costs no listing of the directory. */
  readListed (oid: string, maxBytes = MAX_OBJECT_BYTES): PackedObject | undefined {
    if (this.packs.size === 0) return undefined
    return this.find(Buffer.from(oid, 'hex'), maxBytes, 0)
  }

  /** The rest of read: the directory listed again, searched only when a pack came. */
  readRelisted (oid: string, maxBytes = MAX_OBJECT_BYTES): PackedObject | undefined {
    return this.relist() ? this.find(Buffer.from(oid, 'hex'), maxBytes, 0) : undefined
  }

  private find (oid: Buffer, maxBytes: number, depth: number): PackedObject | undefined {
    for (const [name, pack] of this.packs) {
      const offset = pack.offsetOf(oid)
      if (offset < 0) continue
      try {
        return pack.read(offset, maxBytes, (base, d) => this.find(base, maxBytes, d) ?? this.loose(base), depth)
      } catch (err) {
        if (err instanceof RangeError) throw err
        // Gone (repacked meanwhile) or unreadable here: isomorphic-git has the last word.
        pack.close()
        this.packs.delete(name)
        return undefined
      }
    }
    return undefined
  }

  /** A REF_DELTA's base may be loose (a thin pack completed by its receiver is never thin here, but cheap to allow). */
  private loose (oid: Buffer): PackedObject | undefined {
    try {
      const raw = zlib.inflateSync(fs.readFileSync(join(this.gitdir, 'objects', oid.toString('hex', 0, 1), oid.toString('hex', 1))))
      const space = raw.indexOf(0x20)
      const nul = raw.indexOf(0, space)
      return { type: raw.toString('latin1', 0, space), body: raw.subarray(nul + 1) }
    } catch {
      return undefined
    }
  }

  /** Lists the pack directory again, letting go of packs that are gone (a repack removed them). */
  refresh (): void {
    this.relist()
  }

  /** Lists the pack directory again; true when it found a pack it did not have. */
  private relist (): boolean {
    const dir = join(this.gitdir, 'objects', 'pack')
    let names: string[]
    try {
      names = fs.readdirSync(dir)
    } catch {
      return false
    }
    const present = new Set(names)
    let added = false
    for (const [name, pack] of this.packs) {
      if (!present.has(name)) {
        pack.close()
        this.packs.delete(name)
      }
    }
    for (const name of names) {
      // Only git's finished packs: not one in the making (.tmp-*, tmp_*), nor its index.
      if (!PACK_INDEX.test(name) || this.packs.has(name)) continue
      const pack = loadPack(join(dir, name), join(dir, name.slice(0, -4) + '.pack'))
      if (pack === null) continue
      this.packs.set(name, pack)
      added = true
    }
    return added
  }
}

/** One set per repository in this process, shared by its readers. */
const sets = new Map<string, PackSet>()
export function packsOf (gitdir: string): PackSet {
  let set = sets.get(gitdir)
  if (set === undefined) sets.set(gitdir, set = new PackSet(gitdir))
  return set
}

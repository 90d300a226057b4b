// The one git object layer of lib/meta: reading (loose objects here, packs through isomorphic-git),
// parsing trees, writing loose objects. The index loads from it and the merge reads through it
// (object-store.ts).
//
// isomorphic-git's readBlob/readTree cost ~0.4 ms an object here (a stat of the gitdir, pako
// inflate, a SHA-1 check per call), which made a cold start of 100,000 files take 40 s; on Node 20
// its readObject inflates through DecompressionStream, measured at 2.6 ms per object against
// 0.1 ms. Packed objects (fetches, large commits, and everything once repacked: repack.ts) are
// read natively (packs.ts), loose ones (a small commit's, until the next repack) with one file
// read and zlib's native inflate, and only what neither reader takes goes through isomorphic-git.
import { createHash, randomBytes } from 'node:crypto'
import { isUtf8 } from 'node:buffer'
import fs from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import zlib from 'node:zlib'
import git from 'isomorphic-git'
import { DirSyncs, writeSynced } from '../core/durable.js'
import { isObjectId } from '../core/ids.js'
import { BadObjectError, MissingObjectError, ObjectTooLargeError } from './object-errors.js'
import { packsOf } from './packs.js'
import { deflateObject, writePack, type PackObject } from './pack-writer.js'

/** One entry of a tree object as stored, before any validation. */
export interface TreeEntry {
  /** The git name (escaped); lossily decoded when `utf8` is false. */
  name: string
  /** As written, except that git's `40000` reads as `040000`. */
  mode: string
  oid: string
  type: 'blob' | 'tree' | 'commit'
  utf8: boolean
}

/** An entry to write into a tree: its git name (escaped), mode and object. */
export interface TreeItem { name: string, mode: string, oid: string }

export interface ReadOptions {
  /** Refuse (ObjectTooLargeError) what would inflate beyond this: a peer's small object must not become gigabytes. */
  maxBytes?: number
  /** Check a loose object's content against its id (objects a peer sent). */
  verify?: boolean
}

/**
 * Reads objects, loose first, else packed. Throws MissingObjectError for an absent object and
 * BadObjectError (ObjectTooLargeError) for one of the wrong type, shape or size; system I/O
 * errors pass through unchanged.
 */
export class ObjectReader {
  private active = 0
  // A queue with a head index: shift() on a queue of 100,000 waiters is quadratic.
  private waiting: Array<() => void> = []
  private waitingHead = 0

  /**
   * `concurrency` bounds the reads in flight, so a wide tree does not open thousands of files at
   * once. `cache` is isomorphic-git's cache (pack indexes): pass one to share it.
   */
  constructor (private readonly gitdir: string, private readonly concurrency = 32, private readonly cache: object = {}) {}

  async readBlob (oid: string, opts?: ReadOptions): Promise<Buffer> {
    return await this.read(oid, 'blob', opts)
  }

  async readTree (oid: string, opts?: ReadOptions): Promise<TreeEntry[]> {
    return parseTree(await this.read(oid, 'tree', opts), oid)
  }

  /**
   * A tree's body, a loose one read and inflated in the thread pool: a million-entry directory's
   * is 36 MB, 0.7 s of inflating on the thread FUSE is served on.
   */
  async readTreeBody (oid: string): Promise<Buffer> {
    if (!isObjectId(oid)) throw new BadObjectError(oid, 'not an object id')
    let deflated: Buffer | null = null
    try {
      deflated = await fs.promises.readFile(join(this.gitdir, 'objects', oid.slice(0, 2), oid.slice(2)))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    }
    if (deflated === null) return await this.read(oid, 'tree')
    const raw = await inflateInPool(deflated)
    const nul = raw.indexOf(0)
    if (nul < 0 || raw.toString('latin1', 0, nul) !== `tree ${raw.length - nul - 1}`) throw new BadObjectError(oid, 'is not a tree')
    return raw.subarray(nul + 1)
  }

  /** Whether the repository holds `oid` whole (false for a missing or unreadable one). */
  async has (oid: string): Promise<boolean> {
    if (!isObjectId(oid)) return false
    try {
      await this.find(oid, {})
      return true
    } catch {
      return false
    }
  }

  /** An object's body, which must be of `type`. */
  async read (oid: string, type: string, opts: ReadOptions = {}): Promise<Buffer> {
    if (!isObjectId(oid)) throw new BadObjectError(oid, 'not an object id')
    const found = await this.find(oid, opts)
    if (found.type !== type) throw new BadObjectError(oid, `is a ${found.type}, not a ${type}`)
    if (opts.maxBytes !== undefined && found.body.length > opts.maxBytes) throw new ObjectTooLargeError(oid, opts.maxBytes)
    return found.body
  }

  private async find (oid: string, opts: ReadOptions): Promise<{ type: string, body: Buffer }> {
    await this.acquire()
    let found: { type: string, body: Buffer }
    try {
      // The packs already listed first: a miss there is a binary search, a missing loose file an
      // open that fails (~14 µs), and a cold load of a volume whose objects are packed asks for
      // every entry.
      found = this.readPackedNatively(oid, opts, 'listed') ?? readLooseObject(this.gitdir, oid, opts) ?? this.readPackedNatively(oid, opts, 'relisted') ?? await this.readPacked(oid)
    } finally {
      this.release()
    }
    return found
  }

  /** From a pack (packs.ts), checked against its id like a loose one; undefined if that reader does not have it. */
  private readPackedNatively (oid: string, opts: ReadOptions, packs: 'listed' | 'relisted'): { type: string, body: Buffer } | undefined {
    let found
    try {
      const set = packsOf(this.gitdir)
      found = packs === 'listed' ? set.readListed(oid, opts.maxBytes) : set.readRelisted(oid, opts.maxBytes)
    } catch (err) {
      if (err instanceof RangeError) throw new ObjectTooLargeError(oid, opts.maxBytes ?? 0)
      throw err
    }
    if (found === undefined) return undefined
    if (opts.verify === true) {
      const id = createHash('sha1').update(`${found.type} ${found.body.length}\0`).update(found.body).digest('hex')
      if (id !== oid) throw new BadObjectError(oid, 'content does not match its id')
    }
    return found
  }

  /** Maps isomorphic-git's errors onto the two readers tell apart; system I/O errors pass through. */
  private async readPacked (oid: string): Promise<{ type: string, body: Buffer }> {
    try {
      const { type, object } = await git.readObject({ fs, gitdir: this.gitdir, oid, format: 'content', cache: this.cache })
      const bytes = object as Uint8Array
      return { type, body: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength) }
    } catch (err) {
      const code = (err as { code?: unknown }).code
      if (typeof code === 'string' && /^E[A-Z0-9]+$/.test(code)) throw err
      if (code === 'NotFoundError') throw new MissingObjectError(oid)
      throw new BadObjectError(oid, err instanceof Error ? err.message : String(err))
    }
  }

  private async acquire (): Promise<void> {
    if (this.active < this.concurrency) {
      this.active++
      return
    }
    await new Promise<void>(resolve => this.waiting.push(resolve))
  }

  private release (): void {
    if (this.waitingHead < this.waiting.length) {
      const next = this.waiting[this.waitingHead++]
      if (this.waitingHead === this.waiting.length) {
        this.waiting = []
        this.waitingHead = 0
      }
      next()
    } else {
      this.active--
    }
  }
}

const inflateInPool = promisify(zlib.inflate)

/**
 * A loose object, or null when there is none (it may be packed). Synchronous: ~4x faster than the
 * promise API for many small files, and entries and commits inflate in microseconds. A malformed
 * object throws BadObjectError, one beyond `maxBytes` ObjectTooLargeError.
 */
export function readLooseObject (gitdir: string, oid: string, opts: ReadOptions = {}): { type: string, body: Buffer } | null {
  let deflated: Buffer
  try {
    deflated = fs.readFileSync(join(gitdir, 'objects', oid.slice(0, 2), oid.slice(2)))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw err
  }
  let raw: Buffer
  try {
    raw = zlib.inflateSync(deflated, opts.maxBytes !== undefined ? { maxOutputLength: opts.maxBytes + 64 } : {})
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') throw new ObjectTooLargeError(oid, opts.maxBytes ?? 0)
    throw new BadObjectError(oid, 'corrupt loose object')
  }
  if (opts.verify === true && createHash('sha1').update(raw).digest('hex') !== oid) throw new BadObjectError(oid, 'content does not match its id')
  const space = raw.indexOf(0x20)
  const nul = raw.indexOf(0, space)
  if (space < 0 || nul < 0 || Number(raw.toString('latin1', space + 1, nul)) !== raw.length - nul - 1) throw new BadObjectError(oid, 'malformed object header')
  return { type: raw.toString('latin1', 0, space), body: raw.subarray(nul + 1) }
}

/**
 * Git's tree format: entries of `<octal mode> <name>\0<20-byte oid>`. Parses leniently: names git
 * clients refuse are returned (invalid UTF-8 flagged), so a merge can refuse them one by one.
 */
export function parseTree (body: Buffer, oid = '?'): TreeEntry[] {
  const entries: TreeEntry[] = []
  let at = 0
  while (at < body.length) {
    const space = body.indexOf(0x20, at)
    const nul = space < 0 ? -1 : body.indexOf(0, space + 1)
    if (space < 0 || nul < 0 || nul + 21 > body.length) throw new BadObjectError(oid, 'malformed tree')
    const written = body.toString('latin1', at, space)
    const mode = written === '40000' ? '040000' : written
    const name = body.toString('utf8', space + 1, nul)
    // Invalid UTF-8 always decodes with U+FFFD; only then is the check worth its copy.
    const utf8 = !name.includes('\uFFFD') || isUtf8(body.subarray(space + 1, nul))
    entries.push({ name, mode, oid: body.toString('hex', nul + 1, nul + 21), type: mode === '040000' ? 'tree' : mode === '160000' ? 'commit' : 'blob', utf8 })
    at = nul + 21
  }
  return entries
}

/**
 * Writes loose objects the way git does (zlib of `<type> <size>\0<body>`, named by its SHA-1,
 * written to a temporary name and renamed). A commit of a burst of new files writes thousands of
 * entry blobs; isomorphic-git's writeBlob deflates them in JavaScript (pako) on the thread FUSE
 * shares, node:zlib natively.
 */
export class ObjectWriter {
  private active = 0
  private readonly waiting: Array<() => void> = []
  private readonly dirs: DirSyncs

  constructor (private readonly gitdir: string, private readonly concurrency = 16) {
    this.dirs = objectDirs(gitdir)
  }

  /**
   * Makes every object written so far durable: each file was synced as it was written, and this
   * syncs the directories they were named in, each once. A ref may name them only after this.
   */
  async flush (): Promise<void> {
    await this.dirs.flush()
  }

  async writeBlob (body: Buffer): Promise<string> {
    return await this.write('blob', body)
  }

  /** A tree of entries in any order (sorted here as git sorts them). */
  async writeTree (entries: TreeItem[]): Promise<string> {
    return await this.write('tree', treeBody(entries))
  }

  /** A commit as isomorphic-git and git render it (signatures in the form git writes). */
  async writeCommit (commit: CommitFields): Promise<string> {
    return await this.write('commit', commitBody(commit))
  }

  /** Objects written together, as one pack when they are many (ObjectBatch). */
  batch (): ObjectBatch {
    return new ObjectBatch(this.gitdir, this)
  }

  async write (type: string, body: Buffer, oid = objectId(type, body)): Promise<string> {
    const raw = [Buffer.from(`${type} ${body.length}\0`), body]
    const dir = join(this.gitdir, 'objects', oid.slice(0, 2))
    const path = join(dir, oid.slice(2))
    if (this.active >= this.concurrency) await new Promise<void>(resolve => this.waiting.push(resolve))
    this.active++
    try {
      // An object file left empty or cut short (a power cut before it was synced, a writer that
      // did not write atomically) is written again: one that exists is used only once it reads back.
      if (fs.statSync(path, { throwIfNoEntry: false }) !== undefined && isSound(this.gitdir, oid)) return oid
      const deflated = await deflateObject(raw)
      // A repack removes an object directory it emptied (meta/repack.ts), also between the mkdir
      // and the write: then it is made again.
      for (let attempt = 1; ; attempt++) {
        const made = await fs.promises.mkdir(dir, { recursive: true })
        if (made !== undefined) this.dirs.add(join(this.gitdir, 'objects'))
        // Not writeFileDurable: that syncs the directory per file, and a commit writes thousands
        // into a few directories; they are synced once each by `flush`, before a ref names them.
        const tmp = `${path}.${randomBytes(4).toString('hex')}.tmp`
        try {
          await writeSynced(tmp, deflated, 0o444)
          await fs.promises.rename(tmp, path)
          break
        } catch (err) {
          await fs.promises.rm(tmp, { force: true }).catch(() => {})
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || attempt >= 3) throw err
        }
      }
      this.dirs.add(dir)
      return oid
    } finally {
      this.active--
      this.waiting.shift()?.()
    }
  }
}

/** Below this many new objects a batch writes them loose, so small commits leave no pack behind. */
const PACK_MIN_OBJECTS = 64

/**
 * The objects of one commit, kept until `finish` writes them: loose when few, else as one pack
 * (pack-writer.ts says why). Ids are known at once, so a tree can name what is not written yet;
 * nothing names them before `finish` resolves.
 */
export class ObjectBatch {
  private readonly objects = new Map<string, PackObject>()

  constructor (private readonly gitdir: string, private readonly writer: ObjectWriter) {}

  async writeBlob (body: Buffer): Promise<string> {
    return this.add('blob', body)
  }

  async writeTree (entries: TreeItem[]): Promise<string> {
    return this.add('tree', treeBody(entries))
  }

  /** A tree already encoded (encodeTree, tree-cache.ts). */
  writeTreeBody (body: Buffer): string {
    return this.add('tree', body)
  }

  async writeCommit (commit: CommitFields): Promise<string> {
    return this.add('commit', commitBody(commit))
  }

  private add (type: string, body: Buffer): string {
    const oid = objectId(type, body)
    if (!this.objects.has(oid)) this.objects.set(oid, { oid, type, body })
    return oid
  }

  /** Writes what the repository does not hold loose yet, durably (objects and their names). */
  async finish (): Promise<void> {
    const fresh: PackObject[] = []
    for (const o of this.objects.values()) {
      const path = join(this.gitdir, 'objects', o.oid.slice(0, 2), o.oid.slice(2))
      if (fs.statSync(path, { throwIfNoEntry: false }) !== undefined) {
        if (isSound(this.gitdir, o.oid)) continue
        // A damaged loose copy would shadow the packed one: readers look loose first.
        fs.rmSync(path, { force: true })
      }
      fresh.push(o)
    }
    this.objects.clear()
    // Commits stay loose: a start that finds HEAD damaged falls back among the loose commits.
    const packed = fresh.filter(o => o.type !== 'commit')
    const loose = packed.length >= PACK_MIN_OBJECTS ? fresh.filter(o => o.type === 'commit') : fresh
    await Promise.all([
      packed.length >= PACK_MIN_OBJECTS ? writePack(this.gitdir, packed) : undefined,
      ...loose.map(async o => await this.writer.write(o.type, o.body, o.oid))
    ])
    await this.writer.flush()
  }
}

function objectId (type: string, body: Buffer): string {
  return createHash('sha1').update(`${type} ${body.length}\0`).update(body).digest('hex')
}

/** A commit as isomorphic-git and git render it (signatures in the form git writes). */
function commitBody (commit: CommitFields): Buffer {
  const sig = (s: Signature): string => `${s.name} <${s.email}> ${s.timestamp} ${timezone(s.timezoneOffset)}`
  const head = [`tree ${commit.tree}`, ...commit.parent.map(p => `parent ${p}`), `author ${sig(commit.author)}`, `committer ${sig(commit.committer)}`]
  const message = commit.message.endsWith('\n') ? commit.message : commit.message + '\n'
  return Buffer.from(head.join('\n') + '\n\n' + message)
}

/**
 * The object directories of a repository with names not yet synced, shared by every writer of it
 * in this process (the node's commits and a sync's merge commits): one flush covers them all.
 */
const pendingDirs = new Map<string, DirSyncs>()
function objectDirs (gitdir: string): DirSyncs {
  let dirs = pendingDirs.get(gitdir)
  if (dirs === undefined) pendingDirs.set(gitdir, dirs = new DirSyncs())
  return dirs
}

/** Whether a loose object reads back whole: it inflates and its content matches its id. */
export function isSound (gitdir: string, oid: string): boolean {
  try {
    return readLooseObject(gitdir, oid, { verify: true }) !== null
  } catch {
    return false
  }
}

export interface Signature { name: string, email: string, timestamp: number, timezoneOffset: number }
export interface CommitFields { tree: string, parent: string[], author: Signature, committer: Signature, message: string }

/** git's `+hhmm`; isomorphic-git's timezoneOffset is minutes west of UTC, as Date's is. */
function timezone (offsetMinutes: number): string {
  const east = -offsetMinutes
  const abs = Math.abs(east)
  return `${east < 0 ? '-' : '+'}${String(Math.floor(abs / 60)).padStart(2, '0')}${String(abs % 60).padStart(2, '0')}`
}

/**
 * Characters from U+D800 up: only between two names holding them may JavaScript's order (UTF-16
 * code units) and git's (UTF-8 bytes, that is code points) differ.
 */
const UTF16_ORDER_DIFFERS = /[\uD800-\uFFFF]/

/**
 * Git's tree order: by name bytes, a directory compared as if its name ended in `/`. Names
 * compare as strings, where that is byte order, and the body is written into one buffer: a
 * Buffer per name, sorted with Buffer.compare, took 3.4 s for a directory of a million entries,
 * which every commit of a change in it paid on the thread FUSE is served on. A directory read
 * from git or a snapshot lists its entries in this order already, so the sort mostly only checks it.
 */
export function treeBody (entries: TreeItem[]): Buffer {
  return encodeTree(entries).body
}

/** A tree's body and where each of its entries starts in it (one more: the body's length). */
export interface EncodedTree {
  body: Buffer
  starts: Int32Array
  /** The buffer `body` begins, with room to spare (tree-cache.ts writes a later tree into it). */
  room?: Buffer
}

/** treeBody, with where each entry starts (tree-cache.ts changes a large tree in place from them). */
export function encodeTree (entries: TreeItem[]): EncodedTree {
  const n = entries.length
  const modes = new Array<string>(n)
  const keys = new Array<string>(n)
  const order = new Array<number>(n)
  let bytes = 0
  let byteOrdered: Buffer[] | null = null
  for (let i = 0; i < n; i++) {
    const { name, mode } = entries[i]
    const written = mode.charCodeAt(0) === 0x30 ? mode.replace(/^0+/, '') : mode
    modes[i] = written
    keys[i] = written === '40000' ? name + '/' : name
    order[i] = i
    bytes += written.length + 1 + Buffer.byteLength(name, 'utf8') + 1 + 20
    if (UTF16_ORDER_DIFFERS.test(name)) (byteOrdered ??= [])[i] = Buffer.from(keys[i])
  }
  const wide = byteOrdered
  order.sort((a, b) => {
    if (wide !== null && wide[a] !== undefined && wide[b] !== undefined) return Buffer.compare(wide[a], wide[b])
    const ka = keys[a]
    const kb = keys[b]
    return ka < kb ? -1 : ka > kb ? 1 : 0
  })
  const body = Buffer.allocUnsafe(bytes)
  const starts = new Int32Array(n + 1)
  let at = 0
  for (let j = 0; j < n; j++) {
    const i = order[j]
    starts[j] = at
    at += body.write(modes[i], at, 'latin1')
    body[at++] = 0x20
    at += body.write(entries[i].name, at, 'utf8')
    body[at++] = 0
    const { oid } = entries[i]
    // A hex write stops at the first character that is not hex.
    if (oid.length !== 40 || body.write(oid, at, 'hex') !== 20) throw new BadObjectError(String(oid), `is not an object id (tree entry ${JSON.stringify(entries[i].name)})`)
    at += 20
  }
  starts[n] = at
  return { body, starts }
}

// Reads git objects in bulk, for loading the index from trees. isomorphic-git's readBlob/readTree
// cost ~0.4 ms an object here (a stat of the gitdir, pako inflate, a SHA-1 check per call), which
// made a cold start of 100,000 files take 40 s. Loose objects (all that this node writes itself) are
// read here with one file read and zlib's native inflate; anything else (packs fetched from peers)
// goes through isomorphic-git, which knows packs and deltas.
import { createHash, randomBytes } from 'node:crypto'
import fs from 'node:fs'
import { join } from 'node:path'
import zlib from 'node:zlib'
import git from 'isomorphic-git'
import { DirSyncs, writeSynced } from '../core/durable.js'

export interface TreeEntry { mode: string, path: string, oid: string, type: 'blob' | 'tree' | 'commit' }

interface RawObject { type: string, body: Buffer }

export class ObjectReader {
  private readonly cache = {}
  private active = 0
  // A queue with a head index: shift() on a queue of 100,000 waiters is quadratic.
  private waiting: Array<() => void> = []
  private waitingHead = 0

  /** `concurrency` bounds the reads in flight, so a wide tree does not open thousands of files at once. */
  constructor (private readonly gitdir: string, private readonly concurrency = 32) {}

  async readBlob (oid: string): Promise<Buffer> {
    const { type, body } = await this.read(oid)
    if (type !== 'blob') throw new Error(`object ${oid} is a ${type}, not a blob`)
    return body
  }

  async readTree (oid: string): Promise<TreeEntry[]> {
    const { type, body } = await this.read(oid)
    if (type !== 'tree') throw new Error(`object ${oid} is a ${type}, not a tree`)
    return parseTree(body, oid)
  }

  private async read (oid: string): Promise<RawObject> {
    if (!/^[0-9a-f]{40}$/.test(oid)) throw new Error(`not an object id: ${JSON.stringify(oid)}`)
    await this.acquire()
    try {
      const loose = await this.readLoose(oid)
      if (loose !== null) return loose
      const { type, object } = await git.readObject({ fs, gitdir: this.gitdir, oid, format: 'content', cache: this.cache })
      return { type, body: Buffer.from(object as Uint8Array) }
    } finally {
      this.release()
    }
  }

  private async readLoose (oid: string): Promise<RawObject | null> {
    return readLooseObject(this.gitdir, oid)
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

export interface LooseObjectOptions {
  /** Refuse (code SWARMFS_OBJECT_TOO_LARGE) what would inflate beyond this: a peer's small object must not become gigabytes. */
  maxBytes?: number
  /** Check the content against its id (objects a peer sent). */
  verify?: boolean
}

/**
 * A loose object, or null when there is none (it may be packed). Synchronous: ~4x faster than the
 * promise API for many small files, and entries and commits inflate in microseconds. A malformed
 * object throws with code SWARMFS_BAD_OBJECT.
 */
export function readLooseObject (gitdir: string, oid: string, opts: LooseObjectOptions = {}): { type: string, body: Buffer } | null {
  let deflated: Buffer
  try {
    deflated = fs.readFileSync(join(gitdir, 'objects', oid.slice(0, 2), oid.slice(2)))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw err
  }
  const bad = (why: string): Error => Object.assign(new Error(`git object ${oid}: ${why}`), { code: 'SWARMFS_BAD_OBJECT' })
  let raw: Buffer
  try {
    raw = zlib.inflateSync(deflated, opts.maxBytes !== undefined ? { maxOutputLength: opts.maxBytes + 64 } : {})
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
      throw Object.assign(new Error(`git object ${oid} is larger than ${opts.maxBytes ?? 0} bytes`), { code: 'SWARMFS_OBJECT_TOO_LARGE' })
    }
    throw bad('corrupt loose object')
  }
  if (opts.verify === true && createHash('sha1').update(raw).digest('hex') !== oid) throw bad('content does not match its id')
  const space = raw.indexOf(0x20)
  const nul = raw.indexOf(0, space)
  if (space < 0 || nul < 0 || Number(raw.toString('latin1', space + 1, nul)) !== raw.length - nul - 1) throw bad('malformed object header')
  return { type: raw.toString('latin1', 0, space), body: raw.subarray(nul + 1) }
}

/** Git's tree format: entries of `<octal mode> <name>\0<20-byte oid>`. */
export function parseTree (body: Buffer, oid = '?'): TreeEntry[] {
  const entries: TreeEntry[] = []
  let at = 0
  while (at < body.length) {
    const space = body.indexOf(0x20, at)
    const nul = body.indexOf(0, space + 1)
    if (space < 0 || nul < 0 || nul + 21 > body.length) throw new Error(`tree ${oid} is malformed`)
    const mode = body.toString('latin1', at, space).padStart(6, '0')
    const path = body.toString('utf8', space + 1, nul)
    const entryOid = body.toString('hex', nul + 1, nul + 21)
    entries.push({ mode, path, oid: entryOid, type: mode === '040000' ? 'tree' : mode === '160000' ? 'commit' : 'blob' })
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
  async writeTree (entries: Array<{ path: string, mode: string, oid: string }>): Promise<string> {
    return await this.write('tree', treeBody(entries))
  }

  /** A commit as isomorphic-git and git render it (signatures in the form git writes). */
  async writeCommit (commit: CommitFields): Promise<string> {
    const sig = (s: Signature): string => `${s.name} <${s.email}> ${s.timestamp} ${timezone(s.timezoneOffset)}`
    const head = [`tree ${commit.tree}`, ...commit.parent.map(p => `parent ${p}`), `author ${sig(commit.author)}`, `committer ${sig(commit.committer)}`]
    const message = commit.message.endsWith('\n') ? commit.message : commit.message + '\n'
    return await this.write('commit', Buffer.from(head.join('\n') + '\n\n' + message))
  }

  private async write (type: string, body: Buffer): Promise<string> {
    const raw = Buffer.concat([Buffer.from(`${type} ${body.length}\0`), body])
    const oid = createHash('sha1').update(raw).digest('hex')
    const dir = join(this.gitdir, 'objects', oid.slice(0, 2))
    const path = join(dir, oid.slice(2))
    if (this.active >= this.concurrency) await new Promise<void>(resolve => this.waiting.push(resolve))
    this.active++
    try {
      // An object file left empty or cut short (a power cut before it was synced, a writer that
      // did not write atomically) is written again: one that exists is used only once it reads back.
      if (fs.statSync(path, { throwIfNoEntry: false }) !== undefined && isSound(this.gitdir, oid)) return oid
      const deflated = zlib.deflateSync(raw)
      const made = await fs.promises.mkdir(dir, { recursive: true })
      if (made !== undefined) this.dirs.add(join(this.gitdir, 'objects'))
      const tmp = `${path}.${randomBytes(4).toString('hex')}.tmp`
      await writeSynced(tmp, deflated, 0o444)
      await fs.promises.rename(tmp, path)
      this.dirs.add(dir)
      return oid
    } finally {
      this.active--
      this.waiting.shift()?.()
    }
  }
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

/** Git's tree order: by name bytes, a directory compared as if its name ended in `/`. */
export function treeBody (entries: Array<{ path: string, mode: string, oid: string }>): Buffer {
  const keyed = entries.map(e => {
    const mode = e.mode.replace(/^0+/, '')
    return { key: Buffer.from(e.path + (mode === '40000' ? '/' : '')), head: Buffer.from(`${mode} ${e.path}\0`), oid: Buffer.from(e.oid, 'hex') }
  })
  keyed.sort((a, b) => Buffer.compare(a.key, b.key))
  return Buffer.concat(keyed.flatMap(e => [e.head, e.oid]))
}

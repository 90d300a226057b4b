// Changes FUSE has acknowledged but git does not hold yet. Each is one JSON line appended with a
// plain write(2) before the acknowledgement, so it survives the node being killed; fsync(2) of a
// file also syncs the journal, and that covers a power cut. Files rotate at each commit and go
// once a commit covers them, and only once that commit is durable (meta.ts).
import fs from 'node:fs'
import { dirname, join } from 'node:path'
import { fsyncDirSync, syncDir } from '../core/durable.js'
import { SwarmError } from '../core/errors.js'
import type { Op } from './ops.js'

export interface JournalRecord { seq: number, op: Op }

const FILE = /^journal-(\d+)\.log$/

export class Journal {
  private fd: number
  private currentFirst: number
  private written = false
  /**
   * Files rotated out but not dropped yet, still open: a sync covers them too, since a commit
   * under way (or one that failed) has not made their records durable in git.
   */
  private readonly older = new Map<number, number>()
  /** A file was created since the directory was last synced: its name is not durable yet. */
  private newName = true
  /** Records through this one are durable (a sync with nothing new since does nothing). */
  private syncedSeq = 0
  /** Syncs running in the pool, and the fds of dropped files that must stay open until they end. */
  private inflight = 0
  private toClose: number[] = []
  private dirSync: Promise<void> | null = null
  private constructor (private readonly dir: string, private nextSeq: number) {
    this.currentFirst = nextSeq
    this.fd = fs.openSync(this.fileFor(nextSeq), 'a')
  }

  /** Opens the journal directory; records already there are returned for replay. */
  static open (dir: string, committedSeq: number): { journal: Journal, records: JournalRecord[] } {
    if (fs.mkdirSync(dir, { recursive: true }) !== undefined) fsyncDirSync(dirname(dir))
    const records: JournalRecord[] = []
    for (const first of listFiles(dir)) {
      const text = fs.readFileSync(join(dir, `journal-${first}.log`), 'utf8')
      for (const line of text.split('\n')) {
        if (line.length === 0) continue
        try {
          const r = JSON.parse(line) as JournalRecord
          if (Number.isSafeInteger(r.seq) && typeof r.op === 'object') records.push(r)
        } catch {
          // A line cut short by a crash in the middle of its write: it was never acknowledged.
        }
      }
    }
    const last = records.length > 0 ? records[records.length - 1].seq : 0
    // Above every file's first number too: a power cut can keep a file's name (any fsync commits
    // the disk's journal) and lose the unsynced records before it. A new file numbered below it
    // would sort before it, and dropThrough, which takes the next file's first number as the end
    // of a file's records, would delete the new file's records with it.
    const files = listFiles(dir)
    const highestFirst = files.length > 0 ? files[files.length - 1] : 0
    return { journal: new Journal(dir, Math.max(last, committedSeq, highestFirst) + 1), records: records.filter(r => r.seq > committedSeq) }
  }

  private fileFor (first: number): string {
    return join(this.dir, `journal-${first}.log`)
  }

  get lastSeq (): number {
    return this.nextSeq - 1
  }

  /** Records through this one are known durable. */
  get syncedThrough (): number {
    return this.syncedSeq
  }

  append (op: Op): number {
    if (this.closed) throw new SwarmError('SWARMFS_STOPPING', 'the journal is closed')
    const seq = this.nextSeq++
    fs.writeSync(this.fd, JSON.stringify({ seq, op }) + '\n')
    this.written = true
    return seq
  }

  /** Makes every record so far durable: the files' bytes, and the names of new files. */
  sync (): void {
    if (this.closed || (this.syncedSeq >= this.lastSeq && !this.newName)) return
    const through = this.lastSeq
    for (const fd of this.older.values()) fs.fsyncSync(fd)
    fs.fsyncSync(this.fd)
    // A sync in the pool may still be syncing the directory for a new file's name.
    if (this.newName || this.inflight > 0) {
      fsyncDirSync(this.dir)
      this.newName = false
    }
    this.syncedSeq = through
  }

  /** The same, in the thread pool: the thread FUSE shares goes on meanwhile. */
  async syncAsync (): Promise<void> {
    if (this.closed || (this.syncedSeq >= this.lastSeq && !this.newName)) return
    const through = this.lastSeq
    const fds = [...this.older.values(), this.fd]
    const dirToo = this.newName
    this.newName = false
    // A sync started earlier may still be syncing the directory for a new file's name: this one
    // counts only once that is done too.
    const dir = dirToo ? (this.dirSync = syncDir(this.dir)) : this.dirSync
    this.inflight++
    try {
      await Promise.all([...fds.map(fsyncFd), dir])
    } catch (err) {
      if (dirToo) this.newName = true
      throw err
    } finally {
      if (--this.inflight === 0) {
        this.closeDropped()
        this.dirSync = null
      }
    }
    this.syncedSeq = Math.max(this.syncedSeq, through)
  }

  /** Closes now, or once no sync in the pool may still use the fd (a reused number names another file). */
  private closeLater (fd: number): void {
    this.toClose.push(fd)
    if (this.inflight === 0) this.closeDropped()
  }

  private closeDropped (): void {
    for (const fd of this.toClose.splice(0)) fs.closeSync(fd)
  }

  /** Starts a new file, so that the records so far can be dropped as a unit once committed. */
  rotate (): void {
    if (this.closed || !this.written) return
    this.older.set(this.currentFirst, this.fd)
    this.currentFirst = this.nextSeq
    this.fd = fs.openSync(this.fileFor(this.currentFirst), 'a')
    this.newName = true
    this.written = false
  }

  /** Deletes the files whose every record has seq <= `seq`. */
  dropThrough (seq: number): void {
    const firsts = listFiles(this.dir)
    for (let i = 0; i < firsts.length; i++) {
      const next = i + 1 < firsts.length ? firsts[i + 1] : this.nextSeq
      if (firsts[i] !== this.currentFirst && next - 1 <= seq) {
        fs.rmSync(this.fileFor(firsts[i]), { force: true })
        const fd = this.older.get(firsts[i])
        if (fd !== undefined) this.closeLater(fd)
        this.older.delete(firsts[i])
      }
    }
  }

  /** Once: later calls do nothing, and an append after it throws rather than write to a reused fd. */
  close (): void {
    if (this.closed) return
    this.closed = true
    for (const fd of this.older.values()) this.closeLater(fd)
    this.older.clear()
    this.closeLater(this.fd)
  }

  private closed = false
}

function fsyncFd (fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.fsync(fd, err => err !== null ? reject(err) : resolve()))
}

function listFiles (dir: string): number[] {
  return fs.readdirSync(dir)
    .map(name => FILE.exec(name))
    .filter((m): m is RegExpExecArray => m !== null)
    .map(m => Number(m[1]))
    .sort((a, b) => a - b)
}

// Changes FUSE has acknowledged but git does not hold yet. Each is one JSON line appended with a
// plain write(2) before the acknowledgement, so it survives the node being killed; fsync(2) of a
// file also syncs the journal. Files rotate at each commit and go once a commit covers them.
import fs from 'node:fs'
import { join } from 'node:path'
import type { Op } from './ops.js'

export interface JournalRecord { seq: number, op: Op }

const FILE = /^journal-(\d+)\.log$/

export class Journal {
  private fd: number
  private currentFirst: number
  private written = false
  private constructor (private readonly dir: string, private nextSeq: number) {
    this.currentFirst = nextSeq
    this.fd = fs.openSync(this.fileFor(nextSeq), 'a')
  }

  /** Opens the journal directory; records already there are returned for replay. */
  static open (dir: string, committedSeq: number): { journal: Journal, records: JournalRecord[] } {
    fs.mkdirSync(dir, { recursive: true })
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
    return { journal: new Journal(dir, Math.max(last, committedSeq) + 1), records: records.filter(r => r.seq > committedSeq) }
  }

  private fileFor (first: number): string {
    return join(this.dir, `journal-${first}.log`)
  }

  get lastSeq (): number {
    return this.nextSeq - 1
  }

  append (op: Op): number {
    const seq = this.nextSeq++
    fs.writeSync(this.fd, JSON.stringify({ seq, op }) + '\n')
    this.written = true
    return seq
  }

  sync (): void {
    fs.fsyncSync(this.fd)
  }

  /** Starts a new file, so that the records so far can be dropped as a unit once committed. */
  rotate (): void {
    if (!this.written) return
    fs.closeSync(this.fd)
    this.currentFirst = this.nextSeq
    this.fd = fs.openSync(this.fileFor(this.currentFirst), 'a')
    this.written = false
  }

  /** Deletes the files whose every record has seq <= `seq`. */
  dropThrough (seq: number): void {
    const firsts = listFiles(this.dir)
    for (let i = 0; i < firsts.length; i++) {
      const next = i + 1 < firsts.length ? firsts[i + 1] : this.nextSeq
      if (firsts[i] !== this.currentFirst && next - 1 <= seq) fs.rmSync(this.fileFor(firsts[i]), { force: true })
    }
  }

  close (): void {
    fs.closeSync(this.fd)
  }
}

function listFiles (dir: string): number[] {
  return fs.readdirSync(dir)
    .map(name => FILE.exec(name))
    .filter((m): m is RegExpExecArray => m !== null)
    .map(m => Number(m[1]))
    .sort((a, b) => a - b)
}

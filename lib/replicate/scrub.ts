// `swarmfs scrub`: every content this disk holds complete is checked against its piece hashes, one
// after the other, and so are the pieces of the partial ones (kept from reads). A bad piece is
// otherwise found only when a peer reads it (lib/replicate/bad-pieces.ts); a file nobody reads
// could rot on one disk while the volume counts that disk's copy, until the last good copy is
// gone, and a rotten piece kept from a read would be served to the next read as it is. A damaged
// copy is set aside and fetched again, a bad kept piece dropped, by the check itself
// (TorrentService.checkCopy and checkPartial, and lib/node); this keeps the progress and the
// findings.
import { SwarmError } from '../core/errors.js'
import type { CopyCheck } from '../content/torrents.js'
import type { Logger } from '../core/log.js'

export interface ScrubStatus {
  running: boolean
  /** Contents to check in this run, and their bytes. */
  contents: number
  bytes: number
  checked: number
  bytesChecked: number
  /** Of `contents`, those partly held (pieces kept from reads, copies under way). */
  partial: number
  /** Infohashes of the copies found damaged. */
  damaged: string[]
  /** Infohashes of the partial contents a read or a copy was using, left unchecked. */
  skipped: string[]
  /** Why the run stopped before its end (the node stopping, a read error); null otherwise. */
  error: string | null
  startedAt: number | null
  finishedAt: number | null
}

/** A content to check: held complete, or partly (`length` is then the bytes of the pieces held). */
export interface ScrubContent {
  infohash: string
  length: number
  partial: boolean
}

export class Scrub {
  private state: ScrubStatus = { running: false, contents: 0, bytes: 0, checked: 0, bytesChecked: 0, partial: 0, damaged: [], skipped: [], error: null, startedAt: null, finishedAt: null }
  private stopped = false

  constructor (
    private readonly check: (content: ScrubContent, onBytes: (n: number) => void) => Promise<CopyCheck | 'in use'>,
    private readonly log: Logger
  ) {}

  /** Starts a run over `contents` unless one is under way; the status either way. */
  start (contents: ScrubContent[]): ScrubStatus {
    if (this.state.running || this.stopped) return this.status()
    const bytes = contents.reduce((n, c) => n + c.length, 0)
    const partial = contents.filter(c => c.partial).length
    this.state = { running: true, contents: contents.length, bytes, checked: 0, bytesChecked: 0, partial, damaged: [], skipped: [], error: null, startedAt: Date.now(), finishedAt: null }
    this.log.info('scrub started', { contents: contents.length, bytes })
    void this.run(contents, this.state)
    return this.status()
  }

  status (): ScrubStatus {
    return { ...this.state, damaged: [...this.state.damaged], skipped: [...this.state.skipped] }
  }

  /** Ends a run under way after the content it is checking (the node is stopping). */
  stop (): void {
    this.stopped = true
  }

  private async run (contents: ScrubContent[], state: ScrubStatus): Promise<void> {
    try {
      for (const c of contents) {
        if (this.stopped) throw new SwarmError('SWARMFS_STOPPING', 'the node stopped')
        const before = state.bytesChecked
        const found = await this.check(c, n => { state.bytesChecked += n })
        // A content gone or moved meanwhile counts whole, so the progress still ends at 100 %.
        state.bytesChecked = before + c.length
        state.checked++
        if (found === 'damaged') state.damaged.push(c.infohash)
        if (found === 'in use') state.skipped.push(c.infohash)
      }
    } catch (err) {
      state.error = (err as Error).message
      this.log.warn('scrub ended early', { err: state.error, checked: state.checked, contents: state.contents })
    } finally {
      state.running = false
      state.finishedAt = Date.now()
      if (state.error === null) this.log.info('scrub done', { contents: state.contents, bytes: state.bytes, damaged: state.damaged.length, skipped: state.skipped.length })
    }
  }
}

/** What a scrub checks: the contents of the tree this disk holds complete, then the partial ones it holds pieces of. */
export function contentsToScrub (inTree: Iterable<[string, { length: number }]>, held: (infohash: string) => boolean, partial: Array<{ infohash: string, bytes: number }>): ScrubContent[] {
  const complete = [...inTree].filter(([ih]) => held(ih)).map(([infohash, info]) => ({ infohash, length: info.length, partial: false }))
  return [...complete, ...partial.filter(p => !held(p.infohash)).map(p => ({ infohash: p.infohash, length: p.bytes, partial: true }))]
}

/** A scrub's status with the paths of the files whose copies it found damaged, or left unchecked. */
export function scrubReport (status: ScrubStatus, pathsOf: (infohashes: Set<string>) => Map<string, string[]>): ScrubStatus & { damagedPaths: string[], skippedPaths: string[] } {
  const named = [...status.damaged, ...status.skipped]
  const paths = named.length === 0 ? new Map<string, string[]>() : pathsOf(new Set(named))
  const filesOf = (ihs: string[]): string[] => ihs.flatMap(ih => paths.get(ih) ?? [`(no file now: content ${ih})`])
  return { ...status, damagedPaths: filesOf(status.damaged), skippedPaths: filesOf(status.skipped) }
}

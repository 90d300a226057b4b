// `swarmfs scrub`: every content this disk holds complete is checked against its piece hashes, one
// after the other. A bad piece is otherwise found only when a peer reads it (lib/replicate/
// bad-pieces.ts); a file nobody reads could rot on one disk while the volume counts that disk's
// copy, until the last good copy is gone. A damaged copy is set aside and fetched again by the
// check itself (TorrentService.checkCopy and lib/node); this keeps the progress and the findings.
import type { CopyCheck } from '../content/torrents.js'
import type { Logger } from '../log/index.js'

export interface ScrubStatus {
  running: boolean
  /** Contents to check in this run, and their bytes. */
  contents: number
  bytes: number
  checked: number
  bytesChecked: number
  /** Infohashes of the copies found damaged. */
  damaged: string[]
  /** Why the run stopped before its end (the node stopping, a read error); null otherwise. */
  error: string | null
  startedAt: number | null
  finishedAt: number | null
}

export class Scrub {
  private state: ScrubStatus = { running: false, contents: 0, bytes: 0, checked: 0, bytesChecked: 0, damaged: [], error: null, startedAt: null, finishedAt: null }
  private stopped = false

  constructor (
    private readonly check: (infohash: string, onBytes: (n: number) => void) => Promise<CopyCheck>,
    private readonly log: Logger
  ) {}

  /** Starts a run over `contents` unless one is under way; the status either way. */
  start (contents: Array<{ infohash: string, length: number }>): ScrubStatus {
    if (this.state.running || this.stopped) return this.status()
    const bytes = contents.reduce((n, c) => n + c.length, 0)
    this.state = { running: true, contents: contents.length, bytes, checked: 0, bytesChecked: 0, damaged: [], error: null, startedAt: Date.now(), finishedAt: null }
    this.log.info('scrub started', { contents: contents.length, bytes })
    void this.run(contents, this.state)
    return this.status()
  }

  status (): ScrubStatus {
    return { ...this.state, damaged: [...this.state.damaged] }
  }

  /** Ends a run under way after the content it is checking (the node is stopping). */
  stop (): void {
    this.stopped = true
  }

  private async run (contents: Array<{ infohash: string, length: number }>, state: ScrubStatus): Promise<void> {
    try {
      for (const c of contents) {
        if (this.stopped) throw new Error('the node stopped')
        const before = state.bytesChecked
        const found = await this.check(c.infohash, n => { state.bytesChecked += n })
        // A content gone or moved meanwhile counts whole, so the progress still ends at 100 %.
        state.bytesChecked = before + c.length
        state.checked++
        if (found === 'damaged') state.damaged.push(c.infohash)
      }
    } catch (err) {
      state.error = (err as Error).message
      this.log.warn('scrub ended early', { err: state.error, checked: state.checked, contents: state.contents })
    } finally {
      state.running = false
      state.finishedAt = Date.now()
      if (state.error === null) this.log.info('scrub done', { contents: state.contents, bytes: state.bytes, damaged: state.damaged.length })
    }
  }
}

// The contents on this disk that reads completed (a cache), as opposed to copies made for the
// target or files written here. Peers learn it from the holdings (plan.ts never trims a copy made
// for the target in favour of a cache). Kept in a file so a restart does not turn the cache into
// copies the reader can no longer drop: written at most once a second (a `cat` of 10,000 remote
// files completes 10,000 contents), atomically, and at stop. It is a hint: a crash loses at most
// the last second of it, and a lost entry only makes a cached copy count as an ordinary one.
import fs from 'node:fs'
import { replaceFileSync } from '../core/durable.js'
import type { Logger } from '../core/log.js'
import { isInfoHash } from '../core/torrent-info.js'

const WRITE_DELAY_MS = 1000

export class CachedByReads {
  private readonly set: Set<string>
  private timer: NodeJS.Timeout | null = null
  private readonly watchers: Array<(infohash: string) => void> = []

  /** `held`: the contents this disk holds completely (ContentStore); entries whose content is gone are forgotten. */
  constructor (private readonly path: string, held: { has: (infohash: string) => boolean }, private readonly log: Logger) {
    this.set = new Set(read(path, log).filter(ih => held.has(ih)))
  }

  has (infohash: string): boolean {
    return this.set.has(infohash)
  }

  /** `listener` is told of every content added to or removed from the set. */
  watch (listener: (infohash: string) => void): void {
    this.watchers.push(listener)
  }

  add (infohash: string): void {
    if (this.set.has(infohash)) return
    this.set.add(infohash)
    this.changed(infohash)
  }

  delete (infohash: string): void {
    if (this.set.delete(infohash)) this.changed(infohash)
  }

  /** Writes what is pending now (at stop). */
  flush (): void {
    if (this.timer === null) return
    clearTimeout(this.timer)
    this.timer = null
    this.write()
  }

  private changed (infohash: string): void {
    for (const w of this.watchers) w(infohash)
    if (this.timer !== null) return
    this.timer = setTimeout(() => {
      this.timer = null
      this.write()
    }, WRITE_DELAY_MS)
    this.timer.unref()
  }

  private write (): void {
    try {
      replaceFileSync(this.path, JSON.stringify([...this.set]) + '\n')
    } catch (err) {
      this.log.warn('cannot save the list of contents cached by reads', { path: this.path, err: (err as Error).message })
    }
  }
}

function read (path: string, log: Logger): string[] {
  let text: string
  try {
    text = fs.readFileSync(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') log.warn('cannot read the list of contents cached by reads', { path, err: (err as Error).message })
    return []
  }
  try {
    const list: unknown = JSON.parse(text)
    if (Array.isArray(list)) return list.filter((ih): ih is string => isInfoHash(ih))
  } catch {}
  log.warn('the list of contents cached by reads is damaged; every copy here counts as an ordinary one', { path })
  return []
}

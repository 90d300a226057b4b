// The contents a tree refers to, each with its torrent info and how many files refer to it.
import type { ContentRef, TorrentInfo } from './torrent-info.js'

/**
 * Nearly every content has one file, so only counts above one are kept apart: a count per content
 * of its own would cost another map entry (~40 bytes) for each of a million files.
 */
export class ContentRefs {
  private readonly infos = new Map<string, TorrentInfo>()
  /** Files beyond the first, of the contents more than one file refers to. */
  private readonly more = new Map<string, number>()

  add (ref: ContentRef): void {
    if (this.infos.has(ref.infohash)) this.more.set(ref.infohash, (this.more.get(ref.infohash) ?? 0) + 1)
    else this.infos.set(ref.infohash, ref.info)
  }

  /** One file fewer; true when none refers to it any more. A content never added stays absent. */
  remove (infohash: string): boolean {
    const more = this.more.get(infohash)
    if (more === undefined) {
      this.infos.delete(infohash)
      return true
    }
    if (more > 1) this.more.set(infohash, more - 1)
    else this.more.delete(infohash)
    return false
  }

  has (infohash: string): boolean {
    return this.infos.has(infohash)
  }

  /** Every content referred to, with its torrent info (a view, not a copy). */
  get contents (): ReadonlyMap<string, TorrentInfo> {
    return this.infos
  }
}

// One copy of a string that many index entries repeat (the node id of who wrote a file, the volume
// id in its torrent info): every entry read from git or a snapshot parses a fresh copy, 50-60
// bytes each, so at a million files each repeated field would cost ~55 MB.

/** Few distinct values are expected; a source that sends more (a hostile peer) only stops being shared. */
const MAX_KEPT = 4096

export class Interner {
  private readonly kept = new Map<string, string>()

  of (value: string): string {
    const known = this.kept.get(value)
    if (known !== undefined) return known
    if (this.kept.size < MAX_KEPT) this.kept.set(value, value)
    return value
  }
}

/** The node ids of writers and volume ids, shared by every part of the index that reads entries. */
export const sharedIds = new Interner()

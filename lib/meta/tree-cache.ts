// The last tree written for each large directory, so the next commit of a change in it writes the
// new tree from the old one and the names that changed, not from every entry. In a directory of a
// million entries a commit read every node (1.6 s on the thread FUSE is served on) and encoded a
// 36 MB tree (0.8 s); creates there ran at 0.3x those in a small volume.
//
// Which names changed is told by the directory itself (Children.changes in nodes.ts): every entry
// set or deleted, and every node touched or given an oid while placed, notes its name. The last
// tree is valid for the changes noted since the commit that wrote it; a commit that fails puts back
// what it took (`restore`), and a directory whose notes were lost (cleared) is written whole again.
import { BadObjectError } from './object-errors.js'
import { encodeTree, type EncodedTree, type TreeItem } from './objects.js'

/**
 * Directories of at least this many entries keep their last tree: 40 bytes an entry (the tree and
 * where each entry starts). SWARMFS_LARGE_TREE_ENTRIES sets another bound (the test suite sets 1,
 * so that every commit of every test takes this path).
 */
export const LARGE_TREE_ENTRIES = boundFromEnv(process.env.SWARMFS_LARGE_TREE_ENTRIES) ?? 10_000

/**
 * SWARMFS_CHECK_TREES=1: every tree written from the last one is also encoded whole, and a
 * difference fails the commit (the test suite sets it). Off in use: it is the whole cost again.
 */
export const CHECK_TREES = process.env.SWARMFS_CHECK_TREES === '1'

function boundFromEnv (v: string | undefined): number | undefined {
  const n = Number(v)
  return v !== undefined && v !== '' && Number.isSafeInteger(n) && n >= 1 ? n : undefined
}

const SLASH = Buffer.from('/')

/** The sort key of entry `i` (its name, and `/` after a directory's) as bytes. */
function keyAt (tree: EncodedTree, i: number): Buffer {
  const { body, starts } = tree
  const space = body.indexOf(0x20, starts[i])
  const nul = body.indexOf(0, space + 1)
  if (space < 0 || nul < 0 || nul >= starts[i + 1]) throw new BadObjectError('?', 'a kept tree is malformed')
  const name = body.subarray(space + 1, nul)
  const dir = space - starts[i] === 5 && body[starts[i]] === 0x34
  return dir ? Buffer.concat([name, SLASH]) : name
}

/** The first entry whose key is not below `key`. */
function lowerBound (tree: EncodedTree, key: Buffer): number {
  let lo = 0
  let hi = tree.starts.length - 1
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (Buffer.compare(keyAt(tree, mid), key) < 0) lo = mid + 1
    else hi = mid
  }
  return lo
}

/**
 * The tree `base` with the entries named in `gone` (git names) taken out and `added` put in.
 * Every name of `added` must be in `gone`, so a name is never in the tree twice.
 */
export function changeTree (base: EncodedTree, gone: Iterable<string>, added: TreeItem[], room?: Buffer): EncodedTree {
  const n = base.starts.length - 1
  const removed = new Set<number>()
  for (const name of gone) {
    const bytes = Buffer.from(name)
    // Whichever it was: a directory sorts as its name and `/`.
    for (const key of [bytes, Buffer.concat([bytes, SLASH])]) {
      const i = lowerBound(base, key)
      if (i < n && keyAt(base, i).equals(key)) removed.add(i)
    }
  }
  const news = added.map(item => {
    const { body } = encodeTree([item])
    const key = item.mode.replace(/^0+/, '') === '40000' ? Buffer.from(item.name + '/') : Buffer.from(item.name)
    return { key, body, at: lowerBound(base, key) }
  }).sort((a, b) => Buffer.compare(a.key, b.key))
  const skip = [...removed].sort((a, b) => a - b)

  const count = n - skip.length + news.length
  const starts = new Int32Array(count + 1)
  const parts: Buffer[] = []
  let out = 0
  let at = 0
  let from = 0
  let s = 0
  /** The old entries from `from` up to `to`, but those removed, in runs. */
  const copyTo = (to: number): void => {
    while (from < to) {
      while (s < skip.length && skip[s] < from) s++
      if (s < skip.length && skip[s] === from) {
        from++
        continue
      }
      const end = s < skip.length && skip[s] < to ? skip[s] : to
      const shift = at - base.starts[from]
      for (let k = from; k < end; k++) starts[out++] = base.starts[k] + shift
      parts.push(base.body.subarray(base.starts[from], base.starts[end]))
      at += base.starts[end] - base.starts[from]
      from = end
    }
  }
  for (const e of news) {
    copyTo(e.at)
    starts[out++] = at
    parts.push(e.body)
    at += e.body.length
  }
  copyTo(n)
  starts[out] = at
  // Into the buffer of the tree before the last when it has room: memory the process has used
  // already. A fresh one of 36 MB cost ~130 ms here, most of it the kernel handing out its pages.
  const whole = room !== undefined && room.length >= at ? room : Buffer.allocUnsafeSlow(at + (at >> 3))
  let to = 0
  for (const part of parts) to += part.copy(whole, to)
  return { body: whole.subarray(0, at), starts, room: whole }
}

/**
 * A tree as git holds it, taken as a directory's last tree: where its entries start, or null when
 * it is not a well-formed tree in git's order without a name twice (a tree may be a peer's, and
 * changeTree's searches rely on the order).
 */
export function keptTreeOf (body: Buffer): EncodedTree | null {
  const starts: number[] = []
  let at = 0
  let prev: { start: number, end: number, dir: boolean } | null = null
  while (at < body.length) {
    const space = body.indexOf(0x20, at)
    const nul = space < 0 ? -1 : body.indexOf(0, space + 1)
    if (space < 0 || nul < 0 || nul + 21 > body.length) return null
    const entry = { start: space + 1, end: nul, dir: space - at === 5 && body[at] === 0x34 }
    if (prev !== null) {
      const order = prev.dir || entry.dir
        ? Buffer.compare(prev.dir ? Buffer.concat([body.subarray(prev.start, prev.end), SLASH]) : body.subarray(prev.start, prev.end), entry.dir ? Buffer.concat([body.subarray(entry.start, entry.end), SLASH]) : body.subarray(entry.start, entry.end))
        : body.compare(body, entry.start, entry.end, prev.start, prev.end)
      if (order >= 0) return null
    }
    starts.push(at)
    prev = entry
    at = nul + 21
  }
  starts.push(at)
  return { body, starts: Int32Array.from(starts) }
}

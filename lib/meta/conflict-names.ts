// The names a merge gives the versions it moves aside, and the rule that keeps one copy of a
// version. Pure functions of names, modes and objects, so every node names and drops alike.
import { CONFLICT_INFIX, fromGitName } from './names.js'

const MODE_DIR = '040000'
/** The last instant whose year has four digits, so conflict names keep one shape. */
const MAX_STAMP_MS = Date.UTC(10000, 0, 1) - 1
const MAX_NAME_BYTES = 255

/** What names the copies of one version of one name share: the name's stem, mode and object. */
export function copyKeyOf (name: string, entry: { mode: string, oid: string }): string {
  const sample = conflictName(name, 0, 'x')
  return `${sample.slice(0, sample.indexOf(CONFLICT_INFIX))}\0${entry.mode}\0${entry.oid}`
}

/** The key of an entry that is a conflict copy, null for any other entry. */
export function copyKey (entry: { name: string, mode: string, oid: string }): string | null {
  const name = fromGitName(entry.name)
  const at = name.indexOf(CONFLICT_INFIX)
  if (at <= 0 || entry.mode === MODE_DIR) return null
  return `${name.slice(0, at)}\0${entry.mode}\0${entry.oid}`
}

/**
 * One version kept as a conflict copy under two names (two merges numbered it differently) keeps
 * the first name only. A pure function of the merged entries, so every node drops the same one.
 */
export function dedupeCopies<E extends { name: string, mode: string, oid: string }> (entries: E[]): E[] {
  const seen = new Set<string>()
  const drop = new Set<E>()
  for (const e of [...entries].sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0)) {
    const key = copyKey(e)
    if (key === null) continue
    if (seen.has(key)) drop.add(e)
    else seen.add(key)
  }
  return drop.size === 0 ? entries : entries.filter(e => !drop.has(e))
}

/**
 * Where the losing version of `name` goes: `stem.sync-conflict-YYYYMMDD-HHMMSS-writer.ext`, the time
 * being the loser's mtime in UTC. `attempt` > 1 appends `-<attempt>` before the extension, for
 * when that name is taken. Works on unescaped names; the result is always a safe name (the stem is
 * shortened to keep it within 255 bytes).
 */
export function conflictName (name: string, mtimeMs: number, writer: string, attempt = 1): string {
  const dot = name.lastIndexOf('.')
  const ext = dot > 0 && dot < name.length - 1 ? name.slice(dot) : ''
  const tail = `.sync-conflict-${stamp(mtimeMs)}-${writer}${attempt > 1 ? `-${attempt}` : ''}`
  // An extension too long to keep whole is kept as part of the stem instead.
  const [stem, suffix] = Buffer.byteLength(tail + ext) < MAX_NAME_BYTES
    ? [ext === '' ? name : name.slice(0, dot), tail + ext]
    : [name, tail]
  return truncateBytes(stem, MAX_NAME_BYTES - Buffer.byteLength(suffix)) + suffix
}

function stamp (ms: number): string {
  // A hostile or absurd mtime must still give a name, and the same one everywhere.
  const d = new Date(Number.isFinite(ms) && ms >= 0 && ms <= MAX_STAMP_MS ? ms : 0)
  const p = (n: number, w = 2): string => String(n).padStart(w, '0')
  return `${p(d.getUTCFullYear(), 4)}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}-` +
    `${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}`
}

/** Cuts whole code points off the end until the UTF-8 form fits. */
function truncateBytes (s: string, maxBytes: number): string {
  if (Buffer.byteLength(s) <= maxBytes) return s
  const points = Array.from(s)
  while (points.length > 0 && Buffer.byteLength(points.join('')) > maxBytes) points.pop()
  return points.join('')
}

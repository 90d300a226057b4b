// Names in the filesystem map to names in git trees. Git (and every stock git client) refuses some
// names, and one name is our directory marker, so those are escaped reversibly: `git init` inside
// the mount must work, which needs `.git` to be storable.

/** The entry in every git tree that holds the directory's own mode and mtime. */
export const DIR_MARKER = '.swarmfs-dir'
const ESCAPE_PREFIX = '.swarmfs~'
/** What a merge puts between a name's stem and the rest of a conflict copy's name. */
export const CONFLICT_INFIX = '.sync-conflict-'

export function isConflictCopyName (name: string): boolean {
  return name.indexOf(CONFLICT_INFIX) > 0
}

function needsEscape (name: string): boolean {
  // Every name escaped starts with `.` or `g`: the rest are answered without a lowercase copy
  // (a commit asks for each entry of a changed directory, a million in the largest).
  const first = name.charCodeAt(0)
  if (first !== 0x2e && first !== 0x67 && first !== 0x47) return false
  const lower = name.toLowerCase()
  // git's fsck also refuses the names Windows and macOS would read as `.git` (`.git.`, `git~1`).
  return /^\.git[. ]*$/.test(lower) || lower.startsWith('.git ') || lower === 'git~1' || lower === DIR_MARKER || name.startsWith(ESCAPE_PREFIX)
}

export function toGitName (name: string): string {
  return needsEscape(name) ? ESCAPE_PREFIX + name : name
}

export function fromGitName (gitName: string): string {
  return gitName.startsWith(ESCAPE_PREFIX) ? gitName.slice(ESCAPE_PREFIX.length) : gitName
}

/**
 * A name that may appear in the filesystem: no `.`/`..`, no `/` or NUL, at most 255 bytes.
 * Everything read from git (ours or a peer's) passes through this before it becomes a path.
 */
export function isSafeName (name: string): boolean {
  return name.length > 0 && name !== '.' && name !== '..' && !name.includes('/') && !name.includes('\0') &&
    Buffer.byteLength(name) <= 255
}

export function splitPath (path: string): string[] {
  return path.split('/').filter(p => p.length > 0)
}

// Errors carry a stable `code` (an errno name for filesystem errors, a SWARMFS_* name otherwise),
// so callers test `instanceof` and `code`, never message text, and the mount boundary maps them once.

export type Errno =
  | 'ENOENT' | 'EEXIST' | 'ENOTDIR' | 'EISDIR' | 'ENOTEMPTY' | 'EINVAL' | 'EBADF' | 'EACCES' | 'EPERM'
  | 'EIO' | 'ENOSPC' | 'ENAMETOOLONG' | 'EXDEV' | 'EBUSY' | 'EFBIG' | 'ENOTSUP' | 'EROFS' | 'ELOOP'

export class SwarmError extends Error {
  readonly code: string
  readonly data: Record<string, unknown>
  constructor (code: string, message: string, data: Record<string, unknown> = {}) {
    super(message)
    this.name = new.target.name
    this.code = code
    this.data = data
  }

  toJSON (): { code: string, message: string, data: Record<string, unknown> } {
    return { code: this.code, message: this.message, data: this.data }
  }
}

/** A filesystem failure with the errno a POSIX caller expects. */
export class FsError extends SwarmError {
  constructor (code: Errno, message: string, data: Record<string, unknown> = {}) {
    super(code, message, data)
  }
}

/** A failure a user can fix: the CLI prints the message (one line) and exits non-zero. */
export class UserError extends SwarmError {
  constructor (message: string, data: Record<string, unknown> = {}) {
    super('SWARMFS_USER', message, data)
  }
}

/**
 * The answer a POSIX caller gets for a path (a missing name, an existing one, a non-empty
 * directory...): not a fault, so no stack is captured. Shells and git meet these by the thousand,
 * and capturing one took longer than the rest of the answer in this process (a stat of a missing
 * name: 217 -> 185 us through the mount).
 */
export function fsError (code: Errno, path: string, what = ''): FsError {
  const limit = Error.stackTraceLimit
  Error.stackTraceLimit = 0
  try {
    return new FsError(code, `${code}: ${what ? what + ' ' : ''}${path}`, { path })
  } finally {
    Error.stackTraceLimit = limit
  }
}

export function isErrno (err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code
}

// Errors carry a stable `code` from the one table below (an errno name for filesystem errors, a
// SWARMFS_* name otherwise), so callers test `instanceof` and `code`, never message text. Each
// boundary maps them once: errnoOf for the kernel (lib/fuse/errno.ts), httpStatusOf for HTTP.

export type Errno =
  | 'ENOENT' | 'EEXIST' | 'ENOTDIR' | 'EISDIR' | 'ENOTEMPTY' | 'EINVAL' | 'EBADF' | 'EACCES' | 'EPERM'
  | 'EIO' | 'ENOSPC' | 'ENAMETOOLONG' | 'EXDEV' | 'EBUSY' | 'EFBIG' | 'ENOTSUP' | 'EROFS' | 'ELOOP'

interface CodeMeaning {
  /** What a FUSE caller gets when this failure reaches the mount. */
  errno: Errno
  /** What an HTTP client gets when it reaches an HTTP handler. */
  http: number
  what: string
}

/** Every code a swarmfs error may carry, with its errno and HTTP status. */
export const ERROR_CODES = {
  ENOENT: { errno: 'ENOENT', http: 404, what: 'no such file or directory' },
  EEXIST: { errno: 'EEXIST', http: 409, what: 'the name exists' },
  ENOTDIR: { errno: 'ENOTDIR', http: 409, what: 'a path component is not a directory' },
  EISDIR: { errno: 'EISDIR', http: 409, what: 'a directory where a file is needed' },
  ENOTEMPTY: { errno: 'ENOTEMPTY', http: 409, what: 'the directory is not empty' },
  EINVAL: { errno: 'EINVAL', http: 400, what: 'an argument is not valid' },
  EBADF: { errno: 'EBADF', http: 400, what: 'no such open file' },
  EACCES: { errno: 'EACCES', http: 403, what: 'permission denied' },
  EPERM: { errno: 'EPERM', http: 403, what: 'operation not permitted' },
  EIO: { errno: 'EIO', http: 502, what: 'the bytes could not be read or written' },
  ENOSPC: { errno: 'ENOSPC', http: 507, what: 'no space left on the disk' },
  ENAMETOOLONG: { errno: 'ENAMETOOLONG', http: 414, what: 'a name is too long' },
  EXDEV: { errno: 'EXDEV', http: 502, what: 'across devices' },
  EBUSY: { errno: 'EBUSY', http: 423, what: 'in use' },
  EFBIG: { errno: 'EFBIG', http: 413, what: 'too large' },
  ENOTSUP: { errno: 'ENOTSUP', http: 501, what: 'not supported' },
  EROFS: { errno: 'EROFS', http: 403, what: 'read-only' },
  ELOOP: { errno: 'ELOOP', http: 508, what: 'too many symbolic links' },
  SWARMFS_USER: { errno: 'EINVAL', http: 400, what: 'a request the user can correct (the message says how)' },
  SWARMFS_DISK: { errno: 'EIO', http: 500, what: 'the disk directory is unusable' },
  SWARMFS_BAD_INPUT: { errno: 'EINVAL', http: 400, what: 'a malformed message from a peer or a client' },
  SWARMFS_CONFLICT: { errno: 'EBUSY', http: 409, what: 'refused in the present state (the message says which)' },
  SWARMFS_STOPPING: { errno: 'EIO', http: 503, what: 'the node is starting or stopping' },
  SWARMFS_INTERNAL: { errno: 'EIO', http: 500, what: 'a broken invariant: a bug' },
  SWARMFS_PEER_KEY_REFUSED: { errno: 'EIO', http: 502, what: 'the peer does not hold the volume key' },
  SWARMFS_PEER_UNREACHABLE: { errno: 'EIO', http: 502, what: 'the peer cannot be reached' },
  SWARMFS_PEER_TIMEOUT: { errno: 'EIO', http: 504, what: 'the peer did not answer in time' },
  SWARMFS_PEER_BAD_RESPONSE: { errno: 'EIO', http: 502, what: 'the peer answered with an error or nonsense' },
  SWARMFS_PEER_INVALID: { errno: 'EIO', http: 502, what: 'the peer is not the one asked for' },
  SWARMFS_CLONE_CONFLICT: { errno: 'EEXIST', http: 409, what: 'the repository already has a history' },
  SWARMFS_MISSING_OBJECT: { errno: 'EIO', http: 502, what: 'a git object is missing' },
  SWARMFS_BAD_OBJECT: { errno: 'EIO', http: 502, what: 'a git object is malformed' },
  SWARMFS_OBJECT_TOO_LARGE: { errno: 'EFBIG', http: 413, what: 'a git object is larger than allowed' }
} as const satisfies Record<string, CodeMeaning>

export type ErrorCode = keyof typeof ERROR_CODES

export class SwarmError extends Error {
  readonly code: ErrorCode
  readonly data: Record<string, unknown>
  constructor (code: ErrorCode, message: string, data: Record<string, unknown> = {}) {
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

function codeOf (err: unknown): string | undefined {
  const code = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined
  return typeof code === 'string' ? code : undefined
}

/** The table's entry for an error's code; undefined for an error without one of its codes. */
export function meaningOf (err: unknown): CodeMeaning | undefined {
  const code = codeOf(err)
  return code !== undefined && Object.hasOwn(ERROR_CODES, code) ? ERROR_CODES[code as ErrorCode] : undefined
}

/**
 * The errno name for a failure: the table's, or the errno a Node fs error already carries (an
 * E* code `known` accepts); undefined for anything else (a bug: the caller answers EIO and logs).
 */
export function errnoOf (err: unknown, known: (code: string) => boolean): string | undefined {
  const meaning = meaningOf(err)
  if (meaning !== undefined) return meaning.errno
  const code = codeOf(err)
  return code !== undefined && code.startsWith('E') && known(code) ? code : undefined
}

/** The HTTP status for a failure: the table's, 500 for one without a code of it. */
export function httpStatusOf (err: unknown): number {
  return meaningOf(err)?.http ?? 500
}


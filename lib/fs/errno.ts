// The one place where failures become errnos for the kernel. Inner code throws FsErrors (or lets
// Node's own fs errors through, which carry the same codes); anything else is a bug or an I/O
// failure and becomes EIO, logged.
import os from 'node:os'
import type { Logger } from '../log/index.js'

const errnos = os.constants.errno as Record<string, number>

export function toErrno (err: unknown, log: Logger, op: string, path: string): number {
  const code = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined
  if (code === 'ENOTSUP') return -(errnos.EOPNOTSUPP ?? 95)
  if (typeof code === 'string' && code.startsWith('E') && errnos[code] !== undefined) {
    if (code === 'EIO' || code === 'ENOSPC') log.warn(`${op} failed`, { path, err })
    else log.debug(`${op} failed`, { path, code })
    return -errnos[code]
  }
  log.error(`${op} failed unexpectedly`, { path, err, stack: err instanceof Error ? err.stack : undefined })
  return -errnos.EIO
}

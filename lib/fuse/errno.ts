// The one place where failures become errnos for the kernel: by the table of codes (core/errors.ts),
// or as a Node fs error's own errno; anything else is a bug or an I/O failure and becomes EIO, logged.
import os from 'node:os'
import { errnoOf } from '../core/errors.js'
import type { Logger } from '../core/log.js'

const errnos = os.constants.errno as Record<string, number>

/**
 * A failure repeated (same operation, path and errno) within this long is counted, not logged
 * again: a reader of a file no holder serves fails read after read (the kernel's read-ahead, a
 * media player retrying), and one line says as much as hundreds.
 */
export const REPEAT_WINDOW_MS = 60_000
const lastLogged = new Map<string, { at: number, repeats: number }>()

function warnOnce (log: Logger, op: string, path: string, code: string, err: unknown, now: number): void {
  const key = `${op}\0${code}\0${path}`
  const last = lastLogged.get(key)
  if (last !== undefined && now - last.at < REPEAT_WINDOW_MS) {
    last.repeats++
    return
  }
  log.warn(`${op} failed`, { path, err, ...(last !== undefined && last.repeats > 0 ? { repeatsNotLogged: last.repeats } : {}) })
  if (lastLogged.size >= 1000) lastLogged.clear()
  lastLogged.set(key, { at: now, repeats: 0 })
}

export function toErrno (err: unknown, log: Logger, op: string, path: string, now = Date.now()): number {
  const code = errnoOf(err, c => errnos[c] !== undefined)
  if (code === 'ENOTSUP') return -(errnos.EOPNOTSUPP ?? 95)
  if (code !== undefined && errnos[code] !== undefined) {
    if (code === 'EIO' || code === 'ENOSPC') warnOnce(log, op, path, code, err, now)
    // ENOENT is the everyday answer to a lookup (a shell's every create asks first): logged, it
    // was most of a --verbose log.
    else if (code !== 'ENOENT') log.debug(`${op} failed`, { path, code })
    return -errnos[code]
  }
  log.error(`${op} failed unexpectedly`, { path, err, stack: err instanceof Error ? err.stack : undefined })
  return -errnos.EIO
}

// Failures become errnos; an EIO or ENOSPC is logged as a warning, and its repeats (the same
// operation on the same path) within a minute are counted into the next line, not logged each.
import t from 'tap'
import { REPEAT_WINDOW_MS, toErrno } from '../../lib/fuse/errno.js'
import type { Logger } from '../../lib/core/log.js'

function recorder (): { log: Logger, warnings: Array<{ msg: string, fields?: Record<string, unknown> }> } {
  const warnings: Array<{ msg: string, fields?: Record<string, unknown> }> = []
  const log: Logger = { debug () {}, info () {}, error () {}, warn: (msg, fields) => { warnings.push({ msg, fields }) }, child: () => log }
  return { log, warnings }
}

const eio = Object.assign(new Error('EIO: no holder answered'), { code: 'EIO' })

t.test('an EIO read of one file, again and again, is one warning a minute with the count', async t => {
  const { log, warnings } = recorder()
  const t0 = 1_000_000
  for (let i = 0; i < 50; i++) t.equal(toErrno(eio, log, 'read', '/film.mkv', t0 + i * 100), -5, 'EIO every time')
  t.equal(warnings.length, 1, 'one warning for 50 failures')
  t.equal(warnings[0].fields?.path, '/film.mkv')
  toErrno(eio, log, 'read', '/other.mkv', t0 + 5000)
  toErrno(eio, log, 'write', '/film.mkv', t0 + 5000)
  t.equal(warnings.length, 3, 'another file, or another operation, is a warning of its own')
  toErrno(eio, log, 'read', '/film.mkv', t0 + REPEAT_WINDOW_MS + 1)
  t.equal(warnings.length, 4, 'a minute later it is logged again')
  t.equal(warnings[3].fields?.repeatsNotLogged, 49, 'with the number of repeats not logged')
})

t.test('other errnos are not warnings; a failure that is no errno is EIO', async t => {
  const { log, warnings } = recorder()
  t.equal(toErrno(Object.assign(new Error('x'), { code: 'ENOENT' }), log, 'getattr', '/x'), -2)
  t.equal(toErrno(Object.assign(new Error('x'), { code: 'ENOTSUP' }), log, 'setxattr', '/x'), -95)
  t.equal(toErrno(new Error('a bug'), log, 'read', '/x'), -5)
  t.equal(warnings.length, 0)
})

// Failures become errnos; an EIO or ENOSPC is logged as a warning, and its repeats (the same
// operation on the same path) within a minute are counted into the next line, not logged each; a
// missing name (ENOENT) is not logged at all.
import os from 'node:os'
import t from 'tap'
import { ERROR_CODES, fsError, httpStatusOf, SwarmError, UserError } from '../../lib/core/errors.js'
import { PeerError } from '../../lib/sync/peer-client.js'
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

t.test('a missing name is answered without a log line; other errnos are logged at debug', async t => {
  const debug: string[] = []
  const log: Logger = { debug: (msg, fields) => { debug.push(`${msg} ${String(fields?.code)}`) }, info () {}, error () {}, warn () {}, child: () => log }
  for (let i = 0; i < 100; i++) t.equal(toErrno(Object.assign(new Error('x'), { code: 'ENOENT' }), log, 'getattr', `/new-${i}`), -2)
  t.equal(toErrno(Object.assign(new Error('x'), { code: 'EACCES' }), log, 'open', '/x'), -13)
  t.same(debug, ['open failed EACCES'], 'only the EACCES')
})

t.test('one table of codes: each maps to one errno and one HTTP status', async t => {
  const { log } = recorder()
  t.equal(toErrno(new PeerError('SWARMFS_PEER_TIMEOUT', 'the holder did not answer'), log, 'read', '/x'), -5, 'a peer timing out is EIO at the mount')
  t.equal(httpStatusOf(new PeerError('SWARMFS_PEER_TIMEOUT', 'the holder did not answer')), 504, '... and 504 over HTTP')
  t.equal(toErrno(new SwarmError('SWARMFS_OBJECT_TOO_LARGE', 'big'), log, 'read', '/x'), -27, 'too large: EFBIG')
  t.equal(httpStatusOf(fsError('ENOENT', '/x')), 404, 'a missing name: 404')
  t.equal(httpStatusOf(fsError('ENOSPC', '/x')), 507, 'a full disk: 507')
  t.equal(httpStatusOf(new UserError('give a number')), 400)
  t.equal(httpStatusOf(new Error('a bug')), 500, 'an error without a code: 500')
  t.equal(httpStatusOf(Object.assign(new Error('x'), { code: 'ECONNRESET' })), 500, 'a code outside the table: 500')
  for (const [code, meaning] of Object.entries(ERROR_CODES)) {
    t.ok(meaning.http >= 400 && meaning.http < 600, `${code}: an error status`)
    t.ok(meaning.errno in os.constants.errno || meaning.errno === 'ENOTSUP', `${code}: a real errno`)
  }
})

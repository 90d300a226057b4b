// Bad pieces as pure logic: what a peer's report must look like, that one report per piece goes out
// per quiet period, how a content file is checked against its info (one piece, every piece), and
// how a scrub goes through the contents and keeps its progress.
import t from 'tap'
import { createHash, randomBytes } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { failingPresentPieces, intactPieces, pieceIsIntact } from '../../lib/content/piece-check.js'
import { buildInfo } from '../../lib/core/torrent-info.js'
import type { Logger } from '../../lib/core/log.js'
import { BadPieceReporter, parseBadPiece, type BadPiece } from '../../lib/replicate/bad-pieces.js'
import { Scrub } from '../../lib/replicate/scrub.js'

const IH = 'ab'.repeat(20)

t.test('a report from a peer is checked', async t => {
  t.same(parseBadPiece({ infohash: IH, piece: 7 }), { infohash: IH, piece: 7 }, 'a sound one')
  for (const [body, why] of [[null, 'null'], [[IH, 1], 'an array'], [{ infohash: IH.toUpperCase(), piece: 1 }, 'upper-case hex'], [{ infohash: IH.slice(1), piece: 1 }, 'a short infohash'], [{ infohash: IH, piece: -1 }, 'a negative piece'], [{ infohash: IH, piece: 1.5 }, 'a fractional piece'], [{ infohash: IH, piece: '1' }, 'a piece as a string'], [{ infohash: IH }, 'no piece']] as const) {
    t.type(parseBadPiece(body), 'string', why)
  }
})

t.test('one report per piece per quiet period', async t => {
  const sent: BadPiece[] = []
  let now = 1000
  const reporter = new BadPieceReporter(async r => { sent.push(r) }, 60_000, () => now)
  reporter.report(IH, 3)
  reporter.report(IH, 3)
  reporter.report(IH, 4)
  now += 59_999
  reporter.report(IH, 3)
  t.same(sent, [{ infohash: IH, piece: 3 }, { infohash: IH, piece: 4 }], 'the same piece again within the period is not sent')
  now += 1
  reporter.report(IH, 3)
  t.equal(sent.length, 3, 'after the period it is sent again')
  const failing = new BadPieceReporter(async () => { throw new Error('peer gone') })
  t.doesNotThrow(() => failing.report(IH, 1), 'a failed send is not the reporter\'s caller\'s problem')
})

t.test('a content file against its info', async t => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'swarmfs-bad-pieces-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const pieceLength = 16384
  const data = randomBytes(pieceLength * 4 + 100)
  const digests = []
  for (let at = 0; at < data.length; at += pieceLength) digests.push(createHash('sha1').update(data.subarray(at, at + pieceLength)).digest())
  const info = buildInfo('v', data.length, pieceLength, digests)
  const file = path.join(dir, 'c')
  fs.writeFileSync(file, data)
  t.same(await Promise.all([0, 1, 2, 3, 4].map(async i => await pieceIsIntact(file, info, i))), [true, true, true, true, true], 'every piece of a right copy is intact (the short last one too)')
  t.same(await intactPieces(file, info), { bits: Uint8Array.from([0b11111000]), bad: [] }, 'and all of them are in its bitfield')
  const fd = fs.openSync(file, 'r+')
  fs.writeSync(fd, Buffer.from([data[pieceLength + 5]! ^ 1]), 0, 1, pieceLength + 5)
  fs.writeSync(fd, Buffer.from([data[4 * pieceLength + 99]! ^ 1]), 0, 1, 4 * pieceLength + 99)
  fs.closeSync(fd)
  t.same([await pieceIsIntact(file, info, 1), await pieceIsIntact(file, info, 2), await pieceIsIntact(file, info, 4)], [false, true, false], 'one flipped bit makes a piece bad, and only that piece')
  t.same(await intactPieces(file, info), { bits: Uint8Array.from([0b10110000]), bad: [1, 4] }, 'the bitfield leaves the bad pieces out')
  const checked: number[] = []
  t.same(await failingPresentPieces(file, info, Uint8Array.from([0b01101000]), n => checked.push(n)), [1, 4], 'of the pieces a partial content holds, the bad ones')
  t.same(checked, [pieceLength, pieceLength, 100], '... and only those it holds are read')
  t.same(await failingPresentPieces(file, info, Uint8Array.from([0b00100000])), [], 'none, when it holds only right ones')
  fs.truncateSync(file, 3 * pieceLength)
  t.same(await intactPieces(file, info), { bits: Uint8Array.from([0b10100000]), bad: [1, 3, 4] }, 'pieces a truncated file no longer has are bad, not an error')
  await t.rejects(pieceIsIntact(path.join(dir, 'missing'), info, 0), { code: 'ENOENT' }, 'a missing file is an error of its own')
})

const quietLog = { debug () {}, info () {}, warn () {}, error () {} } as unknown as Logger

t.test('a scrub checks each content once, counts its bytes, and keeps what it found', async t => {
  const seen: string[] = []
  let release: () => void = () => {}
  const gate = new Promise<void>(resolve => { release = resolve })
  const scrub = new Scrub(async ({ infohash: ih }, onBytes) => {
    seen.push(ih)
    if (ih === 'b') await gate
    onBytes(ih === 'a' ? 10 : 5)
    return ih === 'b' ? 'damaged' : ih === 'c' ? 'not held' : 'intact'
  }, quietLog)
  const first = scrub.start([{ infohash: 'a', length: 10, partial: false }, { infohash: 'b', length: 20, partial: false }, { infohash: 'c', length: 30, partial: true }])
  t.same([first.running, first.contents, first.bytes, first.checked, first.partial], [true, 3, 60, 0, 1], 'a run starts over three contents, 60 bytes, one of them partly held')
  await new Promise(resolve => setImmediate(resolve))
  t.same(scrub.start([{ infohash: 'z', length: 1, partial: false }]).contents, 3, 'a second start while one runs follows the first')
  const mid = scrub.status()
  t.same([mid.checked, mid.bytesChecked, mid.running], [1, 10, true], 'one checked, its bytes counted')
  release()
  while (scrub.status().running) await new Promise(resolve => setImmediate(resolve))
  const done = scrub.status()
  t.same([done.checked, done.bytesChecked, done.damaged, done.error], [3, 60, ['b'], null], 'every content counted whole (one gone meanwhile too), the damaged one named')
  t.same(seen, ['a', 'b', 'c'], 'each checked once, in order')
  const next = scrub.start([{ infohash: 'a', length: 10, partial: false }])
  t.same([next.contents, next.damaged], [1, []], 'a new run starts afresh')
  const busy = new Scrub(async ({ partial }) => partial ? 'in use' : 'intact', quietLog)
  busy.start([{ infohash: 'p', length: 3, partial: true }, { infohash: 'q', length: 4, partial: false }])
  while (busy.status().running) await new Promise(resolve => setImmediate(resolve))
  t.same([busy.status().checked, busy.status().skipped, busy.status().damaged], [2, ['p'], []], 'a partly held content a read is using is named as left unchecked')
})

t.test('a scrub that fails or is stopped says so', async t => {
  const failing = new Scrub(async () => { throw new Error('disk read error') }, quietLog)
  failing.start([{ infohash: 'a', length: 1, partial: false }])
  while (failing.status().running) await new Promise(resolve => setImmediate(resolve))
  t.equal(failing.status().error, 'disk read error', 'a failed check ends the run with its reason')
  const stopped = new Scrub(async () => 'intact', quietLog)
  stopped.start([{ infohash: 'a', length: 1, partial: false }, { infohash: 'b', length: 1, partial: false }])
  stopped.stop()
  while (stopped.status().running) await new Promise(resolve => setImmediate(resolve))
  t.same([stopped.status().checked, stopped.status().error], [1, 'the node stopped'], 'a stop ends the run after the content under way')
  t.equal(stopped.start([{ infohash: 'c', length: 1, partial: false }]).running, false, 'and no run starts after a stop')
})

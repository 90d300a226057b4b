// Bad pieces as pure logic: what a peer's report must look like, that one report per piece goes out
// per quiet period, and how a content file is checked against its info (one piece, every piece).
import t from 'tap'
import { createHash, randomBytes } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { intactPieces, pieceIsIntact } from '../../lib/content/piece-check.js'
import { buildInfo } from '../../lib/content/torrent-info.js'
import { BadPieceReporter, parseBadPiece, type BadPiece } from '../../lib/replicate/bad-pieces.js'

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
  fs.truncateSync(file, 3 * pieceLength)
  t.same(await intactPieces(file, info), { bits: Uint8Array.from([0b10100000]), bad: [1, 3, 4] }, 'pieces a truncated file no longer has are bad, not an error')
  await t.rejects(pieceIsIntact(path.join(dir, 'missing'), info, 0), { code: 'ENOENT' }, 'a missing file is an error of its own')
})

// The persisted piece bitfield of a partial content (lib/content/bitfield.ts).
import t from 'tap'
import fs from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import { bitfieldLength, countPieces, hasPiece, readBitfield, setPiece, writeBitfield } from '../../lib/content/bitfield.js'

t.test('bits are BitTorrent\'s: piece 0 is the high bit of byte 0', async t => {
  t.equal(bitfieldLength(1), 1)
  t.equal(bitfieldLength(8), 1)
  t.equal(bitfieldLength(9), 2)
  const bits = new Uint8Array(bitfieldLength(12))
  setPiece(bits, 0)
  setPiece(bits, 9)
  t.same([...bits], [0x80, 0x40])
  t.ok(hasPiece(bits, 0))
  t.notOk(hasPiece(bits, 1))
  t.ok(hasPiece(bits, 9))
  t.equal(countPieces(bits, 12), 2)
})

t.test('written atomically, read back; a file of the wrong length is not trusted', async t => {
  const dir = fs.mkdtempSync(join(os.tmpdir(), 'swarmfs-bitfield-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const path = join(dir, 'x.bitfield')
  t.equal(await readBitfield(path, 12), null, 'absent')
  await writeBitfield(path, Uint8Array.from([0xff, 0xf0]))
  t.same([...(await readBitfield(path, 12))!], [0xff, 0xf0], 'read back')
  t.same(fs.readdirSync(dir), ['x.bitfield'], 'no temporary file left')
  t.equal(await readBitfield(path, 20), null, 'another piece count: not trusted')
  fs.writeFileSync(path, Uint8Array.from([0xff, 0xff]))
  t.same([...(await readBitfield(path, 12))!], [0xff, 0xf0], 'spare bits after the last piece are cleared')
})

// The piece bitfield of a partial content, kept next to its sparse file (<partial>/<infohash>.bitfield)
// so fetched pieces survive a restart. The format is BitTorrent's own: ceil(pieces / 8) bytes, piece
// 0 in the high bit of byte 0, spare bits zero. A file of any other length is not trusted (read as
// absent): a torn or foreign file can only cost a re-fetch, never claim a piece that is not there.
import fsp from 'node:fs/promises'
import { replaceFile } from '../core/durable.js'

export function bitfieldLength (pieces: number): number {
  return Math.ceil(pieces / 8)
}

export function hasPiece (bits: Uint8Array, index: number): boolean {
  return (bits[index >> 3] & (128 >> (index & 7))) !== 0
}

export function setPiece (bits: Uint8Array, index: number): void {
  bits[index >> 3] |= 128 >> (index & 7)
}

export function clearPiece (bits: Uint8Array, index: number): void {
  bits[index >> 3] &= ~(128 >> (index & 7))
}

export function countPieces (bits: Uint8Array, pieces: number): number {
  let n = 0
  for (let i = 0; i < pieces; i++) if (hasPiece(bits, i)) n++
  return n
}

/** Clears the spare bits after the last piece (a peer would treat them as a protocol error). */
function clearSpare (bits: Uint8Array, pieces: number): void {
  const spare = bits.length * 8 - pieces
  if (spare > 0) bits[bits.length - 1] &= (0xff << spare) & 0xff
}

/** The persisted bitfield, or null when there is none, or one of the wrong length. */
export async function readBitfield (path: string, pieces: number): Promise<Uint8Array | null> {
  let data: Buffer
  try {
    data = await fsp.readFile(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw err
  }
  if (data.length !== bitfieldLength(pieces)) return null
  const bits = new Uint8Array(data)
  clearSpare(bits, pieces)
  return bits
}

/**
 * Replaces the persisted bitfield atomically (a temporary file renamed over it). The caller makes
 * the pieces it claims durable first (fdatasync of the data file), so after a crash the bitfield
 * never names a piece whose bytes did not reach the disk.
 */
export async function writeBitfield (path: string, bits: Uint8Array): Promise<void> {
  await replaceFile(path, bits)
}

// Checking a content file on this disk against its torrent info: one piece (a peer's read found it
// bad), or every piece (to know which ones a bad copy still has right). A complete content is
// trusted as it is when seeded (hashing every file at start would cost a second per GiB), so
// this is how a copy that went bad on the disk is found.
import { createHash } from 'node:crypto'
import fsp from 'node:fs/promises'
import { bitfieldLength, hasPiece, setPiece } from './bitfield.js'
import { readFully } from './piece-file.js'
import { pieceBytes, pieceCount, pieceDigest, type TorrentInfo } from '../core/torrent-info.js'

function pieceSpan (info: TorrentInfo, index: number): { offset: number, length: number } {
  return { offset: index * info.pieceLength, length: pieceBytes(info, index) }
}

/** Whether `bytes` are piece `index` of `info`, as its hash says. */
export function bytesMatchPiece (bytes: Uint8Array, info: TorrentInfo, index: number): boolean {
  return createHash('sha1').update(bytes).digest().equals(pieceDigest(info, index))
}

/** Whether piece `index` of the open file has the bytes its hash says; a file too short has not. */
async function pieceMatches (fd: number, info: TorrentInfo, index: number, into?: Buffer): Promise<boolean> {
  const { offset, length } = pieceSpan(info, index)
  try {
    return bytesMatchPiece(await readFully(fd, offset, length, into), info, index)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EIO') return false
    throw err
  }
}

/** Whether piece `index` of the file at `path` has the bytes its hash says. */
export async function pieceIsIntact (path: string, info: TorrentInfo, index: number): Promise<boolean> {
  const fh = await fsp.open(path, 'r')
  try {
    return await pieceMatches(fh.fd, info, index)
  } finally {
    await fh.close()
  }
}

/**
 * The bitfield of the pieces of the file at `path` that match their hashes (one buffer reused);
 * `onBytes` hears of each piece's bytes as they are checked.
 */
export async function intactPieces (path: string, info: TorrentInfo, onBytes: (n: number) => void = () => {}): Promise<{ bits: Uint8Array, bad: number[] }> {
  const pieces = pieceCount(info.length, info.pieceLength)
  const bits = new Uint8Array(bitfieldLength(pieces))
  const bad: number[] = []
  const buf = Buffer.allocUnsafe(info.pieceLength)
  const fh = await fsp.open(path, 'r')
  try {
    for (let i = 0; i < pieces; i++) {
      if (await pieceMatches(fh.fd, info, i, buf)) setPiece(bits, i)
      else bad.push(i)
      onBytes(pieceSpan(info, i).length)
    }
  } finally {
    await fh.close()
  }
  return { bits, bad }
}

/**
 * The pieces that `bits` says the file at `path` holds (a partial content) but whose bytes do not
 * match their hashes; `onBytes` hears of each present piece's bytes as they are checked.
 */
export async function failingPresentPieces (path: string, info: TorrentInfo, bits: Uint8Array, onBytes: (n: number) => void = () => {}): Promise<number[]> {
  const pieces = pieceCount(info.length, info.pieceLength)
  const bad: number[] = []
  const buf = Buffer.allocUnsafe(info.pieceLength)
  const fh = await fsp.open(path, 'r')
  try {
    for (let i = 0; i < pieces; i++) {
      if (!hasPiece(bits, i)) continue
      if (!await pieceMatches(fh.fd, info, i, buf)) bad.push(i)
      onBytes(pieceSpan(info, i).length)
    }
  } finally {
    await fh.close()
  }
  return bad
}

// The torrent info dictionary of a content. It depends only on the bytes, the piece length (a fixed
// function of the size) and the volume id (the `name` field), so equal bytes give one infohash per
// volume, and infohashes of one volume say nothing about another.
import { createHash } from 'node:crypto'
import bencode from 'bencode'
import { sharedIds } from './interner.js'

/** Pieces are hashed at this length as sequential writes arrive; it covers files up to 4 GiB. */
export const BASE_PIECE_LENGTH = 1 << 20
const MAX_PIECES_AT_BASE = 4096

export function pieceLengthFor (size: number): number {
  let length = BASE_PIECE_LENGTH
  while (size > length * MAX_PIECES_AT_BASE) length *= 2
  return length
}

export function pieceCount (size: number, pieceLength: number): number {
  return Math.ceil(size / pieceLength)
}

/** Bytes of piece `index` (the last one may be shorter). */
export function pieceBytes (info: TorrentInfo, index: number): number {
  return Math.min(info.pieceLength, info.length - index * info.pieceLength)
}

export interface TorrentInfo {
  name: string
  length: number
  pieceLength: number
  /** Concatenated SHA-1 digests of the pieces, base64. */
  pieces: string
}

/** A content as an entry names it: its infohash and the torrent info it was made from. */
export interface ContentRef {
  infohash: string
  info: TorrentInfo
}

export function buildInfo (volumeId: string, length: number, pieceLength: number, digests: Buffer[]): TorrentInfo {
  return { name: volumeId, length, pieceLength, pieces: Buffer.concat(digests).toString('base64') }
}

/**
 * The info as the index keeps it: only its four fields (a parsed entry may carry more), in one
 * order (one hidden class for all), its name (the volume id) one shared string.
 */
export function compactInfo (info: TorrentInfo): TorrentInfo {
  return { name: sharedIds.of(info.name), length: info.length, pieceLength: info.pieceLength, pieces: info.pieces }
}

export function encodeInfo (info: TorrentInfo): Uint8Array {
  return bencode.encode({ length: info.length, name: info.name, 'piece length': info.pieceLength, pieces: Buffer.from(info.pieces, 'base64') })
}

export function infoHash (info: TorrentInfo): string {
  return createHash('sha1').update(encodeInfo(info)).digest('hex')
}

export function pieceDigest (info: TorrentInfo, index: number): Buffer {
  return Buffer.from(info.pieces, 'base64').subarray(index * 20, index * 20 + 20)
}

const INFOHASH = /^[0-9a-f]{40}$/
export function isInfoHash (value: unknown): value is string {
  return typeof value === 'string' && INFOHASH.test(value)
}

/** Checks the shape of a TorrentInfo that came from outside (a git blob, a peer) before anything uses it. */
export function isValidInfo (value: unknown): value is TorrentInfo {
  return shapeProblem(value) === null
}

/**
 * Why the torrent info of an entry of `size` bytes cannot be taken, or null if it can: the one
 * check for torrent info that enters from outside (a peer's tree merged, a clone at join, the
 * index loaded at start). Besides its shape, its piece length must be the one its size implies
 * (pieceLengthFor: a peer cannot make this node hold a piece of its choosing in memory), it must
 * describe `size` bytes, and its name must be the volume's id (`volumeId` null: not checked).
 */
export function infoProblem (value: unknown, size: number, volumeId: string | null): string | null {
  const shape = shapeProblem(value)
  if (shape !== null) return shape
  const info = value as TorrentInfo
  if (info.length !== size) return `torrent info describes ${info.length} bytes, the entry ${size}`
  if (info.pieceLength !== pieceLengthFor(info.length)) return `piece length ${info.pieceLength} is not the ${pieceLengthFor(info.length)} its size implies`
  if (volumeId !== null && info.name !== volumeId) return 'torrent info names another volume'
  return null
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/

function shapeProblem (value: unknown): string | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'torrent info is not an object'
  const v = value as Record<string, unknown>
  if (typeof v.name !== 'string') return 'torrent info has no name'
  if (!Number.isSafeInteger(v.length) || (v.length as number) <= 0) return 'torrent info length is not a positive integer'
  if (!Number.isSafeInteger(v.pieceLength) || (v.pieceLength as number) < 16384) return 'piece length is not an integer of at least 16384'
  const count = pieceCount(v.length as number, v.pieceLength as number)
  // Canonical base64 of 20 bytes a piece: Buffer.from skips what is not base64 and would accept more.
  if (typeof v.pieces !== 'string' || v.pieces.length !== 4 * Math.ceil(20 * count / 3) || !BASE64.test(v.pieces)) return 'piece hashes are not base64 of 20 bytes a piece'
  if (Buffer.from(v.pieces, 'base64').length !== 20 * count) return 'piece hashes are not 20 bytes a piece'
  return null
}

// The torrent info dictionary of a content. It depends only on the bytes, the piece length (a fixed
// function of the size) and the volume id (the `name` field), so equal bytes give one infohash per
// volume, and infohashes of one volume say nothing about another.
import { createHash } from 'node:crypto'
import bencode from 'bencode'

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

export function buildInfo (volumeId: string, length: number, pieceLength: number, digests: Buffer[]): TorrentInfo {
  return { name: volumeId, length, pieceLength, pieces: Buffer.concat(digests).toString('base64') }
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

/** Checks a TorrentInfo that came from outside (a git blob, a peer) before anything uses it. */
export function isValidInfo (value: unknown): value is TorrentInfo {
  if (typeof value !== 'object' || value === null) return false
  const v = value as Record<string, unknown>
  if (typeof v.name !== 'string' || typeof v.pieces !== 'string') return false
  if (!Number.isSafeInteger(v.length) || (v.length as number) <= 0) return false
  if (!Number.isSafeInteger(v.pieceLength) || (v.pieceLength as number) < 16384) return false
  const digests = Buffer.from(v.pieces, 'base64').length
  return digests === 20 * pieceCount(v.length as number, v.pieceLength as number)
}

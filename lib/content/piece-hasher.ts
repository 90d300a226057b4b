// Hashes pieces while sequential writes arrive, so closing a large file written front to back does
// not read it again. Writes elsewhere only shorten the prefix of pieces known to be valid; `finish`
// hashes from there to the end by reading the file, in small steps that leave the event loop free.
import { createHash, type Hash } from 'node:crypto'
import { open } from 'node:fs/promises'
import { BASE_PIECE_LENGTH, pieceLengthFor } from '../core/torrent-info.js'
import { SwarmError } from '../core/errors.js'

const READ_CHUNK = 1 << 20

export class PieceHasher {
  /** Digests of pieces [0, digests.length) at BASE_PIECE_LENGTH, valid for the current bytes. */
  private digests: Buffer[]
  private running: Hash | null = null
  private runningOffset = 0

  constructor (validDigests: Buffer[] = []) {
    this.digests = validDigests.slice()
    this.runningOffset = this.digests.length * BASE_PIECE_LENGTH
    this.running = createHash('sha1')
  }

  get validBytes (): number {
    return this.digests.length * BASE_PIECE_LENGTH
  }

  write (offset: number, data: Uint8Array): void {
    if (this.running !== null && offset === this.runningOffset) {
      this.feed(data)
      return
    }
    this.invalidateFrom(offset)
    if (offset === this.validBytes) {
      this.running = createHash('sha1')
      this.runningOffset = offset
      this.feed(data)
    }
  }

  /** Bytes at and after `offset` changed (a write or a truncate). */
  invalidateFrom (offset: number): void {
    const keep = Math.floor(offset / BASE_PIECE_LENGTH)
    if (keep < this.digests.length) this.digests.length = keep
    if (this.running !== null && offset < this.runningOffset) this.running = null
  }

  private feed (data: Uint8Array): void {
    let pos = 0
    while (pos < data.length && this.running !== null) {
      const room = BASE_PIECE_LENGTH - (this.runningOffset % BASE_PIECE_LENGTH)
      const take = Math.min(room, data.length - pos)
      this.running.update(data.subarray(pos, pos + take))
      pos += take
      this.runningOffset += take
      if (this.runningOffset % BASE_PIECE_LENGTH === 0) {
        this.digests.push(this.running.digest())
        this.running = createHash('sha1')
      }
    }
  }

  /** The piece digests of the file at `path` of `size` bytes, and the piece length they use. */
  async finish (path: string, size: number): Promise<{ pieceLength: number, digests: Buffer[] }> {
    const pieceLength = pieceLengthFor(size)
    if (pieceLength === BASE_PIECE_LENGTH) {
      const whole = Math.floor(size / BASE_PIECE_LENGTH)
      const digests = this.digests.slice(0, whole)
      const tail = size - whole * BASE_PIECE_LENGTH
      if (digests.length === whole && tail > 0 && this.running !== null && this.runningOffset === size) {
        digests.push(this.running.digest())
        this.running = null
        return { pieceLength, digests }
      }
      if (digests.length === pieceCountOf(size, pieceLength)) return { pieceLength, digests }
      return { pieceLength, digests: digests.concat(await hashFile(path, digests.length * pieceLength, size, pieceLength)) }
    }
    return { pieceLength, digests: await hashFile(path, 0, size, pieceLength) }
  }
}

function pieceCountOf (size: number, pieceLength: number): number {
  return Math.ceil(size / pieceLength)
}

/** SHA-1 of each piece of [start, end) of a file; `start` is on a piece boundary. */
export async function hashFile (path: string, start: number, end: number, pieceLength: number): Promise<Buffer[]> {
  const digests: Buffer[] = []
  if (start >= end) return digests
  const handle = await open(path, 'r')
  try {
    const buf = Buffer.allocUnsafe(Math.min(READ_CHUNK, pieceLength))
    let hash = createHash('sha1')
    let inPiece = 0
    let pos = start
    while (pos < end) {
      const want = Math.min(buf.length, end - pos, pieceLength - inPiece)
      const { bytesRead } = await handle.read(buf, 0, want, pos)
      if (bytesRead === 0) throw new SwarmError('SWARMFS_DISK', `short read hashing ${path} at ${pos}`)
      hash.update(buf.subarray(0, bytesRead))
      pos += bytesRead
      inPiece += bytesRead
      if (inPiece === pieceLength || pos === end) {
        digests.push(hash.digest())
        hash = createHash('sha1')
        inPiece = 0
      }
    }
  } finally {
    await handle.close()
  }
  return digests
}

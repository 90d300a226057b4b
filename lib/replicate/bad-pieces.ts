// Telling holders that a piece they sent failed its hash check. BitTorrent discards a bad piece and
// asks again (from the same peer or another), but the peer that sent it is never told, so a copy
// that went bad on its disk (bit rot, a stray write) would stay counted as one of the volume's
// copies until the last good one is gone. A reader that gets a bad piece sends POST /bad-piece to
// its peers; each checks its own copy of that piece (TorrentService.checkPiece) and a bad copy is
// set aside and fetched again (lib/node).
import type { Logger } from '../core/log.js'
import { isInfoHash } from '../core/torrent-info.js'

export interface BadPiece {
  infohash: string
  piece: number
}

/** What a peer may send; a string says what is wrong. */
export function parseBadPiece (body: unknown): BadPiece | string {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return 'body must be a JSON object'
  const b = body as Record<string, unknown>
  if (!isInfoHash(b.infohash)) return 'infohash must be 40 lowercase hex characters'
  if (!Number.isSafeInteger(b.piece) || (b.piece as number) < 0) return 'piece must be a non-negative integer'
  return { infohash: b.infohash, piece: b.piece as number }
}

/**
 * Sends each report once per `quietMs` for the same piece: a bad holder sends the same piece again
 * and again while a read waits, and one report per peer is enough for it to check.
 */
export class BadPieceReporter {
  private readonly sentAt = new Map<string, number>()

  constructor (
    private readonly send: (report: BadPiece) => Promise<void>,
    private readonly quietMs = 60_000,
    private readonly now: () => number = Date.now
  ) {}

  report (infohash: string, piece: number): void {
    const key = `${infohash}:${piece}`
    const t = this.now()
    const last = this.sentAt.get(key)
    if (last !== undefined && t - last < this.quietMs) return
    if (this.sentAt.size >= 10_000) this.sentAt.clear()
    this.sentAt.set(key, t)
    void this.send({ infohash, piece }).catch(() => {})
  }
}

export interface BadPiecePeer {
  nodeId: string
}

/**
 * Sends a report to every peer `peers` lists (those that proved the key), each answering with what
 * its copy holds: one whose copy was bad is logged (it fetches the bad pieces again itself). A peer
 * that cannot be told is passed over: the next bad piece from it is reported again.
 */
export function tellPeers<P extends BadPiecePeer> (peers: () => P[], post: (peer: P, report: BadPiece) => Promise<unknown>, log: Logger): (report: BadPiece) => Promise<void> {
  return async report => {
    await Promise.all(peers().map(async p => {
      try {
        const answer = await post(p, report)
        if ((answer as { copy?: unknown })?.copy === 'damaged') log.warn('a peer found its copy of a content bad when told of a bad piece; it fetches the bad pieces again', { peer: p.nodeId, ...report })
      } catch (err) {
        log.debug('could not tell a peer of a bad piece', { peer: p.nodeId, ...report, err: (err as Error).message })
      }
    }))
  }
}

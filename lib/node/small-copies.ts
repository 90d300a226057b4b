// Copies of small contents taken from their holder over the peer API (GET /content/<infohash>, on
// the kept-alive TLS connection every peer already has) instead of through BitTorrent. A torrent
// per content costs its setup, a new connection with its TLS handshake, and the BitTorrent and
// extension handshakes, ~7.5 ms of this node's CPU for each: a new disk took 10,000 files of 100 KB
// at 0.15x the rate of one file of the same total size. A small content is a single piece (the
// piece length is at least 1 MiB), so BitTorrent's pieces from many holders at once buy nothing. The bytes are checked against
// every piece hash of the index's info before they are kept (ContentStore.adoptWhole), so a holder
// can send nothing but the content; anything that goes wrong leaves the copy to BitTorrent.
import type { Logger } from '../core/log.js'
import type { TorrentInfo } from '../core/torrent-info.js'
import type { ContentStore } from '../content/store.js'
import { fetchContent, type PeerAddress } from '../sync/peer-client.js'

/** Contents up to this size are copied this way (in memory whole: 16 copies at once hold 16 MiB). */
export const SMALL_COPY_BYTES = 1 << 20
/** A holder that does not send 1 MiB in this long is left to BitTorrent. */
const TIMEOUT_MS = 20_000

/** True once the content is in content/ (copied, or there already); false to fall back to BitTorrent. */
export async function copySmall (holder: PeerAddress, infohash: string, info: TorrentInfo, store: ContentStore, log: Logger): Promise<boolean> {
  if (info.length === 0 || info.length > SMALL_COPY_BYTES) return false
  try {
    await store.adoptWhole(infohash, info, await fetchContent({ ...holder, timeoutMs: TIMEOUT_MS }, infohash, info.length))
    return true
  } catch (err) {
    log.debug('small copy from its holder failed; BitTorrent takes it', { infohash, holder: `${holder.host}:${holder.port}`, err: (err as Error).message })
    return false
  }
}

// Every node-to-node connection (the peer API, git, notices, holdings, BitTorrent wires) is TLS 1.2
// with a pre-shared key derived from the volume key. The handshake proves to both ends that the
// other holds the key, and the key itself never crosses the network: a host without it cannot
// finish the handshake, so it is sent nothing but the handshake's own messages.
//
// Why TLS-PSK and not a scheme of our own: Node's `tls` does it (pskCallback on both sides), in
// OpenSSL, with a vetted record layer that both encrypts and authenticates every byte.
// Why ECDHE-PSK-CHACHA20-POLY1305: it is the one PSK suite OpenSSL offers for TLS 1.2 with an
// ephemeral key exchange, so traffic recorded today stays unreadable should the volume key leak
// later (forward secrecy). Measured here, one process at both ends over loopback, 1 GiB:
// ECDHE-PSK-CHACHA20-POLY1305 585 MB/s, PSK-AES128-GCM-SHA256 (no forward secrecy) 621 MB/s, both
// ~1.8 CPU-s per GiB for both ends together: AES-GCM would buy little.
// What a listener still learns: that two hosts talk, when, and how much (lengths of records).
// The identity is a fixed label, not a node id, so it tells nothing either.
import { hkdfSync } from 'node:crypto'
import tls from 'node:tls'

export const PEER_CIPHERS = 'ECDHE-PSK-CHACHA20-POLY1305'
const IDENTITY = 'swarmfs-volume-v1'
/** A handshake not done by then is dropped: a stranger cannot hold connections open. */
export const HANDSHAKE_TIMEOUT_MS = 10_000

export interface VolumeTls {
  /** For tls.createServer / https.createServer / new TLSSocket(socket, { isServer: true, ... }). */
  readonly server: tls.TlsOptions
  /** For tls.connect / https.request. */
  readonly client: tls.ConnectionOptions
}

const cache = new Map<string, VolumeTls>()

/** The pre-shared key: HKDF-SHA-256 of the volume key, for this one use only. */
export function peerPsk (volumeKey: string): Buffer {
  return Buffer.from(hkdfSync('sha256', Buffer.from(volumeKey, 'utf8'), 'swarmfs', 'peer transport psk v1', 32))
}

export function volumeTls (volumeKey: string): VolumeTls {
  const known = cache.get(volumeKey)
  if (known !== undefined) return known
  const psk = peerPsk(volumeKey)
  // One OpenSSL context for every connection of the volume, both ways: without it each socket made
  // with `new TLSSocket` or tls.connect builds one of its own, and a wire is made per content.
  const secureContext = tls.createSecureContext({ ciphers: PEER_CIPHERS, minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' })
  const common = { ciphers: PEER_CIPHERS, minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2', secureContext } as const
  const made: VolumeTls = {
    server: {
      ...common,
      // A wrong identity gets no key at all: the handshake fails as it would with a wrong key.
      pskCallback: (_socket: tls.TLSSocket, identity: string) => identity === IDENTITY ? psk : null,
      handshakeTimeout: HANDSHAKE_TIMEOUT_MS
    },
    client: {
      ...common,
      pskCallback: () => ({ psk, identity: IDENTITY }),
      // There is no certificate: the PSK handshake is what authenticates the server.
      checkServerIdentity: () => undefined
    }
  }
  if (cache.size > 16) cache.clear()
  cache.set(volumeKey, made)
  return made
}

/**
 * Whether a connection failed in the TLS handshake itself (the other end holds another key, or
 * speaks no TLS at all), as opposed to a network failure: such a host is refused, not unreachable.
 */
export function isHandshakeRefusal (err: unknown): boolean {
  const e = err as { code?: unknown, message?: unknown, library?: unknown }
  if (typeof e?.code === 'string' && (e.code.startsWith('ERR_SSL_') || e.code === 'EPROTO' || e.code === 'ERR_TLS_HANDSHAKE_TIMEOUT')) return true
  return typeof e?.library === 'string' && /SSL/i.test(e.library)
}

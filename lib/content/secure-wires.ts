// BitTorrent wires over the volume's TLS (transport/volume-tls.ts): a wire is admitted by the proof
// of the key on that very connection, never by the address it comes from, and every piece travels
// encrypted and integrity-protected.
//
// webtorrent 2.8.5 (pinned) has no hook for the transport, so two of its internals are taken over:
//   - incoming: ConnPool's TCP server routes every accepted socket through `_onTCPConnectionBound`;
//     we take that listener off and hand it only sockets whose TLS handshake (server side) is done;
//   - outgoing: Torrent#_drain makes the connection with `net.connect`; each torrent gets a copy of
//     it that makes a TLS connection instead and reports 'connect' once the handshake is done, so
//     the BitTorrent handshake is never sent to a host that has not proven the key. (Its retry
//     logic is webtorrent's own, minus uTP, which swarmfs never uses.)
// And where it listens: ConnPool listens on every interface, with no option to choose; the TCP
// server it makes is given the address while the client is being constructed.
import net from 'node:net'
import tls from 'node:tls'
import type { Torrent } from 'webtorrent'
import type { Logger } from '../core/log.js'
import type { VolumeTls } from '../transport/volume-tls.js'
import { incomingRoute, replaceDrain, type ConnPool, type DrainingTorrent } from './webtorrent-internals.js'
import { SwarmError } from '../core/errors.js'
import { HANDSHAKE_TIMEOUT_MS, isHandshakeRefusal } from '../transport/volume-tls.js'

/** Incoming handshakes under way at once: a flood of connections from strangers holds no more. */
const MAX_PENDING_HANDSHAKES = 64
/** webtorrent's own: reconnect after 1, 5, 15 s, then give up (torrent.js RECONNECT_WAIT). */
const RECONNECT_WAIT = [1_000, 5_000, 15_000]

/** Builds a webtorrent client whose TCP server listens on `host` only (every interface when undefined). */
export function constructListeningOn<T> (host: string | undefined, make: () => T): T {
  if (host === undefined) return make()
  const createServer = net.createServer
  // Synchronous: only servers made inside make() are affected, and the original is back at once.
  net.createServer = ((...args: Parameters<typeof net.createServer>) => {
    const server = createServer(...args)
    const listen = server.listen.bind(server) as (...a: unknown[]) => net.Server
    server.listen = ((port: unknown, ...rest: unknown[]) => {
      if (typeof port === 'number') return listen({ port, host }, ...rest.filter(a => typeof a === 'function'))
      return listen(port, ...rest)
    }) as net.Server['listen']
    return server
  }) as typeof net.createServer
  try {
    return make()
  } finally {
    net.createServer = createServer
  }
}

export interface WireGuardEvents {
  /** A socket that proved the key, ready for BitTorrent (after tuning). */
  admitted: (socket: tls.TLSSocket) => void
  refused: (address: string | undefined, err: Error) => void
}

/**
 * Takes over ConnPool's incoming connections: each is wrapped in TLS (server side) and handed to
 * webtorrent only once its handshake proved the key.
 */
export function secureIncoming (pool: ConnPool, volumeTls: VolumeTls, events: WireGuardEvents): void {
  const route = incomingRoute(pool)
  const server = pool.tcpServer
  if (server === null) throw new SwarmError('SWARMFS_INTERNAL', 'webtorrent has no TCP server')
  server.removeListener('connection', route)
  let pending = 0
  server.on('connection', (raw: net.Socket) => {
    raw.on('error', () => {})
    if (pending >= MAX_PENDING_HANDSHAKES) {
      events.refused(raw.remoteAddress, new SwarmError('SWARMFS_PEER_KEY_REFUSED', 'too many handshakes under way'))
      raw.destroy()
      return
    }
    pending++
    const address = raw.remoteAddress
    const socket = new tls.TLSSocket(raw, { ...volumeTls.server, isServer: true })
    let settled = false
    const done = (): void => {
      if (settled) return
      settled = true
      pending--
      clearTimeout(timer)
    }
    const timer = setTimeout(() => {
      done()
      events.refused(address, new SwarmError('SWARMFS_PEER_TIMEOUT', 'TLS handshake timed out'))
      socket.destroy()
    }, HANDSHAKE_TIMEOUT_MS)
    socket.once('secure', () => {
      done()
      // The client may have been destroyed while the handshake ran: ConnPool is gone then.
      if (pool.tcpServer === null) {
        socket.destroy()
        return
      }
      events.admitted(socket)
      route(socket)
    })
    socket.on('error', (err: Error) => {
      if (settled) return
      done()
      events.refused(address, err)
      socket.destroy()
    })
    socket.once('close', done)
  })
}

/** Makes `torrent` connect out over TLS only (see the header). */
export function secureOutgoing (torrent: Torrent, volumeTls: VolumeTls, admitted: (socket: tls.TLSSocket) => void, log: Logger): void {
  replaceDrain(torrent, function drain (this: DrainingTorrent): void {
    if (this.destroyed || this.paused || this._numConns >= this.client.maxConns) return
    const peer = this._queue.shift()
    if (peer === undefined) return
    const at = peer.addr.lastIndexOf(':')
    const host = peer.addr.slice(0, at).replace(/^\[|\]$/g, '')
    const port = Number(peer.addr.slice(at + 1))
    const conn = tls.connect({ ...volumeTls.client, host, port })
    peer.conn = conn
    let secured = false
    conn.once('secureConnect', () => {
      secured = true
      if (this.destroyed) return
      admitted(conn)
      peer.onConnect()
    })
    conn.once('error', (err: Error) => {
      if (secured || !isHandshakeRefusal(err)) log.debug('BitTorrent wire failed', { peer: peer.addr, err: err.message })
      else log.warn('a BitTorrent peer did not prove the volume key', { peer: peer.addr, err: err.message })
      peer.destroy(err)
    })
    peer.startConnectTimeout()
    conn.on('close', () => {
      // A torrent that has every piece has nothing to fetch: its wires to seeders are closed on purpose.
      if (this.destroyed || this.done || peer.retries >= RECONNECT_WAIT.length) return
      const retry = setTimeout(() => {
        if (this.destroyed) return
        const again = this._addPeer(peer.addr, 'tcp', peer.source)
        if (again !== null && again !== undefined) again.retries = peer.retries + 1
      }, RECONNECT_WAIT[peer.retries])
      retry.unref()
    })
  })
}

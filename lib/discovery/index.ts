// Peer discovery over mDNS (bonjour-service): each node publishes `_swarmfs._tcp` with its volume
// id, node id and ports in TXT, and browses the same type. Only services of our volume are reported.
//
// Everything in a service record comes from the LAN and is untrusted: the TXT is validated before a
// peer is reported, and no packet, however malformed, may throw out of this module (an exception in
// a socket listener would take the whole node down).
import { isNodeId } from '../core/ids.js'
import { SwarmError } from '../core/errors.js'
import { EventEmitter } from 'node:events'
import os from 'node:os'
import Bonjour, { type Browser, type Service } from 'bonjour-service'
import type { Logger } from '../core/log.js'

export const SERVICE_TYPE = 'swarmfs'

export interface DiscoveryOptions {
  volumeId: string
  nodeId: string
  httpPort: number
  torrentPort: number
  /** IPv4 address of the interface to multicast on and to prefer in peers' addresses; all interfaces if absent. */
  address?: string
  log: Logger
  /** false: only look for peers (a node still joining has nothing to serve yet). */
  publish?: boolean
}

export interface Peer {
  nodeId: string
  /** An IPv4 address of the peer. */
  host: string
  httpPort: number
  torrentPort: number
}

export interface DiscoveryEvents {
  peer: [peer: Peer]
  'peer-down': [peer: { nodeId: string }]
}

/** The subset of multicast-dns's emitter this module talks to (bonjour-service keeps it private). */
interface Mdns {
  on (event: string, listener: (...args: any[]) => void): unknown
  once (event: string, listener: (...args: any[]) => void): unknown
  removeListener (event: string, listener: (...args: any[]) => void): unknown
  emit (event: string, ...args: unknown[]): boolean
}

/** multicast-dns options, which bonjour-service passes through but types as ServiceConfig. */
interface MdnsOptions {
  interface?: string
  bind?: string
}

const PORT = /^[0-9]{1,5}$/
/**
 * Services of our volume reported at once. Anyone on the LAN can announce any number of records
 * with our volume id (it is public): beyond this, new ones are dropped until some go away.
 */
const MAX_REPORTED = 256

function parsePort (value: unknown): number | null {
  if (typeof value !== 'string' || !PORT.test(value)) return null
  const port = Number(value)
  return port >= 1 && port <= 65535 ? port : null
}

function ipv4ToInt (address: string): number | null {
  const parts = address.split('.')
  if (parts.length !== 4 || !parts.every(p => /^[0-9]{1,3}$/.test(p) && Number(p) <= 255)) return null
  return parts.reduce((n, p) => ((n << 8) | Number(p)) >>> 0, 0)
}

const isIPv4 = (address: unknown): address is string => typeof address === 'string' && ipv4ToInt(address) !== null

/** The netmask of the local interface holding `address`, or /24 when it is not (yet) configured here. */
function netmaskOf (address: string): string {
  for (const infos of Object.values(os.networkInterfaces())) {
    const match = infos?.find(i => i.family === 'IPv4' && i.address === address)
    if (match !== undefined) return match.netmask
  }
  return '255.255.255.0'
}

function sameSubnet (a: string, b: string, netmask: string): boolean {
  const [x, y, m] = [ipv4ToInt(a), ipv4ToInt(b), ipv4ToInt(netmask)]
  return x !== null && y !== null && m !== null && ((x & m) >>> 0) === ((y & m) >>> 0)
}

export class Discovery extends EventEmitter<DiscoveryEvents> {
  private readonly log: Logger
  private bonjour: Bonjour | null = null
  private browser: Browser | null = null
  private opened: Promise<void> | null = null
  private closed: Promise<void> | null = null
  /** Peers reported, by service fqdn, so 'peer-down' is only sent for what 'peer' announced. */
  private readonly reported = new Map<string, Peer>()

  /** Problems of the host (not of packets) already logged as warnings; repeats go to debug. */
  private readonly warned = new Set<string>()

  constructor (private readonly opts: DiscoveryOptions) {
    super()
    checkOptions(opts)
    this.log = opts.log.child({ component: 'discovery' })
  }

  /**
   * Binds the mDNS socket, publishes our service and starts browsing. Rejects if the socket cannot
   * be bound. An instance is used once: start, then stop; calling start again returns the first start.
   */
  start (): Promise<void> {
    if (this.closed !== null) return Promise.reject(new SwarmError('SWARMFS_STOPPING', 'discovery was stopped; create a new one'))
    this.opened ??= this.open()
    return this.opened
  }

  /** Asks the network again for services (answers bring new or changed peers); meant to be called periodically. */
  refresh (): void {
    this.browser?.update()
  }

  /** Sends goodbyes for our service and closes the socket. Safe to call twice, before start, or during it. */
  stop (): Promise<void> {
    this.closed ??= this.close()
    return this.closed
  }

  private async open (): Promise<void> {
    const mdnsOptions = this.mdnsOptions() as unknown as ConstructorParameters<typeof Bonjour>[0]
    const bonjour = new Bonjour(mdnsOptions, (err: Error) => this.log.warn('mdns send failed', { err }))
    this.bonjour = bonjour
    const mdns = mdnsOf(bonjour)
    this.guard(mdns)
    try {
      await bound(mdns)
    } catch (err) {
      this.bonjour = null
      await new Promise<void>(resolve => bonjour.destroy(() => resolve()))
      throw err
    }
    if (this.closed !== null) return // stop() came while binding; it closes what we have

    const { nodeId, volumeId, httpPort, torrentPort } = this.opts
    // probe: false because the name is unique by node id, and bonjour's probe reports a clash with
    // console.log (stdout) and a silent unpublish; the host name is ours too, so we never answer
    // for the machine's own `<hostname>.local`, which a system responder (avahi) may own. Peers
    // only use IPv4, so AAAA records would only make every packet bigger.
    if (this.opts.publish !== false) bonjour.publish({
      name: `swarmfs-${nodeId}`,
      type: SERVICE_TYPE,
      port: httpPort,
      host: `swarmfs-${nodeId}.local`,
      probe: false,
      disableIPv6: true,
      txt: { v: volumeId, n: nodeId, h: String(httpPort), t: String(torrentPort) }
    })
    // No txt filter here: bonjour's filter throws on a service that comes without a TXT record.
    const browser = bonjour.find({ type: SERVICE_TYPE })
    browser.on('up', service => this.onService(service))
    browser.on('srv-update', service => this.onService(service))
    browser.on('txt-update', service => this.onService(service))
    browser.on('down', service => this.onDown(service))
    this.browser = browser
    this.log.debug('discovery started', { address: this.opts.address })
  }

  private async close (): Promise<void> {
    await this.opened?.catch(() => {}) // a start that failed has cleaned up after itself
    const bonjour = this.bonjour
    if (bonjour === null) return
    this.bonjour = null
    this.browser?.stop()
    this.browser = null
    this.reported.clear()
    await new Promise<void>(resolve => bonjour.unpublishAll(() => resolve()))
    await new Promise<void>(resolve => bonjour.destroy(() => resolve()))
    this.log.debug('discovery stopped')
  }

  private mdnsOptions (): MdnsOptions {
    if (this.opts.address === undefined) return {}
    // multicast-dns binds to `interface` when `bind` is not given; a socket bound to a unicast
    // address never receives datagrams sent to 224.0.0.251, so bind the wildcard explicitly and
    // let `interface` choose only the membership and the outgoing interface.
    return { interface: this.opts.address, bind: '0.0.0.0' }
  }

  /** Listener exceptions (a packet bonjour cannot digest) become debug logs instead of crashing the process. */
  private guard (mdns: Mdns): void {
    const emit = mdns.emit.bind(mdns)
    mdns.emit = (event, ...args) => {
      try {
        return emit(event, ...args)
      } catch (err) {
        this.log.debug('mdns packet handling failed', { event, err })
        return true
      }
    }
    // An 'error' without a listener would throw (bind failures are also reported by start()).
    mdns.on('error', (err: Error) => this.log.error('mdns socket error', { err }))
    mdns.on('warning', (err: Error & { syscall?: string }) => this.onWarning(err))
  }

  /**
   * Warnings are undecodable packets (anyone on the LAN can send those: debug) or failed socket
   * calls such as joining the group on an address this host does not have (ours to fix: warn once,
   * since multicast-dns retries every 5 s).
   */
  private onWarning (err: Error & { syscall?: string }): void {
    const key = `${err.syscall ?? ''} ${err.message}`
    if (err.syscall === undefined || this.warned.has(key)) {
      this.log.debug('mdns warning', { err })
      return
    }
    this.warned.add(key)
    this.log.warn('mdns socket call failed; discovery may not hear peers', { err, syscall: err.syscall, address: this.opts.address })
  }

  private onService (service: Service): void {
    const fqdn = service.fqdn
    const peer = this.peerOf(service)
    const before = this.reported.get(fqdn)
    if (peer === null || (before === undefined && this.reported.size >= MAX_REPORTED)) {
      // A service we reported changed into one we must not use: it is gone for our purposes.
      if (before !== undefined) this.forget(fqdn, before)
      // bonjour-service keeps every service it hears in a list it searches for each packet: a
      // flood of records of other volumes (or junk) would grow it without end. Only ours stay.
      this.dropFromBrowser(fqdn)
      return
    }
    if (before !== undefined && samePeer(before, peer)) return
    this.reported.set(fqdn, peer)
    this.log.debug('peer', { peer: peer.nodeId, host: peer.host, httpPort: peer.httpPort, torrentPort: peer.torrentPort })
    this.later(() => this.emit('peer', peer))
  }

  private dropFromBrowser (fqdn: string): void {
    const browser = this.browser as unknown as { removeService?: (fqdn: string) => void } | null
    // Its 'down' event comes back to onDown, which ignores what was never reported.
    process.nextTick(() => browser?.removeService?.(fqdn))
  }

  private onDown (service: Service): void {
    const before = this.reported.get(service.fqdn)
    if (before !== undefined) this.forget(service.fqdn, before)
  }

  private forget (fqdn: string, peer: Peer): void {
    this.reported.delete(fqdn)
    this.log.debug('peer down', { peer: peer.nodeId })
    this.later(() => this.emit('peer-down', { nodeId: peer.nodeId }))
  }

  /**
   * Our listeners run outside the mDNS call stack: the guard around it would otherwise swallow
   * their exceptions as if a packet had been bad. Nothing is reported once stop() was called.
   */
  private later (report: () => void): void {
    process.nextTick(() => { if (this.closed === null) report() })
  }

  /** The peer a service stands for, or null if it is ours, of another volume, or malformed. */
  private peerOf (service: Service): Peer | null {
    const txt: Record<string, unknown> = typeof service.txt === 'object' && service.txt !== null ? service.txt : {}
    if (txt.v !== this.opts.volumeId) {
      this.log.debug('ignoring service of another volume', { service: service.name, peerVolume: txt.v })
      return null
    }
    if (txt.n === this.opts.nodeId) return null
    const nodeId = isNodeId(txt.n) ? txt.n : null
    const httpPort = parsePort(txt.h)
    // 0: the node does not take BitTorrent connections (yet).
    const torrentPort = txt.t === '0' ? 0 : parsePort(txt.t)
    const host = this.pickAddress(service)
    // One service name per node id, so a node can never be listed twice under two names.
    const nameMatches = nodeId !== null && service.name === `swarmfs-${nodeId}`
    if (nodeId === null || !nameMatches || httpPort === null || torrentPort === null || host === null) {
      this.log.debug('ignoring malformed service', { service: service.name, txt, addresses: service.addresses })
      return null
    }
    return { nodeId, host, httpPort, torrentPort }
  }

  /**
   * One IPv4 address of the service: one in our subnet if we have an address, else the one its
   * packet came from (what the LAN routes), else the first announced. bonjour-service announces
   * every interface of the peer's machine, including ones we cannot reach (docker, VPN).
   */
  private pickAddress (service: Service): string | null {
    const candidates = (Array.isArray(service.addresses) ? service.addresses : []).filter(isIPv4)
    const source = service.referer?.address
    const ours = this.opts.address
    if (ours !== undefined) {
      const mask = netmaskOf(ours)
      const near = candidates.find(a => sameSubnet(a, ours, mask))
      if (near !== undefined) return near
    }
    if (isIPv4(source) && candidates.includes(source)) return source
    if (candidates.length > 0) return candidates[0]
    return isIPv4(source) ? source : null
  }
}

function checkOptions (opts: DiscoveryOptions): void {
  const port = (p: number): boolean => Number.isInteger(p) && p >= 1 && p <= 65535
  if (!isNodeId(opts.nodeId)) throw new SwarmError('SWARMFS_INTERNAL', `discovery: node id must be 16 lowercase hex characters, got ${JSON.stringify(opts.nodeId)}`)
  if (opts.volumeId.length === 0) throw new SwarmError('SWARMFS_INTERNAL', 'discovery: empty volume id')
  if (!port(opts.httpPort) || !(port(opts.torrentPort) || opts.torrentPort === 0)) throw new SwarmError('SWARMFS_INTERNAL', `discovery: ports must be integers 1..65535 (torrent port 0: none), got ${opts.httpPort} and ${opts.torrentPort}`)
  if (opts.address !== undefined && !isIPv4(opts.address)) throw new SwarmError('SWARMFS_INTERNAL', `discovery: address must be an IPv4 address, got ${JSON.stringify(opts.address)}`)
}

function samePeer (a: Peer, b: Peer): boolean {
  return a.nodeId === b.nodeId && a.host === b.host && a.httpPort === b.httpPort && a.torrentPort === b.torrentPort
}

/** bonjour-service keeps its multicast-dns instance private; we need it for error events and the guard. */
function mdnsOf (bonjour: Bonjour): Mdns {
  return (bonjour as unknown as { server: { mdns: Mdns } }).server.mdns
}

/** Resolves once the socket is bound, rejects with the bind error (EADDRINUSE, EACCES, ...). */
function bound (mdns: Mdns): Promise<void> {
  return new Promise((resolve, reject) => {
    const onReady = (): void => { mdns.removeListener('error', onError); resolve() }
    const onError = (err: Error): void => { mdns.removeListener('ready', onReady); reject(err) }
    mdns.once('ready', onReady)
    mdns.once('error', onError)
  })
}

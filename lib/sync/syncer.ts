// Keeps this node's tree in step with its peers: learns peers (mDNS, --peer, notices), tells them
// of every new HEAD at once, fetches a peer's head when it is new to us and merges it. A periodic
// round asks every peer for its head, which catches up whatever a notice missed.
//
// Who is a peer: only a host that finished the TLS handshake of the volume's key (peer-client.ts).
// Anyone on the LAN can announce our volume id over mDNS; such a record is only a place to try.
// A record that fails the handshake is kept as refused (shown by status, never as a peer), and a
// record naming a node already proven at another address moves it only once the new address has
// proven the key and answered with that node id, so a stranger cannot steer a peer away.
import { isNodeId, isObjectId } from '../core/ids.js'
import type { Logger } from '../core/log.js'
import type { Meta, MergeOutcome } from '../meta/meta.js'
import { repackObjects } from '../meta/repack.js'
import type { ObjectStore } from '../meta/object-store.js'
import { fetchPeer, getPeerStatus, notifyPeer } from './peer-client.js'
import { PeerError } from './peer-error.js'

export interface PeerState {
  nodeId: string
  host: string
  httpPort: number
  torrentPort: number
  /** Their HEAD as last heard (status or notice). */
  head: string | null
  lastSeen: number | null
  lastError: string | null
  manual: boolean
  /** It finished the volume's TLS handshake and answered: it holds the key. */
  authenticated: boolean
  /** Its last answer was a failed handshake: whatever is there does not hold the key. */
  refused: boolean
}

/** Where a peer is reached: what a proof or a failure is about. */
type Place = Pick<PeerState, 'host' | 'httpPort' | 'torrentPort'>

function placeOf (p: PeerState): Place {
  return { host: p.host, httpPort: p.httpPort, torrentPort: p.torrentPort }
}

/** The same peer API address (a new torrent port alone is no move). */
function samePlace (a: Pick<Place, 'host' | 'httpPort'>, b: Pick<Place, 'host' | 'httpPort'>): boolean {
  return a.host === b.host && a.httpPort === b.httpPort
}

/** A host that announced the volume (or was named with --peer, or connected to us) and failed the handshake. */
export interface RefusedHost {
  host: string
  port: number | null
  /** The node id it claimed, if it claimed one. */
  nodeId: string | null
  at: number
  reason: string
}

export interface SyncerOptions {
  gitdir: string
  nodeId: string
  volumeKey: string
  meta: Meta
  /** Reads commits (with a cache of parents, so ancestry checks stay cheap as history grows). */
  store: ObjectStore
  merge: (ours: string, theirs: string) => Promise<MergeOutcome>
  conflictName: (name: string, mtimeMs: number, writer: string, attempt?: number) => string
  ports: () => { httpPort: number, torrentPort: number }
  /** A peer proved it holds the key (or its torrent port changed): content may flow with it. */
  peerReady?: (peer: PeerState) => void
  /** A peer that had proven the key no longer answers as one (refused, or left): stop content with it. */
  peerLost?: (peer: PeerState) => void
  log: Logger
  /** How often every peer is asked for its head. */
  pollMs?: number
}

/** The key of the repack among the syncs under way (never a node id). */
const REPACK = 'repack'
/**
 * The repack (meta/repack.ts) keeps the number of packs and loose objects down; it waits for a
 * real pause, so it never runs between the commits of a burst.
 */
const REPACK_IDLE_MS = 10_000
/** Fetches and commits after which the objects are repacked even if syncing never pauses. */
const REPACK_EVERY = 256
/**
 * Bounds on what strangers can make this node remember: mDNS records of our volume id that never
 * proved the key, and refused hosts. Proven peers are bounded by MAX_PEERS.
 */
const MAX_PEERS = 1024
const MAX_UNPROVEN = 32
const MAX_REFUSED = 64
const PROBE_TIMEOUT_MS = 3000

export class Syncer {
  readonly peers = new Map<string, PeerState>()
  /** host:port given by hand; their node ids are learnt from their status. */
  private readonly manual = new Set<string>()
  private readonly busy = new Map<string, Promise<void>>()
  private readonly again = new Set<string>()
  private timer: NodeJS.Timeout | null = null
  private repackTimer: NodeJS.Timeout | null = null
  private readonly repackAbort = new AbortController()
  private packsSinceRepack = 0
  private stopped = false
  private chain: Promise<void> = Promise.resolve()
  /** Refused hosts by host:port (or host alone, for connections to us), oldest first. */
  private readonly refusedHosts = new Map<string, RefusedHost>()
  /** Addresses being checked before a proven peer moves there. */
  private readonly moving = new Set<string>()

  constructor (private readonly opts: SyncerOptions) {}

  start (): void {
    const tick = (): void => {
      this.timer = setTimeout(() => {
        void this.pollAll().finally(() => { if (!this.stopped) tick() })
      }, this.opts.pollMs ?? 5000)
    }
    tick()
    void this.pollAll()
  }

  stop (): void {
    this.stopped = true
    if (this.timer !== null) clearTimeout(this.timer)
    if (this.repackTimer !== null) clearTimeout(this.repackTimer)
    this.repackAbort.abort()
  }

  /** Waits for fetches and merges under way (for a clean stop). */
  async settle (): Promise<void> {
    while (this.busy.size > 0) await Promise.allSettled([...this.busy.values()])
  }

  addManualPeer (host: string, port: number): void {
    this.manual.add(`${host}:${port}`)
    void this.pollManual(host, port)
  }

  /**
   * A peer announced by mDNS (or re-announced with new ports): a place to try. `proven`: the
   * record comes over a connection that finished the volume's handshake (a notice, a status).
   */
  peerSeen (p: { nodeId: string, host: string, httpPort: number, torrentPort: number }, manual = false, proven = false): void {
    if (p.nodeId === this.opts.nodeId) return
    const known = this.peers.get(p.nodeId)
    if (known !== undefined) {
      const moved = !samePlace(known, p)
      if (moved && !proven && known.authenticated && !known.refused && known.lastError === null) {
        // A proven peer that still answers where it is moves only to an address that proves it.
        this.verifyMove(known, p)
        return
      }
      const changed = moved || known.torrentPort !== p.torrentPort
      Object.assign(known, { host: p.host, httpPort: p.httpPort, torrentPort: p.torrentPort, manual: known.manual || manual })
      if (moved && !proven) {
        // Not proven at the new address yet: whatever was proven was about the old one.
        if (known.authenticated) this.opts.peerLost?.(known)
        known.authenticated = false
        known.refused = false
      } else if (changed && known.authenticated) {
        this.opts.peerReady?.(known)
      }
    } else {
      if (this.peers.size >= MAX_PEERS || (!proven && this.unprovenCount() >= MAX_UNPROVEN)) {
        this.opts.log.debug('not taking another unproven peer record', { peer: p.nodeId, host: p.host })
        return
      }
      this.peers.set(p.nodeId, { ...p, head: null, lastSeen: null, lastError: null, manual, authenticated: false, refused: false })
      this.opts.log.info('peer found', { peer: p.nodeId, host: p.host, port: p.httpPort })
    }
    this.schedule(p.nodeId)
  }

  private unprovenCount (): number {
    let n = 0
    for (const p of this.peers.values()) if (!p.authenticated) n++
    return n
  }

  /** Moves a proven peer to `to` once `to` proved the key and answered with the peer's node id. */
  private verifyMove (p: PeerState, to: { nodeId: string, host: string, httpPort: number, torrentPort: number }): void {
    const where = `${to.host}:${to.httpPort}`
    if (this.moving.has(where) || this.moving.size >= MAX_UNPROVEN) return
    this.moving.add(where)
    getPeerStatus({ host: to.host, port: to.httpPort, key: this.opts.volumeKey, timeoutMs: PROBE_TIMEOUT_MS })
      .then(status => {
        const id = (status as { nodeId?: unknown } | null)?.nodeId
        if (id !== p.nodeId) throw new PeerError('SWARMFS_PEER_INVALID', `it answers as node ${String(id)}`)
        this.opts.log.info('peer moved', { peer: p.nodeId, from: p.host, to: to.host })
        this.peerSeen(to, false, true)
      })
      .catch(err => {
        this.opts.log.warn('an mDNS record names a known peer at another address that does not prove it; the peer stays where it is', { peer: p.nodeId, at: p.host, claimed: where, err: (err as Error).message })
        this.refuse({ host: to.host, port: to.httpPort, nodeId: to.nodeId, reason: (err as Error).message })
      })
      .finally(() => this.moving.delete(where))
  }

  /** A connection to our server from `ip` failed the handshake. */
  refusedConnection (ip: string): void {
    this.refuse({ host: ip.startsWith('::ffff:') ? ip.slice(7) : ip, port: null, nodeId: null, reason: 'connected without proving the volume key' })
  }

  private refuse (r: Omit<RefusedHost, 'at'>): void {
    const id = r.port === null ? r.host : `${r.host}:${r.port}`
    this.refusedHosts.delete(id)
    this.refusedHosts.set(id, { ...r, at: Date.now() })
    while (this.refusedHosts.size > MAX_REFUSED) this.refusedHosts.delete(this.refusedHosts.keys().next().value as string)
  }

  peerGone (nodeId: string): void {
    const p = this.peers.get(nodeId)
    if (p !== undefined && !p.manual) {
      this.peers.delete(nodeId)
      if (p.authenticated) this.opts.peerLost?.(p)
      this.opts.log.info('peer left', { peer: nodeId })
    }
  }

  /** A peer told us its new head (over a connection that proved the key). */
  notified (msg: { nodeId: string, head: string, httpPort: number, torrentPort: number }, host: string): void {
    if (msg.nodeId === this.opts.nodeId) return
    this.peerSeen({ nodeId: msg.nodeId, host, httpPort: msg.httpPort, torrentPort: msg.torrentPort }, false, true)
    const p = this.peers.get(msg.nodeId)
    if (p !== undefined) {
      p.head = msg.head
      p.lastSeen = Date.now()
      this.authenticated(p)
    }
    this.schedule(msg.nodeId)
  }

  /** Tells every peer our new head; a peer that does not answer is asked again at the next round. */
  announce (head: string): void {
    // A commit writes loose objects or a pack (meta/pack-writer.ts): repacked, like a fetch's pack,
    // once syncing pauses, so a node that only writes does not pile them up either.
    this.repackSoon()
    const { httpPort, torrentPort } = this.opts.ports()
    for (const p of this.peers.values()) {
      const at = placeOf(p)
      notifyPeer({ host: at.host, port: at.httpPort, key: this.opts.volumeKey, body: { nodeId: this.opts.nodeId, head, httpPort, torrentPort } })
        .catch(err => this.failed(p, err, at))
    }
  }

  /** Fetches and merges a peer's head, one sync per peer at a time; a request meanwhile runs after. */
  private schedule (nodeId: string): void {
    if (this.stopped) return
    if (this.busy.has(nodeId)) {
      this.again.add(nodeId)
      return
    }
    // One sync at a time for the whole node: isomorphic-git writes a fetched pack's index in
    // place, and a read of the pack meanwhile would cache a half-written index for good.
    const run = this.exclusive(async () => await this.syncWith(nodeId)).catch(err => {
      const p = this.peers.get(nodeId)
      if (p !== undefined) this.failed(p, err)
    }).finally(() => {
      this.busy.delete(nodeId)
      if (this.again.delete(nodeId)) this.schedule(nodeId)
    })
    this.busy.set(nodeId, run)
  }

  private exclusive<T> (fn: () => Promise<T>): Promise<T> {
    const result = this.chain.then(fn)
    this.chain = result.then(() => {}, () => {})
    return result
  }

  private async syncWith (nodeId: string): Promise<void> {
    const p = this.peers.get(nodeId)
    if (p === undefined) return
    const meta = this.opts.meta
    const heard = p.head
    if (heard !== null && (heard === meta.head || await this.contains(meta.head, heard))) return
    let theirs: string | null = heard
    if (heard === null || !await this.has(heard)) {
      const at = placeOf(p)
      const t0 = performance.now()
      try {
        theirs = await this.fetch(p, at)
        this.opts.log.debug('fetched', { peer: nodeId, head: theirs, ms: Math.round(performance.now() - t0) })
      } catch (err) {
        this.failed(p, err, at)
        return
      }
      if (!this.provenAt(p, at)) return
    }
    if (theirs === null || this.stopped) return
    // A notice that came during the fetch told a head the fetch may not have seen: overwritten
    // here, the sync scheduled after this one would find nothing to do and the change would wait
    // for the next poll (seen: 2-5 s behind after a `cp -a` of 59 entries).
    if (p.head === heard) p.head = theirs
    if (theirs === meta.head || await this.contains(meta.head, theirs)) return
    const outcome = await meta.integrate(theirs, this.opts.merge, this.opts.conflictName)
    this.opts.log.debug('synced', { peer: nodeId, kind: outcome.kind, head: outcome.commit })
  }

  /** A peer's head, fetched as a pack (repacked later with the others). */
  private async fetch (p: PeerState, at: Place): Promise<string | null> {
    const head = await fetchPeer({ gitdir: this.opts.gitdir, host: at.host, port: at.httpPort, key: this.opts.volumeKey, peerId: p.nodeId })
    this.repackSoon()
    return head
  }

  /**
   * Each fetch leaves a pack and each commit loose objects or a pack; they are rolled together
   * (meta/repack.ts) once syncing has been quiet for a moment, or after REPACK_EVERY of them with
   * no pause. The repack is git's own process beside this one, not part of the sync chain: a change
   * that arrives meanwhile does not wait for it.
   */
  private repackSoon (): void {
    if (this.repackTimer !== null) clearTimeout(this.repackTimer)
    this.repackTimer = null
    if (++this.packsSinceRepack >= REPACK_EVERY) {
      this.repackNow()
      return
    }
    this.repackTimer = setTimeout(() => { this.repackTimer = null; this.repackNow() }, REPACK_IDLE_MS)
  }

  private repackNow (): void {
    if (this.stopped || this.busy.has(REPACK)) return
    this.packsSinceRepack = 0
    const t0 = performance.now()
    const run = repackObjects(this.opts.gitdir, this.repackAbort.signal)
      .then(outcome => this.opts.log.debug('objects repacked', { ...outcome, ms: Math.round(performance.now() - t0) }))
      // The objects still read where they are; the next pause tries again.
      .catch(err => {
        if (this.stopped) return
        this.opts.log.warn('objects stay as they are: repack failed', { err: (err as Error).message })
      })
      .finally(() => this.busy.delete(REPACK))
    this.busy.set(REPACK, run)
  }

  private async has (oid: string): Promise<boolean> {
    try {
      await this.opts.store.readCommit(oid)
      return true
    } catch {
      return false
    }
  }

  /** Whether `ancestor` is already part of `head`'s history. */
  private async contains (head: string | null, ancestor: string): Promise<boolean> {
    if (head === null || !await this.has(ancestor)) return false
    if (head === ancestor) return true
    try {
      return await this.opts.store.isDescendent(head, ancestor)
    } catch {
      return false
    }
  }

  private async pollAll (): Promise<void> {
    const work: Array<Promise<void>> = []
    for (const p of this.peers.values()) work.push(this.pollPeer(p))
    for (const hp of this.manual) {
      const at = hp.lastIndexOf(':')
      work.push(this.pollManual(hp.slice(0, at), Number(hp.slice(at + 1))))
    }
    await Promise.allSettled(work)
  }

  private async pollPeer (p: PeerState): Promise<void> {
    const at = placeOf(p)
    try {
      const status = await getPeerStatus({ host: at.host, port: at.httpPort, key: this.opts.volumeKey, timeoutMs: PROBE_TIMEOUT_MS })
      const id = (status as { nodeId?: unknown } | null)?.nodeId
      if (id !== p.nodeId) throw new PeerError('SWARMFS_PEER_INVALID', `${at.host}:${at.httpPort} answers as node ${String(id)}, not ${p.nodeId}`)
      const head = headOf(status)
      if (!this.provenAt(p, at)) return
      if (head !== undefined && head !== p.head) {
        p.head = head
        this.schedule(p.nodeId)
      }
    } catch (err) {
      this.failed(p, err, at)
    }
  }

  private async pollManual (host: string, port: number): Promise<void> {
    try {
      const status = await getPeerStatus({ host, port, key: this.opts.volumeKey, timeoutMs: PROBE_TIMEOUT_MS }) as Record<string, unknown>
      const nodeId = isNodeId(status.nodeId) ? status.nodeId : null
      if (nodeId === null) return
      this.refusedHosts.delete(`${host}:${port}`)
      const torrentPort = Number.isInteger(status.torrentPort) ? status.torrentPort as number : 0
      this.peerSeen({ nodeId, host, httpPort: port, torrentPort }, true, true)
      const p = this.peers.get(nodeId)
      const head = headOf(status)
      if (p !== undefined && head !== undefined) {
        p.head = head
        p.lastSeen = Date.now()
      }
      if (p !== undefined) this.authenticated(p)
    } catch (err) {
      if (isRefusal(err)) this.refuse({ host, port, nodeId: null, reason: (err as Error).message })
      this.opts.log.debug('manual peer unreachable', { peer: `${host}:${port}`, err: (err as Error).message })
    }
  }

  /**
   * A call to `at` proved the key and answered as `p`. An mDNS record may have moved `p` while
   * the call was under way: the proof is about `at`, so `p` goes back there, proven, rather than
   * being taken as proven where the record put it. False when `p` is no longer a peer.
   */
  private provenAt (p: PeerState, at: Place): boolean {
    if (this.peers.get(p.nodeId) !== p) return false
    if (!samePlace(p, at)) this.peerSeen({ nodeId: p.nodeId, ...at }, p.manual, true)
    p.lastSeen = Date.now()
    p.lastError = null
    this.authenticated(p)
    return true
  }

  private authenticated (p: PeerState): void {
    p.refused = false
    if (p.authenticated) return
    p.authenticated = true
    this.refusedHosts.delete(`${p.host}:${p.httpPort}`)
    this.opts.peerReady?.(p)
  }

  /** A call to `at` (where `p` was reached, by default where it is now) failed. */
  private failed (p: PeerState, err: unknown, at: Place = placeOf(p)): void {
    const message = (err as Error).message ?? String(err)
    const refused = isRefusal(err)
    if (this.peers.get(p.nodeId) !== p || !samePlace(p, at)) {
      // About a place `p` is no longer at: it says nothing of where `p` is now.
      if (refused) this.refuse({ host: at.host, port: at.httpPort, nodeId: p.nodeId, reason: message })
      return
    }
    if (p.lastError !== message) {
      this.opts.log[refused ? 'warn' : 'info']('sync with a peer failed', { peer: p.nodeId, host: p.host, err: message })
    }
    p.lastError = message
    if (!refused) return
    p.refused = true
    this.refuse({ host: p.host, port: p.httpPort, nodeId: p.nodeId, reason: message })
    if (p.authenticated) {
      p.authenticated = false
      this.opts.peerLost?.(p)
    }
  }

  /**
   * Peers for `swarmfs status` (only hosts not refused), and whether every peer heard from has our
   * HEAD; refused: the hosts that failed the volume's handshake, newest first.
   */
  report (): { peers: PeerState[], inSync: boolean, refused: RefusedHost[] } {
    const peers = [...this.peers.values()].filter(p => !p.refused).map(p => ({ ...p }))
    const head = this.opts.meta.head
    const inSync = !this.opts.meta.pendingChanges && peers.every(p => p.lastError !== null || p.head === head)
    const refused = [...this.refusedHosts.values()].reverse().map(r => ({ ...r }))
    return { peers, inSync, refused }
  }
}

/** A failed handshake, or an answer that cannot come from the node it claims to be. */
function isRefusal (err: unknown): boolean {
  return err instanceof PeerError && (err.code === 'SWARMFS_PEER_KEY_REFUSED' || err.code === 'SWARMFS_PEER_INVALID')
}

function headOf (status: unknown): string | null | undefined {
  if (typeof status !== 'object' || status === null) return undefined
  const head = (status as Record<string, unknown>).head
  if (head === null) return null
  return isObjectId(head) ? head : undefined
}

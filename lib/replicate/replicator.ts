// Keeps every content of the volume on enough disks. Each round (every couple of seconds, and soon
// after the tree changes) it
//   1. takes stock of this disk: the contents of the tree it holds completely, its space;
//   2. asks every peer for the same (GET /holdings; unchanged answers are one line);
//   3. plans (plan.ts): the copies this node should make, and the copies it may drop;
//   4. announces the copies it chose (they appear in its holdings as copies at 0 bytes), and starts
//      the first one announced at least a round ago (one at a time: a copy fetches a whole content
//      at full speed): by then every peer has seen the announcement, and a peer that chose the
//      same copy from an older view has withdrawn (plan.ts ranks announced copies first); a copy
//      made anyway beyond the target (views that disagreed) is dropped again by its maker;
//   5. when the disk is below its reserve, or reads on this node want room their cache of fetched
//      pieces cannot give (short()), or a copy it made turned out extra, announces drops of
//      copies the volume has beyond its target, and makes those that peers heard in this round,
//      asked after the announcement showed, confirm (drops.ts).
// A peer not heard from stops being a candidate for copies at once, and its contents stop counting
// once the grace period has passed since it was last heard from; then other nodes copy them. For a
// drop only the peers that answered in this round count.
import { SwarmError } from '../core/errors.js'
import fsp from 'node:fs/promises'
import { performance } from 'node:perf_hooks'
import type { Logger } from '../core/log.js'
import { DropAnnouncements, planDrops } from './drops.js'
import { parseHoldings, type CopyProgress, type Holdings } from './holdings.js'
import { plan, retireObstacle, retireRemaining, type ContentNeed, type NodeView, type Plan } from './plan.js'

export interface ReplicaPeer { nodeId: string, host: string, httpPort: number }

export interface ReplicatorOptions {
  nodeId: string
  /** Directory on the disk (its filesystem's space is reported). */
  disk: string
  /** The contents this disk holds completely (ContentStore: the one owner of content/). */
  held: { heldInfohashes: () => Promise<Set<string>>, heldInfohashesSync: () => Set<string> }
  /** Bytes this disk keeps free: no copy is taken that would go below, and copies beyond the target are dropped to get back above. */
  reserve: (total: number) => number
  /** The contents of the tree now (each distinct infohash once). */
  contents: () => ContentNeed[]
  /** Contents on this disk that reads fetched (a cache), as opposed to copies made for the target or written here. */
  cachedByReads?: { has: (infohash: string) => boolean }
  settings: () => { copies: number, graceMs: number }
  /** Peers that proved they hold the volume key. */
  peers: () => ReplicaPeer[]
  /** A peer's GET /holdings?have=<generation> answer (parsed JSON), or a rejection after `timeoutMs`. */
  fetchHoldings: (peer: ReplicaPeer, have: string | null, timeoutMs: number) => Promise<unknown>
  /** Fetches a whole content onto this disk, reporting bytes done. */
  copy: (infohash: string, progress: (done: number) => void) => Promise<void>
  /** Removes a complete content from this disk (and stops seeding it). */
  drop: (infohash: string) => Promise<void>
  retiring: boolean
  /** After every round (a retiring node checks whether it is done). */
  onRound?: () => void
  log: Logger
  intervalMs?: number
}

interface PeerRecord {
  holdings: Holdings | null
  lastSeen: number
  /** When the request of its last answer was sent (performance.now()). */
  heardAt: number
  host: string
  httpPort: number
}

export interface ReplicationStatus {
  copies: number
  graceMs: number
  retiring: boolean
  contents: number
  underTarget: number
  lost: number
  /** Every node this one knows of, itself first. */
  nodes: Array<{ nodeId: string, up: boolean, counts: boolean, total: number, free: number, reserve: number, complete: number, completeBytes: number, cached: number, retiring: boolean, copying: CopyProgress[], lastSeen: number | null }>
  /** For a retiring node: contents still waiting for enough copies elsewhere. */
  retireRemaining: number | null
  retireRemainingBytes: number | null
}

const DEFAULT_INTERVAL_MS = 2000
/** Copies announced at once: enough to keep a node busy between rounds, few enough to keep holdings small. */
const MAX_ANNOUNCED = 256
/** A peer unheard for this many rounds is no longer up (no new copies go to it). */
const UP_ROUNDS = 3
const HOLDINGS_TIMEOUT_MS = 3000
/** After a start, how long the node listens before it starts a copy. */
const STARTUP_QUIET_MS = 3000

export class Replicator {
  private readonly peers = new Map<string, PeerRecord>()
  private timer: NodeJS.Timeout | null = null
  private soon: NodeJS.Timeout | null = null
  private running: Promise<void> | null = null
  private stopped = false
  private copying: CopyProgress | null = null
  private copyWork: Promise<void> | null = null
  /** What the last round saw: announcements older than `before` are confirmed; the contents' lengths. */
  private confirmed: { before: number, length: ReadonlyMap<string, number> } = { before: 0, length: new Map() }
  /** Copies this node announced, by infohash: when. */
  private readonly announced = new Map<string, number>()
  /** Contents this node copied to meet the target (this run): the ones it may trim when they turn out extra. */
  private readonly replicated = new Set<string>()
  /** Drops this node announced (its holdings list them as `dropping`). */
  private readonly drops = new DropAnnouncements()
  /** Dropped contents, by the takeStock count when the drop ended: a stock begun earlier may still list them. */
  private readonly dropEnded = new Map<string, number>()
  private stocks = 0
  private shownStock = 0
  private startedAt = 0
  private own: Holdings | null = null
  private ownKey = ''
  private generation = 0
  private lastPlan: Plan | null = null
  private views: NodeView[] = []
  /** Reads on this node want room the cache cannot give (short()): until a copy is dropped, for a few rounds at most. */
  private roomWanted = false
  private roomWantedAt = 0
  private pokedDuringRound = false
  retiring: boolean
  private readonly intervalMs: number

  constructor (private readonly opts: ReplicatorOptions) {
    this.retiring = opts.retiring
    this.intervalMs = opts.intervalMs ?? DEFAULT_INTERVAL_MS
  }

  start (): void {
    this.startedAt = Date.now()
    this.timer = setInterval(() => this.kick(), this.intervalMs)
    this.kick()
  }

  /**
   * Reads on this node need room their cache cannot give: until a copy is dropped, this disk counts
   * as below its reserve (to its peers too, who plan with the same figures), so the plan lets it
   * drop a copy the volume holds beyond its target, as any disk short of room does.
   */
  short (): void {
    if (this.roomWanted || this.retiring) return
    this.roomWanted = true
    this.roomWantedAt = Date.now()
    this.opts.log.debug('reads want room: looking for a copy beyond the target to drop')
    this.poke(0)
  }

  /**
   * Bytes of the copies on this disk now that the volume holds beyond its target: those the
   * other nodes, as last heard, hold enough copies of without this one.
   */
  reclaimable (): number {
    const { copies } = this.opts.settings()
    const others = this.views.filter(n => n.nodeId !== this.opts.nodeId && n.live && !n.retiring)
    const here = this.opts.held.heldInfohashesSync()
    let bytes = 0
    for (const c of this.opts.contents()) {
      if (here.has(c.infohash) && others.filter(n => n.complete.has(c.infohash) && !n.dropping.has(c.infohash)).length >= copies) bytes += c.length
    }
    return bytes
  }

  /** A round soon (the tree changed, a copy ended); rounds never overlap: one under way is followed by another. */
  poke (delayMs = 200): void {
    if (this.stopped || this.soon !== null) return
    this.soon = setTimeout(() => {
      this.soon = null
      if (this.running !== null) this.pokedDuringRound = true
      else this.kick()
    }, delayMs)
  }

  private kick (): void {
    if (this.stopped || this.running !== null) return
    this.running = this.round()
      .catch(err => this.opts.log.warn('replication round failed', { err: (err as Error).message }))
      .finally(() => {
        this.running = null
        if (!this.stopped) this.opts.onRound?.()
        if (this.pokedDuringRound) {
          this.pokedDuringRound = false
          this.poke(0)
        }
      })
  }

  /**
   * No new rounds or copies. A copy under way is not waited for (a large one would hold a stop for
   * minutes): stopping the torrent service next makes its fetch fail, and what it fetched stays
   * in partial/ for a later run.
   */
  async stop (): Promise<void> {
    this.stopped = true
    if (this.timer !== null) clearInterval(this.timer)
    if (this.soon !== null) clearTimeout(this.soon)
    await this.running
  }

  /** This disk's holdings as peers get them (`unchanged` when they have this generation). */
  async holdings (have: string | null): Promise<unknown> {
    const own = this.own ?? await this.takeStock(this.opts.contents())
    if (have === own.generation) return { v: 1, unchanged: true, generation: own.generation }
    return own
  }

  /**
   * This disk's holdings, which peers get from now on. Stocks taken at once (a round's, an
   * announcement's) are shown in the order they began, so a drop announced stays listed until it
   * is done, and a content dropped is never listed as complete again by a stock that read the
   * directory before the drop: what drops.ts's rule rests on.
   */
  private async takeStock (contents: ContentNeed[]): Promise<Holdings> {
    const stock = ++this.stocks
    const st = await fsp.statfs(this.opts.disk)
    const names = await this.opts.held.heldInfohashes()
    if (stock < this.shownStock && this.own !== null) return this.own
    const complete = contents.filter(c => names.has(c.infohash) && !((this.dropEnded.get(c.infohash) ?? 0) >= stock)).map(c => c.infohash).sort()
    const total = st.blocks * st.bsize
    const reserve = this.opts.reserve(total)
    const free = this.roomWanted ? Math.min(st.bavail * st.bsize, reserve - 1) : st.bavail * st.bsize
    const copying: CopyProgress[] = this.copying !== null ? [{ ...this.copying }] : []
    const length = new Map(contents.map(c => [c.infohash, c.length]))
    for (const ih of this.announced.keys()) if (ih !== this.copying?.infohash) copying.push({ infohash: ih, done: 0, total: length.get(ih) ?? 0, started: false })
    const cached = complete.filter(ih => this.opts.cachedByReads?.has(ih) === true)
    const doc = { total, free, reserve, complete, cached, copying, dropping: this.drops.list().sort(), retiring: this.retiring }
    // Free space in MiB for the generation: a peer refetches the list when something it plans on changed.
    const key = JSON.stringify({ ...doc, free: Math.floor(free / 2 ** 20), copying: doc.copying.map(c => [c.infohash, Math.floor(c.done / 2 ** 24)]) })
    if (key !== this.ownKey) {
      this.ownKey = key
      this.generation++
    }
    this.own = { v: 1, nodeId: this.opts.nodeId, generation: `${process.pid}.${this.generation}`, ...doc }
    this.shownStock = stock
    this.drops.shown(performance.now())
    for (const [ih, at] of this.dropEnded) if (at < stock) this.dropEnded.delete(ih)
    return this.own
  }

  private async hear (peer: ReplicaPeer): Promise<void> {
    const rec = this.peers.get(peer.nodeId)
    const have = rec?.holdings?.generation ?? null
    const sent = performance.now()
    const answer = parseHoldings(await this.opts.fetchHoldings(peer, have, HOLDINGS_TIMEOUT_MS))
    if (typeof answer === 'string') throw new SwarmError('SWARMFS_BAD_INPUT', `malformed holdings: ${answer}`)
    if ('unchanged' in answer) {
      if (rec === undefined || rec.holdings === null || rec.holdings.generation !== answer.generation) throw new SwarmError('SWARMFS_BAD_INPUT', 'holdings "unchanged" for a generation we do not have')
      rec.lastSeen = Date.now()
      rec.heardAt = sent
      return
    }
    if (answer.nodeId !== peer.nodeId) throw new SwarmError('SWARMFS_PEER_INVALID', `holdings of node ${answer.nodeId} from the address of ${peer.nodeId}`)
    this.peers.set(peer.nodeId, { holdings: answer, lastSeen: Date.now(), heardAt: sent, host: peer.host, httpPort: peer.httpPort })
  }

  private async round (): Promise<void> {
    const contents = this.opts.contents()
    const own = await this.takeStock(contents)
    const peers = this.opts.peers().filter(p => p.nodeId !== this.opts.nodeId)
    const roundStart = performance.now()
    await Promise.all(peers.map(p => this.hear(p).catch(err => {
      this.opts.log.debug('no holdings from a peer', { peer: p.nodeId, err: (err as Error).message })
    })))
    const { copies, graceMs } = this.opts.settings()
    const now = Date.now()
    const views: NodeView[] = [viewOf(own, true, true, Infinity, true)]
    // A peer that left (mDNS said goodbye) is down at once; its contents count for the grace period.
    const present = new Set(peers.map(q => q.nodeId))
    for (const [nodeId, rec] of this.peers) {
      if (rec.holdings === null) continue
      const age = now - rec.lastSeen
      const up = present.has(nodeId) && age < UP_ROUNDS * this.intervalMs + HOLDINGS_TIMEOUT_MS
      // Forgotten once nothing it said counts any more: gone past the grace period, or gone after
      // retiring (its copies stopped counting then). Should it come back, its next answer is heard.
      if (!up && (age >= graceMs || rec.holdings.retiring)) {
        this.peers.delete(nodeId)
        continue
      }
      views.push(viewOf(rec.holdings, up, age < graceMs, rec.heardAt, present.has(nodeId) && rec.heardAt >= roundStart))
    }
    const p = plan(this.opts.nodeId, contents, views, copies)
    this.views = views
    this.lastPlan = p
    if (this.stopped) return
    this.announce(p.copy, own, contents, now)
    // No copy starts in the first seconds after a start: peers found by mDNS a moment later must
    // be heard before this node may conclude that nobody else holds or copies something.
    if (now - this.startedAt >= STARTUP_QUIET_MS) {
      // Announced at least a round ago, and every peer this node knows has answered since: a peer
      // that chose the same copy has seen the announcement, and this node has seen theirs.
      const upWindow = UP_ROUNDS * this.intervalMs + HOLDINGS_TIMEOUT_MS
      const heard = peers.map(q => this.peers.get(q.nodeId)?.lastSeen).filter((at): at is number => at !== undefined && now - at < upWindow)
      const heardAllSince = Math.min(now, ...heard)
      this.confirmed = { before: Math.min(now - this.intervalMs - HOLDINGS_TIMEOUT_MS / 2, heardAllSince), length: new Map(contents.map(c => [c.infohash, c.length])) }
      if (this.copyWork === null) this.startNextCopy()
    }
    await this.dropCopies(contents, views, copies, own)
  }

  /**
   * Drops the copies the plan confirms (for room, or extra copies this node made), then announces
   * the ones it wants next; a round follows at once when there is something to confirm.
   */
  private async dropCopies (contents: ContentNeed[], views: NodeView[], copies: number, own: Holdings): Promise<void> {
    const made = new Set([...this.replicated].filter(ih => ih !== this.copying?.infohash))
    const p = planDrops({ self: this.opts.nodeId, contents, nodes: views, copies, announced: this.drops.map, made })
    const short = own.free < own.reserve
    let dropped = 0
    for (const ih of p.drop) {
      if (ih === this.copying?.infohash || this.stopped) continue
      const ok = await this.opts.drop(ih).then(() => true, err => {
        this.opts.log.debug('not dropping a copy now', { infohash: ih, err: (err as Error).message })
        return false
      })
      // Dropped or not, the stocks begun before now may list it; they are not shown from here on.
      this.dropEnded.set(ih, this.stocks)
      this.drops.done(ih)
      if (!ok) continue
      dropped++
      this.replicated.delete(ih)
      if (short) this.opts.log.info('dropped a copy beyond the target to make room', { infohash: ih, free: own.free, reserve: own.reserve })
      else this.opts.log.info('dropped a copy made beyond the target', { infohash: ih })
    }
    // Reads short of room: until a copy is dropped, there is none to drop, or the drop has waited
    // a few rounds (a read still short calls short() again; meanwhile peers plan with the real figure).
    if (short && (dropped > 0 || p.announce.length === 0 || Date.now() - this.roomWantedAt > UP_ROUNDS * this.intervalMs)) this.roomWanted = false
    const announce = this.retiring || this.stopped ? [] : p.announce.filter(ih => !p.drop.includes(ih))
    const changed = this.drops.update(announce)
    if (!changed && dropped === 0) return
    await this.takeStock(contents)
    // A new announcement is confirmed by the next round's answers: no need to wait for the interval.
    this.poke()
  }

  /** Keeps the announced copies in step with the plan: new choices added (within the room above the reserve), withdrawn ones dropped. */
  private announce (chosen: string[], own: Holdings, contents: ContentNeed[], now: number): void {
    const held = new Set(own.complete)
    const wanted = new Set(this.retiring ? [] : chosen.filter(ih => !held.has(ih)))
    let changed = false
    for (const ih of [...this.announced.keys()]) {
      if (!wanted.has(ih) && ih !== this.copying?.infohash) {
        this.announced.delete(ih)
        changed = true
      }
    }
    const length = new Map(contents.map(c => [c.infohash, c.length]))
    let room = own.free - own.reserve
    for (const ih of this.announced.keys()) room -= length.get(ih) ?? 0
    for (const ih of wanted) {
      if (this.announced.size >= MAX_ANNOUNCED) break
      if (this.announced.has(ih)) continue
      const n = length.get(ih) ?? 0
      if (n > room) continue
      room -= n
      this.announced.set(ih, now)
      changed = true
    }
    // Peers asking from now on see the announcements.
    if (changed) void this.takeStock(contents).catch(() => {})
  }

  /** Starts the first copy the last round confirmed, if any. */
  private startNextCopy (): boolean {
    for (const [ih, at] of this.announced) {
      const length = this.confirmed.length.get(ih)
      if (at >= this.confirmed.before || length === undefined) continue
      this.startCopy({ infohash: ih, length })
      return true
    }
    return false
  }

  private startCopy (c: ContentNeed): void {
    const progress: CopyProgress = { infohash: c.infohash, done: 0, total: c.length, started: true }
    this.copying = progress
    // Peers asking from now on see the transfer under way (it ranks first: plan.ts).
    void this.takeStock(this.opts.contents()).catch(() => {})
    this.opts.log.info('copying a content that has fewer copies than the target', { infohash: c.infohash, length: c.length })
    const started = Date.now()
    this.copyWork = this.opts.copy(c.infohash, done => { progress.done = done })
      .then(() => {
        this.replicated.add(c.infohash)
        this.opts.log.info('copy complete', { infohash: c.infohash, length: c.length, ms: Date.now() - started })
      },
        err => this.stopped
          ? this.opts.log.info('copy interrupted by the stop', { infohash: c.infohash })
          : this.opts.log.warn('copy failed; the next rounds try again', { infohash: c.infohash, err: (err as Error).message }))
      .finally(() => {
        this.copying = null
        this.copyWork = null
        this.announced.delete(c.infohash)
        // The next copy the last round confirmed starts at once: a round (every peer asked, the
        // whole volume planned) costs more than a small copy. Rounds still follow, at most one
        // per poke delay, and every interval.
        const next = !this.stopped && !this.retiring && this.startNextCopy()
        this.poke(next ? undefined : 0)
      })
  }

  /** Starts draining this disk; throws with the reason when the volume cannot do without it. */
  async beginRetire (): Promise<void> {
    if (this.retiring) return
    // Decide on a fresh view: a node that left a moment ago must not count as a place for copies.
    await this.running
    this.kick()
    await this.running
    if (this.retiring) return
    const obstacle = retireObstacle(this.opts.nodeId, this.opts.contents(), this.views, this.opts.settings().copies)
    if (obstacle !== null) throw new SwarmError('SWARMFS_CONFLICT', obstacle)
    this.retiring = true
    this.announced.clear()
    this.drops.clear()
    this.own = null
    this.poke(0)
  }

  status (): ReplicationStatus {
    const { copies, graceMs } = this.opts.settings()
    const contents = this.opts.contents()
    const length = new Map(contents.map(c => [c.infohash, c.length]))
    const bytes = (set: ReadonlySet<string>): number => { let n = 0; for (const ih of set) n += length.get(ih) ?? 0; return n }
    const remaining = this.retiring ? retireRemaining(this.opts.nodeId, contents, this.views, copies) : null
    return {
      copies,
      graceMs,
      retiring: this.retiring,
      contents: contents.length,
      underTarget: this.lastPlan?.underTarget ?? 0,
      lost: this.lastPlan?.lost ?? 0,
      nodes: this.views.map(v => ({
        nodeId: v.nodeId,
        up: v.up,
        counts: v.counts,
        total: v.total,
        free: v.free,
        reserve: v.reserve,
        complete: v.complete.size,
        completeBytes: bytes(v.complete),
        cached: v.cached.size,
        retiring: v.retiring,
        copying: v.nodeId === this.opts.nodeId ? (this.copying !== null ? [{ ...this.copying }] : []) : this.peers.get(v.nodeId)?.holdings?.copying ?? [],
        lastSeen: v.nodeId === this.opts.nodeId ? Date.now() : this.peers.get(v.nodeId)?.lastSeen ?? null
      })),
      retireRemaining: remaining?.length ?? null,
      retireRemainingBytes: remaining?.reduce((s, c) => s + c.length, 0) ?? null
    }
  }

  /** The volume's space as `df` shows it: every counted disk, divided by the copy target. */
  space (): { total: number, free: number } | null {
    if (this.views.length === 0) return null
    const copies = Math.max(1, this.opts.settings().copies)
    let total = 0
    let free = 0
    for (const v of this.views) {
      if (!v.counts || v.retiring) continue
      total += v.total
      free += Math.max(0, v.free - v.reserve)
    }
    return { total: Math.floor(total / copies), free: Math.floor(free / copies) }
  }
}

function viewOf (h: Holdings, up: boolean, counts: boolean, heardAt: number, live: boolean): NodeView {
  return {
    nodeId: h.nodeId,
    total: h.total,
    free: h.free,
    reserve: h.reserve,
    complete: new Set(h.complete),
    cached: new Set(h.cached ?? []),
    copying: new Set(h.copying.map(c => c.infohash)),
    fetching: new Set(h.copying.filter(c => c.started).map(c => c.infohash)),
    dropping: new Set(h.dropping ?? []),
    retiring: h.retiring,
    up,
    counts: up || counts,
    live,
    heardAt
  }
}

// Keeps every content of the volume on enough disks. Each round (every couple of seconds, and soon
// after the tree changes) it
//   1. brings its own holdings up to date: the disk's space (statfs); what the disk holds is told
//      by the content store as it changes (one listing at start, and again now and then to catch
//      what nobody told), the tree's contents are compared again only when the tree changed;
//   2. asks every peer for theirs (GET /holdings?have=<generation>&delta=1: unchanged answers are
//      one line, changes come as deltas, holdings-log.ts), applied in place, and with them the
//      number of holders of every content (tally.ts);
//   3. plans (plan.ts) over the contents under the target only, fewest holders first, a bounded
//      number per round (the rest in the next rounds), yielding to the event loop between slices:
//      the copies this node should make, and the copies it may drop;
//   4. announces the copies it chose (they appear in its holdings as copies at 0 bytes), and starts
//      those announced at least a round ago, several at once (MAX_COPIES, at most PER_SOURCE from
//      one holder, and few large ones at a time): by then every peer has seen the announcement,
//      and a peer that chose the same copy from an older view has withdrawn (plan.ts ranks
//      announced copies first); a copy made anyway beyond the target (views that disagreed) is
//      dropped again by its maker;
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
import { applyDelta, holdingsSets, parseHoldings, type CopyProgress, type Holdings, type HoldingsDelta, type PeerHoldings, type Unchanged } from './holdings.js'
import { OwnHoldings } from './holdings-log.js'
import { retireObstacle, retireRemaining, wants, type ContentNeed, type NodeView } from './plan.js'
import { Tally } from './tally.js'

export interface ReplicaPeer { nodeId: string, host: string, httpPort: number }

export interface ReplicatorOptions {
  nodeId: string
  /** Directory on the disk (its filesystem's space is reported). */
  disk: string
  /**
   * The contents this disk holds completely (ContentStore: the one owner of content/): one listing
   * at start (and now and then), and every change as it happens.
   */
  held: { heldInfohashes: () => Promise<Set<string>>, watch: (listener: (infohash: string, present: boolean) => void) => void }
  /** Bytes this disk keeps free: no copy is taken that would go below, and copies beyond the target are dropped to get back above. */
  reserve: (total: number) => number
  /**
   * The contents of the tree (each distinct infohash once, with its length), and a version that
   * changes whenever they may have (the tree's head): they are compared again only then.
   */
  tree: { contents: () => Iterable<[string, { length: number }]> & { has: (infohash: string) => boolean }, version: () => string }
  /** Contents on this disk that reads fetched (a cache), as opposed to copies made for the target or written here. */
  cachedByReads?: { has: (infohash: string) => boolean, watch?: (listener: (infohash: string) => void) => void }
  settings: () => { copies: number, graceMs: number }
  /** Peers that proved they hold the volume key. */
  peers: () => ReplicaPeer[]
  /** A peer's GET /holdings?have=<generation>&delta=1 answer (parsed JSON), or a rejection after `timeoutMs`. */
  fetchHoldings: (peer: ReplicaPeer, have: string | null, timeoutMs: number) => Promise<unknown>
  /** Fetches a whole content onto this disk, reporting bytes done. */
  /** `source`: the holder the copy counts against (a small copy is taken from it alone: lib/node/small-copies.ts). */
  copy: (infohash: string, progress: (done: number) => void, source: string | null) => Promise<void>
  /** Removes a complete content from this disk (and stops seeding it). */
  drop: (infohash: string) => Promise<void>
  retiring: boolean
  /** After every round (a retiring node checks whether it is done). */
  onRound?: () => void
  log: Logger
  intervalMs?: number
  /** Copies under way at once (default MAX_COPIES). */
  maxCopies?: number
}

interface PeerRecord {
  holdings: PeerHoldings | null
  /** Its contents count toward the tally (its word counts, and it is not retiring). */
  contributing: boolean
  /** Its last delta did not apply: ask for the whole document next. */
  wantWhole: boolean
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
/** Copies announced at once: enough to keep several copies busy between rounds; deltas keep holdings small. */
const MAX_ANNOUNCED = 4096
/** Copies under way at once. */
const MAX_COPIES = 16
/** Copies under way at once whose chosen source is one holder. */
const PER_SOURCE = 8
/** Bytes of the copies under way: a large copy runs with few others (each at full speed already). */
const MAX_COPY_BYTES = 256 * 2 ** 20
/** Announced copies looked at past those held back, when starting copies. */
const START_LOOKAHEAD = 256
/** Contents of the tree under target looked at per round (from where the last round stopped). */
const SCAN_PER_ROUND = 50_000
/** Work done between two yields to the event loop (FUSE is served on this thread). */
const SLICE = 500
/** A peer unheard for this many rounds is no longer up (no new copies go to it). */
const UP_ROUNDS = 3
const HOLDINGS_TIMEOUT_MS = 3000
/** After a start, how long the node listens before it starts a copy. */
const STARTUP_QUIET_MS = 3000
/** The disk's content/ is listed again this often, to catch a change nobody told (a file removed by hand). */
const RESCAN_MS = 10 * 60_000
/** The tree is compared again at most once per this many times the last comparison took. */
const TREE_SCAN_SPACING = 20

const pause = async (): Promise<void> => await new Promise(resolve => setImmediate(resolve))

export class Replicator {
  private readonly peers = new Map<string, PeerRecord>()
  private timer: NodeJS.Timeout | null = null
  private soon: NodeJS.Timeout | null = null
  private running: Promise<void> | null = null
  private stopped = false
  /** Copies under way, by infohash, with the holder counted as their source (PER_SOURCE). */
  private readonly copying = new Map<string, { progress: CopyProgress, source: string | null }>()
  /** What the last round saw: announcements older than `before` are confirmed. */
  private confirmed = { before: 0 }
  /** Copies this node announced, by infohash: when. */
  private readonly announced = new Map<string, number>()
  /** Contents this node copied to meet the target (this run): the ones it may trim when they turn out extra. */
  private readonly replicated = new Set<string>()
  /** Drops this node announced (its holdings list them as `dropping`). */
  private readonly drops = new DropAnnouncements()
  private startedAt = 0
  private readonly own: OwnHoldings
  private readonly tally: Tally
  /**
   * What content/ holds (told by the store) that is not in `own.sets.complete`: contents the tree
   * no longer (or does not yet) name. content/ is the two together; kept apart so that a million
   * contents on the disk are one set, not two (~20 MB).
   */
  private readonly strays = new Set<string>()
  /** Contents the store told of while a listing was under way: the listing does not overrule them. */
  private told: Set<string> | null = null
  private ready: Promise<void> | null = null
  private lastRescan = 0
  private treeVersion: string | null = null
  private treeScanEnd = 0
  private treeScanMs = 0
  private disk = { total: 0, avail: 0 }
  private views: NodeView[] = []
  /** Where each bucket's scan stopped (a Set's iterator survives changes to it). */
  private readonly cursors = new Map<number, { of: ReadonlySet<string>, it: Iterator<string> }>()
  /** Reads on this node want room the cache cannot give (short()): until a copy is dropped, for a few rounds at most. */
  private roomWanted = false
  private roomWantedAt = 0
  private pokedDuringRound = false
  /** startSoon() has a start of copies waiting for the event loop. */
  private starting = false
  retiring: boolean
  private readonly intervalMs: number
  private readonly maxCopies: number

  constructor (private readonly opts: ReplicatorOptions) {
    this.retiring = opts.retiring
    this.intervalMs = opts.intervalMs ?? DEFAULT_INTERVAL_MS
    this.maxCopies = opts.maxCopies ?? MAX_COPIES
    this.tally = new Tally(opts.settings().copies)
    this.own = new OwnHoldings(opts.nodeId, { epoch: `${process.pid.toString(36)}-${Date.now().toString(36)}`, lengthOf: ih => this.tally.tree.get(ih) ?? 0 })
    opts.held.watch((ih, present) => {
      this.told?.add(ih)
      this.ownChanged(ih, present)
    })
    opts.cachedByReads?.watch?.(ih => this.ownChanged(ih))
  }

  start (): void {
    this.startedAt = Date.now()
    this.timer = setInterval(() => this.kick(), this.intervalMs)
    this.kick()
  }

  private onDisk (ih: string): boolean {
    return this.own.has('complete', ih) || this.strays.has(ih)
  }

  /**
   * Whether this disk holds `ih` for the volume now (complete, in the tree); the tally follows.
   * `onDisk`: whether content/ holds it, when that changed; else as before.
   */
  private ownChanged (ih: string, onDisk = this.onDisk(ih)): void {
    const complete = onDisk && this.tally.tree.has(ih)
    if (this.own.set('complete', ih, complete) && !this.retiring) this.tally.held(ih, complete ? 1 : -1)
    if (onDisk && !complete) this.strays.add(ih)
    else this.strays.delete(ih)
    this.own.set('cached', ih, complete && this.opts.cachedByReads?.has(ih) === true)
  }

  /** The first listing of content/ and comparison of the tree, before anything is planned or answered. */
  private async prepare (): Promise<void> {
    this.ready ??= (async () => {
      await this.rescan()
      await this.syncTree(true)
      await this.refreshDisk()
    })()
    await this.ready
  }

  /** Lists content/ and takes what it holds, except for contents the store told of meanwhile. */
  private async rescan (): Promise<void> {
    this.lastRescan = Date.now()
    const told = this.told = new Set()
    let names: Set<string>
    try {
      names = await this.opts.held.heldInfohashes()
    } finally {
      this.told = null
    }
    let i = 0
    for (const ih of names) {
      if (!told.has(ih) && !this.onDisk(ih)) this.ownChanged(ih, true)
      // A stop does not wait for the rest of a million-content listing.
      if (++i % SLICE === 0 && (await pause(), this.stopped)) return
    }
    for (const ih of [...this.own.sets.complete, ...this.strays]) {
      if (!told.has(ih) && !names.has(ih)) this.ownChanged(ih, false)
      if (++i % SLICE === 0 && (await pause(), this.stopped)) return
    }
  }

  /**
   * Compares the tree's contents with the tally's, when the tree changed, in slices; at most once
   * per TREE_SCAN_SPACING times the last comparison took (at a million contents a comparison is
   * tens of milliseconds of work, spread over the slices).
   */
  private async syncTree (force = false): Promise<void> {
    const version = this.opts.tree.version()
    if (version === this.treeVersion) return
    if (!force && performance.now() < this.treeScanEnd + this.treeScanMs * TREE_SCAN_SPACING) {
      // Not now: the next round looks again.
      return
    }
    this.treeVersion = version
    let busy = performance.now()
    let worked = 0
    /** Whether to go on: a stop does not wait for the rest of a million-content comparison. */
    const slice = async (): Promise<boolean> => {
      worked += performance.now() - busy
      await pause()
      busy = performance.now()
      return !this.stopped
    }
    const contents = this.opts.tree.contents()
    const tree = this.tally.tree
    let i = 0
    for (const [ih, info] of contents) {
      if (tree.get(ih) !== info.length) {
        this.tally.treeAdd(ih, info.length)
        this.ownChanged(ih)
      }
      if (++i % SLICE === 0 && !await slice()) return
    }
    for (const ih of tree.keys()) {
      if (!contents.has(ih)) {
        this.tally.treeRemove(ih)
        this.ownChanged(ih)
      }
      if (++i % SLICE === 0 && !await slice()) return
    }
    worked += performance.now() - busy
    this.treeScanMs = worked
    this.treeScanEnd = performance.now()
  }

  /** This disk's space (statfs) and the figures peers get with it. */
  private async refreshDisk (): Promise<void> {
    const st = await fsp.statfs(this.opts.disk)
    this.disk = { total: st.blocks * st.bsize, avail: st.bavail * st.bsize }
    this.showFigures()
  }

  private showFigures (): void {
    const { total, avail } = this.disk
    const reserve = this.opts.reserve(total)
    const free = this.roomWanted ? Math.min(avail, reserve - 1) : avail
    const progress = [...this.copying.values()].map(c => ({ ...c.progress }))
    this.own.setSmall({ total, free, reserve, retiring: this.retiring, progress })
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
    this.showFigures()
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
    const here = this.own.sets.complete
    let bytes = 0
    // A content others hold enough copies of without this disk has more holders than the target.
    for (const ih of this.tally.over) {
      if (here.has(ih) && others.filter(n => n.complete.has(ih) && !n.dropping.has(ih)).length >= copies) bytes += this.tally.tree.get(ih) ?? 0
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

  /** This disk's holdings as a peer that has `have` gets them: `unchanged`, a delta (when it takes them), or the whole document. */
  async holdings (have: string | null, delta = false): Promise<Holdings | HoldingsDelta | Unchanged> {
    await this.prepare()
    return this.own.answer(have, delta)
  }

  private async hear (peer: ReplicaPeer): Promise<void> {
    const rec = this.peers.get(peer.nodeId)
    const have = rec?.wantWhole === true ? null : rec?.holdings?.generation ?? null
    const sent = performance.now()
    const answer = parseHoldings(await this.opts.fetchHoldings(peer, have, HOLDINGS_TIMEOUT_MS))
    if (typeof answer === 'string') throw new SwarmError('SWARMFS_BAD_INPUT', `malformed holdings: ${answer}`)
    const heard = (r: PeerRecord): void => {
      r.lastSeen = Date.now()
      r.heardAt = sent
      r.host = peer.host
      r.httpPort = peer.httpPort
    }
    if ('unchanged' in answer) {
      if (rec?.holdings == null || rec.holdings.generation !== answer.generation) throw new SwarmError('SWARMFS_BAD_INPUT', 'holdings "unchanged" for a generation we do not have')
      heard(rec)
      return
    }
    if (answer.nodeId !== peer.nodeId) throw new SwarmError('SWARMFS_PEER_INVALID', `holdings of node ${answer.nodeId} from the address of ${peer.nodeId}`)
    if ('delta' in answer) {
      if (rec?.holdings == null) throw new SwarmError('SWARMFS_BAD_INPUT', 'a holdings delta where we hold nothing of the peer')
      const wrong = applyDelta(rec.holdings, answer, (ih, by) => { if (rec.contributing) this.tally.held(ih, by) })
      if (wrong !== null) {
        rec.wantWhole = true
        throw new SwarmError('SWARMFS_BAD_INPUT', `holdings delta refused: ${wrong}`)
      }
      heard(rec)
      return
    }
    const sets = holdingsSets(answer)
    if (rec === undefined) {
      this.peers.set(peer.nodeId, { holdings: sets, contributing: false, wantWhole: false, lastSeen: Date.now(), heardAt: sent, host: peer.host, httpPort: peer.httpPort })
      return
    }
    if (rec.contributing) {
      const before = rec.holdings?.complete ?? new Set<string>()
      for (const ih of before) if (!sets.complete.has(ih)) this.tally.held(ih, -1)
      for (const ih of sets.complete) if (!before.has(ih)) this.tally.held(ih, 1)
    }
    rec.holdings = sets
    rec.wantWhole = false
    heard(rec)
  }

  /** A peer's contents start (or stop) counting toward the tally, in slices. */
  private async contribute (rec: PeerRecord, on: boolean): Promise<void> {
    if (rec.contributing === on) return
    rec.contributing = on
    let i = 0
    for (const ih of rec.holdings?.complete ?? []) {
      this.tally.held(ih, on ? 1 : -1)
      if (++i % SLICE === 0) await pause()
    }
  }

  private async round (): Promise<void> {
    await this.prepare()
    if (this.stopped) return
    if (Date.now() - this.lastRescan > RESCAN_MS) await this.rescan()
    await this.syncTree()
    if (this.stopped) return
    await this.refreshDisk()
    const peers = this.opts.peers().filter(p => p.nodeId !== this.opts.nodeId)
    const roundStart = performance.now()
    await Promise.all(peers.map(p => this.hear(p).catch(err => {
      this.opts.log.debug('no holdings from a peer', { peer: p.nodeId, err: (err as Error).message })
    })))
    const { copies, graceMs } = this.opts.settings()
    await this.tally.setTarget(copies, pause)
    const now = Date.now()
    const views: NodeView[] = [this.ownView()]
    // A peer that left (mDNS said goodbye) is down at once; its contents count for the grace period.
    const present = new Set(peers.map(q => q.nodeId))
    for (const [nodeId, rec] of [...this.peers]) {
      const h = rec.holdings
      if (h === null) continue
      const age = now - rec.lastSeen
      const up = present.has(nodeId) && age < UP_ROUNDS * this.intervalMs + HOLDINGS_TIMEOUT_MS
      // Forgotten once nothing it said counts any more: gone past the grace period, or gone after
      // retiring (its copies stopped counting then). Should it come back, its next answer is heard.
      if (!up && (age >= graceMs || h.retiring)) {
        await this.contribute(rec, false)
        this.peers.delete(nodeId)
        continue
      }
      const counts = up || age < graceMs
      await this.contribute(rec, counts && !h.retiring)
      views.push(peerView(h, up, counts, rec.heardAt, present.has(nodeId) && rec.heardAt >= roundStart))
    }
    this.views = views
    if (this.stopped) return
    const chosen = await this.plan(views, copies)
    this.announce(chosen, now)
    // No copy starts in the first seconds after a start: peers found by mDNS a moment later must
    // be heard before this node may conclude that nobody else holds or copies something.
    if (now - this.startedAt >= STARTUP_QUIET_MS) {
      // Announced at least a round ago, and every peer this node knows has answered since: a peer
      // that chose the same copy has seen the announcement, and this node has seen theirs.
      const upWindow = UP_ROUNDS * this.intervalMs + HOLDINGS_TIMEOUT_MS
      const heard = peers.map(q => this.peers.get(q.nodeId)?.lastSeen).filter((at): at is number => at !== undefined && now - at < upWindow)
      const heardAllSince = Math.min(now, ...heard)
      this.confirmed = { before: Math.min(now - this.intervalMs - HOLDINGS_TIMEOUT_MS / 2, heardAllSince) }
      this.startCopies()
    }
    await this.dropCopies(views, copies)
  }

  private ownView (): NodeView {
    const f = this.own.figures
    return {
      nodeId: this.opts.nodeId,
      total: f.total,
      free: f.free,
      reserve: f.reserve,
      complete: this.own.sets.complete,
      cached: this.own.sets.cached,
      copying: this.own.sets.copying,
      fetching: new Set(this.copying.keys()),
      dropping: this.own.sets.dropping,
      retiring: this.retiring,
      up: true,
      counts: true,
      live: true,
      heardAt: Infinity
    }
  }

  /**
   * The copies this node should make (or keep making): its announcements that the plan still
   * gives it, then what a scan of the contents under the target finds, fewest holders first, from
   * where the last round's scan stopped, until MAX_ANNOUNCED are chosen or SCAN_PER_ROUND looked at.
   */
  private async plan (views: NodeView[], copies: number): Promise<string[]> {
    const self = this.opts.nodeId
    const tree = this.tally.tree
    const chosen: string[] = []
    const taken = new Set<string>()
    const consider = (ih: string): void => {
      const length = tree.get(ih)
      if (length === undefined || taken.has(ih)) return
      if (wants(self, { infohash: ih, length }, views, this.tally.holders(ih), copies)) {
        chosen.push(ih)
        taken.add(ih)
      }
    }
    let looked = 0
    for (const ih of [...this.announced.keys()]) {
      consider(ih)
      if (++looked % SLICE === 0) await pause()
    }
    looked = 0
    for (const { holders, contents } of this.tally.shortBuckets()) {
      if (contents.size === 0) {
        this.cursors.delete(holders)
        continue
      }
      let cur = this.cursors.get(holders)
      if (cur === undefined || cur.of !== contents) this.cursors.set(holders, cur = { of: contents, it: contents.values() })
      while (chosen.length < MAX_ANNOUNCED && looked < SCAN_PER_ROUND) {
        const next = cur.it.next()
        if (next.done === true) {
          // Looked at to its end: from its start next round, and on to the next bucket now.
          cur.it = contents.values()
          break
        }
        consider(next.value)
        if (++looked % SLICE === 0) await pause()
      }
      if (chosen.length >= MAX_ANNOUNCED || looked >= SCAN_PER_ROUND) break
    }
    return chosen
  }

  /**
   * Drops the copies the plan confirms (for room, or extra copies this node made), then announces
   * the ones it wants next; a round follows at once when there is something to confirm.
   */
  private async dropCopies (views: NodeView[], copies: number): Promise<void> {
    const f = this.own.figures
    const short = f.free < f.reserve
    const made = new Set([...this.replicated].filter(ih => !this.copying.has(ih)))
    if (!short && made.size === 0 && this.drops.map.size === 0) return
    // A drop takes only a content with more holders than the target (or one announced already).
    const tree = this.tally.tree
    const candidates = new Set<string>(this.drops.map.keys())
    if (short) for (const ih of this.tally.over) candidates.add(ih)
    else for (const ih of made) if (this.tally.over.has(ih)) candidates.add(ih)
    const contents: ContentNeed[] = []
    for (const ih of candidates) {
      const length = tree.get(ih)
      if (length !== undefined) contents.push({ infohash: ih, length })
    }
    const p = planDrops({ self: this.opts.nodeId, contents, nodes: views, copies, announced: this.drops.map, made })
    let dropped = 0
    for (const ih of p.drop) {
      if (this.copying.has(ih) || this.stopped) continue
      const ok = await this.opts.drop(ih).then(() => true, err => {
        this.opts.log.debug('not dropping a copy now', { infohash: ih, err: (err as Error).message })
        return false
      })
      // The store told the replicator of the removal (its holdings no longer list the content)
      // before the announcement goes.
      this.drops.done(ih)
      this.own.set('dropping', ih, false)
      if (!ok) continue
      dropped++
      this.replicated.delete(ih)
      if (short) this.opts.log.info('dropped a copy beyond the target to make room', { infohash: ih, free: f.free, reserve: f.reserve })
      else this.opts.log.info('dropped a copy made beyond the target', { infohash: ih })
    }
    // Reads short of room: until a copy is dropped, there is none to drop, or the drop has waited
    // a few rounds (a read still short calls short() again; meanwhile peers plan with the real figure).
    if (short && (dropped > 0 || p.announce.length === 0 || Date.now() - this.roomWantedAt > UP_ROUNDS * this.intervalMs)) {
      if (this.roomWanted) {
        this.roomWanted = false
        this.showFigures()
      }
    }
    const announce = this.retiring || this.stopped ? [] : p.announce.filter(ih => !p.drop.includes(ih))
    const changed = this.drops.update(announce)
    if (!changed && dropped === 0) return
    for (const ih of [...this.own.sets.dropping]) if (!this.drops.map.has(ih)) this.own.set('dropping', ih, false)
    for (const ih of this.drops.list()) this.own.set('dropping', ih, true)
    // Every answer from now on lists them.
    this.drops.shown(performance.now())
    // A new announcement is confirmed by the next round's answers: no need to wait for the interval.
    this.poke()
  }

  /** Keeps the announced copies in step with the plan: new choices added (within the room above the reserve), withdrawn ones dropped. */
  private announce (chosen: string[], now: number): void {
    const held = this.own.sets.complete
    const wanted = new Set(this.retiring ? [] : chosen.filter(ih => !held.has(ih)))
    for (const ih of [...this.announced.keys()]) {
      if (!wanted.has(ih) && !this.copying.has(ih)) {
        this.announced.delete(ih)
        this.own.set('copying', ih, false)
      }
    }
    const length = this.tally.tree
    const f = this.own.figures
    let room = f.free - f.reserve
    for (const ih of this.announced.keys()) room -= length.get(ih) ?? 0
    for (const ih of wanted) {
      if (this.announced.size >= MAX_ANNOUNCED) break
      if (this.announced.has(ih)) continue
      const n = length.get(ih) ?? 0
      if (n > room) continue
      room -= n
      this.announced.set(ih, now)
      // Peers asking from now on see the announcement.
      this.own.set('copying', ih, true)
    }
  }

  /** Starts the copies the last round confirmed, as many as the bounds allow. */
  private startCopies (): void {
    if (this.stopped || this.retiring) return
    let bytes = 0
    const perSource = new Map<string, number>()
    for (const c of this.copying.values()) {
      bytes += c.progress.total - c.progress.done
      if (c.source !== null) perSource.set(c.source, (perSource.get(c.source) ?? 0) + 1)
    }
    // In the order they were announced, so the first not yet confirmed ends the search; and only
    // so far past those held back (by their source or their size) for others.
    let passed = 0
    for (const [ih, at] of this.announced) {
      if (this.copying.size >= this.maxCopies || at >= this.confirmed.before || passed > START_LOOKAHEAD) return
      if (this.copying.has(ih)) continue
      passed++
      const length = this.tally.tree.get(ih)
      if (length === undefined) continue
      if (this.copying.size > 0 && bytes + length > MAX_COPY_BYTES) continue
      // The holder with the fewest of this node's copies counts as its source (BitTorrent takes
      // pieces from every holder; this only keeps many copies from piling on one).
      let source: string | null = null
      let least = Infinity
      for (const v of this.views) {
        if (v.nodeId === this.opts.nodeId || !v.up || !v.complete.has(ih)) continue
        const n = perSource.get(v.nodeId) ?? 0
        if (n < least) {
          least = n
          source = v.nodeId
        }
      }
      if (source !== null && least >= PER_SOURCE) continue
      if (source !== null) perSource.set(source, least + 1)
      bytes += length
      this.startCopy({ infohash: ih, length }, source)
    }
  }

  private startCopy (c: ContentNeed, source: string | null): void {
    const progress: CopyProgress = { infohash: c.infohash, done: 0, total: c.length, started: true }
    this.copying.set(c.infohash, { progress, source })
    // Peers asking from now on see the transfer under way (it ranks first: plan.ts).
    this.showFigures()
    this.opts.log.info('copying a content that has fewer copies than the target', { infohash: c.infohash, length: c.length })
    const started = Date.now()
    this.opts.copy(c.infohash, done => {
      progress.done = done
      this.showFigures()
    }, source)
      .then(() => {
        this.replicated.add(c.infohash)
        this.opts.log.info('copy complete', { infohash: c.infohash, length: c.length, ms: Date.now() - started })
      },
      err => this.stopped
        ? this.opts.log.info('copy interrupted by the stop', { infohash: c.infohash })
        : this.opts.log.warn('copy failed; the next rounds try again', { infohash: c.infohash, err: (err as Error).message }))
      .finally(() => {
        this.copying.delete(c.infohash)
        this.announced.delete(c.infohash)
        this.own.set('copying', c.infohash, false)
        this.showFigures()
        // The next copies the last round confirmed start at once: a round (every peer asked, the
        // contents under target planned) costs more than a small copy. Rounds still follow, at
        // most one per poke delay, and every interval.
        this.startSoon()
      })
  }

  /**
   * The next copies, from the event loop rather than from the copy that ended: copies that end
   * at once (small ones) would otherwise chain in one long run of microtasks that FUSE waits on.
   */
  private startSoon (): void {
    if (this.starting) return
    this.starting = true
    setImmediate(() => {
      this.starting = false
      if (this.stopped) return
      this.startCopies()
      this.poke(this.copying.size > 0 ? undefined : 0)
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
    const obstacle = retireObstacle(this.opts.nodeId, this.treeContents(), this.views, this.opts.settings().copies)
    if (obstacle !== null) throw new SwarmError('SWARMFS_CONFLICT', obstacle)
    this.retiring = true
    // Its copies stop counting.
    for (const ih of this.own.sets.complete) this.tally.held(ih, -1)
    for (const ih of [...this.announced.keys()]) if (!this.copying.has(ih)) this.own.set('copying', ih, false)
    this.announced.clear()
    for (const ih of this.drops.list()) this.own.set('dropping', ih, false)
    this.drops.clear()
    this.showFigures()
    this.poke(0)
  }

  private treeContents (): ContentNeed[] {
    return [...this.tally.tree].map(([infohash, length]) => ({ infohash, length }))
  }

  status (): ReplicationStatus {
    const { copies, graceMs } = this.opts.settings()
    const length = this.tally.tree
    const bytes = (set: ReadonlySet<string>): number => { let n = 0; for (const ih of set) n += length.get(ih) ?? 0; return n }
    const remaining = this.retiring ? retireRemaining(this.opts.nodeId, this.treeContents(), this.views, copies) : null
    return {
      copies,
      graceMs,
      retiring: this.retiring,
      contents: length.size,
      underTarget: this.tally.underTarget(),
      lost: this.tally.lost(),
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
        copying: v.nodeId === this.opts.nodeId ? [...this.copying.values()].map(c => ({ ...c.progress })) : this.peers.get(v.nodeId)?.holdings?.progress ?? [],
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

function peerView (h: PeerHoldings, up: boolean, counts: boolean, heardAt: number, live: boolean): NodeView {
  return {
    nodeId: h.nodeId,
    total: h.total,
    free: h.free,
    reserve: h.reserve,
    complete: h.complete,
    cached: h.cached,
    copying: h.copying,
    fetching: new Set(h.progress.filter(c => c.started).map(c => c.infohash)),
    dropping: h.dropping,
    retiring: h.retiring,
    up,
    counts: up || counts,
    live,
    heardAt
  }
}

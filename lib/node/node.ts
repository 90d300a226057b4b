// One node = one disk. The only place that wires the parts together and decides their order of
// start and stop.
import fs from 'node:fs'
import { join } from 'node:path'
import { SpaceGuard } from '../content/space-guard.js'
import { ContentStore } from '../content/store.js'
import { TorrentService } from '../content/torrents.js'
import { SwarmReader } from '../content/swarm-reader.js'
import { Discovery } from '../discovery/index.js'
import { mountVolume, type Mounted } from '../fuse/mount.js'
import { PeerServer, type ApiAnswer, type ApiCall } from '../http/peer-server.js'
import { localRoutes } from '../http/local-routes.js'
import { peerRoutes } from '../http/peer-routes.js'
import { LocalServer, localSocketPath } from '../http/local-server.js'
import type { Logger } from '../core/log.js'
import { GitStore } from '../meta/git-store.js'
import { Meta } from '../meta/meta.js'
import { contentPaths } from '../meta/nodes.js'
import { conflictName } from '../meta/conflict-names.js'
import { mergeHeads } from '../meta/merge.js'
import { gitObjectStore } from '../meta/object-store.js'
import { CachedByReads } from '../replicate/cached-by-reads.js'
import { BadPieceReporter, tellPeers } from '../replicate/bad-pieces.js'
import { retireDone } from '../replicate/retire.js'
import { contentsToScrub, Scrub, scrubReport } from '../replicate/scrub.js'
import { Replicator } from '../replicate/replicator.js'
import { copySmall } from './small-copies.js'
import { closePeerConnections, peerJson } from '../sync/peer-client.js'
import { stopFetchWorker } from '../sync/fetch-pool.js'
import { Syncer } from '../sync/syncer.js'
import { VolumeFs } from '../vfs/volume-fs.js'
import { diskSpace } from '../vfs/disk-space.js'
import { FsError, SwarmError, UserError } from '../core/errors.js'
import { layout, lockDisk, readConfig, reserveOf, writeConfig, type NodeConfig } from './disk.js'
import type { TorrentInfo } from '../core/torrent-info.js'

/** A peer hashes one piece of its copy (all of them when it is bad) before it answers. */
const BAD_PIECE_TIMEOUT_MS = 60_000
/** Peers' holdings documents: 43 bytes per content, so room for a million. */
const HOLDINGS_LIMIT = 64 * 1024 * 1024

export interface NodeOptions {
  disk: string
  /** Overrides the mount point stored in node.json; null runs without a mount. */
  mountPoint?: string | null
  /** Peers given by hand (host:port), besides those mDNS finds. */
  peers?: string[]
  /** IPv4 address to listen and announce on; all interfaces when not given. */
  address?: string
  /** Called when the node wants its process to stop: its disk is drained (retired), or its mount was unmounted from outside. */
  onStopRequested?: (why: 'retired' | 'unmounted') => void
  log: Logger
}

export class SwarmNode {
  private mounted: Mounted | null = null
  private unlock: (() => void) | null = null
  private stopping: Promise<void> | null = null
  private server: PeerServer | null = null
  /** The CLI's channel (<disk>/node.sock): the only way to retire, scrub or change the volume. */
  private local: LocalServer | null = null
  torrents: TorrentService | null = null
  private discovery: Discovery | null = null
  syncer: Syncer | null = null
  replicator: Replicator | null = null
  private mountPoint: string | null = null
  /** The filesystem the mount serves; made once the torrent client runs (its remote reads go there). */
  vfs: VolumeFs | null = null
  /** Reads of what this disk does not hold (closed at the start of a stop: the torrent client is going). */
  private remote: SwarmReader | null = null
  /** Tells the node's owner that the node wants its process to stop (NodeOptions.onStopRequested). */
  private onStopRequested: (why: 'retired' | 'unmounted') => void = () => {}
  /** Contents reads on this node completed (a cache): told to peers so they trim no copy in their favour. */
  private readonly cachedByReads: CachedByReads
  /** swarmfs scrub: checks every complete copy on this disk (lib/replicate/scrub.ts). */
  private readonly scrub: Scrub
  /** Asks every peer to check its copy of a piece that came here bad (lib/replicate/bad-pieces.ts). */
  private readonly badPieces: BadPieceReporter

  private constructor (
    readonly config: NodeConfig,
    readonly disk: string,
    readonly meta: Meta,
    readonly content: ContentStore,
    private readonly space: SpaceGuard,
    private readonly log: Logger
  ) {
    this.badPieces = new BadPieceReporter(tellPeers(
      () => [...(this.syncer?.peers.values() ?? [])].filter(p => p.authenticated && p.httpPort > 0),
      async (p, report) => await peerJson({ host: p.host, port: p.httpPort, key: config.volumeKey, timeoutMs: BAD_PIECE_TIMEOUT_MS }, 'POST', '/bad-piece', report),
      log
    ))
    this.cachedByReads = new CachedByReads(join(layout(disk).state, 'cached-by-reads.json'), content, log)
    this.scrub = new Scrub(async (c, onBytes) => {
      const torrents = this.torrents
      if (torrents === null) throw new SwarmError('SWARMFS_STOPPING', 'the node is stopping')
      return c.partial ? await torrents.checkPartial(c.infohash, onBytes) : await torrents.checkCopy(c.infohash, onBytes)
    }, log)
  }

  /** Creates the repository of a new volume on a disk whose node.json was just written. */
  static async initVolume (disk: string, log: Logger): Promise<void> {
    const config = readConfig(disk)
    const paths = layout(disk)
    await new GitStore(paths.meta, log).init()
    const meta = await Meta.open({ gitdir: paths.meta, journalDir: paths.journal, stateDir: paths.state, nodeId: config.nodeId, volumeId: config.volumeId, log, onReleased: () => {} })
    meta.apply({ op: 'setattr', path: '/', attrs: { perm: 0o755 } })
    await meta.close()
  }

  static async start (opts: NodeOptions): Promise<SwarmNode> {
    const config = readConfig(opts.disk)
    const log = opts.log.child({ node: config.nodeId })
    const unlock = lockDisk(opts.disk)
    // The callbacks given to meta below need the node and the parts it makes later (syncer, replicator), which exist only once meta is open.
    const holder: { node: SwarmNode | null } = { node: null }
    try {
      const paths = layout(opts.disk)
      const content = new ContentStore(opts.disk, config.volumeId, log)
      const meta = await Meta.open({
        volumeId: config.volumeId,
        gitdir: paths.meta,
        journalDir: paths.journal,
        stateDir: paths.state,
        nodeId: config.nodeId,
        log,
        onReleased: r => {
          content.remove(r.contents, r.staged)
          for (const ih of r.contents) void holder.node?.torrents?.forget(ih, { dropPartial: true }).catch(() => {})
        },
        // Peers hear of every new HEAD at once; replication looks again at what it holds.
        onHead: head => {
          holder.node?.syncer?.announce(head)
          holder.node?.replicator?.poke()
        },
        // A target changed here or by a peer is acted on at once, not at the next round.
        onVolumeSettings: () => holder.node?.replicator?.poke(0)
      })
      const removed = content.removeOrphanStaging(new Set(meta.stagedNow().map(f => f.staged?.id ?? '')))
      if (removed > 0) log.info('removed staging files of writes never closed', { removed })
      const space = new SpaceGuard(opts.disk)
      const node = new SwarmNode(config, opts.disk, meta, content, space, log)
      holder.node = node
      node.unlock = unlock
      if (opts.onStopRequested !== undefined) node.onStopRequested = opts.onStopRequested
      try {
        const torrents = await node.startTorrents(opts.address)
        const remote = node.remote = new SwarmReader(torrents, content)
        const vfs = new VolumeFs({ meta, content, space: diskSpace(space, opts.disk, () => node.replicator?.space() ?? null), remote, log })
        node.vfs = vfs
        vfs.resumeSeals()
        await node.startSync(opts, torrents)
        const owner = fs.statSync(opts.disk)
        node.local = new LocalServer(localSocketPath(opts.disk), node.localRoutes(), log, { uid: owner.uid, gid: owner.gid })
        await node.local.start()
        const mountPoint = opts.mountPoint !== undefined ? opts.mountPoint : config.mountPoint
        if (mountPoint !== null) {
          node.mounted = await mountVolume(mountPoint, opts.disk, vfs, log, () => node.onStopRequested('unmounted'))
          node.mountPoint = mountPoint
          log.info('mounted', { mountPoint })
        }
      } catch (err) {
        // What did start (server, mDNS, the index) is stopped again, so the process can exit.
        await node.stop().catch(() => {})
        throw err
      }
      return node
    } catch (err) {
      unlock()
      throw err
    }
  }

  /** The peer server (git endpoint, notices, status), mDNS, and the syncer between them and meta. */
  private async startSync (opts: NodeOptions, torrents: TorrentService): Promise<void> {
    const { config, log } = this
    const paths = layout(this.disk)
    const store = gitObjectStore(paths.meta)
    const syncer = new Syncer({
      gitdir: paths.meta,
      nodeId: config.nodeId,
      volumeKey: config.volumeKey,
      meta: this.meta,
      store,
      merge: async (ours, theirs) => await mergeHeads(store, ours, theirs, log, config.volumeId),
      conflictName,
      ports: () => ({ httpPort: this.server?.port ?? 0, torrentPort: torrents.port }),
      peerReady: p => { if (p.torrentPort > 0) torrents.addPeer(null, p.host, p.torrentPort) },
      peerLost: p => { if (p.torrentPort > 0) torrents.removePeer(p.host, p.torrentPort) },
      log
    })
    this.syncer = syncer
    const serverAt = (port: number): PeerServer => new PeerServer({
      gitdir: paths.meta,
      volumeKey: config.volumeKey,
      host: opts.address ?? '0.0.0.0',
      port,
      log,
      onNotify: (msg, from) => syncer.notified(msg, from),
      onRefused: from => syncer.refusedConnection(from),
      status: () => this.status(),
      api: peerRoutes({
        replicator: () => this.replicator,
        checkPiece: async (ih, piece) => await this.torrents?.checkPiece(ih, piece) ?? 'not held'
      }),
      // A content not held whole is no file there: the server's open of it answers 404.
      contentFile: ih => this.content.contentPath(ih)
    })
    const port = await onSavedPort(config.httpPort, 'HTTP', log, async wanted => {
      this.server = serverAt(wanted)
      return await this.server.start()
    })
    if (port !== config.httpPort || torrents.port !== config.torrentPort) {
      // Kept, so peers given by hand (host:port) still reach this node after a restart.
      config.httpPort = port
      config.torrentPort = torrents.port
      writeConfig(this.disk, config)
    }
    this.replicator = this.startReplication(torrents)
    const discovery = new Discovery({ volumeId: config.volumeId, nodeId: config.nodeId, httpPort: port, torrentPort: torrents.port, address: opts.address, log })
    discovery.on('peer', p => syncer.peerSeen(p))
    discovery.on('peer-down', p => syncer.peerGone(p.nodeId))
    this.discovery = discovery
    await discovery.start()
    for (const hp of opts.peers ?? []) {
      const { host, port: peerPort } = parseHostPort(hp)
      syncer.addManualPeer(host, peerPort)
    }
    syncer.start()
  }

  /**
   * The BitTorrent client: seeds what this disk holds (activated when a peer asks), fetches what
   * a read needs from the peers that proved they hold the volume key.
   */
  private async startTorrents (listenHost: string | undefined): Promise<TorrentService> {
    const { config, log, meta, content } = this
    const create = async (port: number): Promise<TorrentService> => await TorrentService.create({
      contentDir: content.contentDir,
      partialDir: content.partialDir,
      volumeId: config.volumeId,
      listenPort: port,
      listenHost,
      volumeKey: config.volumeKey,
      lookupInfo: ih => meta.contentRefs.contents.get(ih) ?? null,
      onComplete: (ih, _info, byReads) => {
        if (byReads) this.cachedByReads.add(ih)
        else this.cachedByReads.delete(ih)
        content.changed(ih, true)
      },
      onHashFailure: (ih, piece) => this.badPieces.report(ih, piece),
      onCopyDamaged: (ih, info) => this.refetchDamaged(ih, info),
      space: {
        guard: this.space,
        floor: total => reserveOf(config, total),
        short: () => this.replicator?.short(),
        reclaimable: () => this.replicator?.reclaimable() ?? 0
      },
      log
    })
    const torrents = await onSavedPort(config.torrentPort, 'BitTorrent', log, create)
    this.torrents = torrents
    return torrents
  }

  /**
   * This disk's copy of a content failed its hash check (a peer told us of a bad piece): files
   * open on it stop reading it; a copy kept for the volume fetches its bad pieces again from the
   * other holders, and a copy cached by reads stays a partial cache. Without another good holder
   * the fetch fails, and reads of the bad pieces fail with EIO while the rest of the file reads
   * as before.
   */
  private refetchDamaged (infohash: string, info: TorrentInfo): void {
    this.content.changed(infohash, false)
    this.vfs?.copySetAside(infohash)
    this.replicator?.poke(0)
    if (this.cachedByReads.has(infohash)) {
      this.cachedByReads.delete(infohash)
      return
    }
    const remote = this.remote
    if (remote === null || !this.meta.contentRefs.has(infohash)) return
    remote.fetchWhole(infohash, info).then(
      () => this.log.warn('a damaged copy is whole again', { infohash }),
      err => this.log.error('a damaged copy could not be fetched again from another holder: the bad pieces read as EIO until one has them', { infohash, err: (err as Error).message })
    )
  }

  /** Copies of contents held by too few disks, made by this node when the plan picks it (lib/replicate). */
  private startReplication (torrents: TorrentService): Replicator {
    const { config, meta, log } = this
    const syncer = this.syncer!
    const replicator = new Replicator({
      nodeId: config.nodeId,
      disk: this.disk,
      held: this.content,
      reserve: total => reserveOf(config, total),
      // The tree's contents change in the index before its head moves (a commit follows within
      // tens of milliseconds); the head and their number tell when to compare them again.
      tree: { contents: () => meta.contentRefs.contents, version: () => `${meta.head ?? ''}:${meta.contentRefs.contents.size}` },
      cachedByReads: this.cachedByReads,
      settings: () => meta.volumeSettings(),
      peers: () => [...syncer.peers.values()].filter(p => p.authenticated && p.httpPort > 0).map(p => ({ nodeId: p.nodeId, host: p.host, httpPort: p.httpPort })),
      fetchHoldings: async (peer, have, timeoutMs) => await peerJson({ host: peer.host, port: peer.httpPort, key: config.volumeKey, timeoutMs, limit: HOLDINGS_LIMIT },
        'GET', `/holdings?delta=1${have !== null ? `&have=${encodeURIComponent(have)}` : ''}`),
      copy: async (infohash, progress, source) => {
        const info = meta.contentRefs.contents.get(infohash)
        if (info === undefined) throw new SwarmError('SWARMFS_CONFLICT', 'no longer in the tree')
        if (this.remote === null) throw new FsError('EIO', 'EIO: the node is stopping')
        const holder = source === null ? undefined : syncer.peers.get(source)
        if (holder !== undefined && holder.authenticated && holder.httpPort > 0 &&
            await copySmall({ host: holder.host, port: holder.httpPort, key: config.volumeKey }, infohash, info, this.content, log)) {
          this.cachedByReads.delete(infohash)
          progress(info.length)
          return
        }
        await this.remote.fetchWhole(infohash, info, progress)
      },
      drop: async infohash => {
        // A file open here keeps its copy: a reader (a video being watched) is not cut off.
        if (this.vfs?.isOpen(infohash) === true) throw new SwarmError('SWARMFS_CONFLICT', 'a file with this content is open on this node')
        await torrents.forget(infohash, { dropPartial: true })
        this.content.remove([infohash], [])
        this.cachedByReads.delete(infohash)
      },
      retiring: config.retiring === true,
      onRound: () => this.checkRetired(),
      log
    })
    replicator.start()
    return replicator
  }

  /** A retiring node whose every content has enough copies elsewhere, and whose peers have its tree, is done. */
  private checkRetired (): void {
    const r = this.replicator
    const sync = this.syncer?.report()
    if (r === null || !r.retiring || this.stopping !== null || this.config.retired === true || sync === undefined) return
    if (!retireDone(r.status(), sync)) return
    this.config.retired = true
    writeConfig(this.disk, this.config)
    this.log.warn('retired: every content of this disk has enough copies on other disks; stopping')
    this.onStopRequested('retired')
  }

  /** `swarmfs retire`: the disk starts draining; kept in node.json, so a restart goes on with it. */
  private async beginRetire (replicator: Replicator): Promise<unknown> {
    await replicator.beginRetire()
    this.config.retiring = true
    writeConfig(this.disk, this.config)
    this.log.warn('retiring: copying every content of this disk to other disks')
    return replicator.status()
  }

  /** What this machine's CLI asks over the node's socket (lib/http/local-routes.ts). */
  private localRoutes (): (call: ApiCall) => Promise<ApiAnswer | null> {
    const pathsOf = (ihs: Set<string>): Map<string, string[]> => contentPaths(this.meta.root, ihs)
    return localRoutes({
      status: () => this.status(),
      replicator: () => this.replicator,
      scrub: {
        start: async () => {
          const partial = await this.torrents?.partialContents() ?? []
          return scrubReport(this.scrub.start(contentsToScrub(this.meta.contentRefs.contents, ih => this.content.has(ih), partial)), pathsOf)
        },
        status: () => scrubReport(this.scrub.status(), pathsOf)
      },
      setVolumeSettings: change => this.meta.setVolumeSettings(change),
      retire: async () => await this.beginRetire(this.replicator!)
    })
  }

  /** What GET /status answers and `swarmfs status` shows. */
  status (): Record<string, unknown> {
    const sync = this.syncer?.report() ?? { peers: [], inSync: true, refused: [] }
    return {
      nodeId: this.config.nodeId,
      volumeName: this.config.volumeName,
      head: this.meta.head,
      httpPort: this.server?.port ?? 0,
      torrentPort: this.torrents?.port ?? 0,
      mountPoint: this.mountPoint,
      peers: sync.peers,
      refused: sync.refused,
      inSync: sync.inSync
    }
  }

  /** Unmounts, seals what was written, commits, and releases the disk. Safe to call twice. */
  stop (): Promise<void> {
    this.stopping ??= (async () => {
      if (this.mounted !== null) await this.mounted.unmount()
      await this.replicator?.stop()
      this.scrub.stop()
      this.remote?.close()
      await this.torrents?.destroy()
      this.cachedByReads.flush()
      this.syncer?.stop()
      await this.discovery?.stop()
      await this.syncer?.settle()
      await stopFetchWorker()
      closePeerConnections()
      await this.vfs?.settle()
      await this.meta.close()
      this.content.close()
      await this.content.settle()
      await this.server?.stop()
      await this.local?.stop()
      this.unlock?.()
      this.log.info('stopped')
    })()
    return this.stopping
  }
}

/** Listens on the port of the last run (node.json), or on any port when another process took it. */
async function onSavedPort<T> (saved: number, what: string, log: Logger, start: (port: number) => Promise<T>): Promise<T> {
  try {
    return await start(saved)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || saved === 0) throw err
    log.warn(`the ${what} port of the last run is taken; using another`, { port: saved })
    return await start(0)
  }
}

export function parseHostPort (hp: string): { host: string, port: number } {
  const at = hp.lastIndexOf(':')
  const host = hp.slice(0, at)
  const port = Number(hp.slice(at + 1))
  if (at <= 0 || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new UserError(`invalid peer "${hp}": use host:port, e.g. 192.168.1.20:7421`)
  }
  return { host, port }
}

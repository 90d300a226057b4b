// One node = one disk. The only place that wires the parts together and decides their order of
// start and stop.
import { ContentStore } from '../content/store.js'
import { TorrentService } from '../content/torrents.js'
import { Discovery } from '../discovery/index.js'
import { mountVolume, type Mounted } from '../fs/mount.js'
import { PeerServer } from '../http/peer-server.js'
import type { Logger } from '../log/index.js'
import { GitStore } from '../meta/git-store.js'
import { Meta } from '../meta/meta.js'
import { conflictName, gitObjectStore, mergeHeads } from '../sync/merge.js'
import { Syncer } from '../sync/syncer.js'
import { VolumeFs } from '../vfs/volume-fs.js'
import { FsError, UserError } from '../errors/index.js'
import { layout, lockDisk, readConfig, writeConfig, type NodeConfig } from './disk.js'

/** A read waits this long for pieces, then fails with EIO: below fuse-native's own 15 s answer. */
const READ_DEADLINE_MS = 10_000
/** A read of a piece that failed this recently fails at once. */
const RECENT_FAILURE_MS = 3000
/** A whole content is fetched in steps of this, each with the read deadline. */
const FETCH_CHUNK = 16 * 1024 * 1024

export interface NodeOptions {
  disk: string
  /** Overrides the mount point stored in node.json; null runs without a mount. */
  mountPoint?: string | null
  /** Peers given by hand (host:port), besides those mDNS finds. */
  peers?: string[]
  /** IPv4 address to listen and announce on; all interfaces when not given. */
  address?: string
  log: Logger
}

export class SwarmNode {
  private mounted: Mounted | null = null
  private unlock: (() => void) | null = null
  private stopping: Promise<void> | null = null
  private server: PeerServer | null = null
  torrents: TorrentService | null = null
  private discovery: Discovery | null = null
  syncer: Syncer | null = null
  private mountPoint: string | null = null

  private constructor (
    readonly config: NodeConfig,
    readonly disk: string,
    readonly meta: Meta,
    readonly content: ContentStore,
    readonly vfs: VolumeFs,
    private readonly log: Logger
  ) {}

  /** Creates the repository of a new volume on a disk whose node.json was just written. */
  static async initVolume (disk: string, log: Logger): Promise<void> {
    const config = readConfig(disk)
    const paths = layout(disk)
    await new GitStore(paths.meta, log).init()
    const meta = await Meta.open({ gitdir: paths.meta, journalDir: paths.journal, stateDir: paths.state, nodeId: config.nodeId, log, onReleased: () => {} })
    meta.apply({ op: 'setattr', path: '/', attrs: { perm: 0o755 } })
    await meta.close()
  }

  static async start (opts: NodeOptions): Promise<SwarmNode> {
    const config = readConfig(opts.disk)
    const log = opts.log.child({ node: config.nodeId })
    const unlock = lockDisk(opts.disk)
    // The content callbacks below need the node, which exists only once meta is open.
    const holder: { node: SwarmNode | null } = { node: null }
    try {
      const paths = layout(opts.disk)
      const content = new ContentStore(opts.disk, config.volumeId, log)
      const meta = await Meta.open({
        gitdir: paths.meta,
        journalDir: paths.journal,
        stateDir: paths.state,
        nodeId: config.nodeId,
        log,
        onReleased: r => {
          content.remove(r.contents, r.staged)
          for (const ih of r.contents) void holder.node?.torrents?.forget(ih, { dropPartial: true }).catch(() => {})
        }
      })
      const removed = content.removeOrphanStaging(new Set(meta.stagedNow().map(f => f.staged?.id ?? '')))
      if (removed > 0) log.info('removed staging files of writes never closed', { removed })
      const vfs = new VolumeFs(meta, content, opts.disk, log)
      vfs.resumeSeals()
      meta.busy = n => n.kind === 'file' && (n.staged !== null || vfs.isWriting(n))
      const node = new SwarmNode(config, opts.disk, meta, content, vfs, log)
      holder.node = node
      node.unlock = unlock
      try {
        await node.startSync(opts)
        const mountPoint = opts.mountPoint !== undefined ? opts.mountPoint : config.mountPoint
        if (mountPoint !== null) {
          node.mounted = await mountVolume(mountPoint, vfs, log)
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
  private async startSync (opts: NodeOptions): Promise<void> {
    const { config, log } = this
    const paths = layout(this.disk)
    const store = gitObjectStore(paths.meta)
    const torrents = await this.startTorrents()
    const syncer = new Syncer({
      gitdir: paths.meta,
      nodeId: config.nodeId,
      volumeKey: config.volumeKey,
      meta: this.meta,
      store,
      merge: async (ours, theirs) => await mergeHeads(store, ours, theirs, log),
      conflictName,
      ports: () => ({ httpPort: this.server?.port ?? 0, torrentPort: torrents.port }),
      peerReady: p => { if (p.torrentPort > 0) torrents.addPeer(null, p.host, p.torrentPort) },
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
      onAuthenticated: from => syncer.hostAuthenticated(from),
      status: () => this.status()
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
    this.meta.onHead = head => syncer.announce(head)
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
  private async startTorrents (): Promise<TorrentService> {
    const { config, log, meta } = this
    const paths = layout(this.disk)
    const create = async (port: number): Promise<TorrentService> => await TorrentService.create({
      contentDir: paths.content,
      partialDir: paths.partial,
      volumeId: config.volumeId,
      listenPort: port,
      allowedPeer: ip => this.syncer?.isAuthenticatedHost(ip) ?? false,
      lookupInfo: ih => meta.contentInfo.get(ih) ?? null,
      log
    })
    const torrents = await onSavedPort(config.torrentPort, 'BitTorrent', log, create)
    this.torrents = torrents
    // The kernel retries a page whose read-ahead failed with a read of its own; without this the
    // reader would wait a second full deadline for the same piece.
    const failedAt = new Map<string, number>()
    this.vfs.remote = {
      read: async (ref, offset, length, into) => {
        const key = `${ref.infohash}:${Math.floor(offset / ref.info.pieceLength)}`
        const failed = failedAt.get(key)
        if (failed !== undefined && Date.now() - failed < RECENT_FAILURE_MS) throw new FsError('EIO', 'EIO: that piece could not be fetched just now')
        try {
          return (await torrents.read(ref.infohash, ref.info, offset, length, READ_DEADLINE_MS, into)).length
        } catch (err) {
          failedAt.set(key, Date.now())
          if (failedAt.size > 1000) failedAt.clear()
          throw err
        }
      },
      fetchAll: async ref => {
        for (let at = 0; at < ref.info.length && !this.content.has(ref.infohash); at += FETCH_CHUNK) {
          await torrents.fetch(ref.infohash, ref.info, at, Math.min(FETCH_CHUNK, ref.info.length - at), READ_DEADLINE_MS)
        }
        // The last piece in, the partial file is synced and moved into content/ just after.
        for (let waited = 0; !this.content.has(ref.infohash) && waited < READ_DEADLINE_MS; waited += 50) {
          await new Promise(resolve => setTimeout(resolve, 50))
        }
        if (!this.content.has(ref.infohash)) throw new FsError('EIO', 'EIO: the content could not be fetched whole')
      }
    }
    return torrents
  }

  /** What GET /status answers and `swarmfs status` shows. */
  status (): Record<string, unknown> {
    const sync = this.syncer?.report() ?? { peers: [], inSync: true }
    return {
      nodeId: this.config.nodeId,
      volumeName: this.config.volumeName,
      head: this.meta.head,
      httpPort: this.server?.port ?? 0,
      torrentPort: this.torrents?.port ?? 0,
      mountPoint: this.mountPoint,
      peers: sync.peers,
      inSync: sync.inSync
    }
  }

  /** Unmounts, seals what was written, commits, and releases the disk. Safe to call twice. */
  stop (): Promise<void> {
    this.stopping ??= (async () => {
      if (this.mounted !== null) await this.mounted.unmount()
      this.vfs.remote = null
      await this.torrents?.destroy()
      this.syncer?.stop()
      await this.discovery?.stop()
      await this.syncer?.settle()
      await this.vfs.settle()
      await this.meta.close()
      await this.server?.stop()
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

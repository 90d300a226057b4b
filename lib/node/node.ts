// One node = one disk. The only place that wires the parts together and decides their order of
// start and stop.
import { ContentStore } from '../content/store.js'
import { mountVolume, type Mounted } from '../fs/mount.js'
import type { Logger } from '../log/index.js'
import { GitStore } from '../meta/git-store.js'
import { Meta } from '../meta/meta.js'
import { VolumeFs } from '../vfs/volume-fs.js'
import { layout, lockDisk, readConfig, type NodeConfig } from './disk.js'

export interface NodeOptions {
  disk: string
  /** Overrides the mount point stored in node.json; null runs without a mount. */
  mountPoint?: string | null
  log: Logger
}

export class SwarmNode {
  private mounted: Mounted | null = null
  private unlock: (() => void) | null = null
  private stopping: Promise<void> | null = null

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
    try {
      const paths = layout(opts.disk)
      const content = new ContentStore(opts.disk, config.volumeId, log)
      const meta = await Meta.open({
        gitdir: paths.meta,
        journalDir: paths.journal,
        stateDir: paths.state,
        nodeId: config.nodeId,
        log,
        onReleased: r => content.remove(r.contents, r.staged)
      })
      const removed = content.removeOrphanStaging(new Set(meta.stagedNow().map(f => f.staged?.id ?? '')))
      if (removed > 0) log.info('removed staging files of writes never closed', { removed })
      const vfs = new VolumeFs(meta, content, opts.disk, log)
      vfs.resumeSeals()
      const node = new SwarmNode(config, opts.disk, meta, content, vfs, log)
      node.unlock = unlock
      const mountPoint = opts.mountPoint !== undefined ? opts.mountPoint : config.mountPoint
      if (mountPoint !== null) {
        node.mounted = await mountVolume(mountPoint, vfs, log)
        log.info('mounted', { mountPoint })
      }
      return node
    } catch (err) {
      unlock()
      throw err
    }
  }

  /** Unmounts, seals what was written, commits, and releases the disk. Safe to call twice. */
  stop (): Promise<void> {
    this.stopping ??= (async () => {
      if (this.mounted !== null) await this.mounted.unmount()
      await this.vfs.settle()
      await this.meta.close()
      this.unlock?.()
      this.log.info('stopped')
    })()
    return this.stopping
  }
}

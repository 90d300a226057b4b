// Joining a volume: find a peer that holds it (mDNS, or peers given by hand), then make a disk
// directory a node of it with a copy of the peer's metadata. Nothing is written to the disk until a
// peer has answered with the volume key; a failure after that removes what was written.
import fs from 'node:fs'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { Discovery } from '../discovery/index.js'
import { UserError } from '../core/errors.js'
import type { Logger } from '../core/log.js'
import { GitStore } from '../meta/git-store.js'
import { mergeHeads } from '../meta/merge.js'
import { gitObjectStore } from '../meta/object-store.js'
import { cloneFromPeer, getPeerStatus, PeerError } from '../sync/peer-client.js'
import { checkFreshDisk, layout, volumeIdOf, writeNewConfig, type NodeConfig } from './disk.js'
import { parseHostPort } from './node.js'

export interface JoinOptions {
  invite: { volumeName: string, volumeKey: string }
  disk: string
  mountPoint: string | null
  peers: string[]
  address?: string
  waitMs: number
  log: Logger
}

interface FoundPeer { host: string, port: number }

/** The first peer that answers with the volume key: mDNS and the given peers are asked at once. */
export async function findPeer (opts: Omit<JoinOptions, 'disk' | 'mountPoint'>): Promise<FoundPeer> {
  const key = opts.invite.volumeKey
  const candidates = opts.peers.map(parseHostPort)
  const discovery = new Discovery({
    volumeId: volumeIdOf(key),
    nodeId: randomBytes(8).toString('hex'),
    httpPort: 1,
    torrentPort: 0,
    address: opts.address,
    publish: false,
    log: opts.log
  })
  let refused: string | null = null
  let timer: NodeJS.Timeout | undefined
  let again: NodeJS.Timeout | undefined
  try {
    return await new Promise<FoundPeer>((resolve, reject) => {
      timer = setTimeout(() => {
        reject(new UserError(refused ?? `no peer of volume "${opts.invite.volumeName}" answered within ${Math.round(opts.waitMs / 1000)} s: start a node of it on this network, or give one with --peer host:port`))
      }, opts.waitMs)
      const probe = (host: string, port: number): void => {
        getPeerStatus({ host, port, key, timeoutMs: 3000 }).then(status => {
          // The key decides the volume; a name that is not its name is an invite edited by hand
          // or mixed up with another, and would label this disk wrongly from then on.
          const name = (status as { volumeName?: unknown } | null)?.volumeName
          if (typeof name === 'string' && name !== opts.invite.volumeName) {
            reject(new UserError(`the invite names volume "${opts.invite.volumeName}", but its key is that of volume "${name}" (peer ${host}:${port}): use the invite "swarmfs invite" prints on a node of it`))
            return
          }
          resolve({ host, port })
        }, err => {
          if (err instanceof PeerError && err.code === 'SWARMFS_PEER_KEY_REFUSED') {
            refused = `the peer at ${host}:${port} refused the invite's key: the invite is wrong or from another volume`
          }
          opts.log.debug('peer did not answer', { host, port, err: (err as Error).message })
        })
      }
      discovery.on('peer', p => probe(p.host, p.httpPort))
      discovery.start().catch(err => opts.log.warn('mDNS could not start; only peers given with --peer are asked', { err: (err as Error).message }))
      // Given peers are asked again every few seconds: one may still be starting up.
      const askGiven = (): void => { for (const c of candidates) probe(c.host, c.port) }
      askGiven()
      again = setInterval(() => { askGiven(); discovery.refresh() }, 2000)
    })
  } finally {
    clearTimeout(timer)
    clearInterval(again)
    await discovery.stop()
  }
}

/** Makes `disk` a node of the volume with the metadata of `peer`; returns its config. */
export async function joinVolume (opts: JoinOptions, peer: FoundPeer): Promise<NodeConfig> {
  const { volumeName, volumeKey } = opts.invite
  const existed = fs.existsSync(opts.disk)
  checkFreshDisk(opts.disk, volumeKey)
  try {
    const config = writeNewConfig(opts.disk, volumeName, volumeKey, opts.mountPoint, {
      peers: opts.peers.length > 0 ? opts.peers : undefined,
      address: opts.address
    })
    const head = await cloneFromPeer({ gitdir: layout(opts.disk).meta, host: peer.host, port: peer.port, key: volumeKey })
    if (head === null) throw new UserError(`the peer at ${peer.host}:${peer.port} has no commit of the volume yet; try again once it has started`)
    // The clone stays the one pack it arrived as: loading the index reads every entry of it, and
    // from one pack that is a search in memory and an inflate each (meta/packs.ts).
    await screenClone(layout(opts.disk).meta, head, config.volumeId, opts.log)
    return config
  } catch (err) {
    // Nothing of a half-made node is left behind.
    if (existed) for (const name of fs.readdirSync(opts.disk)) fs.rmSync(`${opts.disk}/${name}`, { recursive: true, force: true })
    else fs.rmSync(opts.disk, { recursive: true, force: true })
    throw err
  }
}

/**
 * The clone is a peer's head, as untrusted as any it sends later, but it becomes this node's own
 * history, which merges trust. So it is screened as a merge screens a head (every entry, torrent
 * info included): merged into an empty commit. A clean clone stays as it is; one with refused
 * entries (logged by the merge) is replaced by the merge, which has the clone as a parent, so
 * peers fast-forward to it and drop those entries too.
 */
export async function screenClone (gitdir: string, head: string, volumeId: string, log: Logger): Promise<void> {
  const store = gitObjectStore(gitdir)
  const sig = { name: 'swarmfs', email: 'join@swarmfs', timestamp: 0, timezoneOffset: 0 }
  const empty = await store.writeCommit({ message: 'join\n', tree: await store.writeTree([]), parent: [], author: sig, committer: sig })
  const screened = await mergeHeads(store, empty, head, log, volumeId)
  if (screened.rejected.length === 0) return
  // A history refused whole (a malformed commit graph, a root that is no tree) gives nothing to join.
  const whole = screened.rejected.find(r => r.path === '/')
  if (whole !== undefined) throw new UserError(`the metadata the peer sent was refused: ${whole.reason}`)
  log.warn('the metadata copied at join held entries that were refused', { peerHead: head, refused: screened.rejected.length })
  await new GitStore(gitdir, log, volumeId).setHead(screened.commit)
}

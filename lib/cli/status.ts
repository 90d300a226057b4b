// What `swarmfs status` reports, read from the disk (and the lock) without disturbing a running node.
import fs from 'node:fs'
import { GitStore } from '../meta/git-store.js'
import { silentLogger } from '../core/log.js'
import { layout, lockHolder, readConfig } from '../node/disk.js'
import { formatBytes } from '../replicate/plan.js'
import { contentsOnDisk } from '../content/store.js'
import type { ReplicationStatus } from '../replicate/replicator.js'
import { callLocalNode } from './local-node.js'

export interface Status {
  volume: string
  volumeId: string
  nodeId: string
  disk: string
  /** Where the running node mounted the volume (null: no mount); when stopped, where a start mounts it. */
  mountPoint: string | null
  running: boolean
  /** The disk was retired: it cannot run again. */
  retired: boolean
  pid: number | null
  head: string | null
  lastCommit: string | null
  contents: number
  contentBytes: number
  stagedFiles: number
  /** Contents partly fetched for reads (a cache: evicted when the disk needs room) and the bytes their pieces take. */
  cachedContents: number
  cachedBytes: number
  diskFreeBytes: number
  /** From the running node: its peers and whether it has caught up with them. */
  live: LiveStatus | null
}

interface LivePeer { nodeId: string, host: string, httpPort: number, head: string | null, lastSeen: number | null, lastError: string | null }
interface RefusedHost { host: string, port: number | null, nodeId: string | null, at: number, reason: string }
interface LiveStatus { head: string | null, inSync: boolean, peers: LivePeer[], refused?: RefusedHost[], mountPoint?: string | null, replication?: ReplicationStatus | null }

export async function statusOf (disk: string): Promise<Status> {
  const config = readConfig(disk)
  const paths = layout(disk)
  const git = new GitStore(paths.meta, silentLogger)
  const head = await git.head()
  let lastCommit: string | null = null
  if (head !== null) lastCommit = new Date((await git.commitInfo(head)).time * 1000).toISOString()
  const held = contentsOnDisk(disk)
  const pid = lockHolder(disk)
  const free = fs.statfsSync(disk)
  let live: LiveStatus | null = null
  if (pid !== null && config.retired !== true) {
    try {
      // Replication is asked apart: peers poll /status for heads every few seconds and need none of it.
      const [sync, replication] = await Promise.all([callLocalNode(disk, 'GET', '/status', undefined, 3000), callLocalNode(disk, 'GET', '/replication', undefined, 3000)])
      live = { ...(sync as LiveStatus), replication: replication as ReplicationStatus }
    } catch {
      // A node not answering (still starting, or stuck): what the disk says is shown.
    }
  }
  return {
    volume: config.volumeName,
    volumeId: config.volumeId,
    nodeId: config.nodeId,
    disk,
    mountPoint: live !== null && live.mountPoint !== undefined ? live.mountPoint : config.mountPoint,
    running: pid !== null,
    retired: config.retired === true,
    pid,
    head,
    lastCommit,
    ...held,
    diskFreeBytes: free.bavail * free.bsize,
    live
  }
}

const gib = (n: number): string => `${(n / 2 ** 30).toFixed(2)} GiB`
/** `1 file`, `2 files`. */
const count = (n: number, what: string): string => `${n} ${what}${n === 1 ? '' : 's'}`

export function formatStatus (s: Status): string {
  return [
    `volume:      ${s.volume} (id ${s.volumeId})`,
    `node:        ${s.nodeId} ${s.running ? `running (pid ${s.pid ?? '?'})` : s.retired ? 'retired (its files are on other disks; it cannot run again)' : 'stopped'}`,
    `disk:        ${s.disk} (${gib(s.diskFreeBytes)} free)`,
    `mount:       ${s.mountPoint ?? '(none)'}${!s.running && s.mountPoint !== null ? ' (when started)' : ''}`,
    `head:        ${s.head ?? '(no commit)'}${s.lastCommit !== null ? ` at ${s.lastCommit}` : ''}`,
    `contents:    ${count(s.contents, 'file')}, ${formatBytes(s.contentBytes)}${s.stagedFiles > 0 ? `; ${s.stagedFiles} being written` : ''}`,
    `cache:       ${count(s.cachedContents, 'partly fetched file')}, ${formatBytes(s.cachedBytes)} (pieces read from peers; given back when the disk needs room)`,
    ...liveLines(s),
    ...replicationLines(s.live?.replication ?? null)
  ].join('\n') + '\n'
}

/**
 * A progress line on stderr: rewritten in place on a terminal; elsewhere (a log, a pipe) printed
 * again only when it changes.
 */
export function progressLine (): { show: (line: string) => void, end: () => void } {
  const tty = process.stderr.isTTY
  let last = ''
  return {
    show: line => {
      if (tty) process.stderr.write(`\r${line}\x1b[K`)
      else if (line !== last) process.stderr.write(line + '\n')
      last = line
    },
    end: () => { if (tty && last !== '') process.stderr.write('\n') }
  }
}

/** `[#####.....]  50%` */
export function progressBar (fraction: number, width = 20): string {
  const f = Math.min(1, Math.max(0, Number.isFinite(fraction) ? fraction : 0))
  const filled = Math.round(f * width)
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${Math.floor(f * 100).toString().padStart(3)}%`
}

function replicationLines (r: ReplicationStatus | null): string[] {
  if (r === null) return []
  const health = r.lost > 0
    ? `${r.lost} files on no running disk, ${r.underTarget} under target`
    : r.underTarget > 0 ? `${r.underTarget} of ${count(r.contents, 'file')} under target` : `every file (${r.contents}) has its copies`
  const lines = [`copies:      target ${r.copies} (grace period ${r.graceMs / 1000} s); ${health}${r.retiring ? `; this disk is retiring (${r.retireRemaining ?? '?'} files still need copies elsewhere)` : ''}`]
  for (const n of r.nodes) {
    const state = n.retiring ? 'retiring' : n.up ? 'up' : n.counts ? 'gone (in grace period)' : 'gone'
    lines.push(`  node ${n.nodeId} ${state}: ${count(n.complete, 'file')}, ${formatBytes(n.completeBytes)}${n.cached > 0 ? ` (${n.cached} of them cached by reads)` : ''}; disk ${formatBytes(n.free)} free of ${formatBytes(n.total)} (reserve ${formatBytes(n.reserve)})`)
    for (const c of n.copying) lines.push(`    copying ${c.infohash.slice(0, 12)} ${progressBar(c.total > 0 ? c.done / c.total : 1)} ${formatBytes(c.done)} of ${formatBytes(c.total)}`)
  }
  return lines
}

function liveLines (s: Status): string[] {
  if (s.live === null) return s.running ? ['peers:       (the node did not answer)'] : []
  // A peer that cannot be reached does not hold up "in sync" (a node gone for good would keep it
  // catching up forever), but it is said: this node may be the one cut off.
  const unreachable = s.live.peers.filter(p => p.lastError !== null).length
  const state = !s.live.inSync
    ? 'catching up'
    : unreachable === 0 ? 'in sync with every peer' : unreachable === s.live.peers.length ? 'no peer reachable' : `in sync with the peers it reaches; ${unreachable} unreachable`
  const lines = [`sync:        ${state} (${count(s.live.peers.length, 'peer')})`]
  for (const p of s.live.peers) {
    const seen = p.lastSeen !== null ? new Date(p.lastSeen).toISOString() : 'never'
    lines.push(`  peer ${p.nodeId} ${p.host}:${p.httpPort} head ${p.head?.slice(0, 12) ?? '?'} last seen ${seen}${p.lastError !== null ? ` (error: ${p.lastError})` : ''}`)
  }
  // Hosts that announced the volume, were named with --peer, or connected, without the key.
  for (const r of s.live.refused ?? []) {
    const where = r.port === null ? r.host : `${r.host}:${r.port}`
    lines.push(`  refused ${where}${r.nodeId !== null ? ` (claims node ${r.nodeId})` : ''} at ${new Date(r.at).toISOString()}: did not prove the volume key`)
  }
  return lines
}

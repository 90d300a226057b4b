// A node's disk directory: node.json (identity, volume key: mode 0600) and the lock that keeps two
// processes from running one disk.
import fs from 'node:fs'
import { createHash, randomBytes } from 'node:crypto'
import { join, resolve } from 'node:path'
import { makeDirs } from '../core/user-paths.js'
import { UserError, SwarmError } from '../core/errors.js'
import { writeFileDurableSync } from '../core/durable.js'

export interface NodeConfig {
  version: 1
  nodeId: string
  volumeName: string
  volumeId: string
  volumeKey: string
  mountPoint: string | null
  httpPort: number
  torrentPort: number
  /** Peers given by hand (host:port) at join or start, asked at every start. */
  peers?: string[]
  /** IPv4 address to listen and announce on, when one was chosen. */
  address?: string
  /** Space of the disk kept free (no copies are taken below): bytes, or a percentage; default: see reserveOf. */
  reserve?: number | { percent: number }
  /** `swarmfs retire` started draining this disk; once drained the node stops and does not start again. */
  retiring?: boolean
  retired?: boolean
}

/** The reserve in bytes of a disk of `total` bytes: as configured, or 5 % and at most 1 GiB. */
export function reserveOf (config: NodeConfig, total: number): number {
  const r = config.reserve
  if (typeof r === 'number') return r
  if (r !== undefined) return Math.floor(total * r.percent / 100)
  return Math.min(2 ** 30, Math.floor(total * 0.05))
}

export const layout = (disk: string) => ({
  config: join(disk, 'node.json'),
  lock: join(disk, 'node.lock'),
  meta: join(disk, 'meta'),
  journal: join(disk, 'journal'),
  state: join(disk, 'state')
  // content/, partial/ and staging/ are the content store's (lib/content/store.ts).
})

export function volumeIdOf (key: string): string {
  return createHash('sha256').update('swarmfs volume id\0' + key).digest('hex').slice(0, 40)
}

export function isValidVolumeName (name: string): boolean {
  return /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(name)
}

export function inviteFor (config: NodeConfig): string {
  return `swarmfs://${config.volumeName}/${config.volumeKey}`
}

/** The volume name and key an invite carries; a UserError that says what is wrong otherwise. */
export function parseInvite (invite: string): { volumeName: string, volumeKey: string } {
  const m = /^swarmfs:\/\/([^/]+)\/([A-Za-z0-9_-]{43})$/.exec(invite.trim())
  if (m === null || !isValidVolumeName(m[1])) {
    throw new UserError('invalid invite: expected swarmfs://<volume>/<key> exactly as "swarmfs init" printed it (quote it in the shell)')
  }
  return { volumeName: m[1], volumeKey: m[2] }
}

/** What a retired disk's commands say: it cannot run again, and how to use the directory again. */
export function retiredMessage (disk: string, volumeName: string): string {
  return `${disk} was retired from volume "${volumeName}" (its files are on other disks) and cannot run again; to add it to the volume again, delete it (rm -r ${disk}) and run "swarmfs join <invite> --disk ${disk}"`
}

/**
 * Checks that a disk directory can take a new node of the volume, changing nothing: it must be
 * new or empty, not a disk of this or another volume.
 */
export function checkFreshDisk (disk: string, volumeKey?: string): void {
  if (fs.existsSync(layout(disk).config)) {
    const existing = readConfig(disk)
    if (existing.retired === true) throw new UserError(retiredMessage(disk, existing.volumeName))
    if (volumeKey !== undefined && existing.volumeKey === volumeKey) {
      throw new UserError(`${disk} already holds a node of volume "${existing.volumeName}"; start it with "swarmfs start --disk ${disk}"`)
    }
    throw new UserError(`${disk} already belongs to volume "${existing.volumeName}"; choose another disk directory`)
  }
  if (fs.existsSync(disk) && (!fs.statSync(disk).isDirectory() || fs.readdirSync(disk).length > 0)) {
    throw new UserError(`${disk} is not empty and is not a swarmfs disk; choose an empty or new directory`)
  }
}

export function createConfig (disk: string, volumeName: string, mountPoint: string | null): NodeConfig {
  if (!isValidVolumeName(volumeName)) {
    throw new UserError(`invalid volume name "${volumeName}": use letters, digits, '.', '_' or '-' (at most 64)`)
  }
  if (fs.existsSync(layout(disk).config)) {
    const existing = readConfig(disk)
    throw new UserError(`${disk} already holds volume "${existing.volumeName}"; use "swarmfs start --disk ${disk}" or choose another disk directory`)
  }
  checkFreshDisk(disk)
  return writeNewConfig(disk, volumeName, randomBytes(32).toString('base64url'), mountPoint)
}

/** node.json for a new node of a volume (a new one, or one being joined). */
export function writeNewConfig (disk: string, volumeName: string, volumeKey: string, mountPoint: string | null, extra: Partial<NodeConfig> = {}): NodeConfig {
  const config: NodeConfig = {
    version: 1,
    nodeId: randomBytes(8).toString('hex'),
    volumeName,
    volumeId: volumeIdOf(volumeKey),
    volumeKey,
    mountPoint: mountPoint !== null ? resolve(mountPoint) : null,
    httpPort: 0,
    torrentPort: 0,
    ...extra
  }
  makeDirs(disk, 'disk directory')
  writeConfig(disk, config)
  return config
}

export function writeConfig (disk: string, config: NodeConfig): void {
  const path = layout(disk).config
  // Durable: it holds the volume key, which nothing else on the disk can give back.
  writeFileDurableSync(path, JSON.stringify(config, null, 2) + '\n', 0o600)
}

export function readConfig (disk: string): NodeConfig {
  const path = layout(disk).config
  let text: string
  try {
    text = fs.readFileSync(path, 'utf8')
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') {
      throw new UserError(`${disk} is not a swarmfs disk (no node.json); create one with "swarmfs init <name> --disk ${disk}"`)
    }
    throw new UserError(`cannot read ${path}: ${(err as Error).message}`)
  }
  try {
    const c = JSON.parse(text) as NodeConfig
    if (c.version !== 1 || typeof c.nodeId !== 'string' || typeof c.volumeKey !== 'string') throw new SwarmError('SWARMFS_DISK', 'missing fields')
    return c
  } catch (err) {
    throw new UserError(`${path} is damaged (${(err as Error).message}); restore it from a backup`)
  }
}

/** Whether a process runs (a zombie does not). */
export function processAlive (pid: number): boolean {
  try {
    // A killed node not yet reaped by its parent is a zombie: dead, though kill(0) still finds it.
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z'
  } catch {
    return false
  }
}

export function lockHolder (disk: string): number | null {
  try {
    const pid = Number(fs.readFileSync(layout(disk).lock, 'utf8').trim())
    return Number.isSafeInteger(pid) && pid > 0 && processAlive(pid) ? pid : null
  } catch {
    return null
  }
}

/** Takes the disk for this process; a lock whose process is gone (a crash) is taken over. */
export function lockDisk (disk: string): () => void {
  const path = layout(disk).lock
  const holder = lockHolder(disk)
  if (holder !== null && holder !== process.pid) {
    throw new UserError(`${disk} is in use by a running node (pid ${holder}); stop it first`)
  }
  fs.writeFileSync(path, String(process.pid) + '\n')
  return () => {
    if (lockHolder(disk) === process.pid) fs.rmSync(path, { force: true })
  }
}

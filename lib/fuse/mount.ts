// Mounting the volume with fuse-native, and clearing a stale mount a crashed node left behind.
import fs from 'node:fs'
import { resolve } from 'node:path'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import Fuse from 'fuse-native'
import { UserError } from '../core/errors.js'
import { checkApart, makeDirs } from '../core/user-paths.js'
import type { Logger } from '../core/log.js'
import type { VolumeFs } from '../vfs/volume-fs.js'
import { fuseOps, opTimes } from './fuse-ops.js'

const run = promisify(execFile)

/**
 * Mount options. fuse-native builds libfuse's `-o` string only from options it knows and has no
 * `big_writes`; it appends `fsname` unescaped, so further libfuse options ride after a comma there.
 * - big_writes: writes arrive 128 KiB at a time instead of 4 KiB (measured 44 → 416 MB/s).
 * - max_read: reads up to 128 KiB, libfuse 2's ceiling on Linux.
 * - auto_cache: the kernel keeps file pages between opens and drops them when the size or mtime it
 *   sees has changed; contents change only with a new size or mtime (a sealed write, a sync from a
 *   peer), so cached pages are never stale while reopening a file reads it from memory.
 * - entry timeout of 1 s: peers change the index behind the kernel's back and fuse-native cannot
 *   invalidate kernel caches; 1 s bounds how long a name stays cached.
 * - attr_timeout 0: libfuse 2 gives every name its own kernel inode, so a cached attribute of one
 *   name of a hard-linked file would go stale when the file changes through another (a link count
 *   after ln or rm, a size after a write, so a read would stop short); nothing is cached instead.
 *   ac_attr_timeout stays 1 s, so auto_cache's check at open does not ask for them a second
 *   time: with nothing cached, the kernel has just asked (its permission check before the open).
 * - use_ino: stat shows VolumeFs's inode numbers, the same under every name of a file.
 * - negative_timeout 0 (default): a name created by a peer must not stay hidden.
 * - default_permissions: the kernel checks mode bits like any local filesystem.
 * - atomic_o_trunc: open(O_TRUNC) arrives as one open with the flag instead of an open and then a
 *   truncate, so `> file` never copies the old content first (which may not even be on this disk).
 *   The kernel then drops that truncate's times and setuid/setgid clearing too: the open does them.
 * - no hard_remove: libfuse 2 asks for fstat by path, so an unlinked file that is still open keeps
 *   one, `.fuse_hidden…`, which the vfs knows and keeps out of the tree (see lib/vfs/hidden-files.ts).
 * - allow_other (`allowOther`): other users reach the mount, as on a local disk; default_permissions
 *   makes the kernel check their rights. Root may always ask for it; others only where
 *   /etc/fuse.conf has user_allow_other (fusermount refuses the mount otherwise).
 */
export function mountOptions (allowOther = othersMayBeAllowed()): Record<string, unknown> {
  return {
    // fuse-native leaves out a timeout of 0 (libfuse then takes 1 s), so attr_timeout rides here.
    fsname: 'swarmfs,big_writes,max_read=131072,negative_timeout=0,atomic_o_trunc,attr_timeout=0,use_ino',
    allowOther,
    subtype: 'swarmfs',
    autoCache: true,
    acAttrTimeout: 1,
    entryTimeout: 1,
    defaultPermissions: true,
    force: true,
    mkdir: true,
    // Our handlers answer every operation themselves; this is only a backstop. Opening a large
    // file for writing copies it first (copy-on-write), which takes as long as the disk needs.
    timeout: { default: 14000, open: false, create: false, truncate: false }
  }
}

function othersMayBeAllowed (): boolean {
  if (process.getuid?.() === 0) return true
  try {
    return /^\s*user_allow_other\s*$/m.test(fs.readFileSync('/etc/fuse.conf', 'utf8'))
  } catch {
    return false
  }
}

/**
 * The filesystem mounted at `resolved` (an absolute path without symlinks) per
 * /proc/self/mountinfo: its type and "major:minor" (the last mount there, which is the one seen);
 * null when none is.
 */
function mountAt (resolved: string): { type: string, dev: string } | null {
  let found: { type: string, dev: string } | null = null
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const fields = line.split(' ')
    if (fields[4] === undefined || unescapeMount(fields[4]) !== resolved) continue
    // Optional fields end with a lone "-"; the filesystem type follows it.
    found = { type: fields[fields.indexOf('-') + 1] ?? '', dev: fields[2] ?? '' }
  }
  return found
}

/** The "major:minor" of the FUSE filesystem mounted at `resolved`, or null when none is. */
function fuseDeviceAt (resolved: string): string | null {
  const m = mountAt(resolved)
  return m !== null && m.type.startsWith('fuse') ? m.dev : null
}

/**
 * Everything that would refuse `mountPoint` as the mount of the node of `disk`, checked before a
 * command writes anything (init and join would otherwise leave a disk whose every start fails):
 * one line saying what is wrong. Creates the directory when missing. A stale FUSE mount (its
 * process gone) passes: the start clears it.
 */
export function checkMountPoint (mountPoint: string, disk: string): void {
  const mnt = resolve(mountPoint)
  checkApart(mnt, disk)
  // Asked before any stat: a stat of a FUSE mount whose process is gone fails with ENOTCONN.
  const m = mountAt(safeRealpath(mnt))
  if (m !== null) {
    if (!m.type.startsWith('fuse')) throw new UserError(`${mnt} is where a ${m.type} filesystem is mounted; choose an empty directory that is not a mount point`)
    let alive = true
    try {
      fs.statfsSync(mnt)
    } catch {
      alive = false
    }
    if (alive) throw new UserError(`${mnt} is already mounted by a running filesystem; stop it first (fusermount -u ${mnt})`)
    return
  }
  const st = fs.statSync(mnt, { throwIfNoEntry: false })
  if (st !== undefined && !st.isDirectory()) throw new UserError(`mount point ${mnt} is not a directory; choose an empty directory`)
  makeDirs(mnt, 'mount point')
  if (fs.readdirSync(mnt).length > 0) throw new UserError(`mount point ${mnt} is not empty; choose an empty directory`)
}

function mountsAt (mountPoint: string): boolean {
  return fuseDeviceAt(fs.existsSync(mountPoint) ? safeRealpath(mountPoint) : mountPoint) !== null
}

function safeRealpath (p: string): string {
  try {
    return fs.realpathSync(p)
  } catch {
    return p
  }
}

function unescapeMount (s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)))
}

/**
 * A FUSE mount at `mountPoint` whose process is gone answers ENOTCONN; unmount it lazily. It is
 * asked with statfs, which the kernel always sends to the filesystem: a stat can be answered from
 * the attributes it cached (for attrTimeout), so right after the process died a stat still
 * succeeded and a restart was refused as "already mounted".
 */
export async function clearStaleMount (mountPoint: string, log: Logger): Promise<void> {
  if (!mountsAt(mountPoint)) return
  try {
    fs.statfsSync(mountPoint)
    throw new UserError(`${mountPoint} is already mounted by a running filesystem; stop it first (fusermount -u ${mountPoint})`)
  } catch (err) {
    if (err instanceof UserError) throw err
    const code = (err as { code?: string }).code
    if (code !== 'ENOTCONN' && code !== 'ECONNABORTED') throw err
  }
  log.info('clearing a stale mount left by a crashed node', { mountPoint })
  await run('fusermount', ['-uz', mountPoint])
}

/**
 * The kernel's read-ahead for the mount, in KiB. A FUSE mount starts with 128 KiB: a sequential
 * reader then has at most one 128 KiB request (max_read) in flight beyond its own read, and each
 * round trip through this process stalls the stream. Measured on a remote 1 GiB `dd bs=1M` (two
 * namespaces, the dev harness of the content benchmark): 128 KiB 166-190 MB/s, 8 MiB 184-221 MB/s
 * (median 214), 32 MiB the same. Random reads are unaffected (the kernel reads ahead only for a
 * sequential stream). libfuse's max_readahead can only lower it, so it is set through sysfs.
 */
export const READ_AHEAD_KB = 8192

/**
 * Raises the mount's read-ahead to READ_AHEAD_KB; needs root (sysfs), so without it the mount
 * keeps the kernel's. `resolvedMountPoint` is resolved before mounting: resolving it afterwards
 * would ask this process's own mount from the thread that answers it. The kernel sets the read-ahead when it gets libfuse's INIT reply, which can
 * come after libfuse says the mount is up, and the mount can show in mountinfo later still: so
 * first the mount is awaited in mountinfo, then an operation through it (any waits for INIT; it
 * runs off this thread, which answers it).
 */
async function raiseReadAhead (resolvedMountPoint: string, log: Logger): Promise<void> {
  let dev = fuseDeviceAt(resolvedMountPoint)
  for (let tries = 0; dev === null && tries < 100; tries++) {
    await new Promise(resolve => setTimeout(resolve, 20))
    dev = fuseDeviceAt(resolvedMountPoint)
  }
  if (dev === null) {
    log.debug('the mount keeps the kernel\'s read-ahead: not in /proc/self/mountinfo', { mountPoint: resolvedMountPoint })
    return
  }
  await fs.promises.stat(resolvedMountPoint).catch(() => {})
  await fs.promises.writeFile(`/sys/class/bdi/${dev}/read_ahead_kb`, String(READ_AHEAD_KB))
}

export interface Mounted {
  unmount (): Promise<void>
}

/**
 * How often the mount is looked for in mountinfo: an unmount from outside (`umount`, `fusermount
 * -u`, a shutdown) ends libfuse's loop without a word to this process.
 */
const MOUNT_CHECK_MS = 1000

/**
 * Mounts the volume. `onGone` is called once if the mount is unmounted from outside (as a FUSE
 * filesystem's process ends when its mount goes, the node then stops).
 */
export async function mountVolume (mountPoint: string, disk: string, vfs: VolumeFs, log: Logger, onGone: () => void = () => {}): Promise<Mounted> {
  await clearStaleMount(mountPoint, log)
  checkMountPoint(mountPoint, disk)
  const resolved = safeRealpath(mountPoint)
  const fuse = new Fuse(mountPoint, fuseOps(vfs, log), mountOptions() as any)
  await new Promise<void>((resolve, reject) => fuse.mount(err => err ? reject(err) : resolve()))
  // A tuning only: nothing in it may fail the mount (without root, sysfs refuses the write).
  await raiseReadAhead(resolved, log).catch(err => log.debug('the mount keeps the kernel\'s read-ahead', { err: (err as Error).message }))
  let mounted = true
  let goneFromOutside = false
  // The mount can show in mountinfo a moment after libfuse says it is up (see raiseReadAhead).
  let ours = fuseDeviceAt(resolved)
  const watch = setInterval(() => {
    if (!mounted) return
    const now = fuseDeviceAt(resolved)
    if (ours === null) ours = now
    if (now === ours) return
    goneFromOutside = true
    clearInterval(watch)
    log.info('the mount was unmounted from outside', { mountPoint })
    onGone()
  }, MOUNT_CHECK_MS)
  watch.unref()
  return {
    unmount: async () => {
      if (!mounted) return
      mounted = false
      clearInterval(watch)
      // fuse-native's unmount also ends its thread and handles, so it runs even when the kernel
      // has unmounted already; fusermount then fails, as expected.
      await new Promise<void>((resolve) => fuse.unmount(err => {
        if (err && !goneFromOutside) log.warn('unmount failed; trying a lazy unmount', { err })
        resolve()
      }))
      if (mountsAt(mountPoint)) await run('fusermount', ['-uz', mountPoint]).catch(() => {})
      if (opTimes.size > 0) {
        log.warn('operation times', Object.fromEntries([...opTimes].map(([op, t]) => [op, `${t.count} ops, ${(t.ms / t.count).toFixed(3)} ms avg`])))
      }
    }
  }
}

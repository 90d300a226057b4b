// fuse-native handlers: translate arguments, call the volume, map the error once.
import fs from 'node:fs'
import Fuse from 'fuse-native'
import type { Logger } from '../core/log.js'
import type { Owner, VolumeFs } from '../vfs/volume-fs.js'
import { toErrno } from './errno.js'

type Cb = (code: number, ...values: unknown[]) => void

/** With SWARMFS_TRACE_OPS set, time spent in each operation is summed and logged at unmount. */
export const opTimes = new Map<string, { count: number, ms: number }>()
const tracing = process.env.SWARMFS_TRACE_OPS !== undefined

function traced (op: string, cb: Cb): Cb {
  if (!tracing) return cb
  const start = performance.now()
  return (code, ...values) => {
    const t = opTimes.get(op) ?? { count: 0, ms: 0 }
    t.count++
    t.ms += performance.now() - start
    opTimes.set(op, t)
    cb(code, ...values)
  }
}

/** Who asked for what is being created: it is theirs, as on a local disk (read before any await). */
function caller (): Owner | null {
  return Fuse.caller()
}

const CAP_FSETID = 4n

/**
 * Whether process `pid` has CAP_FSETID in effect, which keeps setuid and setgid through a truncate
 * (only asked of an O_TRUNC of a file that has them). A process already gone counts as without.
 */
function hasFsetid (pid: number): boolean {
  try {
    const capEff = /^CapEff:\s*([0-9a-f]+)$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]
    return capEff !== undefined && (BigInt(`0x${capEff}`) & (1n << CAP_FSETID)) !== 0n
  } catch {
    return false
  }
}

export function fuseOps (vfs: VolumeFs, log: Logger): Record<string, (...args: any[]) => void> {
  /** Runs `fn` (sync or async) and answers the kernel with its result or errno. */
  const run = (op: string, path: string, cb: Cb, fn: () => unknown, answer: (value: any) => unknown[] = v => v === undefined ? [] : [v]): void => {
    cb = traced(op, cb)
    let result: unknown
    try {
      result = fn()
    } catch (err) {
      cb(toErrno(err, log, op, path))
      return
    }
    if (result instanceof Promise) {
      result.then(v => cb(0, ...answer(v)), err => cb(toErrno(err, log, op, path)))
    } else {
      cb(0, ...answer(result))
    }
  }

  return {
    init: (cb: Cb) => cb(0),
    getattr: (path: string, cb: Cb) => run('getattr', path, cb, () => vfs.getattr(path)),
    fgetattr: (path: string, fh: number, cb: Cb) => run('fgetattr', path, cb, () => vfs.fgetattr(fh)),
    access: (path: string, _mode: number, cb: Cb) => run('access', path, cb, () => vfs.access(path)),
    readdir: (path: string, cb: Cb) => run('readdir', path, cb, () => vfs.readdir(path), (d: ReturnType<VolumeFs['readdir']>) => [d.names, d.stats]),
    readlink: (path: string, cb: Cb) => run('readlink', path, cb, () => vfs.readlink(path)),
    statfs: (path: string, cb: Cb) => run('statfs', path, cb, () => vfs.statfs(), (s: import('node:fs').StatsFs) => [{
      bsize: s.bsize,
      frsize: s.bsize,
      blocks: s.blocks,
      bfree: s.bfree,
      bavail: s.bavail,
      files: s.files,
      ffree: s.ffree,
      favail: s.ffree,
      namemax: 255
    }]),
    mkdir: (path: string, mode: number, cb: Cb) => run('mkdir', path, cb, () => vfs.mkdir(path, mode, caller())),
    rmdir: (path: string, cb: Cb) => run('rmdir', path, cb, () => vfs.rmdir(path)),
    unlink: (path: string, cb: Cb) => run('unlink', path, cb, () => vfs.unlink(path)),
    rename: (from: string, to: string, cb: Cb) => run('rename', from, cb, () => vfs.rename(from, to)),
    symlink: (target: string, path: string, cb: Cb) => run('symlink', path, cb, () => vfs.symlink(target, path, caller())),
    link: (from: string, to: string, cb: Cb) => run('link', to, cb, () => vfs.link(from, to)),
    mknod: (path: string, mode: number, dev: number, cb: Cb) => run('mknod', path, cb, () => vfs.mknod(path, mode, dev, caller())),
    chmod: (path: string, mode: number, cb: Cb) => run('chmod', path, cb, () => vfs.chmod(path, mode)),
    chown: (path: string, uid: number, gid: number, cb: Cb) => run('chown', path, cb, () => vfs.chown(path, uid, gid)),
    utimens: (path: string, atime: number, mtime: number, atimeNs: number, mtimeNs: number, cb: Cb) => run('utimens', path, cb, () => vfs.utimens(path, atime, mtime, atimeNs, mtimeNs)),
    truncate: (path: string, size: number, cb: Cb) => run('truncate', path, cb, () => vfs.truncate(path, size)),
    ftruncate: (path: string, fh: number, size: number, cb: Cb) => run('ftruncate', path, cb, () => vfs.ftruncate(fh, size)),
    fallocate: (path: string, fh: number, mode: number, offset: number, length: number, cb: Cb) => run('fallocate', path, cb, () => vfs.fallocate(fh, mode, offset, length)),
    create: (path: string, mode: number, cb: Cb) => run('create', path, cb, () => vfs.create(path, mode, caller())),
    open: (path: string, flags: number, cb: Cb) => run('open', path, cb, () => {
      // Who opens matters only to an O_TRUNC (read now: the caller is known only before a yield).
      const pid = (flags & fs.constants.O_TRUNC) !== 0 ? Fuse.caller()?.pid : undefined
      return vfs.open(path, flags, () => pid !== undefined && hasFsetid(pid))
    }),
    read: (path: string, fh: number, buf: Buffer, len: number, pos: number, cb: Cb) => {
      cb = traced('read', cb)
      vfs.read(fh, buf, len, pos).then(n => cb(n), err => cb(toErrno(err, log, 'read', path)))
    },
    write: (path: string, fh: number, buf: Buffer, len: number, pos: number, cb: Cb) => {
      cb = traced('write', cb)
      vfs.write(fh, buf, len, pos).then(n => cb(n), err => cb(toErrno(err, log, 'write', path)))
    },
    flush: (path: string, fh: number, cb: Cb) => run('flush', path, cb, () => vfs.flush(fh)),
    fsync: (path: string, _datasync: number, fh: number, cb: Cb) => run('fsync', path, cb, () => vfs.fsync(fh)),
    fsyncdir: (path: string, _datasync: number, _fh: number, cb: Cb) => run('fsyncdir', path, cb, () => vfs.fsyncdir()),
    release: (path: string, fh: number, cb: Cb) => run('release', path, cb, () => vfs.release(fh))
  }
}

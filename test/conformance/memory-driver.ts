// The conformance driver of the core in this process: a VolumeFs with memory parts (memory index,
// remote reader and space; contents in a ContentStore on a temporary directory), called as the
// kernel and libfuse 2 call it: O_CREAT as a create, close as flush then release, reads and writes
// in pieces of 128 KiB, and an unlink (or a rename over) of an open file as libfuse's rename to
// a hidden name, unlinked at the last close.
import fs from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import { ContentStore } from '../../lib/content/store.js'
import { errnoOf as errnoName } from '../../lib/core/errors.js'
import { silentLogger } from '../../lib/core/log.js'
import { MemoryIndex, MemorySpace } from '../../lib/vfs/memory-parts.js'
import { VolumeFs, type Stat as VfsStat } from '../../lib/vfs/volume-fs.js'
import type { Driver, Stat } from './driver.js'
import { MemoryReader } from '../../lib/content/memory-reader.js'

const CHUNK = 128 * 1024
const { O_CREAT, O_EXCL, O_APPEND } = fs.constants

function toStat (s: VfsStat): Stat {
  return { ino: s.ino, mode: s.mode, uid: s.uid, gid: s.gid, size: s.size, nlink: s.nlink, blocks: s.blocks, atimeMs: s.atime + s.atimeNs / 1e6, mtimeMs: s.mtime + s.mtimeNs / 1e6, ctimeMs: s.ctime }
}

/** Rejects as the kernel answers: with the errno name as `code`. */
async function call<T> (fn: () => T | Promise<T>): Promise<T> {
  try {
    return await fn()
  } catch (err) {
    const code = errnoName(err, () => true) ?? 'EIO'
    throw Object.assign(new Error(`${code}: ${(err as Error).message}`), { code })
  }
}

function exists (vfs: VolumeFs, path: string): boolean {
  try {
    vfs.getattr(path)
    return true
  } catch {
    return false
  }
}

interface Open { fh: number, path: string, append: boolean }

export interface MemoryVolume {
  vfs: VolumeFs
  index: MemoryIndex
  remote: MemoryReader
  content: ContentStore
  dir: string
}

export function memoryVolume (): MemoryVolume {
  const dir = fs.mkdtempSync(join(os.tmpdir(), 'swarmfs-conformance-'))
  const content = new ContentStore(dir, 'conformance', silentLogger)
  const index = new MemoryIndex(released => content.remove(released.contents, released.staged))
  const remote = new MemoryReader(new Map(), (ref, bytes) => fs.writeFileSync(content.contentPath(ref.infohash), bytes))
  const vfs = new VolumeFs({ meta: index, content, remote, space: new MemorySpace(), log: silentLogger })
  return { vfs, index, remote, content, dir }
}

export function memoryDriver (vol: MemoryVolume = memoryVolume()): Driver {
  const { vfs } = vol
  const fds = new Map<number, Open>()
  let nextFd = 3
  let hiddenCount = 0
  const openAt = (path: string): boolean => [...fds.values()].some(o => o.path === path)
  /** libfuse's hide_node: an open file's name goes to a hidden one in its directory. */
  const hide = (path: string): void => {
    const ino = vfs.getattr(path).ino
    const hidden = `${path.slice(0, path.lastIndexOf('/'))}/.fuse_hidden${(ino % 2 ** 32).toString(16).padStart(8, '0')}${(hiddenCount++).toString(16).padStart(8, '0')}`
    vfs.rename(path, hidden)
    for (const o of fds.values()) if (o.path === path) o.path = hidden
  }
  const abs = (p: string): string => p.startsWith('/') ? p : '/' + p

  return {
    name: 'memory',
    mkdir: async (p, mode = 0o755) => await call(() => vfs.mkdir(abs(p), mode)),
    rmdir: async p => await call(() => vfs.rmdir(abs(p))),
    unlink: async p => await call(() => {
      const path = abs(p)
      if (openAt(path)) hide(path)
      else vfs.unlink(path)
    }),
    rename: async (from, to) => await call(() => {
      const [f, tt] = [abs(from), abs(to)]
      if (f !== tt && openAt(tt)) hide(tt)
      vfs.rename(f, tt)
      for (const o of fds.values()) {
        if (o.path === f) o.path = tt
        else if (o.path.startsWith(f + '/')) o.path = tt + o.path.slice(f.length)
      }
    }),
    link: async (from, to) => await call(() => vfs.link(abs(from), abs(to))),
    symlink: async (target, p) => await call(() => vfs.symlink(target, abs(p))),
    readlink: async p => await call(() => vfs.readlink(abs(p))),
    stat: async p => await call(() => toStat(vfs.getattr(abs(p)))),
    readdir: async p => await call(() => vfs.readdir(abs(p)).names.filter(n => n !== '.' && n !== '..').sort()),
    chmod: async (p, mode) => await call(() => vfs.chmod(abs(p), mode)),
    chown: async (p, uid, gid) => await call(() => vfs.chown(abs(p), uid, gid)),
    utimes: async (p, a, m) => await call(() => vfs.utimens(abs(p), Math.floor(a), Math.floor(m), Math.round((a % 1) * 1e6), Math.round((m % 1) * 1e6))),
    truncate: async (p, size) => await call(async () => await vfs.truncate(abs(p), size)),
    open: async (p, flags, mode = 0o644) => await call(async () => {
      const path = abs(p)
      let fh: number
      if ((flags & O_CREAT) !== 0 && !exists(vfs, path)) {
        fh = await vfs.create(path, mode)
      } else {
        if ((flags & O_CREAT) !== 0 && (flags & O_EXCL) !== 0) throw Object.assign(new Error('EEXIST'), { code: 'EEXIST' })
        fh = await vfs.open(path, flags & ~(O_CREAT | O_EXCL))
      }
      const fd = nextFd++
      fds.set(fd, { fh, path, append: (flags & O_APPEND) !== 0 })
      return fd
    }),
    write: async (fd, data, pos) => await call(async () => {
      const o = fds.get(fd)
      if (o === undefined) throw Object.assign(new Error('EBADF'), { code: 'EBADF' })
      let at = pos ?? vfs.fgetattr(o.fh).size
      let done = 0
      while (done < data.length) {
        // Each piece as the kernel sends it: a buffer of its own, at the end for O_APPEND.
        const piece = Buffer.from(data.subarray(done, done + CHUNK))
        const n = await vfs.write(o.fh, piece, piece.length, o.append ? vfs.fgetattr(o.fh).size : at)
        done += n
        at += n
        if (n < piece.length) break
      }
      return done
    }),
    read: async (fd, length, pos) => await call(async () => {
      const o = fds.get(fd)
      if (o === undefined) throw Object.assign(new Error('EBADF'), { code: 'EBADF' })
      const out: Buffer[] = []
      let got = 0
      while (got < length) {
        const piece = Buffer.alloc(Math.min(CHUNK, length - got))
        const n = await vfs.read(o.fh, piece, piece.length, pos + got)
        if (n === 0) break
        out.push(piece.subarray(0, n))
        got += n
      }
      return Buffer.concat(out)
    }),
    ftruncate: async (fd, size) => await call(async () => await vfs.ftruncate(fds.get(fd)?.fh ?? -1, size)),
    fstat: async fd => await call(() => toStat(vfs.fgetattr(fds.get(fd)?.fh ?? -1))),
    fsync: async fd => await call(async () => await vfs.fsync(fds.get(fd)?.fh ?? -1)),
    close: async fd => await call(async () => {
      const o = fds.get(fd)
      if (o === undefined) throw Object.assign(new Error('EBADF'), { code: 'EBADF' })
      fds.delete(fd)
      await vfs.flush(o.fh)
      await vfs.release(o.fh)
      // libfuse unlinks a hidden name at its last release.
      if (o.path.includes('/.fuse_hidden') && !openAt(o.path)) {
        try {
          vfs.unlink(o.path)
        } catch {}
      }
    }),
    end: async () => {
      await vfs.settle()
      fs.rmSync(vol.dir, { recursive: true, force: true })
    }
  }
}

// Baseline for small-file work: a do-nothing in-memory fuse-native filesystem. Names live in a Map;
// the first 4 KiB of each file are kept, the rest is only counted. It is the ceiling of what any
// fuse-native filesystem can do per operation on this machine.
// Run as a child: node dist/bench/lib/memfs.js <mount point>
import { serve } from './fuse-server.js'

type Cb = (code: number, ...values: unknown[]) => void

const mountPoint = process.argv[2]
if (mountPoint === undefined) {
  process.stderr.write('usage: memfs.js <mount point>\n')
  process.exit(2)
}

const KEEP = 4096
const S_IFDIR = 0o040000
const S_IFREG = 0o100000
const ENOENT = -2
const EEXIST = -17
const ENOTDIR = -20
const ENOTEMPTY = -39

interface Entry { mode: number, uid: number, gid: number, size: number, mtime: number, ctime: number, data: Buffer | null, children: Set<string> | null }

const now = Date.now()
const uid = process.getuid?.() ?? 0
const gid = process.getgid?.() ?? 0
const entries = new Map<string, Entry>([['/', { mode: S_IFDIR | 0o755, uid, gid, size: 4096, mtime: now, ctime: now, data: null, children: new Set() }]])
const handles = new Map<number, string>()
let nextFh = 1

const parentOf = (path: string): string => path.slice(0, path.lastIndexOf('/')) || '/'
const nameOf = (path: string): string => path.slice(path.lastIndexOf('/') + 1)
const stat = (e: Entry) => ({ mode: e.mode, uid: e.uid, gid: e.gid, size: e.size, nlink: e.children !== null ? 2 : 1, blksize: 4096, blocks: Math.ceil(e.size / 512), atime: e.mtime, mtime: e.mtime, ctime: e.ctime })

function add (path: string, entry: Entry): number {
  const parent = entries.get(parentOf(path))
  if (parent === undefined) return ENOENT
  if (parent.children === null) return ENOTDIR
  if (entries.has(path)) return EEXIST
  entries.set(path, entry)
  parent.children.add(nameOf(path))
  parent.mtime = parent.ctime = Date.now()
  return 0
}

function remove (path: string): number {
  const e = entries.get(path)
  if (e === undefined) return ENOENT
  if (e.children !== null && e.children.size > 0) return ENOTEMPTY
  entries.delete(path)
  entries.get(parentOf(path))?.children?.delete(nameOf(path))
  return 0
}

function newEntry (mode: number, dir: boolean): Entry {
  const t = Date.now()
  return { mode: (dir ? S_IFDIR : S_IFREG) | (mode & 0o7777), uid, gid, size: dir ? 4096 : 0, mtime: t, ctime: t, data: null, children: dir ? new Set() : null }
}

function withEntry (path: string, cb: Cb, fn: (e: Entry) => void): void {
  const e = entries.get(path)
  if (e === undefined) return cb(ENOENT)
  fn(e)
  cb(0)
}

const ops: Record<string, (...args: any[]) => void> = {
  init: (cb: Cb) => cb(0),
  getattr: (path: string, cb: Cb) => {
    const e = entries.get(path)
    return e === undefined ? cb(ENOENT) : cb(0, stat(e))
  },
  fgetattr: (path: string, _fh: number, cb: Cb) => ops.getattr(path, cb),
  access: (path: string, _mode: number, cb: Cb) => cb(entries.has(path) ? 0 : ENOENT),
  readdir: (path: string, cb: Cb) => {
    const e = entries.get(path)
    if (e === undefined) return cb(ENOENT)
    if (e.children === null) return cb(ENOTDIR)
    cb(0, ['.', '..', ...e.children])
  },
  statfs: (_path: string, cb: Cb) => cb(0, { bsize: 4096, frsize: 4096, blocks: 1 << 24, bfree: 1 << 23, bavail: 1 << 23, files: 1 << 20, ffree: 1 << 19, favail: 1 << 19, namemax: 255 }),
  mkdir: (path: string, mode: number, cb: Cb) => cb(add(path, newEntry(mode, true))),
  rmdir: (path: string, cb: Cb) => cb(remove(path)),
  unlink: (path: string, cb: Cb) => cb(remove(path)),
  rename: (from: string, to: string, cb: Cb) => {
    const e = entries.get(from)
    if (e === undefined) return cb(ENOENT)
    if (e.children !== null && e.children.size > 0) return cb(-1) // directories with children: not needed here
    remove(to)
    remove(from)
    cb(add(to, e))
  },
  mknod: (path: string, mode: number, _dev: number, cb: Cb) => cb(add(path, newEntry(mode, false))),
  chmod: (path: string, mode: number, cb: Cb) => withEntry(path, cb, e => { e.mode = (e.mode & ~0o7777) | (mode & 0o7777); e.ctime = Date.now() }),
  chown: (path: string, u: number, g: number, cb: Cb) => withEntry(path, cb, e => { e.uid = u; e.gid = g; e.ctime = Date.now() }),
  utimens: (path: string, _atime: number, mtime: number, cb: Cb) => withEntry(path, cb, e => { e.mtime = mtime; e.ctime = Date.now() }),
  truncate: (path: string, size: number, cb: Cb) => withEntry(path, cb, e => { e.size = size; if (e.data !== null && size < e.data.length) e.data = e.data.subarray(0, size) }),
  ftruncate: (path: string, _fh: number, size: number, cb: Cb) => ops.truncate(path, size, cb),
  create: (path: string, mode: number, cb: Cb) => {
    const code = add(path, newEntry(mode, false))
    if (code !== 0) return cb(code)
    const fh = nextFh++
    handles.set(fh, path)
    cb(0, fh)
  },
  open: (path: string, _flags: number, cb: Cb) => {
    if (!entries.has(path)) return cb(ENOENT)
    const fh = nextFh++
    handles.set(fh, path)
    cb(0, fh)
  },
  read: (path: string, _fh: number, buf: Buffer, len: number, pos: number, cb: Cb) => {
    const e = entries.get(path)
    if (e === undefined) return cb(ENOENT)
    const end = Math.min(e.size, pos + len)
    if (end <= pos) return cb(0)
    const kept = e.data !== null && pos < e.data.length ? e.data.copy(buf, 0, pos, Math.min(end, e.data.length)) : 0
    if (pos + kept < end) buf.fill(0, kept, end - pos)
    cb(end - pos)
  },
  write: (path: string, _fh: number, buf: Buffer, len: number, pos: number, cb: Cb) => {
    const e = entries.get(path)
    if (e === undefined) return cb(ENOENT)
    if (pos < KEEP) {
      const upto = Math.min(KEEP, pos + len)
      if (e.data === null || e.data.length < upto) {
        const grown = Buffer.alloc(upto)
        e.data?.copy(grown)
        e.data = grown
      }
      buf.copy(e.data, pos, 0, upto - pos)
    }
    if (pos + len > e.size) e.size = pos + len
    e.mtime = e.ctime = Date.now()
    cb(len)
  },
  flush: (_path: string, _fh: number, cb: Cb) => cb(0),
  fsync: (_path: string, _datasync: number, _fh: number, cb: Cb) => cb(0),
  fsyncdir: (_path: string, _datasync: number, _fh: number, cb: Cb) => cb(0),
  release: (_path: string, fh: number, cb: Cb) => { handles.delete(fh); cb(0) }
}

serve(mountPoint, ops, 'memfs')

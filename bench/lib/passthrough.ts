// Baseline: a passthrough fuse-native filesystem of a native directory, every operation mapped to
// the matching async fs call on the backing directory, mounted with swarmfs's options.
// Run as a child: node dist/bench/lib/passthrough.js <backing dir> <mount point>
import fs from 'node:fs'
import { join } from 'node:path'
import { errnoOf, serve } from './fuse-server.js'

type Cb = (code: number, ...values: unknown[]) => void

const [backing, mountPoint] = process.argv.slice(2)
if (backing === undefined || mountPoint === undefined) {
  process.stderr.write('usage: passthrough.js <backing dir> <mount point>\n')
  process.exit(2)
}
const p = (path: string): string => join(backing, path)
/** Answers 0 or the errno of a Node fs callback. */
const done = (cb: Cb) => (err: unknown) => cb(err ? errnoOf(err) : 0)

const ops: Record<string, (...args: any[]) => void> = {
  init: (cb: Cb) => cb(0),
  getattr: (path: string, cb: Cb) => fs.lstat(p(path), (err, st) => err ? cb(errnoOf(err)) : cb(0, st)),
  fgetattr: (_path: string, fd: number, cb: Cb) => fs.fstat(fd, (err, st) => err ? cb(errnoOf(err)) : cb(0, st)),
  access: (path: string, mode: number, cb: Cb) => fs.access(p(path), mode, done(cb)),
  readdir: (path: string, cb: Cb) => fs.readdir(p(path), (err, names) => err ? cb(errnoOf(err)) : cb(0, names)),
  readlink: (path: string, cb: Cb) => fs.readlink(p(path), (err, target) => err ? cb(errnoOf(err)) : cb(0, target)),
  statfs: (_path: string, cb: Cb) => fs.statfs(backing, (err, s) => err ? cb(errnoOf(err)) : cb(0, {
    bsize: s.bsize, frsize: s.bsize, blocks: s.blocks, bfree: s.bfree, bavail: s.bavail, files: s.files, ffree: s.ffree, favail: s.ffree, namemax: 255
  })),
  mkdir: (path: string, mode: number, cb: Cb) => fs.mkdir(p(path), { mode }, done(cb)),
  rmdir: (path: string, cb: Cb) => fs.rmdir(p(path), done(cb)),
  unlink: (path: string, cb: Cb) => fs.unlink(p(path), done(cb)),
  rename: (from: string, to: string, cb: Cb) => fs.rename(p(from), p(to), done(cb)),
  symlink: (target: string, path: string, cb: Cb) => fs.symlink(target, p(path), done(cb)),
  link: (from: string, to: string, cb: Cb) => fs.link(p(from), p(to), done(cb)),
  mknod: (path: string, mode: number, _dev: number, cb: Cb) => fs.open(p(path), fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_WRONLY, mode & 0o7777, (err, fd) => {
    if (err) return cb(errnoOf(err))
    fs.close(fd, done(cb))
  }),
  chmod: (path: string, mode: number, cb: Cb) => fs.chmod(p(path), mode, done(cb)),
  chown: (path: string, uid: number, gid: number, cb: Cb) => fs.lchown(p(path), uid, gid, done(cb)),
  utimens: (path: string, atime: number, mtime: number, cb: Cb) => fs.lutimes(p(path), new Date(atime), new Date(mtime), done(cb)),
  truncate: (path: string, size: number, cb: Cb) => fs.truncate(p(path), size, done(cb)),
  ftruncate: (_path: string, fd: number, size: number, cb: Cb) => fs.ftruncate(fd, size, done(cb)),
  create: (path: string, mode: number, cb: Cb) => fs.open(p(path), fs.constants.O_CREAT | fs.constants.O_RDWR, mode & 0o7777, (err, fd) => err ? cb(errnoOf(err)) : cb(0, fd)),
  open: (path: string, flags: number, cb: Cb) => fs.open(p(path), flags, (err, fd) => err ? cb(errnoOf(err)) : cb(0, fd)),
  read: (_path: string, fd: number, buf: Buffer, len: number, pos: number, cb: Cb) => fs.read(fd, buf, 0, len, pos, (err, n) => cb(err ? errnoOf(err) : n)),
  write: (_path: string, fd: number, buf: Buffer, len: number, pos: number, cb: Cb) => fs.write(fd, buf, 0, len, pos, (err, n) => cb(err ? errnoOf(err) : n)),
  flush: (_path: string, _fd: number, cb: Cb) => cb(0),
  fsync: (_path: string, datasync: number, fd: number, cb: Cb) => (datasync !== 0 ? fs.fdatasync : fs.fsync)(fd, done(cb)),
  fsyncdir: (_path: string, _datasync: number, _fd: number, cb: Cb) => cb(0),
  release: (_path: string, fd: number, cb: Cb) => fs.close(fd, done(cb))
}

serve(mountPoint, ops, 'passthrough')

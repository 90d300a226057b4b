// The conformance driver of a real mount. This process must never touch the mount from its own
// event loop (the node serving it is another process, but a hung mount would hang this one too),
// so every call runs in one long-lived child: a `node` reading one JSON step a line on stdin and
// answering one line each on stdout, with Node's fs calls on the mount.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { createInterface } from 'node:readline'
import { childEnv } from '../helpers/volume.js'
import type { Driver, Stat } from './driver.js'

const CHILD = String.raw`
const fs = require('fs')
const path = require('path')
const root = process.argv[1]
const at = p => path.join(root, p)
const stat = s => ({ ino: s.ino, mode: s.mode, uid: s.uid, gid: s.gid, size: s.size, nlink: s.nlink, blocks: s.blocks, atimeMs: s.atimeMs, mtimeMs: s.mtimeMs, ctimeMs: s.ctimeMs })
const ops = {
  mkdir: (p, mode) => fs.mkdirSync(at(p), mode),
  rmdir: p => fs.rmdirSync(at(p)),
  unlink: p => fs.unlinkSync(at(p)),
  rename: (a, b) => fs.renameSync(at(a), at(b)),
  link: (a, b) => fs.linkSync(at(a), at(b)),
  symlink: (target, p) => fs.symlinkSync(target, at(p)),
  readlink: p => fs.readlinkSync(at(p)),
  stat: p => stat(fs.lstatSync(at(p))),
  readdir: p => fs.readdirSync(at(p)).sort(),
  chmod: (p, mode) => fs.chmodSync(at(p), mode),
  chown: (p, uid, gid) => fs.lchownSync(at(p), uid, gid),
  utimes: (p, a, m) => fs.lutimesSync(at(p), a / 1000, m / 1000),
  truncate: (p, size) => fs.truncateSync(at(p), size),
  open: (p, flags, mode) => fs.openSync(at(p), flags, mode),
  write: (fd, data, pos) => {
    const buf = Buffer.from(data, 'base64')
    let done = 0
    while (done < buf.length) {
      const n = fs.writeSync(fd, buf, done, buf.length - done, pos === null ? null : pos + done)
      if (n === 0) break
      done += n
    }
    return done
  },
  read: (fd, length, pos) => {
    const buf = Buffer.alloc(length)
    let got = 0
    while (got < length) {
      const n = fs.readSync(fd, buf, got, length - got, pos + got)
      if (n === 0) break
      got += n
    }
    return buf.subarray(0, got).toString('base64')
  },
  ftruncate: (fd, size) => fs.ftruncateSync(fd, size),
  fstat: fd => stat(fs.fstatSync(fd)),
  fsync: fd => fs.fsyncSync(fd),
  close: fd => fs.closeSync(fd)
}
require('readline').createInterface({ input: process.stdin }).on('line', line => {
  const { op, args } = JSON.parse(line)
  let answer
  try {
    answer = { ok: true, value: ops[op](...args) }
  } catch (err) {
    answer = { ok: false, code: err.code ?? 'EIO', message: err.message }
  }
  process.stdout.write(JSON.stringify(answer) + '\n')
})
`

export function mountDriver (mnt: string): Driver {
  const child: ChildProcessWithoutNullStreams = spawn(process.execPath, ['-e', CHILD, mnt], { env: childEnv(), stdio: ['pipe', 'pipe', 'pipe'] })
  const waiting: Array<{ resolve: (v: any) => void, reject: (e: Error) => void }> = []
  let stderr = ''
  child.stderr.on('data', d => { stderr += String(d) })
  createInterface({ input: child.stdout }).on('line', line => {
    const answer = JSON.parse(line) as { ok: boolean, value?: unknown, code?: string, message?: string }
    const w = waiting.shift()
    if (w === undefined) return
    if (answer.ok) w.resolve(answer.value)
    else w.reject(Object.assign(new Error(answer.message), { code: answer.code }))
  })
  child.on('exit', () => {
    for (const w of waiting.splice(0)) w.reject(new Error(`the mount driver's child exited: ${stderr}`))
  })
  const step = async <T>(op: string, ...args: unknown[]): Promise<T> => await new Promise<T>((resolve, reject) => {
    waiting.push({ resolve, reject })
    child.stdin.write(JSON.stringify({ op, args }) + '\n')
  })
  return {
    name: 'mount',
    mkdir: async (p, mode = 0o755) => await step('mkdir', p, mode),
    rmdir: async p => await step('rmdir', p),
    unlink: async p => await step('unlink', p),
    rename: async (a, b) => await step('rename', a, b),
    link: async (a, b) => await step('link', a, b),
    symlink: async (target, p) => await step('symlink', target, p),
    readlink: async p => await step('readlink', p),
    stat: async p => await step<Stat>('stat', p),
    readdir: async p => await step('readdir', p),
    chmod: async (p, mode) => await step('chmod', p, mode),
    chown: async (p, uid, gid) => await step('chown', p, uid, gid),
    utimes: async (p, a, m) => await step('utimes', p, a, m),
    truncate: async (p, size) => await step('truncate', p, size),
    open: async (p, flags, mode = 0o644) => await step('open', p, flags, mode),
    write: async (fd, data, pos) => await step('write', fd, data.toString('base64'), pos),
    read: async (fd, length, pos) => Buffer.from(await step<string>('read', fd, length, pos), 'base64'),
    ftruncate: async (fd, size) => await step('ftruncate', fd, size),
    fstat: async fd => await step<Stat>('fstat', fd),
    fsync: async fd => await step('fsync', fd),
    close: async fd => await step('close', fd),
    end: async () => {
      child.stdin.end()
      if (child.exitCode === null) await new Promise(resolve => child.once('exit', resolve))
    }
  }
}

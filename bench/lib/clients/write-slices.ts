// Client (a child process, never the process serving the mount): writes <n> files of <bytes> bytes
// each under <dir>, file i holding bytes [i * bytes, (i + 1) * bytes) of <src> (so every file has
// its own content), <perDir> to a subdirectory (d000/f00000, ...), one after another; prints how
// long that took. No fsync: the caller waits for the node to commit.
// node write-slices.js <src> <dir> <n> <bytes> <perDir>
import fs from 'node:fs'
import { join } from 'node:path'

const [src, dir, nArg, bytesArg, perDirArg] = process.argv.slice(2)
const n = Number(nArg)
const bytes = Number(bytesArg)
const perDir = Number(perDirArg)
if (fs.statSync(src).size < n * bytes) throw new Error(`${src} holds fewer than ${n} x ${bytes} bytes`)
const dirs = Math.ceil(n / perDir)
const dw = String(dirs - 1).length
const fw = String(n - 1).length
const buf = Buffer.allocUnsafe(bytes)
const fd = fs.openSync(src, 'r')
const start = performance.now()
for (let i = 0; i < n; i++) {
  const sub = join(dir, 'd' + String(Math.floor(i / perDir)).padStart(dw, '0'))
  if (i % perDir === 0) fs.mkdirSync(sub, { recursive: true })
  if (fs.readSync(fd, buf, 0, bytes, i * bytes) !== bytes) throw new Error(`short read of ${src} at ${i * bytes}`)
  fs.writeFileSync(join(sub, 'f' + String(i).padStart(fw, '0')), buf)
}
const ms = performance.now() - start
fs.closeSync(fd)
process.stdout.write(JSON.stringify({ files: n, dirs, ms }) + '\n')

// Client (a child process, never the process serving the mount): creates <n> files of <bytes>
// bytes each in <dir> (created first), each made durable as a careful program does before it
// reports success: write, fsync(2) of the file, close, fsync(2) of the directory for its name.
// Prints how long that took.
// node create-synced.js <dir> <n> <bytes>
import fs from 'node:fs'
import { join } from 'node:path'

const [dir, nArg, bytesArg] = process.argv.slice(2)
const n = Number(nArg)
const data = Buffer.alloc(Number(bytesArg), 'swarmfs bench synced file\n')
fs.mkdirSync(dir, { recursive: true })
const dirFd = fs.openSync(dir, 'r')
const width = String(n).length
const start = performance.now()
for (let i = 0; i < n; i++) {
  const fd = fs.openSync(join(dir, 'f' + String(i).padStart(width, '0')), 'w')
  fs.writeSync(fd, data)
  fs.fsyncSync(fd)
  fs.closeSync(fd)
  fs.fsyncSync(dirFd)
}
const ms = performance.now() - start
fs.closeSync(dirFd)
process.stdout.write(JSON.stringify({ files: n, ms }) + '\n')

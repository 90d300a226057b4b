// Client (a child process, never the process serving the mount): creates <n> files of <bytes>
// bytes each in <dir> (created first), one after another, and prints how long that took.
// node create-files.js <dir> <n> <bytes>
import fs from 'node:fs'
import { join } from 'node:path'

const [dir, nArg, bytesArg] = process.argv.slice(2)
const n = Number(nArg)
const data = Buffer.alloc(Number(bytesArg), 'swarmfs bench small file\n')
fs.mkdirSync(dir, { recursive: true })
const width = String(n).length
const start = performance.now()
for (let i = 0; i < n; i++) fs.writeFileSync(join(dir, 'f' + String(i).padStart(width, '0')), data)
const ms = performance.now() - start
process.stdout.write(JSON.stringify({ files: n, ms }) + '\n')

// Client (a child process, never the process serving the mount): a burst of <n> creates of small
// files spread over <dirs> directories <root>/d0..d<dirs-1> (made first, not timed), one after
// another, each with its own content. Prints the wall-clock (epoch, sub-millisecond) start and end
// of the burst, so the caller can line them up with another process's clock.
// node burst.js <root> <n> <dirs>
import fs from 'node:fs'
import { join } from 'node:path'

const [root, nArg, dirsArg] = process.argv.slice(2)
const n = Number(nArg)
const dirs = Number(dirsArg)
const now = (): number => performance.timeOrigin + performance.now()
for (let d = 0; d < dirs; d++) fs.mkdirSync(join(root, `d${d}`), { recursive: true })
const width = String(n - 1).length
const start = now()
for (let i = 0; i < n; i++) {
  fs.writeFileSync(join(root, `d${i % dirs}`, `f${String(i).padStart(width, '0')}`), `burst file ${i}\n`)
}
const end = now()
process.stdout.write(JSON.stringify({ files: n, start, end }) + '\n')

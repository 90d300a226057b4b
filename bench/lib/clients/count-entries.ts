// Client (a child process): every <intervalMs>, counts the entries of <root>/d0..d<dirs-1> (readdir;
// a directory not there yet counts 0) until there are <n>, then prints the wall-clock (epoch) time
// of the listing that first saw them all. Exits 1 after <timeoutMs> without them.
// node count-entries.js <root> <dirs> <n> <intervalMs> <timeoutMs>
import fs from 'node:fs'
import { join } from 'node:path'

const [root, dirsArg, nArg, intervalArg, timeoutArg] = process.argv.slice(2)
const dirs = Number(dirsArg)
const n = Number(nArg)
const interval = Number(intervalArg)
const timeout = Number(timeoutArg)
const now = (): number => performance.timeOrigin + performance.now()
const started = now()
let polls = 0
let last = 0
const progress: Array<[number, number]> = []

function count (): number {
  let total = 0
  for (let d = 0; d < dirs; d++) {
    try { total += fs.readdirSync(join(root, `d${d}`)).length } catch {}
  }
  return total
}

function poll (): void {
  polls++
  const c = count()
  const t = now()
  if (c !== last) progress.push([Math.round(t - started), c])
  last = c
  if (c >= n) {
    process.stdout.write(JSON.stringify({ all: t, polls, count: c, progress }) + '\n')
    return
  }
  if (t - started > timeout) {
    process.stdout.write(JSON.stringify({ all: null, polls, count: c, progress }) + '\n')
    process.exitCode = 1
    return
  }
  setTimeout(poll, Math.max(0, interval - (now() - t)))
}
poll()

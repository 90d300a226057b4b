// Client (a child process): stat(2)s <n> files of a volume made by build-volume.js, each once, in
// a random order (so the kernel has cached none of them), and prints the rate and the latency
// percentiles.
// node stat-random.js <mount> <dirs> <files per dir> <n>
import fs from 'node:fs'
import { join } from 'node:path'

const [mnt, dirsArg, perDirArg, nArg] = process.argv.slice(2)
const dirs = Number(dirsArg)
const perDir = Number(perDirArg)
const n = Math.min(Number(nArg), dirs * perDir)
const dw = String(dirs - 1).length
const fw = String(perDir - 1).length

const picked = new Set<number>()
while (picked.size < n) picked.add(Math.floor(Math.random() * dirs * perDir))
const paths = [...picked].map(k => join(mnt, `d${String(Math.floor(k / perDir)).padStart(dw, '0')}`, `file-${String(k % perDir).padStart(fw, '0')}.txt`))

const lat = new Float64Array(n)
const start = performance.now()
let t = start
for (let i = 0; i < n; i++) {
  if (!fs.statSync(paths[i]).isFile()) throw new Error(`${paths[i]} is not a file`)
  const t2 = performance.now()
  lat[i] = t2 - t
  t = t2
}
const ms = t - start
lat.sort()
const at = (p: number): number => lat[Math.min(n - 1, Math.ceil(p / 100 * n) - 1)]
process.stdout.write(JSON.stringify({ count: n, ms, rate: n / (ms / 1000), p50: at(50), p99: at(99) }) + '\n')

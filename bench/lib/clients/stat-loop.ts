// Client (a child process): stat(2)s names in <dir> that do not exist, one after another, each a
// full round trip to the filesystem (the mounts use negative_timeout=0, so the kernel caches no
// miss), and prints the rate and the latency percentiles. It runs for <seconds>, or, with 0, until
// its stdin is closed.
// node stat-loop.js <dir> <seconds>
import fs from 'node:fs'
import { join } from 'node:path'

const [dir, secondsArg] = process.argv.slice(2)
const seconds = Number(secondsArg)
let stop = false
if (seconds > 0) setTimeout(() => { stop = true }, seconds * 1000)
else {
  process.stdin.on('data', () => {})
  process.stdin.on('end', () => { stop = true })
  process.stdin.on('close', () => { stop = true })
}

let lat = new Float64Array(1 << 16)
let count = 0
let i = 0
const start = performance.now()

function slice (): void {
  const until = performance.now() + 20
  let t = performance.now()
  while (t < until) {
    fs.statSync(join(dir, `.bench-nx-${i++}`), { throwIfNoEntry: false })
    const t2 = performance.now()
    if (count === lat.length) {
      const grown = new Float64Array(lat.length * 2)
      grown.set(lat)
      lat = grown
    }
    lat[count++] = t2 - t
    t = t2
  }
  if (stop) finish()
  else setImmediate(slice)
}

function finish (): void {
  const elapsed = (performance.now() - start) / 1000
  const sorted = lat.subarray(0, count).sort()
  const q = (p: number): number => sorted[Math.min(count - 1, Math.floor(p * count))]
  process.stdout.write(JSON.stringify({ count, seconds: elapsed, rate: count / elapsed, p50: q(0.5), p99: q(0.99), p999: q(0.999), max: sorted[count - 1] }) + '\n')
}

slice()

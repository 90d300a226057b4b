// Time to first byte of small reads: for each offset, open + read <len> bytes at that offset + close,
// timed one after another; the sha256 of each read's bytes is printed too, to be checked.
// node read-at.js <file> <len> <offset,offset,...>   prints {"ms":[...],"sha256":[...]}
import { createHash } from 'node:crypto'
import fs from 'node:fs'

const [file, lenArg, offsetsArg] = process.argv.slice(2)
const len = Number(lenArg)
const buf = Buffer.alloc(len)
const ms: number[] = []
const sha256: string[] = []
for (const offset of offsetsArg.split(',').map(Number)) {
  const t0 = performance.now()
  const fd = fs.openSync(file, 'r')
  let got = 0
  try {
    while (got < len) {
      const n = fs.readSync(fd, buf, got, len - got, offset + got)
      if (n === 0) break
      got += n
    }
  } finally {
    fs.closeSync(fd)
  }
  ms.push(performance.now() - t0)
  sha256.push(createHash('sha256').update(buf.subarray(0, got)).digest('hex'))
}
process.stdout.write(JSON.stringify({ ms, sha256 }) + '\n')

// The content benchmark's floor: the work every byte of a remote read costs, with nothing else. A
// holder reads a file from its disk in 1 MiB pieces and streams it over TCP; the reader checks
// each piece's SHA-1, writes it at its offset into a partial file (as a fetched piece is kept),
// and hands it on through its stdout, a pipe to `dd` (as FUSE hands a read's bytes to the
// reader). No BitTorrent messages, no FUSE round trips, no piece selection: one thread each side.
// node piece-pipeline.js serve <address> <file>            prints {"port":N} once listening; runs until SIGTERM
// node piece-pipeline.js fetch <host> <port> <partial>     the file's bytes on stdout; {"bytes":N} on stderr at the end
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import net from 'node:net'

const PIECE = 1 << 20
const [mode, ...args] = process.argv.slice(2)

if (mode === 'serve') {
  const file = args[1]
  const server = net.createServer(sock => {
    sock.setNoDelay(true)
    fs.createReadStream(file, { highWaterMark: PIECE }).pipe(sock)
    sock.on('error', () => {})
  })
  server.listen(0, args[0], () => {
    const addr = server.address()
    process.stdout.write(JSON.stringify({ port: typeof addr === 'object' && addr !== null ? addr.port : 0 }) + '\n')
  })
  process.on('SIGTERM', () => { server.close(); process.exit(0) })
} else if (mode === 'fetch') {
  const [host, port, partial] = [args[0], Number(args[1]), args[2]]
  const fd = fs.openSync(partial, 'w')
  const piece = Buffer.allocUnsafe(PIECE)
  let filled = 0
  let offset = 0
  const flush = (): void => {
    const bytes = piece.subarray(0, filled)
    createHash('sha1').update(bytes).digest()
    for (let done = 0; done < filled;) done += fs.writeSync(fd, bytes, done, filled - done, offset + done)
    // stdout is a pipe: written synchronously on Linux.
    for (let done = 0; done < filled;) done += fs.writeSync(1, bytes, done, filled - done)
    offset += filled
    filled = 0
  }
  const sock = net.connect({ host, port, noDelay: true })
  sock.on('data', (d: Buffer) => {
    for (let at = 0; at < d.length;) {
      const n = Math.min(PIECE - filled, d.length - at)
      d.copy(piece, filled, at, at + n)
      filled += n
      at += n
      if (filled === PIECE) flush()
    }
  })
  sock.on('end', () => {
    if (filled > 0) flush()
    fs.closeSync(fd)
    process.stderr.write(JSON.stringify({ bytes: offset }) + '\n')
    process.exit(0)
  })
  sock.on('error', err => { process.stderr.write(`piece-pipeline: ${err.message}\n`); process.exit(1) })
} else {
  process.stderr.write('usage: piece-pipeline.js serve <address> <file> | fetch <host> <port> <partial>\n')
  process.exit(2)
}

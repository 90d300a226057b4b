// The network baselines of the content benchmark: a raw TCP server in one namespace host and a
// client in another. Each connection sends one byte naming what it wants: 'S' = the server streams
// <bytes> bytes and closes; 'B' = the server answers 4096 bytes and closes.
// node tcp-stream.js server <address> <bytes>             prints {"port":N} once listening; runs until SIGTERM
// node tcp-stream.js stream <host> <port> <reps>           prints {"ms":[...],"bytes":[...]} (connect → last byte, per rep)
// node tcp-stream.js block <host> <port> <warmup> <n>      prints {"ms":[...]} (connect + request + 4 KiB response, per round trip)
import net from 'node:net'

const BLOCK = 4096
const [mode, ...args] = process.argv.slice(2)

if (mode === 'server') {
  const total = Number(args[1])
  const chunk = Buffer.alloc(1 << 20, 0x5a)
  const block = Buffer.alloc(BLOCK, 0x42)
  const server = net.createServer(sock => {
    sock.setNoDelay(true)
    sock.once('data', d => {
      if (d[0] === 0x42) { sock.end(block); return }
      let sent = 0
      const pump = (): void => {
        while (sent < total) {
          const n = Math.min(chunk.length, total - sent)
          sent += n
          if (!sock.write(n === chunk.length ? chunk : chunk.subarray(0, n))) { sock.once('drain', pump); return }
        }
        sock.end()
      }
      pump()
    })
    sock.on('error', () => {})
  })
  server.listen(0, args[0], () => {
    const addr = server.address()
    process.stdout.write(JSON.stringify({ port: typeof addr === 'object' && addr !== null ? addr.port : 0 }) + '\n')
  })
  process.on('SIGTERM', () => { server.close(); process.exit(0) })
} else if (mode === 'stream' || mode === 'block') {
  const [host, port] = [args[0], Number(args[1])]
  /** Connects, sends `what`, counts the bytes until the server closes; resolves with them. */
  const fetch = (what: string): Promise<number> => new Promise((resolve, reject) => {
    let got = 0
    const sock = net.connect({ host, port, noDelay: true }, () => sock.write(what))
    sock.on('data', d => { got += d.length })
    sock.on('end', () => { sock.destroy(); resolve(got) })
    sock.on('error', reject)
  })
  const ms: number[] = []
  const bytes: number[] = []
  if (mode === 'stream') {
    for (let i = 0; i < Number(args[2]); i++) {
      const t0 = performance.now()
      bytes.push(await fetch('S'))
      ms.push(performance.now() - t0)
    }
  } else {
    const [warmup, n] = [Number(args[2]), Number(args[3])]
    for (let i = 0; i < warmup + n; i++) {
      const t0 = performance.now()
      const got = await fetch('B')
      const t = performance.now() - t0
      if (got !== BLOCK) throw new Error(`block response of ${got} bytes`)
      if (i >= warmup) ms.push(t)
    }
  }
  process.stdout.write(JSON.stringify({ ms, bytes }) + '\n')
  process.exit(0)
} else {
  process.stderr.write('usage: tcp-stream.js server <address> <bytes> | stream <host> <port> <reps> | block <host> <port> <warmup> <n>\n')
  process.exit(2)
}

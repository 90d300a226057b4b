// The network baseline of the sync benchmark: a tiny HTTP server, and a client timing small POST
// round trips to it one after another (Node's default agent: keep-alive, as swarmfs's own requests).
// node http-rtt.js server <address>             prints {"port":N} once listening; runs until SIGTERM
// node http-rtt.js client <host> <port> <warmup> <n> <bytes>   prints {"ms":[...]} (n round trips)
import http from 'node:http'

const [mode, ...args] = process.argv.slice(2)

if (mode === 'server') {
  const server = http.createServer((req, res) => {
    req.resume()
    req.on('end', () => res.end('{"ok":true}'))
  })
  server.listen(0, args[0], () => {
    const addr = server.address()
    process.stdout.write(JSON.stringify({ port: typeof addr === 'object' && addr !== null ? addr.port : 0 }) + '\n')
  })
  process.on('SIGTERM', () => { server.close(); server.closeAllConnections(); process.exit(0) })
} else if (mode === 'client') {
  const [host, port, warmup, n, bytes] = [args[0], Number(args[1]), Number(args[2]), Number(args[3]), Number(args[4])]
  const body = Buffer.from(JSON.stringify({ head: 'x'.repeat(Math.max(0, bytes - 12)) }))
  const post = (): Promise<void> => new Promise((resolve, reject) => {
    const req = http.request({ host, port, path: '/notify', method: 'POST', headers: { 'content-type': 'application/json', 'content-length': body.length } }, res => {
      res.resume()
      res.on('end', resolve)
    })
    req.on('error', reject)
    req.end(body)
  })
  const ms: number[] = []
  for (let i = 0; i < warmup + n; i++) {
    const t0 = performance.now()
    await post()
    if (i >= warmup) ms.push(performance.now() - t0)
  }
  process.stdout.write(JSON.stringify({ ms }) + '\n')
  process.exit(0)
} else {
  process.stderr.write('usage: http-rtt.js server <address> | client <host> <port> <warmup> <n> <bytes>\n')
  process.exit(2)
}

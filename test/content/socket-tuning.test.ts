// A tuned TLS wire socket (lib/content/socket-tuning.ts) hands its handle at most 128 KiB per
// write: Node's TLSWrap keeps an output buffer as large as the largest write for the life of the
// socket, and a corked turn of a wire is up to 4 MiB. Over a real TLS-PSK connection on loopback:
// a turn of many writes of assorted sizes reaches the peer byte for byte, in order, with every
// write's callback run, and no handle write above the bound.
import { randomBytes } from 'node:crypto'
import net from 'node:net'
import tls from 'node:tls'
import t from 'tap'
import { tuneSocket } from '../../lib/content/socket-tuning.js'
import { volumeTls } from '../../lib/transport/volume-tls.js'

const MAX_HANDLE_WRITE = 128 << 10

interface HandleWrites {
  _write: (chunk: Buffer, encoding: string, done: (err?: Error | null) => void) => void
  _writev: (chunks: Array<{ chunk: Buffer }>, done: (err?: Error | null) => void) => void
}

t.test('a turn of writes reaches the peer whole, in handle writes of at most 128 KiB', async t => {
  const keys = volumeTls('k'.repeat(40))
  const received: Buffer[] = []
  let receivedBytes = 0
  const server = net.createServer(raw => {
    const s = new tls.TLSSocket(raw, { ...keys.server, isServer: true })
    s.on('error', () => {})
    s.on('data', (d: Buffer) => { received.push(d); receivedBytes += d.length })
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => server.close())
  const port = (server.address() as net.AddressInfo).port
  const socket = tls.connect({ ...keys.client, host: '127.0.0.1', port })
  t.teardown(() => socket.destroy())
  await new Promise<void>((resolve, reject) => { socket.once('secureConnect', resolve); socket.once('error', reject) })

  // What the handle is given, seen under the tuning.
  const handleWrites: number[] = []
  const hooks = socket as unknown as HandleWrites
  const writev = hooks._writev.bind(socket)
  const write = hooks._write.bind(socket)
  hooks._writev = (chunks, done) => { handleWrites.push(chunks.reduce((n, c) => n + c.chunk.length, 0)); writev(chunks, done) }
  hooks._write = (chunk, encoding, done) => { handleWrites.push(chunk.length); write(chunk, encoding, done) }
  tuneSocket(socket)

  // A wire's turn: 13-byte headers and 128 KiB blocks, and a few odd sizes, 4.6 MiB in all.
  const sizes = [13, 131072, 13, 131072, 17, 1, 300_000, 65_536, 2_000_000, 5]
  for (let i = 0; i < 16; i++) sizes.push(13, 131072)
  const chunks = sizes.map(n => randomBytes(n))
  const total = sizes.reduce((a, b) => a + b, 0)
  let callbacks = 0
  const written = Promise.all(chunks.map(c => new Promise<void>((resolve, reject) => socket.write(c, err => {
    callbacks++
    if (err != null) reject(err)
    else resolve()
  }))))
  await written
  const deadline = Date.now() + 30_000
  while (receivedBytes < total && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 10))

  t.equal(callbacks, chunks.length, 'every write\'s callback ran')
  t.ok(Buffer.concat(received).equals(Buffer.concat(chunks)), `the peer got all ${total} bytes, in order`)
  t.ok(handleWrites.length > 1, `the handle got ${handleWrites.length} writes`)
  t.ok(Math.max(...handleWrites) <= MAX_HANDLE_WRITE, `none over 128 KiB (largest ${Math.max(...handleWrites)} bytes)`)
  t.equal(handleWrites.reduce((a, b) => a + b, 0), total, 'and they add up to what was written')
})

// Messages put together once (lib/content/wire-reassembly.ts) reach the wire's parser exactly as
// bittorrent-protocol's own _write gives them, whatever the chunking: two real Wires, the bytes
// one sends cut into chunks of random sizes (1 byte to 40 KiB) on the way to the other.
import t from 'tap'
import Wire from 'bittorrent-protocol'
import type { Wire as WebtorrentWire } from 'webtorrent'
import { reassembleMessagesOnce } from '../../lib/content/wire-reassembly.js'

interface Seen { handshake: string, requests: number[][], pieces: Array<[number, number, string]>, haves: number[] }

async function exchange (patched: boolean, seed: number): Promise<Seen> {
  const sender = new Wire()
  const receiver = new Wire()
  if (patched) reassembleMessagesOnce(receiver as unknown as WebtorrentWire)
  let x = seed
  const rand = (n: number): number => { x = (x * 1103515245 + 12345) % 2147483648; return x % n }
  const bytes: Buffer[] = []
  sender.on('data', (d: Uint8Array) => bytes.push(Buffer.from(d)))
  const seen: Seen = { handshake: '', requests: [], pieces: [], haves: [] }
  receiver.on('handshake', (ih: string) => { seen.handshake = ih })
  receiver.on('request', (i: number, o: number, l: number) => seen.requests.push([i, o, l]))
  receiver.on('piece', (i: number, o: number, b: Uint8Array) => seen.pieces.push([i, o, Buffer.from(b).toString('hex')]))
  receiver.on('have', (i: number) => seen.haves.push(i))
  const infoHash = 'ab'.repeat(20)
  sender.handshake(infoHash, 'cd'.repeat(20))
  receiver.handshake(infoHash, 'ef'.repeat(20))
  sender.unchoke()
  receiver.unchoke()
  for (let i = 0; i < 6; i++) {
    sender.have(i)
    sender._message(6, [i, i * 131072, 131072], null)
    const block = Buffer.alloc(i === 5 ? 1 : 131072 - i * 7)
    for (let k = 0; k < block.length; k++) block[k] = (k * 31 + i * 7 + seed) & 255
    sender._message(7, [i, 0], block)
  }
  await new Promise(resolve => setImmediate(resolve))
  const all = Buffer.concat(bytes)
  for (let at = 0; at < all.length;) {
    const n = Math.min(all.length - at, 1 + rand(40_960))
    receiver.write(all.subarray(at, at + n))
    at += n
  }
  await new Promise(resolve => setImmediate(resolve))
  return seen
}

t.test('the same messages, whatever the chunks', async t => {
  for (const seed of [1, 7, 42, 1000]) {
    const original = await exchange(false, seed)
    const once = await exchange(true, seed)
    t.equal(once.handshake, 'ab'.repeat(20), `seed ${seed}: the handshake`)
    t.equal(once.haves.length, 6, `seed ${seed}: every have`)
    t.equal(once.requests.length, 6, `seed ${seed}: every request`)
    t.equal(once.pieces.length, 6, `seed ${seed}: every piece`)
    t.same(once, original, `seed ${seed}: as the original parses them, byte for byte`)
  }
})

// What a host of the LAN without the volume key gets, and what a listener on the switch sees.
// Real nodes in network namespaces; the stranger is a process of its own host (fixtures/stranger.mjs)
// that announces the volume id, claims a real node's id, answers 200 to everything and knocks on a
// node's ports; the listener is tcpdump on the test network's bridge.
import t from 'tap'
import fs from 'node:fs'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { Cluster, SETTLE_MS, type SNode } from '../helpers/cluster.js'
import { outputOf, stopProcess, until, waitForLine } from '../helpers/netns.js'
import { listedWith, ROOT, run } from '../helpers/volume.js'
import { peerPsk } from '../../lib/transport/volume-tls.js'

const STRANGER = join(ROOT, 'test', 'cluster', 'fixtures', 'stranger.mjs')

interface Live { peers: Array<{ nodeId: string, host: string }>, refused?: Array<{ host: string, nodeId: string | null }> }

const keyOf = (invite: string): string => invite.slice(invite.lastIndexOf('/') + 1)

/** Every form in which the key (or what it proves) could show on a wire: as is, as Basic auth, the PSK. */
function keyForms (key: string): Array<[string, Buffer]> {
  const psk = peerPsk(key)
  return [
    ['the key', Buffer.from(key)],
    ['the key as HTTP Basic credentials', Buffer.from(Buffer.from(`swarmfs:${key}`).toString('base64'))],
    ['the key in base64', Buffer.from(Buffer.from(key).toString('base64'))],
    ['the pre-shared key', psk],
    ['the pre-shared key in hex', Buffer.from(psk.toString('hex'))]
  ]
}

t.test('a host without the key gets nothing: not the key, not a request, not a peer\'s place', async t => {
  const c = await Cluster.create(t, 4)
  const [h1, h2, h3, h4] = c.net.hosts
  const { node: a, invite } = await c.init('A', h1)
  const b = await c.join('B', h2, invite, ['--address', h2.address])
  const key = keyOf(invite)
  // A node given an address listens on it alone: its peer port and its BitTorrent port.
  const cfgB = JSON.parse(fs.readFileSync(join(b.disk, 'node.json'), 'utf8')) as { httpPort: number, torrentPort: number }
  const listening = (await c.net.exec(h2, 'ss', ['-Hltn'])).stdout
  for (const [what, port] of [['peer', cfgB.httpPort], ['BitTorrent', cfgB.torrentPort]] as const) {
    const local = listening.split('\n').map(l => l.trim().split(/\s+/)[3]).filter(a => a?.endsWith(`:${port}`))
    t.same(local, [`${h2.address}:${port}`], `B's ${what} port listens at its --address only`, { listening })
  }
  const cfgA = JSON.parse(fs.readFileSync(join(a.disk, 'node.json'), 'utf8')) as { volumeId: string, httpPort: number, torrentPort: number }
  const bId = c.config(b).nodeId
  await run('sh', ['-c', 'echo before > before.txt'], { cwd: a.mnt })

  const dir = join(c.base, 'stranger')
  const stranger = c.net.spawn(h3, process.execPath, [STRANGER, dir, cfgA.volumeId, h3.address, bId, h1.address, String(cfgA.httpPort), String(cfgA.torrentPort)])
  await waitForLine(stranger, /^ready \d+ \d+$/m, 60_000)

  // The nodes hear the stranger's records and try it; meanwhile A changes things (notices go out)
  // and a new node joins by mDNS alone.
  const refusedBy = async (n: SNode): Promise<boolean> => {
    const live = (await c.status(n)).live as unknown as Live | null
    return live?.refused?.some(r => r.host === h3.address) === true
  }
  await until('A and B list the stranger as refused', async () => await refusedBy(a) && await refusedBy(b), SETTLE_MS)
  await run('sh', ['-c', 'echo during > during.txt'], { cwd: a.mnt })
  const cc = await c.join('C', h4, invite)
  await until('C lists what A wrote', () => fs.existsSync(join(cc.mnt, 'during.txt')), SETTLE_MS)
  t.equal(fs.readFileSync(join(cc.mnt, 'before.txt'), 'utf8'), 'before\n', 'a node joining meanwhile took the volume from a real node')

  for (const n of [a, b, cc]) {
    const live = (await c.status(n)).live as unknown as Live
    t.notOk(live.peers.some(p => p.host === h3.address), `${n.label} does not list the stranger as a peer`, { peers: live.peers })
  }
  const onA = ((await c.status(a)).live as unknown as Live).peers.find(p => p.nodeId === bId)
  t.equal(onA?.host, h2.address, 'A still reaches B where B is, though the stranger claims B\'s node id')
  const text = await c.cli(a, ['status'])
  t.match(text.stdout, new RegExp(`refused ${h3.address.replace(/\./g, '\\.')}:\\d+ .*did not prove the volume key`), 'swarmfs status says the stranger was refused')

  const knocks = JSON.parse(fs.readFileSync(join(dir, 'knocks.json'), 'utf8')) as { http: string, torrent: string }
  t.notMatch(knocks.http, /HTTP\/1\.[01] \d{3}/, 'plain HTTP to a node\'s peer port gets no HTTP answer')
  t.notMatch(knocks.torrent, /BitTorrent protocol/, 'a BitTorrent handshake to a node gets none back')

  await stopProcess(stranger, 10_000)
  const received = fs.readdirSync(dir).filter(f => f.startsWith('received-')).map(f => fs.readFileSync(join(dir, f)))
  t.ok(received.length > 0, `the nodes did try the stranger's ports (${received.length} connections)`)
  const all = Buffer.concat(received)
  for (const [what, bytes] of keyForms(key)) t.equal(all.indexOf(bytes), -1, `the stranger never received ${what}`)
  for (const word of ['GET ', 'POST ', 'Authorization', 'meta.git', 'notify', 'BitTorrent']) t.equal(all.indexOf(word), -1, `the stranger never received "${word}"`)
  t.ok(received.every(r => r.length === 0 || r[0] === 0x16), 'every connection to it opened with a TLS handshake record and nothing else got through')
  t.equal(outputOf(a.child!).exit, null, 'A still runs')
})

t.test('a listener on the switch sees neither the key, nor a file name, nor a file\'s bytes', async t => {
  const c = await Cluster.create(t, 2)
  const [h1, h2] = c.net.hosts
  const pcap = join(c.base, 'switch.pcap')
  // The bridge joins every host's link: all traffic between the nodes crosses it.
  const dump = c.net.spawn(`${c.net.prefix}-sw`, 'tcpdump', ['-i', 'br0', '-s', '0', '-B', '65536', '-w', pcap])
  await waitForLine(dump, /listening on br0/, 30_000, 'stderr')
  const { node: a, invite } = await c.init('A', h1)
  const b = await c.join('B', h2, invite)
  const key = keyOf(invite)
  const name = `secret-${randomBytes(6).toString('hex')}`
  const phrase = `the-phrase-${randomBytes(6).toString('hex')}`
  const bytes = randomBytes(3 << 20)
  fs.mkdirSync(join(a.mnt, `${name}-dir`))
  fs.writeFileSync(join(a.mnt, `${name}-dir`, `${name}.bin`), bytes)
  fs.writeFileSync(join(a.mnt, `${name}.txt`), `${phrase}\n`)
  await until('B lists the files', () => listedWith(join(b.mnt, `${name}.txt`), Buffer.byteLength(`${phrase}\n`)) && listedWith(join(b.mnt, `${name}-dir`, `${name}.bin`), bytes.length), SETTLE_MS)
  // B reads both through its mount: every byte of them crosses the switch.
  t.ok(fs.readFileSync(join(b.mnt, `${name}-dir`, `${name}.bin`)).equals(bytes), 'B reads the file\'s bytes from A')
  t.equal(fs.readFileSync(join(b.mnt, `${name}.txt`), 'utf8'), `${phrase}\n`, 'and the small one')
  const status = await c.cli(b, ['status'])
  t.equal(status.code, 0, 'status runs while the capture goes on')
  // tcpdump flushes what it buffered on SIGTERM.
  await stopProcess(dump, 10_000)

  const seen = fs.readFileSync(pcap)
  t.ok(seen.length > bytes.length, `the capture holds the transfer (${seen.length} bytes)`, { tcpdump: outputOf(dump).stderr })
  for (const [what, form] of keyForms(key)) t.equal(seen.indexOf(form), -1, `${what}: not on the wire`)
  t.equal(seen.indexOf(name), -1, 'no file name on the wire')
  t.equal(seen.indexOf(phrase), -1, 'not the small file\'s text')
  let found = 0
  for (let at = 0; at + 32 <= bytes.length; at += 64 << 10) if (seen.indexOf(bytes.subarray(at, at + 32)) !== -1) found++
  t.equal(found, 0, 'no 32-byte run of the file\'s bytes (48 places checked) on the wire')
})

t.test('a flood of records and connections from a stranger costs a node nothing lasting', async t => {
  const c = await Cluster.create(t, 3)
  const [h1, h2, h3] = c.net.hosts
  const { node: a, invite } = await c.init('A', h1)
  const b = await c.join('B', h2, invite)
  const cfgA = JSON.parse(fs.readFileSync(join(a.disk, 'node.json'), 'utf8')) as { volumeId: string, httpPort: number, torrentPort: number }
  // What a process still holds of a connection: established, or closed by the other end and not by us.
  const fromStranger = async (): Promise<string[]> => (await c.net.exec(h1, 'ss', ['-Htn', 'state', 'established', 'state', 'close-wait', 'dst', h3.address])).stdout.trim().split('\n').filter(l => l !== '')
  const flood = c.net.spawn(h3, process.execPath, [join(ROOT, 'test', 'cluster', 'fixtures', 'flood.mjs'), JSON.stringify({
    volumeId: cfgA.volumeId, address: h3.address, node: h1.address, ports: [cfgA.httpPort, cfgA.torrentPort], records: 400, connections: 400
  })])
  const held = await waitForLine(flood, /^holding 400 \d+$/m, 120_000)
  t.ok(Number(/holding 400 (\d+)/.exec(held)?.[1]) > 300, 'the stranger opened its connections and holds them')
  // Handshakes that never finish are dropped at their deadline; nothing of the flood stays open.
  await until('A holds no connection from the stranger', async () => (await fromStranger()).length === 0, 60_000)
    .catch(async err => { t.comment(`still open: ${(await fromStranger()).join(' | ')}`); throw err })
  t.pass('A let go of every connection the stranger holds open (handshakes have a deadline)')
  await stopProcess(flood, 10_000)
  const live = (await c.status(a)).live as unknown as Live
  t.ok(live.peers.filter(p => p.nodeId !== c.config(b).nodeId).length <= 32, `A keeps at most 32 unproven records (${live.peers.length - 1})`)
  t.ok((live.refused ?? []).length <= 64, `and at most 64 refused hosts (${(live.refused ?? []).length})`)
  t.ok(live.peers.some(p => p.nodeId === c.config(b).nodeId), 'B is still A\'s peer')
  await run('sh', ['-c', 'echo after > after.txt'], { cwd: a.mnt })
  await until('B lists what A wrote after the flood', () => listedWith(join(b.mnt, 'after.txt'), 'after\n'.length), SETTLE_MS)
  t.equal(fs.readFileSync(join(b.mnt, 'after.txt'), 'utf8'), 'after\n', 'sync goes on')
})

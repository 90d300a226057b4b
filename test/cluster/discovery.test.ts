// mDNS discovery over a real (virtual) network: three hosts, four nodes of one volume (two of them
// on host 1) and one node of another volume. Each node is a child process running the built
// Discovery (test/cluster/fixtures/discover.mjs) and printing what it sees as JSON lines.
//
// Deadlines only bound a hang; nothing here asserts how fast discovery is (the figures are printed
// as comments).
import t from 'tap'
import type { Test } from 'tap'
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import type { ChildProcess } from 'node:child_process'
import { createNetwork, outputOf, stopProcess, waitForLine, type NetHost, type Network } from '../helpers/netns.js'
import { ROOT } from '../helpers/volume.js'

const FIXTURES = join(ROOT, 'test', 'cluster', 'fixtures')
const DEADLINE_MS = 60_000

interface Instance {
  label: string
  host: NetHost
  nodeId: string
  volumeId: string
  httpPort: number
  torrentPort: number
  /** Whether it was given its host's address (else it uses every interface). */
  bound: boolean
  child: ChildProcess
}

interface Event {
  event: string
  nodeId?: string
  host?: string
  httpPort?: number
  torrentPort?: number
  ms: number
}

const hex = (bytes: number): string => randomBytes(bytes).toString('hex')

function start (net: Network, label: string, host: NetHost, volumeId: string, ports: [number, number], bound: boolean, nodeId = hex(8)): Instance {
  const [httpPort, torrentPort] = ports
  const opts = { volumeId, nodeId, httpPort, torrentPort, ...(bound ? { address: host.address } : {}) }
  const child = net.spawn(host, process.execPath, [join(FIXTURES, 'discover.mjs'), JSON.stringify(opts)])
  return { label, host, nodeId, volumeId, httpPort, torrentPort, bound, child }
}

function events (i: Instance): Event[] {
  return outputOf(i.child).stdout.split('\n').filter(l => l.startsWith('{')).map(l => JSON.parse(l) as Event)
}

/** The peers an instance currently believes in: every 'peer' not followed by a 'peer-down'. */
function peersOf (i: Instance): Array<{ nodeId: string, host: string, httpPort: number, torrentPort: number }> {
  const current = new Map<string, Event>()
  for (const e of events(i)) {
    if (e.event === 'peer') current.set(e.nodeId!, e)
    if (e.event === 'peer-down') current.delete(e.nodeId!)
  }
  return [...current.values()]
    .map(e => ({ nodeId: e.nodeId!, host: e.host!, httpPort: e.httpPort!, torrentPort: e.torrentPort! }))
    .sort((a, b) => a.nodeId.localeCompare(b.nodeId))
}

/** What `i` should see of `others`. */
function expectedPeers (others: Instance[]): ReturnType<typeof peersOf> {
  return others
    .map(o => ({ nodeId: o.nodeId, host: o.host.address, httpPort: o.httpPort, torrentPort: o.torrentPort }))
    .sort((a, b) => a.nodeId.localeCompare(b.nodeId))
}

const peerLine = (o: Instance): RegExp => new RegExp(`"event":"peer","nodeId":"${o.nodeId}".*"httpPort":${o.httpPort},"torrentPort":${o.torrentPort}[,}]`)

/** Waits until `watcher` has reported every one of `others` (with their current ports); returns when it saw the last one (ms after its start). */
async function waitForPeers (watcher: Instance, others: Instance[]): Promise<number> {
  let last = 0
  for (const o of others) {
    const line = await waitForLine(watcher.child, peerLine(o), DEADLINE_MS)
    last = Math.max(last, (JSON.parse(line) as Event).ms)
  }
  return last
}

/** SIGTERM; the fixture stops discovery and must then end by itself, with code 0. */
async function stopCleanly (t: Test, i: Instance): Promise<void> {
  const r = await stopProcess(i.child, DEADLINE_MS)
  t.equal(r.killed, false, `${i.label} ended by itself after stop() (no socket or timer left)`)
  t.equal(r.code, 0, `${i.label} exited 0`, { stderr: outputOf(i.child).stderr.slice(-2000) })
  t.ok(events(i).some(e => e.event === 'stopped'), `${i.label} reported stopped`)
}

t.test('discovery between namespaces', async t => {
  if (!existsSync(join(ROOT, 'dist', 'lib', 'discovery', 'index.js'))) {
    t.fail('dist/lib/discovery/index.js is missing: build first (npx tsc -p tsconfig.json)')
    return
  }
  const net = await createNetwork(t, { hosts: 3 })
  const [h1, h2, h3] = net.hosts
  const volume = hex(20)
  const other = hex(20)

  const a = start(net, 'A (h1)', h1, volume, [7001, 7101], true)
  const b = start(net, 'B (h2)', h2, volume, [7002, 7102], true)
  const c = start(net, 'C (h3)', h3, volume, [7003, 7103], true)
  // A second node on host 1, on every interface (no address given).
  const d = start(net, 'D (h1)', h1, volume, [7004, 7104], false)
  const x = start(net, 'X (h2, other volume)', h2, other, [7005, 7105], true)
  const nodes = [a, b, c, d]
  for (const i of [...nodes, x]) await waitForLine(i.child, /"event":"started"/, DEADLINE_MS)

  await t.test('every node sees exactly the three others, with their ports and host address', async t => {
    const lastSeen: string[] = []
    for (const i of nodes) {
      const others = nodes.filter(o => o !== i)
      lastSeen.push(`${i.label} ${await waitForPeers(i, others)} ms`)
      const peers = peersOf(i)
      t.same(peers, expectedPeers(others), `${i.label} sees the three others`)
      t.ok(peers.every(p => net.inSubnet(p.host)), `${i.label}: every address is on the test subnet`, { peers })
    }
    t.comment(`all peers seen after: ${lastSeen.join(', ')}`)
  })

  await t.test('a node of another volume is heard but never reported', async t => {
    for (const i of nodes) {
      // A positive sign that X's service reached i (and was turned down), so the check below means something.
      await waitForLine(i.child, new RegExp(`ignoring service of another volume.*swarmfs-${x.nodeId}`), DEADLINE_MS, 'stderr')
      t.notOk(events(i).some(e => e.nodeId === x.nodeId), `${i.label} does not report X`)
    }
    t.same(peersOf(x), [], 'X reports none of the other volume')
  })

  await t.test('hostile mDNS traffic is ignored and throws nowhere', async t => {
    const r = await net.exec(h2, process.execPath, [join(FIXTURES, 'hostile.mjs'), JSON.stringify({ volumeId: volume })], { timeoutMs: DEADLINE_MS })
    t.equal(r.code, 0, 'hostile traffic sent', { stderr: r.stderr })
    for (const i of nodes) {
      await waitForLine(i.child, /ignoring malformed service.*hostile-8/, DEADLINE_MS, 'stderr')
      await waitForLine(i.child, /ignoring service of another volume.*hostile-notxt/, DEADLINE_MS, 'stderr')
      t.equal(outputOf(i.child).exit, null, `${i.label} still runs`)
      t.same(peersOf(i), expectedPeers(nodes.filter(o => o !== i)), `${i.label} reports no hostile service`)
    }
    const g = await net.exec(h3, process.execPath, [join(FIXTURES, 'guard.mjs'), JSON.stringify({ volumeId: other, nodeId: hex(8), httpPort: 9, torrentPort: 10, address: h3.address })], { timeoutMs: DEADLINE_MS })
    t.match(g.stdout, /survived/, 'a packet that makes bonjour-service throw does not escape Discovery', { code: g.code, stderr: g.stderr })
    t.equal(g.code, 0, 'and stop() still lets the process end')
  })

  await t.test('a node that stops is reported down, and found again when it comes back', async t => {
    await stopCleanly(t, c)
    for (const i of [a, b, d]) {
      await waitForLine(i.child, new RegExp(`"event":"peer-down","nodeId":"${c.nodeId}"`), DEADLINE_MS)
      t.same(peersOf(i), expectedPeers([a, b, d].filter(o => o !== i)), `${i.label} no longer lists C`)
    }
    // Same node id, new ports: as after a restart.
    const spawned = performance.now()
    const c2 = start(net, 'C again (h3)', h3, volume, [7013, 7113], true, c.nodeId)
    for (const i of [a, b, d]) await waitForPeers(i, [c2])
    const listedAfter = Math.round(performance.now() - spawned)
    const sawAll = await waitForPeers(c2, [a, b, d])
    t.comment(`restarted C found all three ${sawAll} ms after its start(); all three listed it ${listedAfter} ms after its process was spawned`)
    for (const i of [a, b, d]) t.same(peersOf(i), expectedPeers([a, b, c2, d].filter(o => o !== i)), `${i.label} lists C with its new ports`)
    t.same(peersOf(c2), expectedPeers([a, b, d]), 'restarted C sees the three others')
    nodes.splice(nodes.indexOf(c), 1, c2)
  })

  await t.test('every node stops cleanly', async t => {
    for (const i of [...nodes, x]) await stopCleanly(t, i)
  })
})

// The syncer between two real indexes over the real peer HTTP server: a notice that arrives while
// a fetch is under way is not lost, and fetched packs become loose objects once syncing pauses; a
// peer's answer proves it where it was asked, not where an mDNS record moved it meanwhile.
// Listens on 127.0.0.1 only; run inside `unshare --net`.
import t, { type Test } from 'tap'
import fs from 'node:fs'
import https from 'node:https'
import type { IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { silentLogger, type Logger } from '../../lib/core/log.js'
import type { Meta } from '../../lib/meta/meta.js'
import type { Attrs } from '../../lib/meta/nodes.js'
import { PeerServer } from '../../lib/http/peer-server.js'
import { conflictName } from '../../lib/meta/conflict-names.js'
import { mergeHeads } from '../../lib/meta/merge.js'
import { gitObjectStore } from '../../lib/meta/object-store.js'
import { Syncer } from '../../lib/sync/syncer.js'
import { volumeTls } from '../../lib/transport/volume-tls.js'
import { openMeta, tempDir } from '../helpers/meta.js'

const KEY = 'k3y-' + 'x'.repeat(40)
const A = 'aaaaaaaaaaaaaaaa'
const B = 'bbbbbbbbbbbbbbbb'
const T0 = 1_700_000_000_000
const attrs = (): Attrs => ({ perm: 0o755, uid: 1000, gid: 100, mtime: T0, ctime: T0, atime: T0 })

/** The second step of a fetch, after the refs were read. */
const packRequest = (req: IncomingMessage): boolean => req.method === 'POST' && req.url?.endsWith('/git-upload-pack') === true

/**
 * A pass-through proxy in front of a peer server that holds the first request `holds` picks (by
 * default a fetch's pack request) until `release()`: the window in which a notice can arrive
 * during a fetch, or a record during a poll, made wide.
 */
async function holdingProxy (target: number, holds = packRequest): Promise<{ port: number, held: Promise<void>, release: () => void, close: () => Promise<void> }> {
  let release = (): void => {}
  const released = new Promise<void>(resolve => { release = resolve })
  let onHeld = (): void => {}
  const held = new Promise<void>(resolve => { onHeld = resolve })
  let holding = true
  // It holds the key, as a peer would: both of its sides speak the volume's TLS.
  const server = https.createServer(volumeTls(KEY).server, (req, res) => {
    const forward = (): void => {
      const up = https.request({ ...volumeTls(KEY).client, agent: false, host: '127.0.0.1', port: target, method: req.method, path: req.url, headers: req.headers }, upRes => {
        res.writeHead(upRes.statusCode ?? 502, upRes.headers)
        upRes.pipe(res)
      })
      up.on('error', () => res.destroy())
      req.pipe(up)
    }
    if (holding && holds(req)) {
      holding = false
      req.pause()
      onHeld()
      void released.then(forward)
    } else {
      forward()
    }
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as AddressInfo).port,
    held,
    release,
    close: () => new Promise<void>(resolve => { server.closeAllConnections(); server.close(() => resolve()) })
  }
}

/** B's syncer, stopped at the test's end; it polls its peers once, when started, then not again within a test. */
function nodeB (t: Test, gitdir: string, meta: Meta, log: Logger): Syncer {
  const store = gitObjectStore(gitdir)
  const syncer = new Syncer({
    gitdir,
    nodeId: B,
    volumeKey: KEY,
    meta,
    store,
    merge: async (ours, theirs) => await mergeHeads(store, ours, theirs, silentLogger),
    conflictName,
    ports: () => ({ httpPort: 1, torrentPort: 0 }),
    log,
    pollMs: 3_600_000
  })
  t.teardown(async () => {
    syncer.stop()
    await syncer.settle()
  })
  return syncer
}

t.test('a notice that arrives during a fetch is fetched after it, not left for the next poll', async t => {
  const [aDir, bDir] = [tempDir(t), tempDir(t)]
  const a = await openMeta(t, aDir, A)
  const b = await openMeta(t, bDir, B)
  // A node always has a head of its own (a joining node's is a copy of a peer's).
  b.apply({ op: 'mkdir', path: '/b', attrs: attrs() })
  await b.commitNow()
  a.apply({ op: 'mkdir', path: '/one', attrs: attrs() })
  await a.commitNow()
  const first = a.head as string

  const server = new PeerServer({ gitdir: join(aDir, 'meta'), volumeKey: KEY, host: '127.0.0.1', port: 0, log: silentLogger, onNotify: () => {}, status: () => ({ ok: true }) })
  const serverPort = await server.start()
  t.teardown(() => server.stop())
  const proxy = await holdingProxy(serverPort)
  t.teardown(proxy.close)

  const gitdirB = join(bDir, 'meta')
  const repacked: Array<Record<string, unknown>> = []
  const recording: Logger = {
    ...silentLogger,
    debug: (msg, fields) => { if (msg === 'objects repacked') repacked.push(fields ?? {}) },
    warn: (msg, fields) => { repacked.push({ warning: msg, ...fields }) }
  }
  // Never polled within the test: only the notices can bring A's commits.
  const syncer = nodeB(t, gitdirB, b, recording)
  const notice = (head: string): void => syncer.notified({ nodeId: A, head, httpPort: proxy.port, torrentPort: 0 }, '127.0.0.1')

  notice(first)
  await proxy.held
  // The fetch read A's refs (`first`) and waits for its pack; A commits again and says so.
  a.apply({ op: 'mkdir', path: '/two', attrs: attrs() })
  await a.commitNow()
  const second = a.head as string
  t.not(second, first)
  notice(second)
  proxy.release()

  const deadline = Date.now() + 20_000
  while (b.lookup('/two') === undefined && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 20))
  t.ok(b.lookup('/one'), 'B has the change the held fetch brought')
  t.ok(b.lookup('/two'), 'B has the change the notice during the fetch told of')
  t.equal(syncer.peers.get(A)?.head, second, 'A\'s head as B knows it is the newer one')

  // Once syncing has paused, the packs the two fetches left are rolled into one (whenever that
  // is: the log says how many there were).
  const packsLeft = (): string[] => fs.readdirSync(join(gitdirB, 'objects', 'pack')).filter(n => n.endsWith('.pack'))
  const quiet = Date.now() + 20_000
  while ((repacked.length === 0 || packsLeft().length > 1) && Date.now() < quiet) await new Promise(resolve => setTimeout(resolve, 50))
  t.ok(repacked.length > 0 && repacked.every(u => u.warning === undefined), 'repacked, with no warning')
  t.equal(repacked[0]?.packsBefore, 2, 'the two fetches\' packs')
  t.equal(packsLeft().length, 1, 'are one pack')
  t.ok(b.lookup('/two'), 'and the tree reads as before')
})

t.test('an answer proves a peer where it was asked, though a record moved it meanwhile', async t => {
  const [aDir, bDir] = [tempDir(t), tempDir(t)]
  const a = await openMeta(t, aDir, A)
  const b = await openMeta(t, bDir, B)
  a.apply({ op: 'mkdir', path: '/one', attrs: attrs() })
  await a.commitNow()
  b.apply({ op: 'mkdir', path: '/b', attrs: attrs() })
  await b.commitNow()
  const server = new PeerServer({ gitdir: join(aDir, 'meta'), volumeKey: KEY, host: '127.0.0.1', port: 0, log: silentLogger, onNotify: () => {}, status: () => ({ nodeId: A, head: a.head }) })
  const serverPort = await server.start()
  t.teardown(() => server.stop())
  // A's status answer is held: the poll is under way while the record below comes.
  const proxy = await holdingProxy(serverPort, req => req.method === 'GET' && req.url === '/status')
  t.teardown(proxy.close)

  const syncer = nodeB(t, join(bDir, 'meta'), b, silentLogger)
  syncer.peerSeen({ nodeId: A, host: '127.0.0.1', httpPort: proxy.port, torrentPort: 7 })
  syncer.start()
  await proxy.held
  // A record (as a stranger's on mDNS) names A at a place that holds no key; A is not proven yet.
  syncer.peerSeen({ nodeId: A, host: '127.0.0.2', httpPort: 9, torrentPort: 9 })
  t.equal(syncer.peers.get(A)?.host, '127.0.0.2', 'the record moved the unproven peer')
  proxy.release()

  const deadline = Date.now() + 20_000
  while (syncer.peers.get(A)?.authenticated !== true && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 20))
  const peer = syncer.peers.get(A)
  t.ok(peer?.authenticated, 'A\'s answer proved it')
  t.same({ host: peer?.host, httpPort: peer?.httpPort, torrentPort: peer?.torrentPort }, { host: '127.0.0.1', httpPort: proxy.port, torrentPort: 7 }, '... where it was asked, not where the record put it')
})

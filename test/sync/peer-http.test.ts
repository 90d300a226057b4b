// The peer HTTP server and client against real repositories: only a client that proves the volume
// key in the TLS handshake gets a request through (strangers, plain HTTP and stock git get nothing),
// pushes are refused, and isomorphic-git fetches heads.
// Listens on 127.0.0.1 only; run it inside `unshare --net` like every test that opens a socket.
import t from 'tap'
import type { Test } from 'tap'
import fs from 'node:fs'
import os from 'node:os'
import http from 'node:http'
import https from 'node:https'
import net from 'node:net'
import tls from 'node:tls'
import { join } from 'node:path'
import { spawn, spawnSync } from 'node:child_process'
import { gzipSync } from 'node:zlib'
import git from 'isomorphic-git'
import { silentLogger } from '../../lib/core/log.js'
import { PeerServer, type NotifyMessage } from '../../lib/http/peer-server.js'
import { cloneFromPeer, fetchPeer, getPeerStatus, notifyPeer } from '../../lib/sync/peer-client.js'
import { volumeTls } from '../../lib/transport/volume-tls.js'

const KEY = 'k3y-' + 'x'.repeat(40)
const PEER_ID = '0123456789abcdef'
const author = { name: 'swarmfs', email: 'swarmfs@localhost', timestamp: 1_700_000_000, timezoneOffset: 0 }

type Tree = { [name: string]: string | Tree }

/** Writes nested trees bottom-up and returns the root tree's oid. */
async function writeTree (gitdir: string, tree: Tree): Promise<string> {
  const entries = []
  for (const [path, value] of Object.entries(tree)) {
    if (typeof value === 'string') {
      entries.push({ mode: '100644', path, type: 'blob' as const, oid: await git.writeBlob({ fs, gitdir, blob: Buffer.from(value) }) })
    } else {
      entries.push({ mode: '040000', path, type: 'tree' as const, oid: await writeTree(gitdir, value) })
    }
  }
  return git.writeTree({ fs, gitdir, tree: entries })
}

async function commit (gitdir: string, tree: Tree, message: string): Promise<string> {
  let parent: string[] = []
  try {
    parent = [await git.resolveRef({ fs, gitdir, ref: 'refs/heads/main' })]
  } catch {}
  const oid = await git.commit({ fs, gitdir, tree: await writeTree(gitdir, tree), parent, message, author, committer: author, ref: 'refs/heads/main' })
  return oid
}

function tmpdir (t: Test): string {
  const dir = fs.mkdtempSync(join(os.tmpdir(), 'swarmfs-peer-http-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

async function bareRepo (dir: string): Promise<string> {
  const gitdir = join(dir, 'meta')
  await git.init({ fs, gitdir, bare: true, defaultBranch: 'main' })
  return gitdir
}

interface Started { server: PeerServer, port: number, notices: Array<[NotifyMessage, string]>, refused: string[] }

async function startServer (t: Test, gitdir: string, status: () => unknown = () => ({ ok: true })): Promise<Started> {
  const notices: Array<[NotifyMessage, string]> = []
  const refused: string[] = []
  const server = new PeerServer({ gitdir, volumeKey: KEY, host: '127.0.0.1', port: 0, log: silentLogger, onNotify: (m, from) => notices.push([m, from]), onRefused: from => refused.push(from), status })
  const port = await server.start()
  t.teardown(() => server.stop())
  return { server, port, notices, refused }
}

/** Stock git, isolated from the machine's and the user's configuration, never prompting. Async:
 *  the server under test shares this process's event loop. */
function runGit (args: string[], cwd: string, home: string): Promise<{ code: number | null, stdout: string, stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('git', args, {
      cwd,
      env: { PATH: process.env.PATH, HOME: home, GIT_CONFIG_NOSYSTEM: '1', GIT_TERMINAL_PROMPT: '0', GIT_ASKPASS: '/bin/false' },
      timeout: 60_000
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', d => { stdout += d })
    child.stderr.on('data', d => { stderr += d })
    child.on('error', reject)
    child.on('close', code => resolve({ code, stdout, stderr }))
  })
}

interface Reply { status: number, headers: http.IncomingHttpHeaders, body: string }

/** A request over the volume's TLS (`key`: the key this client holds). */
function send (port: number, method: string, path: string, headers: http.OutgoingHttpHeaders = {}, body?: Buffer | string, key = KEY): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = https.request({ ...volumeTls(key).client, host: '127.0.0.1', port, method, path, headers, agent: false }, res => {
      const chunks: Buffer[] = []
      res.on('data', c => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(body)
  })
}

const history: Tree[] = [
  { 'README': 'first\n', docs: { 'a.txt': 'A\n' } },
  { 'README': 'second\n', docs: { 'a.txt': 'A\n', deep: { er: { 'b.txt': 'B\n' } } }, src: { 'x.ts': 'x\n' } },
  { 'README': 'third\n', docs: { 'a.txt': 'A2\n', deep: { er: { 'b.txt': 'B\n', 'c.txt': 'C\n' } } }, src: { 'x.ts': 'x\n' } }
]

async function sourceRepo (t: Test): Promise<{ dir: string, gitdir: string, commits: string[] }> {
  const dir = tmpdir(t)
  const gitdir = await bareRepo(dir)
  const commits: string[] = []
  for (const [i, tree] of history.entries()) commits.push(await commit(gitdir, tree, `commit ${i}\n`))
  return { dir, gitdir, commits }
}

t.test('without the key nothing gets through: no request, no notice, and the refusal is reported', async t => {
  const { gitdir } = await sourceRepo(t)
  const { port, notices, refused } = await startServer(t, gitdir)
  const notice = JSON.stringify({ nodeId: PEER_ID, head: 'a'.repeat(40), httpPort: 1, torrentPort: 2 })
  // The same key-holder's TLS, with other keys: the handshake fails before any request is sent.
  for (const key of ['wrong', KEY.slice(0, -1), KEY + 'x', '']) {
    await t.rejects(send(port, 'POST', '/notify', { 'Content-Type': 'application/json' }, notice, key), /SSL|alert|handshake|socket/i, `key ${JSON.stringify(key.slice(0, 8))}...: the handshake fails`)
  }
  // The right PSK under another identity gets no key either.
  await t.rejects(new Promise((resolve, reject) => {
    const c = tls.connect({ ...volumeTls(KEY).client, host: '127.0.0.1', port, pskCallback: () => ({ psk: Buffer.alloc(32), identity: 'someone' }) })
    c.on('secureConnect', () => resolve(c))
    c.on('error', reject)
  }), /SSL|alert|handshake|socket/i, 'another identity: the handshake fails')
  // Plain HTTP and an ordinary TLS client (what curl or a browser would be) get no HTTP answer.
  const plain = await new Promise<string>(resolve => {
    const s = net.connect(port, '127.0.0.1', () => s.write('GET /status HTTP/1.1\r\nHost: x\r\n\r\n'))
    let got = ''
    s.on('data', d => { got += d.toString('latin1') })
    s.on('error', () => {})
    s.on('close', () => resolve(got))
  })
  t.notMatch(plain, /HTTP\/1\.1 \d{3}/, 'plain HTTP gets no HTTP answer')
  await t.rejects(new Promise((resolve, reject) => {
    const c = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false })
    c.on('secureConnect', () => resolve(c))
    c.on('error', reject)
  }), /SSL|alert|handshake|socket|cipher/i, 'a certificate TLS client: no shared cipher')
  const work = tmpdir(t)
  const r = await runGit(['clone', '-q', `https://swarmfs:${KEY}@127.0.0.1:${port}/meta.git`, 'x'], work, work)
  t.not(r.code, 0, 'stock git, even with the key in the URL, cannot connect (it is never asked for the key)')
  t.equal(notices.length, 0, 'no notice got through')
  t.ok(refused.length >= 6, `every refused handshake was reported (${refused.length})`)
  t.ok(refused.every(a => a === '127.0.0.1'), 'with the address it came from')

  // With the key, requests are answered.
  t.equal((await send(port, 'GET', '/status')).status, 200)
  t.equal((await send(port, 'GET', '/no/such/path')).status, 404, 'unknown paths are 404 once the key is proven')
  t.equal((await send(port, 'GET', '/meta.git/HEAD')).status, 404, 'no dumb-protocol files')
})

t.test('pushes are refused', async t => {
  const { gitdir, commits } = await sourceRepo(t)
  const { port } = await startServer(t, gitdir)
  t.equal((await send(port, 'GET', '/meta.git/info/refs?service=git-receive-pack')).status, 403)
  t.equal((await send(port, 'POST', '/meta.git/git-receive-pack', { 'Content-Type': 'application/x-git-receive-pack-request' }, '0000')).status, 403)
  t.equal(await git.resolveRef({ fs, gitdir, ref: 'refs/heads/main' }), commits[commits.length - 1], 'main did not move')
})

t.test('an upload-pack request larger than its limit is cut off', async t => {
  const { gitdir } = await sourceRepo(t)
  const { port } = await startServer(t, gitdir)
  const pkt = (s: string): string => (s.length + 4).toString(16).padStart(4, '0') + s
  const line = pkt(`have ${'a'.repeat(40)}\n`)
  const body = Buffer.from(line.repeat(Math.ceil((17 << 20) / line.length)))
  const r = await send(port, 'POST', '/meta.git/git-upload-pack', { 'Content-Type': 'application/x-git-upload-pack-request', 'Content-Length': body.length }, body).catch((err: Error) => err)
  // The answer may come before the whole body is sent, and the server then closes the connection.
  t.ok(r instanceof Error ? /socket hang up|ECONNRESET|EPIPE/.test(r.message) : r.status === 413, `refused: ${r instanceof Error ? r.message : r.status}`)
  t.equal((await send(port, 'GET', '/status')).status, 200, 'the server goes on')
})

t.test('gzip request bodies reach http-backend inflated', async t => {
  const { gitdir } = await sourceRepo(t)
  const { port } = await startServer(t, gitdir)
  const pkt = (s: string): string => (s.length + 4).toString(16).padStart(4, '0') + s
  const body = gzipSync(Buffer.from(pkt('command=ls-refs\n') + '0000'))
  const r = await send(port, 'POST', '/meta.git/git-upload-pack', {
    'Content-Type': 'application/x-git-upload-pack-request',
    'Content-Encoding': 'gzip',
    'Git-Protocol': 'version=2',
    'Content-Length': body.length
  }, body)
  t.equal(r.status, 200)
  t.equal(r.headers['content-type'], 'application/x-git-upload-pack-result')
  t.match(r.body, /refs\/heads\/main/)
})

/** Objects in the pack files a fetch added, by listing each new pack's index. */
function packedObjects (gitdir: string, before: Set<string>): number {
  const dir = join(gitdir, 'objects', 'pack')
  let n = 0
  for (const f of fs.existsSync(dir) ? fs.readdirSync(dir) : []) {
    if (!f.endsWith('.idx') || before.has(f)) continue
    n += spawnSync('git', ['show-index'], { input: fs.readFileSync(join(dir, f)), encoding: 'utf8' }).stdout.trim().split('\n').length
  }
  return n
}
const packs = (gitdir: string): Set<string> => new Set(fs.existsSync(join(gitdir, 'objects', 'pack')) ? fs.readdirSync(join(gitdir, 'objects', 'pack')) : [])

t.test('fetchPeer gets the head and its objects, then only what is new', async t => {
  const src = await sourceRepo(t)
  const { port } = await startServer(t, src.gitdir)
  const dst = await bareRepo(tmpdir(t))
  const peer = { gitdir: dst, host: '127.0.0.1', port, key: KEY, peerId: PEER_ID }

  const head = await fetchPeer(peer)
  t.equal(head, src.commits[2])
  t.equal(await git.resolveRef({ fs, gitdir: dst, ref: `refs/remotes/${PEER_ID}/main` }), head)
  const { commit: c } = await git.readCommit({ fs, gitdir: dst, oid: head! })
  t.same(c.parent, [src.commits[1]])
  const blob = await git.readBlob({ fs, gitdir: dst, oid: head!, filepath: 'docs/deep/er/c.txt' })
  t.equal(Buffer.from(blob.blob).toString(), 'C\n')
  t.same((await git.log({ fs, gitdir: dst, ref: head! })).map(e => e.oid), [...src.commits].reverse())

  // This node commits too, so its main is one the peer has never seen: the peer's previous head
  // must still be offered as common ground, or the whole history would come again.
  await git.writeRef({ fs, gitdir: dst, ref: 'refs/heads/main', value: head!, force: true })
  await commit(dst, { local: 'only here\n' }, 'local\n')
  const newer = await commit(src.gitdir, { ...history[2], 'NEW': 'new\n' }, 'commit 3\n')
  const before = packs(dst)
  t.equal(await fetchPeer(peer), newer, 'second fetch gets the new head')
  t.equal(await git.resolveRef({ fs, gitdir: dst, ref: `refs/remotes/${PEER_ID}/main` }), newer)
  t.equal(packedObjects(dst, before), 3, 'only the new commit, its root tree and its new blob were sent')
  t.equal(Buffer.from((await git.readBlob({ fs, gitdir: dst, oid: newer, filepath: 'NEW' })).blob).toString(), 'new\n')

  t.equal(await fetchPeer(peer), newer, 'a fetch with nothing new is fine')
  await t.rejects(fetchPeer({ ...peer, peerId: '../../etc' }), { code: 'SWARMFS_PEER_INVALID' })
})

t.test('several peers fetched at once into one repository all keep their tracking refs', async t => {
  const src = await sourceRepo(t)
  const { port } = await startServer(t, src.gitdir)
  const dst = await bareRepo(tmpdir(t))
  const ids = ['00000000000000a1', '00000000000000b2', '00000000000000c3', '00000000000000d4', '00000000000000e5']
  const heads = await Promise.all(ids.map(peerId => fetchPeer({ gitdir: dst, host: '127.0.0.1', port, key: KEY, peerId })))
  t.same(heads, ids.map(() => src.commits[2]))
  for (const id of ids) {
    t.equal(await git.getConfig({ fs, gitdir: dst, path: `remote.${id}.fetch` }), `+refs/heads/main:refs/remotes/${id}/main`, `${id}: refspec kept`)
    t.equal(await git.resolveRef({ fs, gitdir: dst, ref: `refs/remotes/${id}/main` }), src.commits[2], `${id}: tracking ref`)
  }
})

t.test('a peer without commits gives null; cloneFromPeer copies main', async t => {
  const empty = await bareRepo(tmpdir(t))
  const e = await startServer(t, empty)
  const dst = await bareRepo(tmpdir(t))
  t.equal(await fetchPeer({ gitdir: dst, host: '127.0.0.1', port: e.port, key: KEY, peerId: PEER_ID }), null)
  t.equal(await cloneFromPeer({ gitdir: join(tmpdir(t), 'meta'), host: '127.0.0.1', port: e.port, key: KEY }), null, 'a clone of a peer without commits: null')

  const src = await sourceRepo(t)
  const { port } = await startServer(t, src.gitdir)
  const fresh = join(tmpdir(t), 'meta')
  t.equal(await cloneFromPeer({ gitdir: fresh, host: '127.0.0.1', port, key: KEY }), src.commits[2])
  t.equal(await git.resolveRef({ fs, gitdir: fresh, ref: 'refs/heads/main' }), src.commits[2])
  t.equal(await git.resolveRef({ fs, gitdir: fresh, ref: 'HEAD' }), src.commits[2])
  t.same(await git.listRefs({ fs, gitdir: fresh, filepath: 'refs/remotes' }), [], 'the anonymous join remote is not kept')
  t.equal((await runGit(['fsck', '--strict', '--no-dangling'], fresh, fresh)).code, 0, 'the copy is a sound repository for stock git')
  t.equal(await cloneFromPeer({ gitdir: fresh, host: '127.0.0.1', port, key: KEY }), src.commits[2], 'repeating a finished join is harmless')

  const other = await bareRepo(tmpdir(t))
  await commit(other, { mine: 'x\n' }, 'mine\n')
  await t.rejects(cloneFromPeer({ gitdir: other, host: '127.0.0.1', port, key: KEY }), { code: 'SWARMFS_CLONE_CONFLICT' }, 'an existing history is never replaced')
})

t.test('notify: good notices reach onNotify, malformed ones get a 400 with a reason', async t => {
  const { gitdir } = await sourceRepo(t)
  const { port, notices } = await startServer(t, gitdir)
  const good = { nodeId: PEER_ID, head: 'ab'.repeat(20), httpPort: 8080, torrentPort: 6881 }
  await notifyPeer({ host: '127.0.0.1', port, key: KEY, body: good })
  t.same(notices, [[good, '127.0.0.1']])

  const auth = { 'Content-Type': 'application/json' }
  const bad: Array<[string, string]> = [
    ['not json', '{'],
    ['array', '[]'],
    ['short node id', JSON.stringify({ ...good, nodeId: 'abc' })],
    ['upper-case head', JSON.stringify({ ...good, head: 'AB'.repeat(20) })],
    ['missing head', JSON.stringify({ ...good, head: undefined })],
    ['fractional port', JSON.stringify({ ...good, httpPort: 1.5 })],
    ['port as string', JSON.stringify({ ...good, torrentPort: '6881' })],
    ['port out of range', JSON.stringify({ ...good, torrentPort: 70000 })]
  ]
  for (const [label, body] of bad) {
    const r = await send(port, 'POST', '/notify', auth, body)
    t.equal(r.status, 400, label)
    t.match(r.body, /^[^\n]+\n$/, `${label}: one line (${r.body.trim()})`)
  }
  const huge = await send(port, 'POST', '/notify', auth, JSON.stringify({ ...good, pad: 'x'.repeat(70 * 1024) }))
  t.equal(huge.status, 413, 'bodies over 64 KiB are refused')
  t.equal(notices.length, 1, 'no malformed notice got through')

  await t.rejects(notifyPeer({ host: '127.0.0.1', port, key: 'wrong', body: good }), { code: 'SWARMFS_PEER_KEY_REFUSED', message: /did not prove it holds the volume key/ })
  await t.rejects(notifyPeer({ host: '127.0.0.1', port, key: KEY, body: { ...good, nodeId: 'x' } }), { code: 'SWARMFS_PEER_BAD_RESPONSE', message: /nodeId/ })
})

t.test('status, a wrong key on fetchPeer, unreachable peers, stop()', async t => {
  const { gitdir } = await sourceRepo(t)
  const { server, port } = await startServer(t, gitdir, () => ({ nodeId: PEER_ID, peers: 2 }))
  t.equal(server.port, port)
  t.same(await getPeerStatus({ host: '127.0.0.1', port, key: KEY }), { nodeId: PEER_ID, peers: 2 })

  const dst = await bareRepo(tmpdir(t))
  await t.rejects(fetchPeer({ gitdir: dst, host: '127.0.0.1', port, key: 'not-the-key', peerId: PEER_ID }),
    { code: 'SWARMFS_PEER_KEY_REFUSED', message: /peer 127\.0\.0\.1:\d+ did not prove it holds the volume key/ })
  await t.rejects(getPeerStatus({ host: '127.0.0.1', port, key: 'nope' }), { code: 'SWARMFS_PEER_KEY_REFUSED' })

  // An idle keep-alive connection must not hold stop() open.
  const agent = new https.Agent({ ...volumeTls(KEY).client, keepAlive: true })
  await new Promise<void>((resolve, reject) => {
    https.get({ host: '127.0.0.1', port, path: '/status', agent }, res => { res.resume(); res.on('end', resolve) }).on('error', reject)
  })
  const started = Date.now()
  await server.stop()
  t.ok(Date.now() - started < 1000, 'stop() does not wait for keep-alive connections')
  agent.destroy()

  await t.rejects(fetchPeer({ gitdir: dst, host: '127.0.0.1', port, key: KEY, peerId: PEER_ID }), { code: 'SWARMFS_PEER_UNREACHABLE' })
  await t.rejects(notifyPeer({ host: '127.0.0.1', port, key: KEY, body: { nodeId: PEER_ID, head: 'a'.repeat(40), httpPort: 1, torrentPort: 1 } }), { code: 'SWARMFS_PEER_UNREACHABLE' })
})

t.test('a notify to a peer that never answers times out in about 2 s', async t => {
  const net = await import('node:net')
  const silent = net.createServer(() => {}) // accepts, then says nothing
  const sockets: import('node:net').Socket[] = []
  silent.on('connection', s => sockets.push(s))
  await new Promise<void>(resolve => silent.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { sockets.forEach(s => s.destroy()); silent.close() })
  const port = (silent.address() as import('node:net').AddressInfo).port
  const started = Date.now()
  await t.rejects(notifyPeer({ host: '127.0.0.1', port, key: KEY, body: { nodeId: PEER_ID, head: 'a'.repeat(40), httpPort: 1, torrentPort: 1 } }), { code: 'SWARMFS_PEER_TIMEOUT' })
  const took = Date.now() - started
  t.ok(took >= 1900 && took < 3500, `took ${took} ms`)
})

// The client side of the peer HTTP API: fetching a peer's metadata head with isomorphic-git, a first
// copy of the repository for a joining node (stored by git: pack-clone.ts), change notices and
// status. Every request goes over TLS with the volume's pre-shared key (transport/volume-tls.ts): a
// peer that cannot finish that handshake holds another key, or none, is sent nothing else, and the
// error says it was refused.
import fs from 'node:fs'
import http from 'node:http'
import https from 'node:https'
import git from 'isomorphic-git'
import gitHttp from 'isomorphic-git/http/node'
import { SwarmError } from '../core/errors.js'
import { writeFileDurable } from '../core/durable.js'
import { isNodeId } from '../core/ids.js'
import { isHandshakeRefusal, volumeTls } from '../transport/volume-tls.js'
import { fetchInWorker } from './fetch-pool.js'
import { advertisedRef, indexPackFrom, wantRequest } from './pack-clone.js'
import { PeerError, type PeerAddress } from './peer-error.js'

export { PeerError, type PeerAddress, type PeerErrorCode } from './peer-error.js'

export interface FetchPeerOptions extends PeerAddress { gitdir: string, peerId: string }
export interface CloneFromPeerOptions extends PeerAddress { gitdir: string, peerId?: string }
export interface NotifyBody { nodeId: string, head: string, httpPort: number, torrentPort: number }
export interface NotifyPeerOptions extends PeerAddress { body: NotifyBody, timeoutMs?: number }
export interface PeerStatusOptions extends PeerAddress { timeoutMs?: number }

const BRANCH = 'refs/heads/main'
/**
 * The largest response a fetch takes (isomorphic-git holds a whole pack in memory to index it). A
 * first copy of a volume of a million files is ~150 MB of pack; a peer sending more is refused.
 */
export const FETCH_LIMIT = 1 << 30
const NOTIFY_TIMEOUT_MS = 2000
const STATUS_TIMEOUT_MS = 5000
const STATUS_LIMIT = 1024 * 1024
// A fetch may legitimately take long (a first copy of a large volume); only silence is a failure.
const FETCH_IDLE_TIMEOUT_MS = 30_000

function where (a: PeerAddress): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`
}

function baseUrl (a: PeerAddress): string {
  if (!Number.isInteger(a.port) || a.port < 1 || a.port > 65535) throw new PeerError('SWARMFS_PEER_INVALID', `invalid peer port ${a.port}`)
  return `https://${where(a)}`
}

/** One keep-alive agent per volume key: a handshake per peer, not per request. */
const agents = new Map<string, https.Agent>()

function agentFor (key: string): https.Agent {
  let agent = agents.get(key)
  if (agent === undefined) {
    agent = new https.Agent({ ...volumeTls(key).client, keepAlive: true, keepAliveMsecs: 1000, maxSockets: 8, maxFreeSockets: 4, timeout: FETCH_IDLE_TIMEOUT_MS })
    agents.set(key, agent)
  }
  return agent
}

/** Closes the idle connections of every agent (a node stopping, a test ending). */
export function closePeerConnections (): void {
  for (const agent of agents.values()) agent.destroy()
  agents.clear()
}

function keyRefused (a: PeerAddress): PeerError {
  return new PeerError('SWARMFS_PEER_KEY_REFUSED',
    `peer ${where(a)} did not prove it holds the volume key (TLS handshake refused): it serves another volume, or is no node at all`,
    { host: a.host, port: a.port })
}

/** Turns transport and isomorphic-git failures into PeerErrors a caller can act on by code. */
function peerFailure (a: PeerAddress, what: string, err: unknown): PeerError {
  if (err instanceof PeerError) return err
  const e = err as { code?: string, message?: string, data?: { statusCode?: number } }
  if (isHandshakeRefusal(err)) return keyRefused(a)
  const data = { host: a.host, port: a.port, cause: e.code ?? e.message }
  if (e.code === 'HttpError') {
    return new PeerError('SWARMFS_PEER_BAD_RESPONSE', `${what} from ${where(a)} failed: HTTP ${e.data?.statusCode}`, data)
  }
  if (e.code === 'ABORT_ERR' || e.code === 'SWARMFS_PEER_TIMEOUT' || e.code === 'ETIMEDOUT' || /timed out/i.test(e.message ?? '')) {
    return new PeerError('SWARMFS_PEER_TIMEOUT', `${what} from ${where(a)} timed out`, data)
  }
  if (typeof e.code === 'string' && /^E[A-Z]+$/.test(e.code)) {
    return new PeerError('SWARMFS_PEER_UNREACHABLE', `${what}: cannot reach peer ${where(a)} (${e.code})`, data)
  }
  return new PeerError('SWARMFS_PEER_BAD_RESPONSE', `${what} from ${where(a)} failed: ${e.message ?? String(err)}`, data)
}

type GitRequest = Parameters<typeof gitHttp.request>[0]
type GitResponse = Awaited<ReturnType<typeof gitHttp.request>>

/**
 * isomorphic-git's node client over the volume's TLS, with an idle timeout, no redirects (a peer
 * has no reason to send us elsewhere) and a bound on the bytes of an answer.
 */
function peerHttp (key: string): { request: (req: GitRequest) => Promise<GitResponse> } {
  return {
    request: async (req: GitRequest) => {
      const res = await gitHttp.request({ ...req, agent: agentFor(key), fetchOptions: { followRedirects: false, timeout: FETCH_IDLE_TIMEOUT_MS } })
      return { ...res, body: res.body === undefined ? undefined : bounded(res.body, FETCH_LIMIT) }
    }
  }
}

async function * bounded (body: AsyncIterableIterator<Uint8Array>, limit: number): AsyncIterableIterator<Uint8Array> {
  let size = 0
  for await (const chunk of body) {
    size += chunk.byteLength
    if (size > limit) throw new PeerError('SWARMFS_PEER_BAD_RESPONSE', `the peer's answer is larger than ${limit} bytes`)
    yield chunk
  }
}

// isomorphic-git's setConfig rewrites the whole config file in place. Writes to one gitdir go one at
// a time, so two peers registered at once do not lose an entry, and through a temporary file and a
// rename, so a fetch reading the config meanwhile never sees it half written. Durably too (it is
// written once per new peer, so the syncs cost nothing that matters): a power cut must not leave
// an empty config, which isomorphic-git would fail to parse.
const atomicFs = {
  promises: {
    ...fs.promises,
    writeFile: async (path: string, data: string | Uint8Array, options?: fs.WriteFileOptions): Promise<void> => {
      const mode = typeof options === 'object' && options !== null && typeof options.mode === 'number' ? options.mode : undefined
      await writeFileDurable(path, typeof data === 'string' ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength), mode)
    }
  }
}

const configQueues = new Map<string, Promise<unknown>>()

function serializeConfig<T> (gitdir: string, work: () => Promise<T>): Promise<T> {
  const prev = configQueues.get(gitdir) ?? Promise.resolve()
  const next = prev.then(work, work)
  const settled = next.catch(() => {})
  configQueues.set(gitdir, settled)
  void settled.then(() => { if (configQueues.get(gitdir) === settled) configQueues.delete(gitdir) })
  return next
}

/** isomorphic-git's fetch stores remote refs only through a configured refspec. */
async function ensureRefspec (gitdir: string, remote: string): Promise<void> {
  const path = `remote.${remote}.fetch`
  const want = `+${BRANCH}:refs/remotes/${remote}/main`
  if (await git.getConfig({ fs, gitdir, path }) === want) return
  await serializeConfig(gitdir, () => git.setConfig({ fs: atomicFs, gitdir, path, value: want }))
}

/**
 * Fetches the peer's main into refs/remotes/<remote>/main and returns its oid (null: no commits),
 * once the refspec is there (fetchPeer); what the fetch worker runs (fetch-worker.ts).
 *
 * singleBranch is left off on purpose: with it isomorphic-git offers only the local main as a "have",
 * and once two nodes have both committed the peer does not know that commit, finds nothing in common
 * and sends its whole history. Without it every local ref is offered, including the peer's previous
 * head, which it always knows. The peer advertises only its main (and HEAD), so nothing else is sent.
 *
 * isomorphic-git moves the tracking ref just before it stores the pack: merge the oid this returns,
 * once it has resolved, rather than reading the ref while a fetch may be in flight.
 */
export async function fetchPack (gitdir: string, a: PeerAddress, remote: string): Promise<string | null> {
  try {
    const res = await git.fetch({
      fs,
      http: peerHttp(a.key),
      gitdir,
      url: `${baseUrl(a)}/meta.git`,
      remote,
      ref: 'main',
      remoteRef: 'main',
      singleBranch: false,
      tags: false
    })
    return res.fetchHead ?? null
  } catch (err) {
    // A peer whose repository exists but has no main yet has nothing to give.
    const e = err as { code?: string, data?: { what?: string } }
    if (e.code === 'NotFoundError' && e.data?.what === 'main') return null
    throw peerFailure(a, 'fetch', err)
  }
}

/**
 * A running node's fetch of a peer's head. isomorphic-git holds the pack in memory and indexes it
 * in JavaScript: on the thread that serves FUSE, a fetch of thousands of objects would stall every
 * file operation of the mount meanwhile, so the fetch runs in a worker thread (fetch-worker.ts).
 */
export async function fetchPeer (opts: FetchPeerOptions): Promise<string | null> {
  if (!isNodeId(opts.peerId)) throw new PeerError('SWARMFS_PEER_INVALID', `invalid peer id "${opts.peerId}": expected 16 hex characters`)
  await ensureRefspec(opts.gitdir, opts.peerId)
  return await fetchInWorker({ gitdir: opts.gitdir, remote: opts.peerId, peer: { host: opts.host, port: opts.port, key: opts.key } })
}

async function localMain (gitdir: string): Promise<string | null> {
  try {
    return await git.resolveRef({ fs, gitdir, ref: BRANCH })
  } catch {
    return null
  }
}

/**
 * A joining node's first copy: a bare repository holding the peer's main as its own main.
 * Returns the head (null when the peer has no commits yet). A different local history is never
 * overwritten: that would lose commits, so it is an error.
 */
export async function cloneFromPeer (opts: CloneFromPeerOptions): Promise<string | null> {
  const { gitdir } = opts
  if (opts.peerId !== undefined && !isNodeId(opts.peerId)) throw new PeerError('SWARMFS_PEER_INVALID', `invalid peer id "${opts.peerId}": expected 16 hex characters`)
  await git.init({ fs, gitdir, bare: true, defaultBranch: 'main' })
  const head = await clonePack(gitdir, opts)
  if (head !== null) {
    const mine = await localMain(gitdir)
    if (mine !== null && mine !== head) {
      throw new SwarmError('SWARMFS_CLONE_CONFLICT', `${gitdir} already has a history (main ${mine}); refusing to replace it with ${where(opts)}'s ${head}`)
    }
    // Written only now, after the pack is stored, so main never names missing objects.
    await git.writeRef({ fs, gitdir, ref: BRANCH, value: head, force: true })
    if (opts.peerId !== undefined) {
      // Tracked as a later fetch from that peer tracks it.
      await ensureRefspec(gitdir, opts.peerId)
      await git.writeRef({ fs, gitdir, ref: `refs/remotes/${opts.peerId}/main`, value: head, force: true })
    }
  }
  return head
}

/**
 * The peer's main and its whole history, stored as one pack by git (pack-clone.ts); the oid, or
 * null when the peer has no main yet. Only silence for FETCH_IDLE_TIMEOUT_MS fails it.
 */
async function clonePack (gitdir: string, a: PeerAddress): Promise<string | null> {
  let refs: SimpleResponse
  try {
    refs = await request(a, 'GET', '/meta.git/info/refs?service=git-upload-pack', null, FETCH_IDLE_TIMEOUT_MS, STATUS_LIMIT)
  } catch (err) {
    throw peerFailure(a, 'clone', err)
  }
  if (refs.status !== 200) throw new PeerError('SWARMFS_PEER_BAD_RESPONSE', `clone from ${where(a)}: HTTP ${refs.status} ${firstLine(refs.body)}`.trim(), { status: refs.status })
  const { oid, sideBand } = advertisedRef(refs.body, BRANCH)
  if (oid === null) return null
  if (!sideBand) throw new PeerError('SWARMFS_PEER_BAD_RESPONSE', `the upload-pack of ${where(a)} offers no side-band-64k`)
  const body = wantRequest(oid)
  try {
    await new Promise<void>((resolve, reject) => {
      // Once the answer came, a failure of its stream reaches indexPackFrom; a timeout while git
      // finishes the index after the last byte is no failure.
      let answered = false
      const req = https.request(`${baseUrl(a)}/meta.git/git-upload-pack`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-git-upload-pack-request', Accept: 'application/x-git-upload-pack-result', 'Content-Length': body.length },
        agent: agentFor(a.key)
      }, res => {
        answered = true
        if (res.statusCode !== 200) {
          res.resume()
          reject(new PeerError('SWARMFS_PEER_BAD_RESPONSE', `clone from ${where(a)}: HTTP ${res.statusCode ?? 0}`, { status: res.statusCode ?? 0 }))
          return
        }
        indexPackFrom(gitdir, res).then(resolve, reject)
      })
      req.setTimeout(FETCH_IDLE_TIMEOUT_MS, () => req.destroy(new SwarmError('SWARMFS_PEER_TIMEOUT', 'timed out')))
      req.on('error', err => { if (!answered) reject(err) })
      req.end(body)
    })
  } catch (err) {
    throw peerFailure(a, 'clone', err)
  }
  return oid
}

interface SimpleResponse { status: number, body: Buffer }

/** One small request with a deadline for the whole exchange; bodies larger than `limit` fail. */
function request (a: PeerAddress, method: string, path: string, body: Buffer | null, timeoutMs: number, limit: number): Promise<SimpleResponse> {
  return new Promise((resolve, reject) => {
    const headers: http.OutgoingHttpHeaders = {}
    if (body !== null) Object.assign(headers, { 'Content-Type': 'application/json', 'Content-Length': body.length })
    const req = https.request(`${baseUrl(a)}${path}`, { method, headers, agent: agentFor(a.key), signal: AbortSignal.timeout(timeoutMs) }, res => {
      const chunks: Buffer[] = []
      let size = 0
      res.on('data', (c: Buffer) => {
        size += c.length
        if (size > limit) {
          req.destroy(new PeerError('SWARMFS_PEER_BAD_RESPONSE', `response from ${where(a)} is larger than ${limit} bytes`))
          return
        }
        chunks.push(c)
      })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }))
      res.on('error', reject)
    })
    req.on('error', err => {
      const e = err as { name?: string, code?: string }
      // AbortSignal.timeout aborts with a TimeoutError; report it as the timeout it is.
      reject(e.name === 'AbortError' || e.code === 'ABORT_ERR' ? new SwarmError('SWARMFS_PEER_TIMEOUT', 'timed out') : err)
    })
    req.end(body ?? undefined)
  })
}

function firstLine (b: Buffer): string {
  return b.toString('utf8').split('\n', 1)[0].slice(0, 200)
}

/** Tells a peer this node has a new head; resolves once the peer accepted the notice (204). */
export async function notifyPeer (opts: NotifyPeerOptions): Promise<void> {
  let res: SimpleResponse
  try {
    res = await request(opts, 'POST', '/notify', Buffer.from(JSON.stringify(opts.body)), opts.timeoutMs ?? NOTIFY_TIMEOUT_MS, 4096)
  } catch (err) {
    throw peerFailure(opts, 'notify', err)
  }
  if (res.status === 204) return
  throw new PeerError('SWARMFS_PEER_BAD_RESPONSE', `notify to ${where(opts)} rejected: HTTP ${res.status} ${firstLine(res.body)}`.trim(), { status: res.status })
}

/** A whole content's bytes from a peer that holds it (GET /content/<infohash>), at most `length` of them. */
export async function fetchContent (opts: PeerAddress & { timeoutMs: number }, infohash: string, length: number): Promise<Buffer> {
  let res: SimpleResponse
  try {
    res = await request(opts, 'GET', `/content/${infohash}`, null, opts.timeoutMs, length)
  } catch (err) {
    throw peerFailure(opts, 'content', err)
  }
  if (res.status !== 200) throw new PeerError('SWARMFS_PEER_BAD_RESPONSE', `content ${infohash} at ${where(opts)}: HTTP ${res.status} ${firstLine(res.body)}`.trim(), { status: res.status })
  return res.body
}

export async function getPeerStatus (opts: PeerStatusOptions): Promise<unknown> {
  return await peerJson(opts, 'GET', '/status')
}

export interface PeerJsonOptions extends PeerAddress { timeoutMs?: number, limit?: number }

/**
 * A JSON request to a peer's API (GET /status, /holdings, POST /bad-piece ...): the parsed answer of a
 * 200; a PeerError otherwise, whose message is the peer's own one-line explanation when it gave one.
 */
export async function peerJson (opts: PeerJsonOptions, method: 'GET' | 'POST', path: string, body?: unknown): Promise<unknown> {
  const what = path.replace(/^\//, '').split('?')[0]
  let res: SimpleResponse
  try {
    const payload = body === undefined ? null : Buffer.from(JSON.stringify(body))
    res = await request(opts, method, path, payload, opts.timeoutMs ?? STATUS_TIMEOUT_MS, opts.limit ?? STATUS_LIMIT)
  } catch (err) {
    throw peerFailure(opts, what, err)
  }
  if (res.status !== 200) {
    throw new PeerError('SWARMFS_PEER_BAD_RESPONSE', `${what} at ${where(opts)}: HTTP ${res.status} ${firstLine(res.body)}`.trim(), { status: res.status, body: firstLine(res.body) })
  }
  try {
    return JSON.parse(res.body.toString('utf8'))
  } catch {
    throw new PeerError('SWARMFS_PEER_BAD_RESPONSE', `${what} from ${where(opts)} is not JSON`)
  }
}

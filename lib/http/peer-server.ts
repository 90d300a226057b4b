// The node's peer server: the git endpoint peers fetch the metadata from, change notices from
// peers, the status document and the rest of the peer API. It speaks HTTPS with the volume's
// pre-shared key only (transport/volume-tls.ts): a client that cannot finish that handshake never
// gets to send a request, so a stranger learns nothing, not even which paths exist. (Stock git
// cannot do TLS-PSK; it clones the metadata from the disk itself, see the README.)
//
// The git endpoint is the system's `git http-backend` run as a CGI child per request, rather than
// packs built with isomorphic-git's packObjects: it negotiates haves (a fetch after one commit sends
// one commit's objects, not the whole history), sends deltified packs, speaks protocol v2 to stock git,
// and does all its hashing and compression in another process, off the JavaScript thread that FUSE
// shares. Measured with a 10,000-blob, 100-directory repository: a stock `git clone` took 2 to 3 s
// with loose objects and about 0.2 s once repacked; packObjects alone took 6.5 to 16 s for the
// same objects, on this thread, before any negotiation.
import { isObjectId, isNodeId } from '../core/ids.js'
import { isInfoHash } from '../core/torrent-info.js'
import fs from 'node:fs'
import http from 'node:http'
import https from 'node:https'
import { spawn, type ChildProcess } from 'node:child_process'
import { basename, dirname, resolve } from 'node:path'
import type { Socket } from 'node:net'
import type { TLSSocket } from 'node:tls'
import type { Logger } from '../core/log.js'
import { volumeTls } from '../transport/volume-tls.js'
import { readLimited, sendJson, sendText, serveJsonCall, type ApiAnswer, type ApiCall } from './json-api.js'

export interface NotifyMessage {
  nodeId: string
  head: string
  httpPort: number
  torrentPort: number
}

export interface PeerServerOptions {
  gitdir: string
  volumeKey: string
  host?: string
  port?: number
  log: Logger
  onNotify: (msg: NotifyMessage, remoteAddress: string) => void
  /** A connection whose TLS handshake failed: that host does not hold the volume key. */
  onRefused?: (remoteAddress: string) => void
  status: () => unknown
  /** What else peers may ask (holdings, bad pieces): null for a path it does not serve. */
  api?: (call: ApiCall) => Promise<ApiAnswer | null>
  /** Where the file of a content held whole would be (GET /content/<infohash>), or null. */
  contentFile?: (infohash: string) => string | null
}

export type { ApiAnswer, ApiCall } from './json-api.js'

const NOTIFY_LIMIT = 64 * 1024
const CGI_HEADER_LIMIT = 64 * 1024
/**
 * An upload-pack request lists the commits the client has; git sends them in rounds of at most
 * 256 lines of ~50 bytes. A body beyond this is no honest negotiation.
 */
export const UPLOAD_PACK_REQUEST_LIMIT = 16 << 20
/** Connections at once: every peer keeps a few; more are refused by the kernel's backlog. */
const MAX_CONNECTIONS = 512
const GIT_PREFIX = '/meta.git/'
/**
 * A whole content's bytes, for small copies (lib/node/small-copies.ts): one request on a kept-alive
 * connection instead of a torrent, a connection and its handshakes per content.
 */
const CONTENT_PREFIX = '/content/'

/** Git settings forced on http-backend through the command-line scope (GIT_CONFIG_COUNT), which
 *  the repository's own config cannot override. */
function gitConfigEnv (gitdir: string): Record<string, string> {
  const settings: Array<[string, string]> = [
    ['http.receivepack', 'false'], // pushes are refused before this, but never rely on one check
    ['http.getanyfile', 'false'], // no dumb-protocol file serving
    ['http.uploadpack', 'true'],
    // Peers get the volume's branch only, not this node's remote-tracking or scratch refs.
    ['uploadpack.hideRefs', 'refs/'],
    ['uploadpack.hideRefs', '!refs/heads/'],
    // The repository may belong to another uid than the server (a disk mounted from elsewhere).
    ['safe.directory', gitdir]
  ]
  const env: Record<string, string> = { GIT_CONFIG_COUNT: String(settings.length) }
  settings.forEach(([k, v], i) => {
    env[`GIT_CONFIG_KEY_${i}`] = k
    env[`GIT_CONFIG_VALUE_${i}`] = v
  })
  return env
}

export function validateNotify (body: unknown): NotifyMessage | string {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return 'body must be a JSON object'
  const b = body as Record<string, unknown>
  if (!isNodeId(b.nodeId)) return 'nodeId must be 16 lowercase hex characters'
  if (!isObjectId(b.head)) return 'head must be 40 lowercase hex characters'
  for (const f of ['httpPort', 'torrentPort'] as const) {
    // 0 is allowed: a node whose torrent client is not listening yet says so with port 0.
    if (!Number.isInteger(b[f]) || (b[f] as number) < 0 || (b[f] as number) > 65535) return `${f} must be an integer from 0 to 65535`
  }
  return { nodeId: b.nodeId, head: b.head, httpPort: b.httpPort as number, torrentPort: b.torrentPort as number }
}

function normalizeAddress (addr: string | undefined): string {
  if (addr === undefined) return ''
  return addr.startsWith('::ffff:') ? addr.slice(7) : addr
}

interface CgiHead { status: number, headers: Array<[string, string]> }

/** Splits a CGI response head ("Status: 200 OK", other header lines) into status and headers. */
function parseCgiHead (text: string): CgiHead {
  let status = 200
  const headers: Array<[string, string]> = []
  for (const line of text.split(/\r?\n/)) {
    const colon = line.indexOf(':')
    if (colon <= 0) continue
    const name = line.slice(0, colon).trim()
    const value = line.slice(colon + 1).trim()
    if (name.toLowerCase() === 'status') status = parseInt(value, 10) || 500
    else headers.push([name, value])
  }
  return { status, headers }
}

/** Finds the blank line ending the CGI head; returns [headEnd, bodyStart] or null. */
function findHeadEnd (buf: Buffer): [number, number] | null {
  const crlf = buf.indexOf('\r\n\r\n')
  const lf = buf.indexOf('\n\n')
  if (crlf >= 0 && (lf < 0 || crlf < lf)) return [crlf, crlf + 4]
  if (lf >= 0) return [lf, lf + 2]
  return null
}

export class PeerServer {
  private readonly gitdir: string
  private readonly host: string
  private readonly wantedPort: number
  private readonly log: Logger
  private readonly server: https.Server
  private readonly children = new Set<ChildProcess>()
  private readonly sockets = new Set<Socket>()
  private boundPort = 0

  constructor (private readonly opts: PeerServerOptions) {
    this.gitdir = resolve(opts.gitdir)
    this.host = opts.host ?? '0.0.0.0'
    this.wantedPort = opts.port ?? 0
    this.log = opts.log.child({ part: 'peer-server' })
    // Short limits on receiving a request (not on sending a clone back) bound what a stranger
    // trickling bytes can hold open.
    this.server = https.createServer({ ...volumeTls(opts.volumeKey).server, headersTimeout: 10_000, requestTimeout: 60_000 }, (req, res) => this.handle(req, res))
    this.server.maxConnections = MAX_CONNECTIONS
    this.server.on('clientError', (err, socket) => {
      this.log.debug('bad request from client', { err })
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n')
      else socket.destroy()
    })
    this.server.on('connection', (socket: Socket) => {
      this.sockets.add(socket)
      socket.on('close', () => this.sockets.delete(socket))
    })
    this.server.on('tlsClientError', (err: Error, socket: TLSSocket) => {
      const from = normalizeAddress(socket.remoteAddress)
      this.refusedCount++
      this.log.debug('refused a connection that did not prove the volume key', { from, err: err.message })
      this.opts.onRefused?.(from)
      socket.destroy()
    })
  }

  /** Connections refused in the TLS handshake since start. */
  refusedCount = 0

  get port (): number {
    return this.boundPort
  }

  start (): Promise<number> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err)
      this.server.once('error', onError)
      this.server.listen(this.wantedPort, this.host, () => {
        this.server.off('error', onError)
        this.server.on('error', err => this.log.error('server error', { err }))
        const addr = this.server.address()
        this.boundPort = typeof addr === 'object' && addr !== null ? addr.port : 0
        this.log.info('listening', { host: this.host, port: this.boundPort })
        resolve(this.boundPort)
      })
    })
  }

  /** Stops listening and ends every connection, idle keep-alive ones and clones in flight alike. */
  stop (): Promise<void> {
    return new Promise(resolve => {
      if (!this.server.listening) {
        resolve()
        return
      }
      this.server.close(() => resolve())
      for (const child of this.children) child.kill('SIGTERM')
      for (const socket of this.sockets) socket.destroy()
    })
  }

  private handle (req: http.IncomingMessage, res: http.ServerResponse): void {
    req.on('error', err => this.log.debug('request stream error', { err }))
    res.on('error', err => this.log.debug('response stream error', { err }))
    this.route(req, res).catch(err => {
      this.log.error('request failed', { err, method: req.method, url: req.url })
      sendText(res, 500, 'internal error')
    })
  }

  /** Every request here came over a connection whose handshake proved the volume key. */
  private async route (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://peer')
    const method = req.method ?? 'GET'
    if (url.pathname.startsWith(GIT_PREFIX)) {
      this.routeGit(req, res, url, method)
    } else if (url.pathname === '/notify' && method === 'POST') {
      await this.serveNotify(req, res)
    } else if (url.pathname === '/status' && method === 'GET') {
      this.serveStatus(res)
    } else if (url.pathname.startsWith(CONTENT_PREFIX) && method === 'GET') {
      this.serveContent(res, url.pathname.slice(CONTENT_PREFIX.length))
    } else {
      await this.serveApi(req, res, url)
    }
  }

  private routeGit (req: http.IncomingMessage, res: http.ServerResponse, url: URL, method: string): void {
    const rest = url.pathname.slice(GIT_PREFIX.length)
    const service = url.searchParams.get('service')
    if (rest === 'git-receive-pack' || (rest === 'info/refs' && service === 'git-receive-pack')) {
      sendText(res, 403, 'push is not accepted: the volume changes only through its nodes')
    } else if ((rest === 'info/refs' && method === 'GET' && service === 'git-upload-pack') ||
               (rest === 'git-upload-pack' && method === 'POST')) {
      this.runHttpBackend(req, res, rest, url.search.slice(1))
    } else {
      sendText(res, 404, 'not found')
    }
  }

  private cgiEnv (req: http.IncomingMessage, rest: string, query: string): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      // The URL names the repository "meta.git"; on disk it is <disk>/meta. Only this one path is
      // ever formed, so nothing else under the disk directory is reachable.
      GIT_PROJECT_ROOT: dirname(this.gitdir),
      PATH_INFO: `/${basename(this.gitdir)}/${rest}`,
      GIT_HTTP_EXPORT_ALL: '1',
      REQUEST_METHOD: req.method ?? 'GET',
      QUERY_STRING: query,
      REMOTE_USER: 'swarmfs',
      REMOTE_ADDR: normalizeAddress(req.socket.remoteAddress),
      // No user or system gitconfig: the behaviour must not depend on the machine's setup.
      GIT_CONFIG_NOSYSTEM: '1',
      HOME: '/nonexistent',
      ...gitConfigEnv(this.gitdir)
    }
    const h = req.headers
    if (h['content-type'] !== undefined) env.CONTENT_TYPE = h['content-type']
    if (h['content-length'] !== undefined) env.CONTENT_LENGTH = h['content-length']
    // http-backend inflates gzip request bodies itself when told the encoding.
    if (typeof h['content-encoding'] === 'string') env.HTTP_CONTENT_ENCODING = h['content-encoding']
    const proto = h['git-protocol']
    if (typeof proto === 'string' && /^[A-Za-z0-9=:._-]{1,200}$/.test(proto)) env.GIT_PROTOCOL = proto
    return env
  }

  private runHttpBackend (req: http.IncomingMessage, res: http.ServerResponse, rest: string, query: string): void {
    const declared = Number(req.headers['content-length'] ?? 0)
    if (declared > UPLOAD_PACK_REQUEST_LIMIT) {
      this.log.warn('refused an upload-pack request larger than its limit', { from: normalizeAddress(req.socket.remoteAddress), bytes: declared, limit: UPLOAD_PACK_REQUEST_LIMIT })
      sendText(res, 413, `request larger than ${UPLOAD_PACK_REQUEST_LIMIT} bytes`, { Connection: 'close' })
      return
    }
    const child = spawn('git', ['http-backend'], { env: this.cgiEnv(req, rest, query), stdio: ['pipe', 'pipe', 'pipe'] })
    this.children.add(child)
    let stderr = ''
    child.stderr.on('data', (d: Buffer) => { if (stderr.length < 4096) stderr += d.toString('utf8') })
    child.on('error', err => {
      this.log.error('cannot run git http-backend', { err })
      sendText(res, 500, 'git endpoint unavailable')
    })
    child.on('close', code => {
      this.children.delete(child)
      if (code !== 0) this.log.warn('git http-backend failed', { code, stderr: stderr.trim() })
    })
    // A client that goes away mid-clone must not leave a pack-objects running.
    res.on('close', () => { if (!res.writableFinished && child.exitCode === null) child.kill('SIGTERM') })
    child.stdin.on('error', err => this.log.debug('http-backend stdin closed early', { err }))
    let received = 0
    req.on('data', (chunk: Buffer) => {
      received += chunk.length
      if (received <= UPLOAD_PACK_REQUEST_LIMIT) return
      this.log.warn('refused an upload-pack request larger than its limit', { from: normalizeAddress(req.socket.remoteAddress), limit: UPLOAD_PACK_REQUEST_LIMIT })
      req.unpipe(child.stdin)
      child.kill('SIGTERM')
      if (!res.headersSent) sendText(res, 413, `request larger than ${UPLOAD_PACK_REQUEST_LIMIT} bytes`, { Connection: 'close' })
      req.socket.destroy()
    })
    req.pipe(child.stdin)
    this.relayCgiOutput(child, res)
  }

  /** Reads the CGI head off the child's stdout, then streams the rest as the response body. */
  private relayCgiOutput (child: ChildProcess, res: http.ServerResponse): void {
    const out = child.stdout!
    let head = Buffer.alloc(0)
    const onData = (chunk: Buffer): void => {
      head = Buffer.concat([head, chunk])
      const end = findHeadEnd(head)
      if (end === null) {
        if (head.length > CGI_HEADER_LIMIT) {
          out.off('data', onData)
          child.kill('SIGTERM')
          sendText(res, 502, 'bad response from git')
        }
        return
      }
      out.off('data', onData)
      out.off('end', onEnd)
      const { status, headers } = parseCgiHead(head.subarray(0, end[0]).toString('latin1'))
      try {
        res.writeHead(status, headers.flat())
      } catch (err) {
        // A header Node refuses would otherwise throw out of a stream event and end the process.
        this.log.error('unusable header from git http-backend', { err })
        child.kill('SIGTERM')
        sendText(res, 502, 'bad response from git')
        return
      }
      res.write(head.subarray(end[1]))
      out.pipe(res)
    }
    const onEnd = (): void => sendText(res, 502, 'bad response from git')
    out.on('data', onData)
    out.on('end', onEnd)
  }

  private async serveNotify (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const body = await readLimited(req, NOTIFY_LIMIT)
    if (body === null) {
      sendText(res, 413, `body larger than ${NOTIFY_LIMIT} bytes`, { Connection: 'close' })
      return
    }
    let parsed: unknown
    try {
      parsed = JSON.parse(body.toString('utf8'))
    } catch {
      sendText(res, 400, 'body is not valid JSON')
      return
    }
    const msg = validateNotify(parsed)
    if (typeof msg === 'string') {
      sendText(res, 400, msg)
      return
    }
    try {
      this.opts.onNotify(msg, normalizeAddress(req.socket.remoteAddress))
    } catch (err) {
      // The peer's notice was fine; our handler's failure is ours to log, not theirs to retry.
      this.log.error('notify handler failed', { err })
    }
    res.writeHead(204)
    res.end()
  }

  private async serveApi (req: http.IncomingMessage, res: http.ServerResponse, url: URL): Promise<void> {
    await serveJsonCall(req, res, url, async call => await this.opts.api?.(call) ?? null, { limit: NOTIFY_LIMIT })
  }

  private serveStatus (res: http.ServerResponse): void {
    sendJson(res, this.opts.status())
  }

  private serveContent (res: http.ServerResponse, infohash: string): void {
    const path = isInfoHash(infohash) ? this.opts.contentFile?.(infohash) ?? null : null
    if (path === null) {
      sendText(res, 404, 'not held here')
      return
    }
    let fd: number
    try {
      fd = fs.openSync(path, 'r')
    } catch {
      // Not held here (or dropped since it was asked for).
      sendText(res, 404, 'not held here')
      return
    }
    const size = fs.fstatSync(fd).size
    res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': size })
    const stream = fs.createReadStream('', { fd })
    stream.on('error', () => res.destroy())
    // A peer gone mid-answer: the descriptor closes with the stream.
    res.on('close', () => stream.destroy())
    stream.pipe(res)
  }
}

// The node's local control channel: HTTP on a unix socket in its disk directory (<disk>/node.sock),
// mode 0600, so only the disk's owner (and root) can ask the node anything. Everything the CLI asks
// a running node (status, replication, volume settings, retire, scrub) comes this way; none of it
// is served to peers, whatever key they hold, so no peer can retire a disk or change the volume.
import fs from 'node:fs'
import http from 'node:http'
import { dirname, basename, join } from 'node:path'
import type { Socket } from 'node:net'
import type { Logger } from '../core/log.js'
import { sendText, serveJsonCall, type ApiAnswer, type ApiCall } from './json-api.js'


const BODY_LIMIT = 64 * 1024
/** sun_path holds 108 bytes with its NUL; a longer path is reached through the directory's fd. */
const SUN_PATH_MAX = 107
/** The private directory a socket is made in before it is moved to its name. */
const PRIVATE_PREFIX = '.node.sock-'

export function localSocketPath (disk: string): string {
  return join(disk, 'node.sock')
}

/**
 * A name of at most 107 bytes for the socket at `path`: the path itself, or /proc/self/fd/<n>/<name>
 * through an fd of its directory, open until `close`.
 */
function shortPath (path: string): { path: string, close: () => void } {
  if (Buffer.byteLength(path) <= SUN_PATH_MAX) return { path, close: () => {} }
  const fd = fs.openSync(dirname(path), 'r')
  return { path: `/proc/self/fd/${fd}/${basename(path)}`, close: () => fs.closeSync(fd) }
}

/** Runs `use` (a connect) with a short name for the socket at `path`. */
export async function withShortPath<T> (path: string, use: (short: string) => Promise<T>): Promise<T> {
  const short = shortPath(path)
  try {
    return await use(short.path)
  } finally {
    short.close()
  }
}

export class LocalServer {
  private readonly server: http.Server
  private readonly sockets = new Set<Socket>()
  private readonly log: Logger
  /** libuv unlinks the name it bound at close: a /proc/self/fd name needs its fd open until then. */
  private bound: { path: string, close: () => void } | null = null

  constructor (private readonly path: string, private readonly api: (call: ApiCall) => Promise<ApiAnswer | null>, log: Logger, private readonly owner?: { uid: number, gid: number }) {
    this.log = log.child({ part: 'local-server' })
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch(err => {
        this.log.error('local request failed', { err, method: req.method, url: req.url })
        sendText(res, 500, 'internal error', { Connection: 'close' })
      })
    })
    this.server.on('connection', socket => {
      this.sockets.add(socket)
      socket.on('close', () => this.sockets.delete(socket))
    })
  }

  /**
   * Listens. The socket is bound in a new directory of mode 0700, given mode 0600 (and the disk's
   * owner) there, and only then renamed into place, over one a crashed node left: no other user
   * can connect at any moment, and the process's umask is left alone (other parts create files
   * meanwhile). The caller holds the disk's lock.
   */
  async start (): Promise<void> {
    const dir = dirname(this.path)
    for (const name of fs.readdirSync(dir)) {
      if (name.startsWith(PRIVATE_PREFIX)) fs.rmSync(join(dir, name), { recursive: true, force: true })
    }
    const tmp = fs.mkdtempSync(join(dir, PRIVATE_PREFIX))
    try {
      const at = join(tmp, basename(this.path))
      this.bound = shortPath(at)
      const name = this.bound.path
      await new Promise<void>((resolve, reject) => {
        this.server.once('error', reject)
        this.server.listen(name, () => {
          this.server.off('error', reject)
          resolve()
        })
      })
      fs.chmodSync(at, 0o600)
      // A node run by root on a user's disk: that user may ask it too, nobody else.
      if (this.owner !== undefined && process.getuid?.() === 0) fs.lchownSync(at, this.owner.uid, this.owner.gid)
      fs.renameSync(at, this.path)
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true })
    }
    this.server.on('error', err => this.log.error('local server error', { err }))
    this.log.info('listening', { path: this.path })
  }

  stop (): Promise<void> {
    return new Promise(resolve => {
      const done = (): void => {
        this.bound?.close()
        this.bound = null
        resolve()
      }
      if (!this.server.listening) {
        done()
        return
      }
      this.server.close(() => {
        fs.rmSync(this.path, { force: true })
        done()
      })
      for (const socket of this.sockets) socket.destroy()
    })
  }

  private async handle (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    // Only the disk's owner connects: a larger body is read to its end, so the CLI gets the answer.
    await serveJsonCall(req, res, new URL(req.url ?? '/', 'http://local'), this.api, { limit: BODY_LIMIT, drain: true, textHeaders: { Connection: 'close' } })
  }
}


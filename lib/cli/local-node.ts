// The CLI talking to the node that runs a disk (same machine): over the node's unix socket in the
// disk directory (lib/http/local-server.ts), which only the disk's owner can open. The CLI needs
// neither the volume key nor the peer port for it.
import http from 'node:http'
import { SwarmError, UserError } from '../core/errors.js'
import { localSocketPath, withShortPath } from '../http/local-server.js'
import { lockHolder, readConfig, retiredMessage } from '../node/disk.js'

/** Answers of the local API are small documents (a replication status of many nodes at most). */
const ANSWER_LIMIT = 16 * 1024 * 1024

interface Answer { status: number, body: string }

/** One HTTP request on the socket of a disk's node; rejects on a connection failure or the deadline. */
export async function localRequest (disk: string, method: 'GET' | 'POST', path: string, body: unknown, timeoutMs: number): Promise<Answer> {
  const payload = body === undefined ? null : Buffer.from(JSON.stringify(body))
  return await withShortPath(localSocketPath(disk), async socketPath => await new Promise<Answer>((resolve, reject) => {
    const req = http.request({
      socketPath,
      method,
      path,
      timeout: timeoutMs,
      headers: payload === null ? {} : { 'Content-Type': 'application/json', 'Content-Length': payload.length }
    }, res => {
      const chunks: Buffer[] = []
      let size = 0
      res.on('data', (chunk: Buffer) => {
        size += chunk.length
        if (size > ANSWER_LIMIT) {
          req.destroy(new SwarmError('SWARMFS_BAD_INPUT', `answer larger than ${ANSWER_LIMIT} bytes`))
          return
        }
        chunks.push(chunk)
      })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }))
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new SwarmError('SWARMFS_STOPPING', `no answer within ${timeoutMs / 1000} s`)))
    req.on('error', reject)
    req.end(payload ?? undefined)
  }))
}

/** A request to the running node of `disk`; a UserError saying what to do when there is none. */
export async function callLocalNode (disk: string, method: 'GET' | 'POST', path: string, body?: unknown, timeoutMs = 10_000): Promise<unknown> {
  const config = readConfig(disk)
  if (config.retired === true) throw new UserError(retiredMessage(disk, config.volumeName))
  if (lockHolder(disk) === null) {
    throw new UserError(`the node of ${disk} is not running; start it first with "swarmfs start --disk ${disk}"`)
  }
  let answer: Answer
  try {
    answer = await localRequest(disk, method, path, body, timeoutMs)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'EACCES') throw new UserError(`${localSocketPath(disk)} refuses you: only the owner of the disk (or root) can ask its node; run this as that user`)
    throw new UserError(`the node of ${disk} did not answer (${(err as Error).message}); is it still starting?`)
  }
  const line = answer.body.trim().split('\n')[0] ?? ''
  if (answer.status !== 200) throw new UserError(line !== '' ? line : `the node of ${disk} answered HTTP ${answer.status}`)
  try {
    return JSON.parse(answer.body)
  } catch {
    throw new UserError(`the node of ${disk} answered ${path} with something that is not JSON`)
  }
}

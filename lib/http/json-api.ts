// What the peer server and the local server share: one-line text answers, JSON answers, bodies
// read up to a limit, and a JSON call (a POST's body parsed) handed to an API that answers with a
// status (or refuses with a coded error, whose status the table of codes gives). Each server keeps
// its own routes and limits.
import type http from 'node:http'
import { httpStatusOf, meaningOf, type SwarmError } from '../core/errors.js'

export interface ApiCall { method: string, path: string, query: URLSearchParams, body: unknown }
/** 200 with a JSON body, or another status with a one-line explanation. */
export type ApiAnswer = { status: 200, body: unknown } | { status: number, body: string }

/** A one-line text answer (or none, for ''); once headers are out, the connection is cut instead. */
export function sendText (res: http.ServerResponse, status: number, text: string, headers: http.OutgoingHttpHeaders = {}): void {
  if (res.writableEnded) return
  if (res.headersSent) {
    // Too late for a status: cutting the connection is the only way left to say it failed.
    res.destroy()
    return
  }
  const body = text === '' ? '' : text + '\n'
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(body), ...headers })
  res.end(body)
}

export function sendJson (res: http.ServerResponse, value: unknown): void {
  const body = JSON.stringify(value) + '\n'
  res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) })
  res.end(body)
}

/**
 * A body of at most `limit` bytes; null when it is larger. `drain`: the rest of a larger one is
 * read and dropped, so the client still gets the answer (a client we trust); otherwise it is left
 * unread (a stranger trickling bytes holds nothing).
 */
export async function readLimited (req: http.IncomingMessage, limit: number, drain = false): Promise<Buffer | null> {
  if (drain) {
    const chunks: Buffer[] = []
    let size = 0
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length
      if (size <= limit) chunks.push(chunk)
    }
    return size > limit ? null : Buffer.concat(chunks)
  }
  return await new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    req.on('data', (chunk: Buffer) => {
      size += chunk.length
      if (size > limit) {
        req.removeAllListeners('data')
        req.pause()
        resolve(null)
        return
      }
      chunks.push(chunk)
    })
    req.on('end', () => resolve(Buffer.concat(chunks)))
    req.on('error', reject)
  })
}

export interface JsonCallOptions {
  limit: number
  /** See readLimited. */
  drain?: boolean
  /** Headers of every text answer (the local server closes its connection after each). */
  textHeaders?: http.OutgoingHttpHeaders
}

/** What a client reads of a coded error: its message, without the errno an FsError's message starts with. */
function answerText (err: SwarmError): string {
  return err.message.startsWith(`${err.code}: `) ? err.message.slice(err.code.length + 2) : err.message
}

/** Reads a POST's JSON body, asks `api`, and answers: 404 for null, JSON for 200, one line otherwise. */
export async function serveJsonCall (req: http.IncomingMessage, res: http.ServerResponse, url: URL, api: (call: ApiCall) => Promise<ApiAnswer | null>, opts: JsonCallOptions): Promise<void> {
  const method = req.method ?? 'GET'
  const text = opts.textHeaders ?? {}
  let body: unknown = null
  if (method === 'POST') {
    const raw = await readLimited(req, opts.limit, opts.drain)
    if (raw === null) {
      sendText(res, 413, `body larger than ${opts.limit} bytes`, { ...text, Connection: 'close' })
      return
    }
    try {
      body = raw.length === 0 ? null : JSON.parse(raw.toString('utf8'))
    } catch {
      sendText(res, 400, 'body is not valid JSON', text)
      return
    }
  }
  let answer: ApiAnswer | null
  try {
    answer = await api({ method, path: url.pathname, query: url.searchParams, body })
  } catch (err) {
    // A route refuses with a coded error: its status comes from the one table (core/errors.ts).
    if (meaningOf(err) === undefined) throw err
    sendText(res, httpStatusOf(err), answerText(err as SwarmError), text)
    return
  }
  if (answer === null) sendText(res, 404, 'not found', text)
  else if (answer.status === 200) sendJson(res, answer.body)
  else sendText(res, answer.status, String(answer.body), text)
}

// The thread that runs a node's git fetches (fetch-worker.ts), made on first use and kept: one
// worker, fetches one at a time in it (the syncer already runs one sync at a time). A worker that
// dies fails the fetches it had and is made again at the next one. Its handles are unref'd, so
// an idle worker never keeps a process alive.
import { Worker } from 'node:worker_threads'
import { ERROR_CODES, SwarmError, type ErrorCode } from '../core/errors.js'
import { PeerError, type PeerAddress, type PeerErrorCode } from './peer-error.js'

export interface FetchJob { gitdir: string, remote: string, peer: PeerAddress }
export type FetchAnswer = { id: number, head: string | null } | { id: number, error: { code?: string, message: string, data?: Record<string, unknown> } }

// Under tap the sources run as TypeScript; workers inherit the loader flags (execArgv).
const script = new URL(import.meta.url.endsWith('.ts') ? './fetch-worker.ts' : './fetch-worker.js', import.meta.url)

let worker: Worker | null = null
let nextId = 0
const pending = new Map<number, { resolve: (head: string | null) => void, reject: (err: Error) => void }>()

function started (): Worker {
  if (worker !== null) return worker
  const w = new Worker(script)
  w.on('message', (answer: FetchAnswer) => {
    const job = pending.get(answer.id)
    if (job === undefined) return
    pending.delete(answer.id)
    if (pending.size === 0) w.unref()
    if ('head' in answer) job.resolve(answer.head)
    else job.reject(rebuilt(answer.error))
  })
  const fail = (err: Error): void => {
    if (worker === w) worker = null
    for (const job of pending.values()) job.reject(err)
    pending.clear()
  }
  w.on('error', fail)
  w.on('exit', code => fail(new SwarmError(worker === w ? 'SWARMFS_INTERNAL' : 'SWARMFS_STOPPING', `the fetch worker exited (${code})`)))
  w.unref()
  worker = w
  return w
}

/** The worker's error as its class: a PeerError by its code, any other code of the table as a SwarmError. */
function rebuilt (error: { code?: string, message: string, data?: Record<string, unknown> }): Error {
  const { code, message, data } = error
  if (code?.startsWith('SWARMFS_PEER_') === true) return new PeerError(code as PeerErrorCode, message, data)
  if (code !== undefined && Object.hasOwn(ERROR_CODES, code)) return new SwarmError(code as ErrorCode, message, data)
  // A system error (an errno code) keeps its code, as the fetch on this thread would have.
  return Object.assign(new Error(message), { code })
}

export function fetchInWorker (job: FetchJob): Promise<string | null> {
  const w = started()
  const id = ++nextId
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject })
    w.ref()
    w.postMessage({ id, job })
  })
}

/** Ends the worker (a node stopping); a later fetch makes a new one. */
export async function stopFetchWorker (): Promise<void> {
  const w = worker
  worker = null
  if (w !== null) await w.terminate()
}

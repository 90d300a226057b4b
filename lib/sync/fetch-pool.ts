// The thread that runs a node's git fetches (fetch-worker.ts), made on first use and kept: one
// worker, fetches one at a time in it (the syncer already runs one sync at a time). A worker that
// dies fails the fetches it had and is made again at the next one. Its handles are unref'd, so
// an idle worker never keeps a process alive.
import { Worker } from 'node:worker_threads'
import { PeerError, type PeerAddress, type PeerErrorCode } from './peer-client.js'

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
    else job.reject(answer.error.code?.startsWith('SWARMFS_PEER_') === true
      ? new PeerError(answer.error.code as PeerErrorCode, answer.error.message, answer.error.data)
      : Object.assign(new Error(answer.error.message), { code: answer.error.code }))
  })
  const fail = (err: Error): void => {
    if (worker === w) worker = null
    for (const job of pending.values()) job.reject(err)
    pending.clear()
  }
  w.on('error', fail)
  w.on('exit', code => fail(new Error(`the fetch worker exited (${code})`)))
  w.unref()
  worker = w
  return w
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

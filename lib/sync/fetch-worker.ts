// A worker thread that runs git fetches for fetch-pool.ts, so the pack's transfer, inflation and
// indexing happen off the thread that serves FUSE.
import { parentPort } from 'node:worker_threads'
import { SwarmError } from '../core/errors.js'
import { fetchPack } from './peer-client.js'
import type { FetchAnswer, FetchJob } from './fetch-pool.js'

const port = parentPort
if (port === null) throw new SwarmError('SWARMFS_INTERNAL', 'fetch-worker.ts runs as a worker thread only')

port.on('message', (msg: { id: number, job: FetchJob }) => {
  const { id, job } = msg
  fetchPack(job.gitdir, job.peer, job.remote).then(
    head => port.postMessage({ id, head } satisfies FetchAnswer),
    (err: unknown) => {
      const e = err as { code?: unknown, message?: unknown }
      const error = err instanceof SwarmError
        ? { code: err.code, message: err.message, data: err.data }
        : { code: typeof e?.code === 'string' ? e.code : undefined, message: typeof e?.message === 'string' ? e.message : String(err) }
      port.postMessage({ id, error } satisfies FetchAnswer)
    })
})

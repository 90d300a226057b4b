// Letting the machine and swarmfs settle between timed steps, so one step's leftovers (dirty pages
// being written back, a commit still running) do not land in the next step's time.
import fs from 'node:fs'
import { join } from 'node:path'
import { runOk, sleep } from './proc.js'

/** sync(1): writes back every dirty page, then a short pause. */
export async function settle (): Promise<void> {
  await runOk('sync', [])
  await sleep(200)
}

/**
 * Waits until a swarmfs node has committed everything it acknowledged: its journal files
 * (<disk>/journal) are all empty once the last batch is in git. Read from the native disk, never
 * through the mount. Returns the milliseconds waited.
 */
export async function swarmfsQuiet (disk: string, timeoutMs = 600_000): Promise<number> {
  const dir = join(disk, 'journal')
  const start = performance.now()
  for (;;) {
    let pending = 0
    for (const name of fs.readdirSync(dir)) {
      try { pending += fs.statSync(join(dir, name)).size } catch {}
    }
    if (pending === 0) return performance.now() - start
    if (performance.now() - start > timeoutMs) throw new Error(`swarmfs at ${disk} still has ${pending} journal bytes uncommitted after ${timeoutMs} ms`)
    await sleep(20)
  }
}

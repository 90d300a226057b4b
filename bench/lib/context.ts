// What every benchmark gets from run.ts, and small helpers they share.
import fs from 'node:fs'
import { randomFillSync } from 'node:crypto'
import { join } from 'node:path'
import type { Row } from './table.js'
import { runOk } from './proc.js'

export interface Context {
  /** Scratch directory of this run (native disk); removed at the end. */
  work: string
  /** A file of random bytes, sizes.seqBytes long, in RAM (tmpfs). */
  randomFile: () => string
  /** Lines printed under the table. */
  note: (line: string) => void
}

export type Benchmark = (ctx: Context) => Promise<Row[]>

let random: string | null = null
/** Writes `bytes` random bytes once per run (incompressible, so hashing sees real data). */
export function makeRandomFile (dir: string, bytes: number): string {
  if (random !== null) return random
  const path = join(dir, 'random.bin')
  const fd = fs.openSync(path, 'w')
  const chunk = Buffer.allocUnsafe(1 << 20)
  try {
    for (let done = 0; done < bytes; done += chunk.length) {
      randomFillSync(chunk)
      fs.writeSync(fd, chunk, 0, Math.min(chunk.length, bytes - done))
    }
    fs.fsyncSync(fd)
  } finally {
    fs.closeSync(fd)
  }
  random = path
  return path
}

/**
 * Drops a file's pages from the page cache (posix_fadvise DONTNEED through `dd iflag=nocache`;
 * /proc/sys/vm/drop_caches is not writable here). Its pages must be clean: written back (fsync).
 */
export async function evict (path: string): Promise<void> {
  await runOk('dd', [`if=${path}`, 'iflag=nocache', 'count=0', 'status=none'])
}

/** Every regular file under `dir` of at least `minBytes` bytes. */
export function bigFilesUnder (dir: string, minBytes: number): string[] {
  const out: string[] = []
  for (const entry of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue
    const path = join(entry.parentPath ?? (entry as unknown as { path: string }).path, entry.name)
    if (fs.statSync(path).size >= minBytes) out.push(path)
  }
  return out
}

/** Bytes per second as MB/s (10^6). */
export const mbps = (bytes: number, ms: number): number => bytes / 1e6 / (ms / 1000)

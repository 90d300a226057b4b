// `npm run bench`: every benchmark, then one table. Each row is a swarmfs measurement, a baseline
// measured in the same run, and their ratio. Runs inside `unshare --net` (see package.json).
// Env: SWARMFS_BENCH_SMALL=1 (sizes / 10), SWARMFS_BENCH_ONLY=seq,small,fsync,start,stat,content,sync,replicate,replicate-small,replicate-scale,encryption,idle-nodes,
// SWARMFS_BENCH_CONTENTS=n (replicate-scale: contents, default 100000), SWARMFS_BENCH_IDLE_S=s (its idle window, default 20),
// SWARMFS_BENCH_REPS=n (default 3), SWARMFS_BENCH_PROFILE=<dir> (--cpu-prof for swarmfs nodes),
// SWARMFS_BENCH_OUT=<dir> (server logs, results.json), SWARMFS_BENCH_TMP=<dir> (scratch),
// SWARMFS_BENCH_VERBOSE=1 (sync, replicate, replicate-small, idle-nodes: their nodes log with --verbose),
// SWARMFS_BENCH_IDLE_NODES_S=s and SWARMFS_BENCH_IDLE_WARM_S=s (idle-nodes: its window, default 60, after a warm-up, default 60),
// SWARMFS_BENCH_IDLE_NODE_FLAGS="--trace-gc ..." (idle-nodes: flags of its nodes' node).
import fs from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import { enabled, makeRamDir, makeWorkDir, outDir, profileDir, SMALL, sizes } from './lib/env.js'
import { makeRandomFile, type Benchmark, type Context } from './lib/context.js'
import { unmountAllSync } from './lib/mounts.js'
import { killAllSync, liveChildren } from './lib/proc.js'
import { formatTable, ratioOf, type Row } from './lib/table.js'
import { seqIo } from './seq-io.js'
import { smallFiles } from './small-files.js'
import { fsyncFiles } from './fsync-files.js'
import { startLarge } from './start-large.js'
import { statLoad } from './stat-load.js'
import { syncBench } from './sync.js'
import { contentBench } from './content.js'
import { replicateBench } from './replicate.js'
import { replicateSmallBench } from './replicate-small.js'
import { replicateScaleBench } from './replicate-scale.js'
import { encryptionBench } from './encryption.js'
import { idleNodesBench } from './idle-nodes.js'

const benchmarks: Array<[string, Benchmark]> = [
  ['seq', seqIo],
  ['small', smallFiles],
  ['fsync', fsyncFiles],
  ['start', startLarge],
  ['stat', statLoad],
  ['content', contentBench],
  ['sync', syncBench],
  ['replicate', replicateBench],
  ['replicate-small', replicateSmallBench],
  ['replicate-scale', replicateScaleBench],
  ['encryption', encryptionBench],
  ['idle-nodes', idleNodesBench]
]

/** Scratch directories of this run, removed at the end. */
const scratchDirs: string[] = []

function cleanupSync (): void {
  killAllSync()
  const left = unmountAllSync()
  if (left.length > 0) process.stderr.write(`bench: unmounted leftover mounts: ${left.join(', ')}\n`)
}

/** Removes the scratch directory, but never through a mount: only once nothing of ours is mounted. */
function removeWorkSync (): void {
  if (scratchDirs.length === 0) return
  if (unmountAllSync().length > 0) {
    process.stderr.write(`bench: left ${scratchDirs.join(', ')} in place: something is still mounted under it\n`)
    return
  }
  for (const dir of scratchDirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true })
}

async function main (): Promise<number> {
  const scratch = makeWorkDir()
  scratchDirs.push(scratch)
  let ram: string | null = null
  const notes: string[] = []
  const rows: Row[] = []
  const failures: string[] = []
  const ctx: Context = {
    work: scratch,
    randomFile: () => {
      if (ram === null) scratchDirs.push(ram = makeRamDir())
      return makeRandomFile(ram, sizes.seqBytes)
    },
    note: line => notes.push(line)
  }
  fs.rmSync(outDir, { recursive: true, force: true })
  fs.mkdirSync(outDir, { recursive: true })
  const started = Date.now()
  const loadBefore = os.loadavg()
  process.stderr.write(`bench: scratch ${scratch}, logs ${outDir}${SMALL ? ' (SMALL sizes)' : ''}${profileDir !== null ? `, profiles ${profileDir}` : ''}\n`)
  try {
    for (const [name, bench] of benchmarks) {
      if (!enabled(name)) continue
      const t0 = Date.now()
      process.stderr.write(`bench: ${name}...\n`)
      try {
        rows.push(...await bench(ctx))
        process.stderr.write(`bench: ${name} done in ${((Date.now() - t0) / 1000).toFixed(0)} s\n`)
      } catch (err) {
        failures.push(`${name}: ${(err as Error).stack ?? String(err)}`)
        process.stderr.write(`bench: ${name} FAILED: ${(err as Error).message}\n`)
      }
      if (liveChildren().length > 0) {
        failures.push(`${name} left processes running: ${liveChildren().join(', ')}`)
        cleanupSync()
      }
    }
  } finally {
    cleanupSync()
    removeWorkSync()
  }

  const cpus = os.cpus()
  const header = `swarmfs benchmarks — ${new Date(started).toISOString()}, ${((Date.now() - started) / 1000).toFixed(0)} s, ` +
    `node ${process.version}, ${cpus.length} x ${cpus[0]?.model ?? '?'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM${SMALL ? ', SMALL sizes (1/10)' : ''}, ` +
    `load average ${loadBefore.map(x => x.toFixed(1)).join(' ')} at start, ${os.loadavg().map(x => x.toFixed(1)).join(' ')} at end; ` +
    `median of ${sizes.reps}; ratio = swarmfs / baseline (↑ higher is better, ↓ lower is better)`
  const out = [header, '', formatTable(rows), '', ...notes.map(n => '- ' + n)]
  if (failures.length > 0) out.push('', 'FAILURES:', ...failures)
  process.stdout.write(out.join('\n') + '\n')
  fs.writeFileSync(join(outDir, 'results.json'), JSON.stringify({ started, small: SMALL, reps: sizes.reps, rows: rows.map(r => ({ ...r, ratio: ratioOf(r) })), notes, failures }, null, 2))
  return failures.length > 0 ? 1 : 0
}

process.on('exit', cleanupSync)
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    process.stderr.write(`bench: ${sig}, cleaning up\n`)
    cleanupSync()
    removeWorkSync()
    process.exit(130)
  })
}

main().then(code => { process.exitCode = code }, err => {
  process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`)
  process.exitCode = 1
})

// Sizes, paths and switches of a benchmark run.
import fs from 'node:fs'
import os from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

/** SWARMFS_BENCH_SMALL=1 shrinks every size 10x for a quick run. */
export const SMALL = process.env.SWARMFS_BENCH_SMALL === '1'
const scale = (n: number): number => SMALL ? Math.max(1, Math.round(n / 10)) : n

export const sizes = {
  /** Bytes of the sequential write/read file (1 GiB). */
  seqBytes: scale(1024) * 1024 * 1024,
  smallFiles: scale(10_000),
  smallFileBytes: 100,
  /**
   * Files of the large volume (SWARMFS_BENCH_FILES, default 100,000; 1,000,000 is the issue's
   * size, ~10 minutes to build): in 1,000 directories, or with SWARMFS_BENCH_ONE_DIR=1 all in one.
   */
  bigVolumeFiles: Number(process.env.SWARMFS_BENCH_FILES ?? scale(100_000)),
  bigVolumeOneDir: process.env.SWARMFS_BENCH_ONE_DIR === '1',
  /** `ls -l` per entry: a directory of this many entries against one a tenth its size, in one volume. */
  lsDirEntries: scale(100_000),
  /** Repetitions of each timed step; the table shows the median. */
  reps: Number(process.env.SWARMFS_BENCH_REPS ?? 5),
  /** Repetitions of the (slow) start of the large volume. */
  startReps: Number(process.env.SWARMFS_BENCH_REPS ?? 3)
}

/** dist/bench/lib → the package root. */
export const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..')
export const swarmfsBin = join(root, 'bin', 'swarmfs.js')
export const benchDist = join(root, 'dist', 'bench')
export const node = process.execPath

/** Which benchmarks run: SWARMFS_BENCH_ONLY=seq,small,fsync,start,stat,content,sync,replicate (default: all). */
export function enabled (name: string): boolean {
  const only = process.env.SWARMFS_BENCH_ONLY
  return only === undefined || only === '' || only.split(',').map(s => s.trim()).includes(name)
}

/**
 * SWARMFS_BENCH_PROFILE=<dir>: swarmfs node processes started by the benchmarks run with
 * `--cpu-prof` into that directory (only them: NODE_OPTIONS is set for that child alone).
 */
export const profileDir = process.env.SWARMFS_BENCH_PROFILE !== undefined && process.env.SWARMFS_BENCH_PROFILE !== ''
  ? resolve(process.env.SWARMFS_BENCH_PROFILE)
  : null

/** SWARMFS_BENCH_VERBOSE=1: the swarmfs nodes of the cluster benchmarks (sync, replicate, replicate-small) run with --verbose (debug logs in SWARMFS_BENCH_OUT). */
export const verbose = process.env.SWARMFS_BENCH_VERBOSE === '1' ? ['--verbose'] : []

/** Logs of the servers and the results, kept after the run (small). */
export const outDir = resolve(process.env.SWARMFS_BENCH_OUT ?? join(os.tmpdir(), 'swarmfs-bench-out'))

/** A scratch directory for one run; removed at the end. */
export function makeWorkDir (): string {
  const base = process.env.SWARMFS_BENCH_TMP ?? os.tmpdir()
  fs.mkdirSync(base, { recursive: true })
  return fs.mkdtempSync(join(base, 'swarmfs-bench-'))
}

/**
 * A scratch directory in RAM (tmpfs /dev/shm) for the random source file: this VM reclaims page
 * cache proactively (DAMON), so a source on disk would sometimes be read from the disk mid-copy;
 * tmpfs pages are never reclaimed here (no swap). SWARMFS_BENCH_SHM overrides; removed at the end.
 */
export function makeRamDir (): string {
  const base = process.env.SWARMFS_BENCH_SHM ?? (fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir())
  return fs.mkdtempSync(join(base, 'swarmfs-bench-src-'))
}

// Random I/O against a model, in the style of fsx (xfstests, LTP): test/fixtures/fsx.py runs a
// seeded random sequence of pwrite (also far past the end), pread, O_APPEND writes, ftruncate and
// truncate(path), mmap reads and MAP_SHARED writes, fallocate modes, copy_file_range, close and
// reopen, fsync and fstat on one file through several descriptors, and checks every read against
// a model of the bytes. After the run, after a clean restart of the node, and after one more run
// and a SIGKILL of the node (every close has returned), the files must hold the models' final
// bytes. SWARMFS_SEED=<n> replays a run (its seeds are n, n+1, n+2, n+3).
import t from 'tap'
import { join } from 'node:path'
import { ROOT, run, startVolume } from '../helpers/volume.js'

const FSX = join(ROOT, 'test', 'fixtures', 'fsx.py')

const base = process.env.SWARMFS_SEED !== undefined ? Number(process.env.SWARMFS_SEED) : Math.floor(Math.random() * 2 ** 31)
const OPS = 3000
const MiB = 1024 * 1024
/** Each seed with its own largest file size: different piece counts, holes and tails. */
const runs = [{ seed: base, maxlen: 2 * MiB }, { seed: base + 1, maxlen: MiB }, { seed: base + 2, maxlen: 4 * MiB }]

interface Summary {
  size: number
  sha256: string
  unsupported: Record<string, string>
  counts: Record<string, number>
}

function summaryOf (stdout: string): Summary | null {
  const line = stdout.split('\n').find(l => l.startsWith('fsx: ok '))
  return line === undefined ? null : JSON.parse(line.slice('fsx: ok '.length)) as Summary
}

t.test(`fsx: random I/O on the mount matches a model (seed ${base})`, async t => {
  t.comment(`seeds ${runs.map(r => r.seed).join(', ')} (replay with SWARMFS_SEED=${base})`)
  const vol = await startVolume(t)
  const fileOf = (seed: number): string => join(vol.mnt, `fsx-${seed}.bin`)
  const finalOf = (seed: number): string => join(vol.scratch, `final-${seed}.bin`)

  for (const { seed, maxlen } of runs) {
    const r = await run('python3', [FSX, fileOf(seed), String(OPS), String(seed), '--maxlen', String(maxlen), '--final', finalOf(seed)])
    const summary = summaryOf(r.stdout)
    t.equal(r.code, 0, `fsx seed ${seed}, ${OPS} ops up to ${maxlen} bytes: every read matches the model (replay with SWARMFS_SEED=${base})`, {
      stdout: r.stdout.slice(-8000),
      stderr: r.stderr.slice(-4000),
      node: vol.output.stderr.slice(-3000)
    })
    if (summary === null) continue
    t.comment(`seed ${seed}: final size ${summary.size}, ops ${JSON.stringify(summary.counts)}`)
    // The README: fallocate reserves (growing or not), punches and zeroes; copy_file_range works
    // (the kernel copies through read and write when the filesystem has no operation of its own).
    t.same(summary.unsupported, {}, `seed ${seed}: every fallocate mode used and copy_file_range are supported`)
  }

  // The checker itself: a model corrupted on purpose must be caught, with the op log and offset.
  const broken = await run('python3', [FSX, join(vol.mnt, 'fsx-self-test.bin'), '300', String(base), '--corrupt-model-at', '150'])
  t.equal(broken.code, 1, 'fsx fails when its model is wrong', { stdout: broken.stdout.slice(-3000), stderr: broken.stderr })
  t.match(broken.stdout, /first differing byte at file offset \d+/, '... naming the first differing byte')
  t.match(broken.stdout, /last 30 ops:\n(?: {4}#\d+ .*\n){30}/, '... after the last 30 ops')

  await vol.restart()
  for (const { seed } of runs) {
    const same = await run('cmp', [finalOf(seed), fileOf(seed)])
    t.equal(same.code, 0, `seed ${seed}: after a clean restart the file holds the model's final bytes`, { cmp: same.stdout + same.stderr })
  }

  // One more run on the restarted node, on the first run's file (from its final bytes); then a crash.
  const last = base + 3
  const again = await run('python3', [FSX, fileOf(base), String(OPS), String(last), '--initial', finalOf(base), '--final', finalOf(last)])
  t.equal(again.code, 0, `fsx seed ${last} on the restarted node, on the file of seed ${base}: every read matches the model`, { stdout: again.stdout.slice(-8000), stderr: again.stderr.slice(-4000) })
  await vol.kill9()
  await vol.restart()
  for (const [seed, file] of [[base + 1, fileOf(base + 1)], [base + 2, fileOf(base + 2)], [last, fileOf(base)]] as const) {
    const same = await run('cmp', [finalOf(seed), file])
    t.equal(same.code, 0, `seed ${seed}: after SIGKILL and a start the file holds the model's final bytes`, { cmp: same.stdout + same.stderr })
  }
  await vol.stop()
})

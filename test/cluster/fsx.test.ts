// Random I/O against a model on a file another node wrote: A writes a file, B runs
// test/fixtures/fsx.py on it through B's mount, every read checked against the model: first only
// reads at random offsets (pread, mmap), which fetch pieces from A, then every kind of op (the
// first open for writing makes a copy-on-write copy of A's content). Then A reads back B's final
// bytes. With a copy target of 1, B holds nothing of A's file before the run.
// SWARMFS_SEED=<n> replays a run.
import t from 'tap'
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import { join } from 'node:path'
import { Cluster, SETTLE_MS } from '../helpers/cluster.js'
import { until } from '../helpers/netns.js'
import { ROOT, prng, randomBytesSeeded, run } from '../helpers/volume.js'

const FSX = join(ROOT, 'test', 'fixtures', 'fsx.py')
const seed = process.env.SWARMFS_SEED !== undefined ? Number(process.env.SWARMFS_SEED) : Math.floor(Math.random() * 2 ** 31)
const OPS = 2000
const READS_FIRST = 300
const MiB = 1024 * 1024

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

t.test(`fsx on B against a file A wrote (seed ${seed})`, async t => {
  t.comment(`seed ${seed} (replay with SWARMFS_SEED=${seed})`)
  const c = await Cluster.create(t, 2)
  const [h1, h2] = c.net.hosts
  const { node: a, invite } = await c.init('A', h1)
  const copies = await c.cli(a, ['volume', '--copies', '1'])
  t.equal(copies.code, 0, 'copy target 1: B gets no copy of A\'s file behind the run', { stderr: copies.stderr })
  const b = await c.join('B', h2, invite)

  const rand = prng(seed)
  const initial = join(c.base, 'initial.bin')
  const final = join(c.base, 'final.bin')
  fs.writeFileSync(initial, randomBytesSeeded(rand, MiB + Math.floor(rand() * MiB)))
  const cp = await run('cp', [initial, join(a.mnt, 'shared.bin')])
  t.equal(cp.code, 0, 'A writes the file', { stderr: cp.stderr })
  const size = String(fs.statSync(initial).size)
  await until('B lists A\'s file with its size', async () => (await run('stat', ['-c', '%s', join(b.mnt, 'shared.bin')])).stdout.trim() === size, SETTLE_MS)

  const r = await run('python3', [FSX, join(b.mnt, 'shared.bin'), String(OPS), String(seed), '--maxlen', String(2 * MiB), '--initial', initial, '--reads-first', String(READS_FIRST), '--final', final])
  t.equal(r.code, 0, `fsx on B, ${OPS} ops (${READS_FIRST} reads first): every read matches the model (replay with SWARMFS_SEED=${seed})`, {
    stdout: r.stdout.slice(-8000),
    stderr: r.stderr.slice(-4000),
    logs: c.logs()
  })
  const summary = r.stdout.split('\n').find(l => l.startsWith('fsx: ok '))
  if (summary !== undefined) t.comment(summary)
  if (r.code !== 0 || !fs.existsSync(final)) return

  const expected = sha256(fs.readFileSync(final))
  const onA = async (): Promise<string> => (await run('sha256sum', [join(a.mnt, 'shared.bin')], { timeoutMs: 60_000 })).stdout.split(' ')[0] ?? ''
  await until('A reads B\'s final bytes', async () => await onA() === expected, SETTLE_MS).catch(() => {})
  t.equal(await onA(), expected, 'A reads the bytes B left: the model\'s final state', { logs: c.logs() })

  await c.stop(t, b)
  await c.stop(t, a)
})

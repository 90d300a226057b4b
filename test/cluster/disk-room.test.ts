// Pieces fetched from peers are a cache that never fills the disk: node B runs on a 48 MiB disk (a
// tmpfs of that size) and reads through its mount contents node A holds:
//   - with the disk filled by something else, a read fails with ENOSPC ("No space left on device")
//     while the mount keeps answering, and works once the space is back;
//   - a 100 MiB file is read whole, twice, with the right bytes: pieces the reader has left behind
//     are punched out of the partial file, and an earlier partial content no read uses is evicted;
//   - the disk keeps its reserve all along: a file written on B afterwards is committed and
//     reaches A;
//   - files read whole become copies on B; once they leave no room, the next read takes one of
//     them back (the volume holds it on A, beyond its copy target) instead of failing.
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { Cluster, SETTLE_MS } from '../helpers/cluster.js'
import { outputOf, until } from '../helpers/netns.js'
import { listedWith, prng, randomBytesSeeded, run } from '../helpers/volume.js'

const MiB = 1024 * 1024
const DISK_MIB = 48
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex')
const partialsOf = (disk: string): string[] => fs.readdirSync(join(disk, 'partial')).filter(n => n.endsWith('.bitfield'))

t.test('fetched pieces never take the room a small disk keeps free', async t => {
  // Registered before the cluster, so it runs after the cluster's teardown has stopped B.
  const small = fs.mkdtempSync(join(os.tmpdir(), 'swarmfs-small-disk-'))
  const mounted = await run('mount', ['-t', 'tmpfs', '-o', `size=${DISK_MIB}m`, 'tmpfs', small])
  t.equal(mounted.code, 0, `a ${DISK_MIB} MiB tmpfs for B's disk`, { stderr: mounted.stderr })
  t.teardown(async () => {
    await run('umount', [small])
    fs.rmSync(small, { recursive: true, force: true })
  })

  const c = await Cluster.create(t, 2)
  const [h1, h2] = c.net.hosts
  const { node: a, invite } = await c.init('A', h1)
  const copies = await c.cli(a, ['volume', '--copies', '1'])
  t.equal(copies.code, 0, 'copy target 1: nothing is copied to B behind the reads', { stderr: copies.stderr })
  const rand = prng(11)
  const big = randomBytesSeeded(rand, 100 * MiB + 12345)
  const other = randomBytesSeeded(rand, 40 * MiB)
  const smalls = [1, 2, 3, 4].map(() => randomBytesSeeded(rand, 12 * MiB))
  fs.writeFileSync(join(a.mnt, 'big.bin'), big)
  fs.writeFileSync(join(a.mnt, 'other.bin'), other)
  smalls.forEach((bytes, i) => fs.writeFileSync(join(a.mnt, `c${i + 1}.bin`), bytes))

  const b = await c.join('B', h2, invite, ['--verbose'], join(small, 'disk'))
  t.teardown(() => { fs.writeFileSync('/tmp/b.log', outputOf(b.history[0]!).stderr) })
  const bigB = join(b.mnt, 'big.bin')
  const otherB = join(b.mnt, 'other.bin')
  await until('every file listed on B', () => [[bigB, big], [otherB, other], ...smalls.map((bytes, i) => [join(b.mnt, `c${i + 1}.bin`), bytes])].every(([p, bytes]) => {
    try { return fs.statSync(p as string).size === (bytes as Buffer).length } catch { return false }
  }), SETTLE_MS)

  // The disk full of something else: no room for pieces.
  const filler = join(small, 'filler')
  const freeMiB = Math.floor(fs.statfsSync(small).bavail * fs.statfsSync(small).bsize / MiB)
  const fill = await run('dd', ['if=/dev/zero', `of=${filler}`, 'bs=1M', `count=${freeMiB - 1}`, 'status=none'])
  t.equal(fill.code, 0, 'a filler leaves 1 MiB free on B\'s disk', { stderr: fill.stderr })
  const refused = await run('dd', [`if=${otherB}`, 'of=/dev/null', 'bs=1M', 'count=4', 'status=none'], { timeoutMs: 60_000 })
  t.not(refused.code, 0, 'a read needing pieces fails on a full disk')
  t.match(refused.stderr, /No space left on device/, '... with ENOSPC')
  const ls = await run('ls', [b.mnt])
  t.equal(ls.code, 0, 'ls on B answers')
  t.match(ls.stdout, /big\.bin/, '... and lists the files')
  fs.rmSync(filler)

  // 30 MiB of other.bin: a partial content no read uses afterwards.
  const head = await run('sh', ['-c', `dd if="${otherB}" bs=1M count=30 status=none | sha256sum`], { timeoutMs: 120_000 })
  t.equal(head.stdout.split(' ')[0], sha256(other.subarray(0, 30 * MiB)), 'the first 30 MiB of other.bin read back on B once the space is back')

  // A file twice the size of the disk, read whole, twice.
  for (const time of ['first', 'second']) {
    const sum = await run('sha256sum', [bigB], { timeoutMs: 300_000 })
    t.equal(sum.code, 0, `sha256sum of big.bin (${time} time) succeeds`, { stderr: sum.stderr })
    t.equal(sum.stdout.split(' ')[0], sha256(big), `... with the bytes written on A (${time} time)`)
  }
  // other.bin's pieces went for big.bin's: evicted while partial, or, if its read-ahead completed
  // it, dropped as a copy beyond the target (A holds it).
  const partials = partialsOf(b.disk)
  t.equal(partials.length, 1, 'one partial content is left on B (big.bin\'s)', { partials })
  t.notOk(fs.readdirSync(join(b.disk, 'content')).some(n => fs.statSync(join(b.disk, 'content', n), { throwIfNoEntry: false })?.size === other.length), 'other.bin is not complete on B either')
  const mid = await run('sh', ['-c', `dd if="${bigB}" bs=1M skip=50 count=5 status=none | sha256sum`], { timeoutMs: 120_000 })
  t.equal(mid.stdout.split(' ')[0], sha256(big.subarray(50 * MiB, 55 * MiB)), 'a read in the middle of big.bin afterwards is right')
  const st = fs.statfsSync(small)
  t.ok(st.bavail * st.bsize >= MiB, `B's disk kept room (${(st.bavail * st.bsize / MiB).toFixed(1)} MiB free)`)
  const logB = outputOf(b.child!).stderr
  t.notMatch(logB, /commit failed|bookkeeping failed|torrent error/, 'no commit, bookkeeping or torrent failed on B')

  // The metadata was never starved: a change on B is committed and reaches A.
  fs.writeFileSync(join(b.mnt, 'note.txt'), 'written on B\n')
  await until('note.txt from B on A', () => listedWith(join(a.mnt, 'note.txt'), 'written on B\n'.length), SETTLE_MS)
  t.equal(fs.readFileSync(join(a.mnt, 'note.txt'), 'utf8'), 'written on B\n', 'A reads the file B wrote after the big reads')

  // Files read whole stay on B as copies: three of 12 MiB leave ~11 MiB free, the fourth needs 12.
  const contentB = join(b.disk, 'content')
  // (B drops copies while these look: a name listed may be gone by its stat or read.)
  const copiesOnB = (): string[] => fs.readdirSync(contentB).filter(n => /^[0-9a-f]{40}$/.test(n) && fs.statSync(join(contentB, n), { throwIfNoEntry: false })?.size === 12 * MiB)
  const holdsOnB = (bytes: Buffer): boolean => copiesOnB().some(n => {
    try {
      return sha256(fs.readFileSync(join(contentB, n))) === sha256(bytes)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
      throw err
    }
  })
  for (let i = 0; i < 4; i++) {
    const sum = await run('sha256sum', [join(b.mnt, `c${i + 1}.bin`)], { timeoutMs: 120_000 })
    t.equal(sum.stdout.split(' ')[0], sha256(smalls[i]!), `c${i + 1}.bin read whole on B`, { stderr: sum.stderr })
    if (i === 2) {
      const complete = await until('c1-c3 complete on B', () => copiesOnB().length === 3, SETTLE_MS).then(() => true, () => false)
      // B runs with --verbose: what it evicted, punched, dropped and completed tells why, should this fail.
      const roomLog = outputOf(b.child!).stderr.split('\n').filter(l => /evicted|punched|dropped|content complete/.test(l))
      t.ok(complete, 'c1-c3 stay complete on B: room for c3 came from the cache, not from dropping c1 or c2', { copies: copiesOnB().length, roomLog })
      // A completed content is renamed into content/ before its bitfield goes (after a directory
      // sync): wait for that last step rather than catch it half-way. big.bin's partial may stay or
      // have been evicted for c1-c3, depending on how many of its pieces the reads left.
      const completedPartials = (): string[] => partialsOf(b.disk).filter(p => copiesOnB().includes(p.replace(/\.bitfield$/, '')))
      await until('no bitfield left for c1-c3 on B', () => completedPartials().length === 0, SETTLE_MS).catch(() => {})
      t.same(completedPartials(), [], 'a content read whole leaves no partial behind', { partials: partialsOf(b.disk) })
    }
  }
  await until('c4 complete on B', () => holdsOnB(smalls[3]!), SETTLE_MS)
  t.ok(copiesOnB().length <= 3, `c4 is a copy on B: B let one of c1-c3 go for it (A holds them; ${copiesOnB().length} of the 4 are on B)`)
  await c.stop(t, b)
  await c.stop(t, a)
})

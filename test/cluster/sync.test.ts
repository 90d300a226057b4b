// Metadata sync between real nodes (issue 4): every node is a real `swarmfs` process (init, join,
// start) running in a network namespace "host" of a private test network, with a real FUSE mount
// driven by real programs (sh, mkdir, head, mv, rm, ln, touch, chmod, find, ls, git).
//
// File contents do not move between nodes yet (issue 5): reading on one node a file written on
// another fails with EIO. So everything here compares metadata only: names, types, sizes, modes,
// mtimes (to the second), symlink targets; renames and deletes; conflict copies told apart by size.
//
// Deadlines only bound a hang (convergence is polled, e.g. "until the listings match, or 60 s");
// nothing asserts how fast anything is.
//
// Debugging: SYNC_DEBUG_DIR=<dir> makes the nodes log with --verbose, and the concurrent-writes
// test copies every node's repository and log there.
import t from 'tap'
import type { Test } from 'tap'
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import type { ChildProcess } from 'node:child_process'
import { Cluster, POLL_MS, QUIET_MS, SETTLE_MS, type SNode, type StatusJson } from '../helpers/cluster.js'
import { outputOf, stopProcess, type NetHost } from '../helpers/netns.js'
import { CLI, ROOT, isMounted, run, sh, type RunResult } from '../helpers/volume.js'

// ---------------------------------------------------------------------------------------------
// Looking at mounts and repositories (always through child processes)

interface Entry {
  path: string
  type: string
  size: number
  mode: string
  /** Seconds since the epoch, with the fraction the filesystem keeps. */
  mtime: number
  target: string
}

/** Every entry below `dir`, sorted by path; null when find failed (e.g. an entry vanished mid-walk). */
async function entries (dir: string): Promise<Entry[] | null> {
  const r = await run('find', ['.', '-mindepth', '1', '-printf', '%P\\0%y\\0%s\\0%m\\0%T@\\0%l\\0'], { cwd: dir, timeoutMs: 60_000 })
  if (r.code !== 0) return null
  const f = r.stdout.split('\0')
  const out: Entry[] = []
  for (let i = 0; i + 5 < f.length; i += 6) {
    out.push({ path: f[i], type: f[i + 1], size: Number(f[i + 2]), mode: f[i + 3], mtime: Number(f[i + 4]), target: f[i + 5] })
  }
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
}

/**
 * One line per entry: `path type size mode mtime(s) target`, mtime to the second.
 *
 * Symlinks' mtimes are left out here (`symlinkMtimes` false) and compared on their own by
 * `symlinkMtimesAgree`: git symlinks carry no attributes, and a node gives a symlink it takes from
 * a peer its own clock's time (BUG, see the report in symlinkMtimesAgree), so including them would
 * hide every other difference behind that one and make each convergence wait run to its deadline.
 */
function lines (es: Entry[], symlinkMtimes = true): string[] {
  return es.map(e => `${e.path} ${e.type} ${e.size} ${e.mode} ${e.type === 'l' && !symlinkMtimes ? '(symlink)' : Math.floor(e.mtime)} ${e.target}`)
}

async function listing (dir: string, symlinkMtimes = false): Promise<string[] | null> {
  const es = await entries(dir)
  return es === null ? null : lines(es, symlinkMtimes)
}

/** `ls -lRn` with times in seconds, without the "total" lines (block counts are not metadata) and without symlinks' times (see `lines`). */
async function lsLR (dir: string): Promise<string | null> {
  const r = await run('ls', ['-lRn', '--time-style=+%s', '.'], { cwd: dir, timeoutMs: 60_000 })
  return r.code !== 0
    ? null
    : r.stdout.split('\n').filter(l => !l.startsWith('total ')).map(l => l.replace(/^(l\S+\s+\d+\s+\d+\s+\d+\s+\d+\s+)\d+ /, '$1(symlink-mtime) ')).join('\n')
}

/** Lines only in one of two sorted listings, at most `limit`. */
function diffLines (a: string[], b: string[], limit = 20): string[] {
  const sa = new Set(a)
  const sb = new Set(b)
  const out = [...a.filter(l => !sb.has(l)).map(l => `- ${l}`), ...b.filter(l => !sa.has(l)).map(l => `+ ${l}`)]
  return out.length > limit ? [...out.slice(0, limit), `... ${out.length - limit} more`] : out
}

async function headOf (node: SNode): Promise<string> {
  const r = await run('git', ['--git-dir', join(node.disk, 'meta'), 'rev-parse', 'main'], { timeoutMs: 30_000 })
  return r.code === 0 ? r.stdout.trim() : `(rev-parse failed: ${r.stderr.trim()})`
}

const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

/**
 * Polls `probe` (which returns what is still wrong, empty when all is well) until it is happy or
 * `deadlineMs` passes; then asserts that nothing is wrong, showing what still was.
 */
async function eventually (t: Test, msg: string, probe: () => Promise<unknown[]>, deadlineMs = SETTLE_MS, extra: () => Record<string, unknown> = () => ({})): Promise<boolean> {
  const end = Date.now() + deadlineMs
  let wrong: unknown[] = []
  for (;;) {
    try {
      wrong = await probe()
    } catch (err) {
      wrong = [`probe threw: ${(err as Error).message}`]
    }
    if (wrong.length === 0 || Date.now() > end) break
    await sleep(POLL_MS)
  }
  return t.same(wrong, [], msg, wrong.length > 0 ? { deadlineMs, ...extra() } : {})
}

/** What differs between `ref`'s listing and every other node's; empty when all agree. */
async function listingsDiffer (ref: SNode, others: SNode[]): Promise<string[]> {
  const want = await listing(ref.mnt)
  if (want === null) return [`${ref.label}: find failed`]
  const wrong: string[] = []
  for (const n of others) {
    const got = await listing(n.mnt)
    if (got === null) wrong.push(`${n.label}: find failed`)
    else for (const d of diffLines(want, got)) wrong.push(`${n.label} vs ${ref.label}: ${d}`)
  }
  return wrong
}

/**
 * Waits until every node has the same listing as `ref` and the same HEAD; then compares `ls -lR`
 * too, and (with `symlinkMtimes`) symlinks' mtimes, which a known bug keeps apart.
 */
async function converged (t: Test, c: Cluster, ref: SNode, others: SNode[], msg: string, symlinkMtimes = false): Promise<boolean> {
  const ok = await eventually(t, `${msg}: every node lists the same tree as ${ref.label}`, async () => await listingsDiffer(ref, others), SETTLE_MS, () => ({ logs: c.logs() }))
  const same = await eventually(t, `${msg}: every node has the same HEAD`, async () => {
    const heads = await Promise.all([ref, ...others].map(async n => `${n.label} ${await headOf(n)}`))
    return new Set(heads.map(h => h.split(' ')[1])).size === 1 ? [] : heads
  })
  const ls = await lsLR(ref.mnt)
  for (const n of others) t.equal(await lsLR(n.mnt), ls, `${msg}: ls -lR on ${n.label} is the same as on ${ref.label}`)
  if (symlinkMtimes) await symlinkMtimesAgree(t, ref, others, msg)
  return ok && same
}

/**
 * Symlinks are git symlinks (the blob is the target), so their times live in the directory's
 * marker; without that a node would show a symlink it received with its own clock.
 */
async function symlinkMtimesAgree (t: Test, ref: SNode, others: SNode[], msg: string): Promise<void> {
  const links = async (n: SNode): Promise<string[]> => lines(((await entries(n.mnt)) ?? []).filter(e => e.type === 'l'))
  const want = await links(ref)
  const wrong: string[] = []
  for (const n of others) for (const d of diffLines(want, await links(n))) wrong.push(`${n.label} vs ${ref.label}: ${d}`)
  t.same(wrong, [], `${msg}: symlinks have the same mtime on every node`)
}

/** `path atime` of every entry below `dir` (atime with its fraction), sorted; null when find failed. */
async function atimes (dir: string): Promise<string[] | null> {
  const r = await run('find', ['.', '-mindepth', '1', '-printf', '%P %A@\\n'], { cwd: dir, timeoutMs: 60_000 })
  return r.code !== 0 ? null : r.stdout.split('\n').filter(l => l !== '').sort()
}

/**
 * Once the nodes agree on HEAD, every entry has the same atime on each: atimes travel in the
 * entries (and markers) like mtimes, and reads never change them.
 */
async function atimesAgree (t: Test, ref: SNode, others: SNode[], msg: string): Promise<void> {
  // Polled: a kernel may show an attribute it cached (for up to the mount's 1 s attr_timeout)
  // from before the last commit, even once every node has that commit.
  await eventually(t, `${msg}: every entry has the same atime on every node`, async () => {
    const want = await atimes(ref.mnt)
    const wrong: string[] = []
    for (const n of others) for (const d of diffLines(want ?? [], (await atimes(n.mnt)) ?? [])) wrong.push(`${n.label} vs ${ref.label}: ${d}`)
    return wrong
  })
}

/** Asserts that no node's HEAD moves for QUIET_MS once they all agree (no node keeps committing). */
async function quiet (t: Test, nodes: SNode[], msg: string): Promise<void> {
  const before = await Promise.all(nodes.map(headOf))
  await sleep(QUIET_MS)
  const after = await Promise.all(nodes.map(headOf))
  t.same(after, before, `${msg}: no HEAD moved over ${QUIET_MS / 1000} s after settling`, { nodes: nodes.map(n => n.label) })
}

/** See Cluster.refusals: a head refused from an honest peer is the pack-cache bug. */
function noRefusals (t: Test, c: Cluster): void {
  t.same(c.refusals(), [], 'no node refused a head from an honest peer')
}

/** The link counts of `paths` on a node's mount, and how many inode numbers they show. */
async function hardLinks (node: SNode, paths: string[]): Promise<{ links: string[], inodes: number }> {
  const r = await run('stat', ['-c', '%h %i', ...paths], { cwd: node.mnt })
  const rows = r.stdout.trim().split('\n').map(l => l.split(' '))
  return { links: rows.map(([n]) => n ?? ''), inodes: new Set(rows.map(([, ino]) => ino)).size }
}

/** Runs a shell script in a node's mount; a failure fails the test and throws. */
async function onMount (t: Test, node: SNode, script: string): Promise<RunResult> {
  return await sh(t, script, { cwd: node.mnt })
}

// ---------------------------------------------------------------------------------------------
// The tests

if (!fs.existsSync(join(ROOT, 'dist', 'lib', 'node', 'join.js'))) {
  t.fail('dist/lib/node/join.js is missing: build first (npx tsc -p tsconfig.json)')
}

// Written on A in test 1: files of several sizes (empty, one byte, a piece, more), modes, symlinks
// (to a file, to a directory, dangling), names with spaces and non-ASCII letters, then renames
// (a file across directories, a directory with contents), deletes (a file, a directory), and set
// mtimes (files, directories last so nothing changes them after, and symlinks).
const TREE_SCRIPT = `
mkdir -p docs/sub/deep photos 'two words' emptydir gone-dir
head -c 0 /dev/urandom > empty
head -c 1 /dev/urandom > one-byte
head -c 4096 /dev/urandom > docs/page.txt
head -c 100000 /dev/urandom > docs/sub/hundred-k.bin
head -c 12 /dev/urandom > docs/sub/deep/leaf
head -c 1048576 /dev/urandom > photos/one-mib.jpg
head -c 3145739 /dev/urandom > photos/three-mib-and-a-bit.raw
head -c 777 /dev/urandom > 'two words/naïve café.txt'
head -c 50 /dev/urandom > to-delete
head -c 60 /dev/urandom > gone-dir/x
head -c 70 /dev/urandom > old-name.txt
printf '#!/bin/sh\\necho hi\\n' > run.sh
ln -s docs/page.txt link-to-page
ln -s ../nowhere dangling
ln -s sub docs/link-to-dir
mkfifo -m 640 docs/fifo
mknod docs/null-like c 1 3
ln docs/sub/deep/leaf docs/leaf-link
ln docs/link-to-dir docs/sub/link-too
chmod 755 run.sh
chmod 600 docs/page.txt
chmod 444 photos/one-mib.jpg
chmod 700 docs/sub/deep
mv old-name.txt docs/new-name.txt
mv photos pictures
rm to-delete
rm -r gone-dir
touch -d '2021-03-04 05:06:07.123456789' docs/page.txt
touch -d '2019-12-31 23:59:59' pictures/three-mib-and-a-bit.raw
touch -d '2020-06-15 12:00:00.000000001' emptydir docs/sub/deep
touch -h -d '2001-02-03 04:05:06.5' link-to-page dangling
touch -a -d '1999-09-09 09:09:09.987654321' docs/page.txt
touch -a -d '1998-08-08 08:08:08' emptydir
touch -h -a -d '1997-07-07 07:07:07.000999999' dangling
`

// Done on C in test 1, to a tree written on A: a new directory and file, a rename of A's file into
// it, a delete of A's file, chmod and touch of A's files, a new symlink, a symlink re-pointed.
const C_SCRIPT = `
mkdir from-c
head -c 2222 /dev/urandom > from-c/c-file.dat
mv docs/new-name.txt from-c/moved-from-a.txt
rm -f pictures/one-mib.jpg
chmod 640 docs/sub/hundred-k.bin
touch -d '2018-01-02 03:04:05' 'two words/naïve café.txt'
ln -s ../docs from-c/link-up
rm link-to-page
ln -s pictures/three-mib-and-a-bit.raw link-to-page
touch -d '2022-02-02 02:02:02' from-c
touch -a -d '1996-06-06 06:06:06' from-c/c-file.dat
printf ' from C' >> docs/leaf-link
touch -h -d '2017-07-07 07:07:07' docs/sub/link-too
`

const epoch = (s: string): number => Math.floor(Date.parse(s + 'Z') / 1000)

t.test('a tree written on one node appears on three others; changes on a third node reach all', async t => {
  const c = await Cluster.create(t, 3)
  const [h1, h2, h3] = c.net.hosts
  const { node: a, invite } = await c.init('A', h1)
  const aPort = c.config(a).httpPort
  t.ok(aPort > 0, 'A keeps its HTTP port in node.json', { aPort })
  // B and C find A by mDNS only; D, a second disk on A's host, is also given A by hand.
  const b = await c.join('B', h2, invite)
  const cc = await c.join('C', h3, invite)
  const d = await c.join('D', h1, invite, ['--peer', `${h1.address}:${aPort}`])
  t.equal(c.config(d).volumeName, 'media', 'D joined the volume')
  const all = [a, b, cc, d]

  await onMount(t, a, TREE_SCRIPT)

  // The tree on A is the one the script makes (checked against the same script run natively).
  const native = join(c.base, 'native')
  fs.mkdirSync(native)
  await sh(t, TREE_SCRIPT, { cwd: native })
  const shape = (es: Entry[]): string[] => es.map(e => `${e.path} ${e.type} ${e.type === 'd' ? '-' : e.size} ${e.mode} ${e.target}`)
  const onA = await entries(a.mnt)
  t.same(diffLines(shape((await entries(native))!), shape(onA ?? [])), [], 'A holds the tree the script makes (names, types, sizes, modes, link targets)')
  const mtimeOf = (es: Entry[] | null, p: string): number | undefined => { const e = es?.find(x => x.path === p); return e === undefined ? undefined : Math.floor(e.mtime) }
  t.equal(mtimeOf(onA, 'docs/page.txt'), epoch('2021-03-04T05:06:07'), 'touch -d set a file mtime on A')
  t.equal(mtimeOf(onA, 'emptydir'), epoch('2020-06-15T12:00:00'), 'touch -d set a directory mtime on A')
  t.equal(mtimeOf(onA, 'link-to-page'), epoch('2001-02-03T04:05:06'), 'touch -h -d set a symlink mtime on A')

  await converged(t, c, a, [b, cc, d], 'after writing on A', true)
  await atimesAgree(t, a, [b, cc, d], 'after writing on A')
  const atimeOn = async (n: SNode, p: string): Promise<number | undefined> => {
    const line = ((await atimes(n.mnt)) ?? []).find(l => l.startsWith(p + ' '))
    return line === undefined ? undefined : Math.floor(Number(line.slice(p.length + 1)))
  }
  t.equal(await atimeOn(d, 'docs/page.txt'), epoch('1999-09-09T09:09:09'), 'an atime set on A is seen on D (file)')
  t.equal(await atimeOn(d, 'emptydir'), epoch('1998-08-08T08:08:08'), 'an atime set on A is seen on D (directory)')
  t.equal(await atimeOn(d, 'dangling'), epoch('1997-07-07T07:07:07'), 'an atime set on A is seen on D (symlink)')
  const fineTimes = 'stat -c "%n %.9X %.9Y" docs/page.txt emptydir dangling'
  t.equal((await onMount(t, d, fineTimes)).stdout, (await onMount(t, a, fineTimes)).stdout, 'times set to the nanosecond on A are the same on D (file, directory, symlink)')
  t.match((await onMount(t, d, fineTimes)).stdout, /^docs\/page.txt 936868149.987654321 1614834367.123456789$/m, 'to the nanosecond on D')
  const onD = await entries(d.mnt)
  t.equal(mtimeOf(onD, 'pictures/three-mib-and-a-bit.raw'), epoch('2019-12-31T23:59:59'), 'an mtime set on A is seen on D')
  t.equal(onD?.find(e => e.path === 'docs/link-to-dir')?.target, 'sub', 'a symlink target is seen on D')
  t.equal(onD?.find(e => e.path === 'docs/fifo')?.type, 'p', 'a FIFO made on A is a FIFO on D')
  const dev = await run('stat', ['-c', '%F %t:%T', join(d.mnt, 'docs/null-like')])
  t.equal(dev.stdout.trim(), 'character special file 1:3', 'a device made on A is the same device on D')
  t.notOk(onD?.some(e => e.path === 'photos' || e.path === 'to-delete' || e.path.startsWith('gone-dir')), 'renamed and deleted entries are gone on D')
  t.same(await hardLinks(d, ['docs/sub/deep/leaf', 'docs/leaf-link']), { links: ['2', '2'], inodes: 1 }, 'a hard link made on A is one file with two names on D')
  t.same(await hardLinks(d, ['docs/link-to-dir', 'docs/sub/link-too']), { links: ['2', '2'], inodes: 1 }, 'a symlink hard-linked on A is one symlink with two names on D')
  t.equal(onD?.find(e => e.path === 'docs/sub/link-too')?.target, 'sub', '... with its target')

  await onMount(t, cc, C_SCRIPT)
  await converged(t, c, cc, [a, b, d], 'after changes on C', true)
  await atimesAgree(t, cc, [a, b, d], 'after changes on C')
  t.equal(await atimeOn(b, 'from-c/c-file.dat'), epoch('1996-06-06T06:06:06'), 'an atime set on C is seen on B')
  const onB = await entries(b.mnt)
  const find = (p: string): Entry | undefined => onB?.find(e => e.path === p)
  t.equal(find('from-c/c-file.dat')?.size, 2222, 'a file written on C is on B with its size')
  t.equal(find('from-c/moved-from-a.txt')?.size, 70, 'A\'s file renamed on C is on B at its new path')
  t.notOk(find('docs/new-name.txt'), '... and not at its old path')
  t.notOk(find('pictures/one-mib.jpg'), 'a file deleted on C is gone on B')
  t.equal(find('docs/sub/hundred-k.bin')?.mode, '640', 'a chmod on C is seen on B')
  t.equal(find('link-to-page')?.target, 'pictures/three-mib-and-a-bit.raw', 'a symlink re-pointed on C is seen on B')
  t.equal(find('from-c')?.mtime !== undefined ? Math.floor(find('from-c')!.mtime) : undefined, epoch('2022-02-02T02:02:02'), 'a directory mtime set on C is seen on B')
  t.same(await hardLinks(b, ['docs/sub/deep/leaf', 'docs/leaf-link']), { links: ['2', '2'], inodes: 1 }, 'a file written on C through one of its names is still one file with two names on B')
  t.match((await run('cat', [join(b.mnt, 'docs/sub/deep/leaf')])).stdout, / from C$/, 'what C appended through one name is read on B through the other')
  t.same(await hardLinks(b, ['docs/link-to-dir', 'docs/sub/link-too']), { links: ['2', '2'], inodes: 1 }, 'a hard-linked symlink touched on C through one name is still one symlink with two names on B')
  t.equal(Math.floor(find('docs/link-to-dir')?.mtime ?? 0), epoch('2017-07-07T07:07:07'), '... whose other name shows the time set on C')
  await quiet(t, all, 'test 1')
  noRefusals(t, c)
})

t.test('concurrent writes to the same names on two nodes converge and keep every last version', async t => {
  const c = await Cluster.create(t, 3)
  const { a, b, cc } = await c.threeNodes()
  const h2 = c.net.hosts[1]
  const all = [a, b, cc]
  const [idA, idB] = [c.config(a).nodeId, c.config(b).nodeId]

  // Each writer's versions have sizes of their own: A base+i with base 1000, B with base 2000.
  const N = 25
  const NAMES = ['f1', 'f2', 'f3.txt']
  // Plain overwrites (`>`). One can fail with EIO: the kernel opens the file without O_TRUNC
  // (the mount has no atomic_o_trunc) and truncates after, and opening for writing a file whose
  // current version came from the other node copies its content first, which is not on this disk
  // (issue 5). Such a write never happened, so it need not survive; any other failure fails.
  const loop = (base: number): string =>
    `for i in $(seq 0 ${N - 1}); do for f in ${NAMES.join(' ')}; do if ! head -c $((${base} + i)) /dev/urandom > "$f"; then echo "failed $f $i" >&2; fi; done; done`
  // Both loops at once, while the nodes sync: every round trip of notices and merges under load.
  const [ra, rb] = await Promise.all([onMount(t, a, loop(1000)), onMount(t, b, loop(2000))])
  for (const [label, r] of [['A', ra], ['B', rb]] as const) {
    const errs = r.stderr.split('\n').filter(l => l !== '')
    t.same(errs.filter(l => !/^failed /.test(l) && !/Input\/output error$/.test(l)), [], `${label}'s loop: no write failed other than with EIO`)
    const failed = errs.filter(l => /^failed /.test(l)).length
    if (failed > 0) t.comment(`${label}'s loop: ${failed} of ${N * NAMES.length} overwrites failed with EIO (the version at the path was the other node's)`)
  }
  await converged(t, c, a, [b, cc], 'after the concurrent loops')
  // A hard-linked file, written through one name on A (an append: A holds its content) and through
  // the other on B (rewritten whole: an append would need A's content, out of reach while apart).
  await onMount(t, a, 'mkdir linked && head -c 1000 /dev/urandom > linked/x && ln linked/x linked/y')
  await eventually(t, 'the linked file reached B as one file with two names', async () => {
    const seen = await hardLinks(b, ['linked/x', 'linked/y'])
    return seen.inodes === 1 && seen.links.join() === '2,2' ? [] : [seen]
  })

  // The last round is written while B is cut off (its switch port down), so the two last versions
  // of each name are concurrent for certain; otherwise one node might legitimately overwrite a
  // version it had already received. The same goes for a file and a directory made at one name.
  // Each last version is written beside and renamed over the name (as editors save), so no open
  // of the other node's version can fail with EIO (see above).
  const port = `p${c.net.hosts.indexOf(h2) + 1}`
  const sw = `${c.net.prefix}-sw`
  const ipr = async (args: string[]): Promise<void> => {
    const r = await run('ip', args, { timeoutMs: 30_000 })
    if (r.code !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr}`)
  }
  const last = (base: number): string => `for f in ${NAMES.join(' ')}; do head -c ${base + N} /dev/urandom > ".new-$f" && mv ".new-$f" "$f"; done`
  await ipr(['-n', sw, 'link', 'set', port, 'down'])
  try {
    await Promise.all([
      onMount(t, a, `${last(1000)}\nmkdir same && head -c 10 /dev/urandom > same/inside\nhead -c 1500 /dev/urandom > other\nhead -c 111 /dev/urandom >> linked/x`),
      onMount(t, b, `${last(2000)}\nhead -c 2500 /dev/urandom > same\nmkdir other && head -c 20 /dev/urandom > other/inside\nhead -c 222 /dev/urandom > linked/y`)
    ])
    // Both committed while apart: each HEAD holds its own last versions.
    const committed = async (n: SNode, want: Record<string, number>): Promise<string[]> => {
      const wrong: string[] = []
      for (const [p, size] of Object.entries(want)) {
        const r = await run('git', ['--git-dir', join(n.disk, 'meta'), 'cat-file', '-p', `main:${p}`], { timeoutMs: 30_000 })
        const got = r.code === 0 ? (JSON.parse(r.stdout) as { size?: number }).size : undefined
        if (got !== size) wrong.push(`${n.label} main:${p} size ${got ?? '(none)'}, want ${size}`)
      }
      return wrong
    }
    const finals = (base: number): Record<string, number> => Object.fromEntries(NAMES.map(f => [f, base + N]))
    await eventually(t, 'A committed its last versions while apart', async () => await committed(a, { ...finals(1000), 'same/inside': 10, other: 1500, 'linked/y': 1111 }))
    await eventually(t, 'B committed its last versions while apart', async () => await committed(b, { ...finals(2000), same: 2500, 'other/inside': 20, 'linked/x': 222 }))
  } finally {
    await ipr(['-n', sw, 'link', 'set', port, 'up'])
  }

  await converged(t, c, a, [b, cc], 'after the last versions, B connected again')
  await quiet(t, all, 'test 2')
  noRefusals(t, c)
  const heads = await Promise.all(all.map(headOf))
  t.equal(new Set(heads).size, 1, 'all nodes have one HEAD after settling', { heads })

  const everything = (await entries(a.mnt)) ?? []
  // The hard-linked file: both versions survive, each still under both names (one of them as a
  // conflict copy), each pair of names one file.
  const linked = everything.filter(e => e.path.startsWith('linked/'))
  for (const size of [1111, 222]) {
    const names = linked.filter(e => e.size === size).map(e => e.path)
    t.ok(names.length >= 2, `linked: the version of ${size} bytes survives under both names`, { linked: lines(linked) })
    if (names.length >= 2) t.same(await hardLinks(a, names), { links: names.map(() => String(names.length)), inodes: 1 }, `linked: its names are one file on A (${names.join(', ')})`)
  }
  t.same(linked.filter(e => e.size !== 1111 && e.size !== 222).map(e => e.path), [], 'linked: no other version')
  t.equal((await hardLinks(a, linked.map(e => e.path))).inodes, 2, 'linked: the two versions are two files, with a number each')
  // Both versions of a file changed on two nodes at once came from one file, with one number: the
  // conflict copy gets one of its own, or mv, cp and diff would take the two for one file.
  for (const n of all) {
    const shared = (await onMount(t, n, "find . \\( -type d -o -links 1 \\) -printf '%i %p\\n' | sort -n | awk '$1 == last { print prev; print } { last = $1; prev = $0 }'")).stdout
    t.equal(shared, '', `no two files share an inode number on ${n.label}`)
  }
  const es = everything.filter(e => e.path !== 'linked' && !e.path.startsWith('linked/'))
  if (process.env.SYNC_DEBUG_DIR !== undefined) {
    const keep = join(process.env.SYNC_DEBUG_DIR, `run-${Date.now()}`)
    fs.mkdirSync(keep, { recursive: true })
    for (const n of all) {
      await run('cp', ['-a', join(n.disk, 'meta'), join(keep, `${n.label}-meta`)])
      fs.writeFileSync(join(keep, `${n.label}.log`), n.history.map(ch => outputOf(ch).stderr).join('\n--- restarted\n'))
    }
    fs.writeFileSync(join(keep, 'ids'), `A=${idA} B=${idB} C=${c.config(cc).nodeId}\n`)
    t.comment(`kept in ${keep}`)
  }
  // Conflict copies: `stem.sync-conflict-<YYYYMMDD-HHMMSS>-<writer>[-n].ext`. A copy of a copy (the
  // suffix twice) also occurs: two merges on different nodes can give two different versions of one
  // writer, written within one second, the same copy name; merging those merges is then a conflict
  // at the copy's name. Every version is still kept, so such names are accepted here (and counted).
  const suffix = (writer: string): string => `\\.sync-conflict-\\d{8}-\\d{6}-${writer}(-\\d+)?`
  const copies = (name: string, writer = '[0-9a-f]{16}'): RegExp => {
    const dot = name.lastIndexOf('.')
    const [stem, ext] = dot > 0 ? [name.slice(0, dot), name.slice(dot)] : [name, '']
    const esc = (x: string): string => x.replace(/\./g, '\\.')
    return new RegExp(`^${esc(stem)}(${suffix('[0-9a-f]{16}')})*${suffix(writer)}(${suffix('[0-9a-f]{16}')})*${esc(ext)}$`)
  }
  const nested = es.filter(e => (e.path.match(/\.sync-conflict-/g) ?? []).length > 1)
  t.comment(`${es.filter(e => /\.sync-conflict-/.test(e.path)).length} conflict copies, ${nested.length} of them copies of copies`)
  for (const name of NAMES) {
    const versions = es.filter(e => e.path === name || copies(name).test(e.path))
    const sizes = versions.map(e => e.size)
    t.ok(sizes.includes(1000 + N), `${name}: A's last version (${1000 + N} bytes) survives`, { versions: lines(versions) })
    t.ok(sizes.includes(2000 + N), `${name}: B's last version (${2000 + N} bytes) survives`, { versions: lines(versions) })
    const atPath = versions.find(e => e.path === name)
    const lastA = versions.filter(e => e.size === 1000 + N)
    const lastB = versions.filter(e => e.size === 2000 + N)
    t.equal(atPath?.type, 'f', `${name} is a file at its path`)
    if (atPath !== undefined && lastA.length > 0 && lastB.length > 0) {
      t.ok(atPath.size === 1000 + N || atPath.size === 2000 + N, `${name}: one of the two last versions is at the path`, { atPath })
      const [other, otherId] = atPath.size === 1000 + N ? [lastB[0], idB] : [lastA[0], idA]
      t.ok(atPath.mtime >= other.mtime, `${name}: the newer of the two is at the path, the other is a conflict copy`, { atPath, other })
      t.match(other.path, copies(name, otherId), `${name}: the conflict copy is named after its writer`)
    }
  }
  const entry = (p: string): Entry | undefined => es.find(e => e.path === p)
  t.equal(entry('same')?.type, 'd', 'file against directory: the directory keeps the name')
  t.equal(entry('same/inside')?.size, 10, '... with its contents')
  const sameCopy = es.filter(e => copies('same', idB).test(e.path))
  t.ok(sameCopy.length > 0 && sameCopy.every(e => e.type === 'f' && e.size === 2500), '... and the file is kept as a conflict copy named after its writer', { entries: lines(es.filter(e => e.path.startsWith('same'))) })
  t.equal(entry('other')?.type, 'd', 'directory against file (the other way round): the directory keeps the name')
  t.equal(entry('other/inside')?.size, 20, '... with its contents')
  const otherCopy = es.filter(e => copies('other', idA).test(e.path))
  t.ok(otherCopy.length > 0 && otherCopy.every(e => e.type === 'f' && e.size === 1500), '... and the file is kept as a conflict copy named after its writer', { entries: lines(es.filter(e => e.path.startsWith('other'))) })
  // Criss-cross histories once made a version already moved aside look new against another merge
  // base, and it was copied again under the next free conflict name.
  const tree = await run('git', ['--git-dir', join(a.disk, 'meta'), 'ls-tree', 'main'], { timeoutMs: 30_000 })
  const namesOf = new Map<string, string[]>()
  for (const line of tree.stdout.split('\n')) {
    const m = /^100[67]44 blob ([0-9a-f]{40})\t(.*)$/.exec(line)
    if (m !== null) namesOf.set(m[1], [...(namesOf.get(m[1]) ?? []), m[2]])
  }
  const dupes = [...namesOf.values()].filter(names => names.length > 1)
  t.comment(`${[...namesOf.values()].flat().length} file entries at the top, ${namesOf.size} distinct versions`)
  t.same(dupes.slice(0, 5), [], 'each version is kept under one name only', { versionsKeptMoreThanOnce: dupes.length })
  // Nothing that was not written: every file is one of the versions above. An empty version is
  // one too: `>` creates (or truncates) the file before head writes to it, and a commit may come
  // in between, so the empty state of a file being written is committed and synced like any other.
  const written = new Set([...Array.from({ length: N + 1 }, (_, i) => [1000 + i, 2000 + i]).flat(), 0, 10, 20, 1500, 2500])
  t.same(es.filter(e => e.type !== 'd' && !written.has(e.size)).map(e => `${e.path} ${e.size}`), [], 'every file is a version that was written')
  t.same(es.filter(e => !NAMES.some(n => e.path === n || copies(n).test(e.path)) && e.path !== 'same' && e.path !== 'other' &&
    !/^(same|other)\/inside$/.test(e.path) && !copies('same').test(e.path) && !copies('other').test(e.path)).map(e => e.path), [], 'no other names appear')
})

t.test('a node stopped while the others change things catches up after start', async t => {
  const c = await Cluster.create(t, 3)
  const { a, b, cc } = await c.threeNodes()
  await onMount(t, a, 'mkdir -p keep/sub && head -c 300 /dev/urandom > keep/sub/f && head -c 400 /dev/urandom > doomed && head -c 500 /dev/urandom > to-move')
  await converged(t, c, a, [b, cc], 'before the stop')

  await c.stop(t, cc)
  const stoppedAt = await headOf(cc)
  await onMount(t, a, 'mkdir while-away && head -c 1234 /dev/urandom > while-away/from-a && mv to-move keep/sub/moved && touch -d "2017-07-07 07:07:07" keep/sub/moved')
  await onMount(t, b, 'rm doomed && chmod 711 keep && head -c 4321 /dev/urandom > from-b && ln -s keep/sub from-b-link')
  await converged(t, c, a, [b], 'A and B, while C is stopped')
  t.equal(await headOf(cc), stoppedAt, 'C\'s disk did not change while it was stopped')

  await c.start(cc)
  await converged(t, c, a, [b, cc], 'after C started again')
  const onC = (await entries(cc.mnt)) ?? []
  const has = (p: string): Entry | undefined => onC.find(e => e.path === p)
  t.equal(has('while-away/from-a')?.size, 1234, 'C has a file written on A while it was stopped')
  t.equal(has('from-b')?.size, 4321, 'C has a file written on B while it was stopped')
  t.equal(has('keep/sub/moved')?.size, 500, 'C has the rename')
  t.notOk(has('to-move') ?? has('doomed'), 'C no longer has what was moved or deleted')
  t.equal(has('keep')?.mode, '711', 'C has the chmod')
  t.equal(has('from-b-link')?.target, 'keep/sub', 'C has the symlink')
  await quiet(t, [a, b, cc], 'test 3')
  noRefusals(t, c)
})

/** A recursive listing of a directory (names, types, sizes, modes, mtimes) and node.json's bytes, to show nothing changed. */
async function snapshotDir (dir: string): Promise<string> {
  const r = await run('bash', ['-c', 'cd "$1" && find . -printf "%p %y %s %m %T@\\n" | sort && cat node.json 2>/dev/null || true', 'snap', dir])
  return r.stdout
}

t.test('a wrong key, a malformed invite, a disk of another volume and no reachable peer are refused', async t => {
  const c = await Cluster.create(t, 3)
  const [h1, h2, h3] = c.net.hosts
  const { node: a, invite } = await c.init('A', h1)
  const aPort = c.config(a).httpPort
  const aHead = await headOf(a)
  const scratch = join(c.base, 'scratch')
  fs.mkdirSync(scratch)

  const join_ = async (host: NetHost, inv: string, disk: string, extra: string[]): Promise<RunResult> =>
    await c.net.exec(host, process.execPath, [CLI, 'join', inv, '--disk', disk, '--mount', join(scratch, 'mnt'), ...extra], { timeoutMs: 120_000 })
  /** One error line on stderr starting with "swarmfs:" (after the "looking for a peer" progress line, if any), non-zero exit. */
  const refused = (t: Test, r: RunResult, what: string, pattern: RegExp): void => {
    const errLines = r.stderr.split('\n').filter(l => l !== '' && !/^swarmfs: looking for a peer/.test(l))
    t.not(r.code, 0, `${what}: non-zero exit`, { code: r.code, signal: r.signal })
    t.equal(errLines.length, 1, `${what}: one line of error`, { stderr: r.stderr })
    t.match(errLines[0] ?? '', /^swarmfs: /, `${what}: the line starts with "swarmfs:"`)
    t.match(errLines[0] ?? '', pattern, `${what}: the line says what is wrong`)
    t.notMatch(r.stdout, /joined|running/, `${what}: nothing joined or ran`, { stdout: r.stdout })
  }

  await t.test('an invite whose key is altered is refused by the live peer', async t => {
    const m = /^(swarmfs:\/\/[^/]+\/)(.*)$/.exec(invite)!
    const key = m[2]
    const wrongKey = key.slice(0, 10) + (key[10] === 'A' ? 'B' : 'A') + key.slice(11)
    const disk = join(scratch, 'wrong-key-disk')
    const r = await join_(h2, m[1] + wrongKey, disk, ['--peer', `${h1.address}:${aPort}`, '--wait', '5'])
    refused(t, r, 'wrong key', /refused|key/i)
    t.notOk(fs.existsSync(disk), 'wrong key: the disk directory was not created')
    t.equal(await headOf(a), aHead, 'the live node\'s repository is unchanged')
    // An existing empty directory stays, and stays empty.
    const empty = join(scratch, 'wrong-key-empty')
    fs.mkdirSync(empty)
    const r2 = await join_(h3, m[1] + wrongKey, empty, ['--peer', `${h1.address}:${aPort}`, '--wait', '5'])
    refused(t, r2, 'wrong key, empty disk directory', /refused|key/i)
    t.same(fs.readdirSync(empty), [], 'wrong key: an empty disk directory stays empty')
  })

  await t.test('an invite whose volume name is not the volume\'s is refused', async t => {
    const renamed = invite.replace(/^swarmfs:\/\/[^/]+\//, 'swarmfs://other/')
    const disk = join(scratch, 'renamed-disk')
    const r = await join_(h2, renamed, disk, ['--peer', `${h1.address}:${aPort}`, '--wait', '5'])
    refused(t, r, 'renamed invite', /the invite names volume "other", but its key is that of volume "media"/)
    t.notOk(fs.existsSync(disk), 'renamed invite: the disk directory was not created')
  })

  await t.test('malformed invites', async t => {
    for (const bad of ['swarmfs://media', 'http://media/' + 'x'.repeat(43), invite + 'extra', 'swarmfs://../' + invite.slice(-43), '']) {
      const disk = join(scratch, 'malformed-disk')
      const r = await join_(h2, bad, disk, ['--wait', '3'])
      refused(t, r, `malformed invite "${bad}"`, /invite/)
      t.notOk(fs.existsSync(disk), `malformed invite "${bad}": no disk directory created`)
    }
  })

  await t.test('a disk that already belongs to another volume', async t => {
    const other = join(scratch, 'other-volume-disk')
    const made = await c.net.exec(h2, process.execPath, [CLI, 'init', 'other', '--disk', other, '--no-start'], { timeoutMs: 60_000 })
    t.equal(made.code, 0, 'a second volume created without starting', { stderr: made.stderr })
    const before = await snapshotDir(other)
    const r = await join_(h2, invite, other, ['--wait', '3'])
    refused(t, r, 'disk of another volume', /belongs to volume "other"/)
    t.equal(await snapshotDir(other), before, 'the other volume\'s disk is unchanged')
    // And the same volume's own disk (already a node of it).
    const own = a.disk
    const beforeOwn = await snapshotDir(own)
    const r2 = await join_(h1, invite, own, ['--wait', '3'])
    refused(t, r2, 'disk already a node of this volume', /already holds a node/)
    t.equal((await snapshotDir(own)).split('\n').filter(l => l.startsWith('./node.json ')).join('\n'), beforeOwn.split('\n').filter(l => l.startsWith('./node.json ')).join('\n'), 'its node.json is untouched')
  })

  await t.test('no reachable peer', async t => {
    // A volume whose only node never runs: nobody on the network answers for it.
    const lonely = join(scratch, 'lonely-disk')
    const made = await c.net.exec(h3, process.execPath, [CLI, 'init', 'lonely', '--disk', lonely, '--no-start'], { timeoutMs: 60_000 })
    const lonelyInvite = /invite: (\S+)/.exec(made.stdout)?.[1] ?? ''
    t.match(lonelyInvite, /^swarmfs:\/\/lonely\//, 'a volume with no running node')
    const absent = join(scratch, 'unreached-disk')
    const r = await join_(h2, lonelyInvite, absent, ['--wait', '3'])
    refused(t, r, 'no reachable peer', /no peer .*answered within 3 s/)
    t.notOk(fs.existsSync(absent), 'no reachable peer: no disk directory created')
    const empty = join(scratch, 'unreached-empty')
    fs.mkdirSync(empty)
    const r2 = await join_(h2, lonelyInvite, empty, ['--wait', '3', '--peer', `${h3.address}:9`])
    refused(t, r2, 'no reachable peer (and a --peer nobody listens on)', /no peer .*answered within 3 s/)
    t.same(fs.readdirSync(empty), [], 'no reachable peer: an empty disk directory stays empty')
  })

  t.equal(outputOf(a.child!).exit, null, 'the live node still runs')
})

t.test('the stock git client clones a node\'s repository from its disk, and gets nothing from its peer port', async t => {
  const c = await Cluster.create(t, 3)
  const [h1, h2, h3] = c.net.hosts
  const { node: a, invite } = await c.init('A', h1)
  const b = await c.join('B', h2, invite)
  await onMount(t, a, 'mkdir docs && head -c 100 /dev/urandom > docs/one && ln -s docs/one link')
  await converged(t, c, a, [b], 'after A\'s changes')
  await onMount(t, b, 'head -c 200 /dev/urandom > docs/two && mv docs/one docs/uno && chmod 700 docs')
  await converged(t, c, b, [a], 'after B\'s changes')

  const key = invite.slice(invite.lastIndexOf('/') + 1)
  const { httpPort } = c.config(b)
  const env = { GIT_TERMINAL_PROMPT: '0', GIT_ASKPASS: '/bin/false', SSH_ASKPASS: '/bin/false' }
  const git = async (host: NetHost, args: string[]): Promise<RunResult> => await c.net.exec(host, 'git', args, { env, timeoutMs: 120_000 })
  // The owner of the disk clones it as any repository on the machine (README: "History with git"),
  // while the node runs.
  const dest = join(c.base, 'clone.git')
  const r = await git(h2, ['clone', '--bare', join(b.disk, 'meta'), dest])
  t.equal(r.code, 0, 'git clone --bare of the disk\'s meta succeeds while the node runs', { stderr: r.stderr })

  const nodeLog = await run('git', ['--git-dir', join(b.disk, 'meta'), 'log', '--format=%H %P %an %s', 'main'])
  const cloneLog = await run('git', ['--git-dir', dest, 'log', '--format=%H %P %an %s'])
  t.equal(cloneLog.code, 0, 'git log runs in the clone', { stderr: cloneLog.stderr })
  t.equal(cloneLog.stdout, nodeLog.stdout, 'the clone\'s history (HEAD) is the node\'s history of main')
  const oneline = await run('git', ['--git-dir', dest, 'log', '--oneline'])
  t.ok(oneline.stdout.trim().split('\n').length >= 3, 'git log --oneline shows several commits', { log: oneline.stdout })
  const lsNode = await run('git', ['--git-dir', join(b.disk, 'meta'), 'ls-tree', '-r', 'main'])
  const lsClone = await run('git', ['--git-dir', dest, 'ls-tree', '-r', 'main'])
  t.equal(lsClone.stdout, lsNode.stdout, 'the clone\'s tree is the node\'s')
  t.match(lsClone.stdout, /\tdocs\/uno\n/, '... holding B\'s rename')
  t.match(lsClone.stdout, /^120000 blob \S+\tlink$/m, '... and the symlink as a git symlink')
  const fsck = await run('git', ['--git-dir', dest, 'fsck', '--no-dangling'])
  t.equal(fsck.code, 0, 'git fsck finds the clone sound', { stdout: fsck.stdout, stderr: fsck.stderr })

  // From another host, the peer port speaks only the volume's TLS: stock git gets no ref, key or not.
  for (const scheme of ['http', 'https']) {
    for (const auth of ['', `swarmfs:${key}@`]) {
      const url = `${scheme}://${auth}${h2.address}:${httpPort}/meta.git`
      const ls = await git(h3, ['-c', 'http.sslVerify=false', 'ls-remote', url])
      t.not(ls.code, 0, `git ls-remote ${scheme}${auth === '' ? '' : ' with the key'} fails`)
      t.equal(ls.stdout, '', '... and prints no ref')
    }
  }
  noRefusals(t, c)
})

t.test('swarmfs status --json lists the live peers and says in sync', async t => {
  const c = await Cluster.create(t, 3)
  const began = Date.now()
  const { a, b, cc } = await c.threeNodes()
  const h1 = c.net.hosts[0]
  const all = [a, b, cc]
  await onMount(t, b, 'mkdir status-test && head -c 10 /dev/urandom > status-test/f')
  await converged(t, c, b, [a, cc], 'after a change on B')

  for (const n of all) {
    const others = all.filter(o => o !== n)
    // Live state settles on its own schedule (notices, polls): wait for what a settled cluster shows.
    let last: StatusJson | null = null
    await eventually(t, `${n.label}: status --json shows both other nodes with our head, in sync`, async () => {
      const s = last = await c.status(n)
      const head = await headOf(n)
      const wrong: string[] = []
      if (s.live === null) return ['live is null (the node did not answer)']
      if (!s.live.inSync) wrong.push('inSync is not true')
      if (s.live.head !== head) wrong.push(`live.head ${s.live.head} is not main ${head}`)
      if (s.live.peers.length !== others.length) wrong.push(`${s.live.peers.length} peers listed`)
      for (const o of others) {
        const p = s.live.peers.find(x => x.nodeId === c.config(o).nodeId)
        if (p === undefined) wrong.push(`${o.label} not listed`)
        else if (p.head !== head) wrong.push(`${o.label} listed with head ${p.head}`)
      }
      return wrong
    }, SETTLE_MS, () => ({ status: last }))
    const s = last as StatusJson | null
    if (s?.live == null) continue
    t.equal(s.running, true, `${n.label}: running`)
    t.equal(s.nodeId, c.config(n).nodeId, `${n.label}: its own node id`)
    for (const o of others) {
      const p = s.live.peers.find(x => x.nodeId === c.config(o).nodeId)
      t.ok(p, `${n.label} lists ${o.label} by node id`)
      if (p === undefined) continue
      t.equal(p.host, o.host.address, `${n.label} lists ${o.label} at its host's address`)
      t.equal(p.httpPort, c.config(o).httpPort, `${n.label} lists ${o.label} with its HTTP port`)
      t.ok(typeof p.lastSeen === 'number' && p.lastSeen >= began && p.lastSeen <= Date.now() + 1000, `${n.label} lists when it last saw ${o.label}`, { lastSeen: p.lastSeen })
      t.equal(p.lastError, null, `${n.label} has no error with ${o.label}`)
    }
  }
  // The human form says the same.
  const text = await c.net.exec(h1, process.execPath, [CLI, 'status', '--disk', a.disk], { timeoutMs: 30_000 })
  t.match(text.stdout, /in sync with every peer \(2 peers\)/, 'swarmfs status says in sync, with 2 peers', { stdout: text.stdout })
  for (const o of [b, cc]) t.match(text.stdout, new RegExp(`peer ${c.config(o).nodeId} ${o.host.address.replace(/\./g, '\\.')}:${c.config(o).httpPort} head [0-9a-f]{12} last seen \\d{4}-`), `swarmfs status shows ${o.label}`)
  await quiet(t, all, 'test 6')
  noRefusals(t, c)
})

// Replication between real nodes (issue 6): every file is kept on the volume's copy target of
// disks. Nodes are real `swarmfs` processes in network namespaces (mounted ones, and storage nodes
// made with a plain `swarmfs join --disk`); files are written with a shell on a mount; who holds
// what is read from each disk's content/ directory (one file per content, complete ones only).
//
// Deadlines bound a hang only ("until every file has 2 holders, or 3 minutes"); nothing asserts
// how fast anything is.
import t from 'tap'
import type { Test } from 'tap'
import fs from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import { Cluster, type SNode } from '../helpers/cluster.js'
import { outputOf, until } from '../helpers/netns.js'
import { run, sh } from '../helpers/volume.js'

/** Replication reaching its target: bounds a hang only. */
const REPLICATED_MS = 180_000
const FILES = 50

/** Infohashes of the complete contents on a node's disk. */
function held (node: SNode): Set<string> {
  const dir = join(node.disk, 'content')
  return new Set(fs.existsSync(dir) ? fs.readdirSync(dir).filter(n => /^[0-9a-f]{40}$/.test(n)) : [])
}

/** How many of `nodes` hold each content any of them holds. */
function holderCounts (nodes: SNode[]): Map<string, number> {
  const counts = new Map<string, number>()
  for (const n of nodes) for (const ih of held(n)) counts.set(ih, (counts.get(ih) ?? 0) + 1)
  return counts
}

/** Whether `files` distinct contents are each held by exactly `copies` of `nodes`. */
function exactly (nodes: SNode[], files: number, copies: number): boolean {
  const counts = holderCounts(nodes)
  return counts.size === files && [...counts.values()].every(n => n === copies)
}

function describe (nodes: SNode[]): Record<string, unknown> {
  const hist: Record<string, number> = {}
  for (const n of holderCounts(nodes).values()) hist[`${n} holders`] = (hist[`${n} holders`] ?? 0) + 1
  return { contents: hist, perNode: Object.fromEntries(nodes.map(n => [n.label, held(n).size])) }
}

/**
 * FILES files of random bytes, written by a shell on a mount: 1 to 300 KiB (copied over the peer
 * API, lib/node/small-copies.ts), and the last two of 3 MiB (copied by BitTorrent).
 */
async function writeFiles (t: Test, mnt: string): Promise<void> {
  await sh(t, `mkdir -p "${mnt}/photos" && i=0; while [ $i -lt ${FILES} ]; do head -c $(( i >= ${FILES - 2} ? 3145728 + i : (i * 6151) % 307200 + 1024 )) /dev/urandom > "${mnt}/photos/p$i.jpg" || exit 1; i=$((i+1)); done`, { timeoutMs: 120_000 })
}

/** Waits until every file is on exactly `copies` of `nodes`; a failure carries the nodes' logs. */
async function replicated (t: Test, c: Cluster, nodes: SNode[], copies: number): Promise<void> {
  try {
    await until(`every file on exactly ${copies} of ${nodes.map(n => n.label).join(', ')}`, () => exactly(nodes, FILES, copies), REPLICATED_MS)
    t.pass(`every file is on exactly ${copies} of ${nodes.map(n => n.label).join(', ')}`)
  } catch (err) {
    t.fail((err as Error).message, { ...describe(nodes), logs: c.logs() })
    throw err
  }
}

async function volume (t: Test, c: Cluster, node: SNode, args: string[]): Promise<void> {
  const r = await c.cli(node, ['volume', ...args])
  t.equal(r.code, 0, `swarmfs volume ${args.join(' ')} on ${node.label}`, { stderr: r.stderr })
}

t.test('three nodes, target 2 then 3: every file on exactly that many disks; df shows the volume', async t => {
  const c = await Cluster.create(t, 3)
  const { a, b, cc } = await c.threeNodes()
  const nodes = [a, b, cc]
  await writeFiles(t, a.mnt)

  await replicated(t, c, nodes, 2)
  // Several replication rounds later, nobody made a third copy (no two nodes raced for one).
  await new Promise(resolve => setTimeout(resolve, 8000))
  t.ok(exactly(nodes, FILES, 2), 'and still on exactly 2 a few rounds later', describe(nodes))

  const status = await c.cli(a, ['status'])
  t.match(status.stdout, new RegExp(`every file \\(${FILES}\\) has its copies`), 'swarmfs status says every file has its copies', { stdout: status.stdout })
  const json = JSON.parse((await c.cli(b, ['status', '--json'])).stdout) as { live: { replication: { underTarget: number, nodes: Array<{ complete: number }> } } }
  t.equal(json.live.replication.underTarget, 0, 'status --json: no file under target')
  t.same(json.live.replication.nodes.map(n => n.complete).reduce((x, y) => x + y, 0), 2 * FILES, 'status --json: the nodes hold 2 copies of each file between them')

  // df: the three disks (one filesystem here, so three times its size) divided by the target.
  const disk = await run('df', ['-B1', '--output=size', a.disk])
  const mount = await run('df', ['-B1', '--output=size', a.mnt])
  const diskSize = Number(disk.stdout.trim().split('\n').pop())
  const mountSize = Number(mount.stdout.trim().split('\n').pop())
  t.ok(Math.abs(mountSize - diskSize * 3 / 2) < diskSize * 0.02, `df on the mount shows 3 disks / 2 copies (${mountSize} for disks of ${diskSize})`, { disk: disk.stdout, mount: mount.stdout })

  await volume(t, c, b, ['--copies', '3'])
  await replicated(t, c, nodes, 3)
  const shown = await c.cli(cc, ['volume', '--json'])
  t.equal(JSON.parse(shown.stdout).copies, 3, 'C has the target B set (it travels in the volume)')
  t.equal((await c.cli(a, ['volume', '--copies', '3'])).stderr, '', 'a target the running disks can meet: no note')
  const four = await c.cli(a, ['volume', '--copies', '4'])
  t.equal(four.code, 0, 'a target of 4 with 3 disks is kept (disks may join later)', { stderr: four.stderr })
  t.match(four.stderr, /^swarmfs: note: 3 disks are running; files stay under the target of 4 until 1 more join/, '... and the command says files stay under it')
  const zero = await c.cli(a, ['volume', '--grace-period', '0'])
  t.equal(zero.code, 0, 'a grace period of 0 is kept', { stderr: zero.stderr })
  t.match(zero.stderr, /^swarmfs: note: with a grace period of 0 s, the files of a node that is only restarting are copied to other disks at once/, '... and the command says what it means')
})

t.test('a holder gone longer than the grace period: its files are copied to the live nodes', async t => {
  const c = await Cluster.create(t, 3)
  const { a, b, cc } = await c.threeNodes()
  await volume(t, c, a, ['--grace-period', '4'])
  await writeFiles(t, a.mnt)
  await replicated(t, c, [a, b, cc], 2)
  const onB = held(b).size
  t.ok(onB > 0, `B holds some of the files (${onB})`)

  await c.stop(t, b)
  await replicated(t, c, [a, cc], 2)
  // Nothing B said counts any more: A's status no longer lists it (it did while B ran).
  await until('A\'s status no longer lists B', async () => !(await c.cli(a, ['status'])).stdout.includes(nodeIdOf(b)), 60_000)
})

t.test('a storage node joined on a host that runs a node, then retired; retire refuses what it cannot do', async t => {
  const c = await Cluster.create(t, 2)
  const [h1, h2] = c.net.hosts
  const { node: a, invite } = await c.init('A', h1)
  const b = await c.join('B', h2, invite)
  // One command, on host 1 where A already runs: a node with no mount that stores and serves.
  const d = await c.joinStorage('D', h1, invite)
  await writeFiles(t, a.mnt)
  const nodes = [a, b, d]
  await replicated(t, c, nodes, 2)
  t.ok(held(d).size > 0, `the storage node D holds files (${held(d).size})`)

  const retired = await c.cli(d, ['retire'], REPLICATED_MS)
  t.equal(retired.code, 0, 'swarmfs retire of D exits 0', { stderr: retired.stderr.slice(-2000), stdout: retired.stdout })
  t.ok(exactly([a, b], FILES, 2), 'when it exits, every file has 2 copies on the other disks', describe([a, b]))
  t.match(retired.stdout, /retired/, 'it says the disk is retired')
  await until('D\'s node has exited', () => d.child !== null && d.child.exitCode !== null, 60_000)
  t.equal(d.child?.exitCode, 0, 'D\'s node stopped by itself, cleanly')
  d.child = null
  const again = await c.cli(d, ['start'])
  t.not(again.code, 0, 'a retired disk does not start again')
  t.match(again.stderr, /retired/, '... and says why')
  await until('A\'s status no longer lists the retired D', async () => !(await c.cli(a, ['status'])).stdout.includes(nodeIdOf(d)), 60_000)

  const refused = await c.cli(b, ['retire'])
  t.not(refused.code, 0, 'retiring B, which would leave one node for a target of 2, is refused')
  t.match(refused.stderr, /only 1 other node is running/, '... with a message that says why', { stderr: refused.stderr })
  t.equal(refused.stderr.trim().split('\n').length, 1, '... in one line')
  t.ok(exactly([a, b], FILES, 2), 'and nothing moved', describe([a, b]))
})

/** The node id in a disk's node.json. */
function nodeIdOf (node: SNode): string {
  return (JSON.parse(fs.readFileSync(join(node.disk, 'node.json'), 'utf8')) as { nodeId: string }).nodeId
}

/** A tmpfs of `size` made by the test (removed at its end, after the nodes it registers later stop). */
async function smallDisk (t: Test, size: string): Promise<string> {
  const disk = fs.mkdtempSync(join(os.tmpdir(), 'swarmfs-small-'))
  const mounted = await run('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', disk])
  t.equal(mounted.code, 0, `a ${size} tmpfs for a disk`, { stderr: mounted.stderr })
  t.teardown(async () => {
    await run('umount', ['-l', disk])
    fs.rmSync(disk, { recursive: true, force: true })
  })
  return disk
}

t.test('copies cached by reads are dropped when a disk is below its reserve, never below the target', async t => {
  const disk = await smallDisk(t, '64m')
  const c = await Cluster.create(t, 3)
  const [h1, h2, h3] = c.net.hosts
  const { node: a, invite } = await c.init('A', h1)
  const cc = await c.join('C', h3, invite)
  const b = await c.join('B', h2, invite, ['--reserve', '36M'], disk)
  await sh(t, `mkdir "${a.mnt}/films" && for i in 1 2 3 4 5 6; do head -c 5242880 /dev/urandom > "${a.mnt}/films/f$i.bin" || exit 1; done`)
  const sums = (await run('sh', ['-c', `cd "${a.mnt}/films" && sha256sum f*.bin`])).stdout
  await until('every film on 2 disks', () => exactly([a, b, cc], 6, 2), REPLICATED_MS)
  t.equal(held(b).size, 0, 'B, with little room above its reserve, was given no copy (C has more free space)')

  // Reading every film on B makes complete local copies of all of them, and B's disk goes below its reserve.
  const read = await run('sh', ['-c', `cd "${b.mnt}/films" && sha256sum f*.bin`], { timeoutMs: 120_000 })
  t.equal(read.stdout, sums, 'B reads every film right')
  const free = (): number => { const st = fs.statfsSync(disk); return st.bavail * st.bsize }
  await until(`B drops copies until it is above its reserve again (holds ${held(b).size}, ${free()} bytes free)`, () => free() >= 36 * 2 ** 20, REPLICATED_MS)
  const kept = held(b).size
  t.ok(kept < 6, `B dropped cached copies (keeps ${kept} of 6)`)
  t.ok(kept > 0, 'and only as many as it needed to')
  t.ok(exactly([a, cc], 6, 2), 'A and C still hold every film: nothing went below the target', describe([a, b, cc]))
  // B says which of its copies are a cache (its peers then trim no copy of theirs in its favour), also after a restart.
  const cachedOnB = async (): Promise<number | undefined> => {
    const s = JSON.parse((await c.cli(b, ['status', '--json'])).stdout) as { live: { replication: { nodes: Array<{ cached: number }> } } | null }
    return s.live?.replication.nodes[0]?.cached
  }
  await until(`B's status counts its ${kept} copies as cached by reads`, async () => await cachedOnB() === held(b).size, REPLICATED_MS)
  await c.stop(t, b)
  await c.start(b)
  await until(`after a restart, B's status still counts ${held(b).size} copies cached by reads`, async () => await cachedOnB() === held(b).size, REPLICATED_MS)
  t.ok(exactly([a, cc], 6, 2), 'A and C hold every film after B\'s restart', describe([a, b, cc]))
  const again = await run('sh', ['-c', `cd "${b.mnt}/films" && sha256sum f*.bin`], { timeoutMs: 120_000 })
  const logB = b.child === null ? '' : outputOf(b.child).stderr.slice(-3000)
  t.equal(again.stdout, sums, 'B still reads every film right (a dropped one comes from the others again)', { stderr: again.stderr, logB })
})

t.test('a full disk: ENOSPC to the writer, the node keeps running, what was stored stays intact', async t => {
  // A 64 MiB tmpfs of the test's own is the node's whole disk (metadata and contents). The
  // cluster's teardown is registered after the tmpfs's, so the node stops before the tmpfs goes.
  const disk = await smallDisk(t, '64m')
  const c = await Cluster.create(t, 1)
  const { node: a } = await c.init('A', c.net.hosts[0], 'small', disk)
  const keep = join(a.mnt, 'keep.bin')
  await sh(t, `head -c 8388608 /dev/urandom > "${keep}"`)
  const sum = async (): Promise<string> => (await run('sha256sum', [keep])).stdout.split(' ')[0]
  const before = await sum()

  const dd = await run('dd', ['if=/dev/zero', `of=${join(a.mnt, 'big.bin')}`, 'bs=1M', 'count=100'], { timeoutMs: 120_000 })
  t.not(dd.code, 0, 'dd of 100 MiB onto a 64 MiB disk fails')
  t.match(dd.stderr, /No space left on device/, '... with ENOSPC')
  t.equal(a.child?.exitCode, null, 'the node keeps running')
  const ls = await run('ls', ['-l', a.mnt])
  t.equal(ls.code, 0, 'ls on the mount answers')
  t.equal(await sum(), before, 'the file stored before reads back the same')

  const rm = await run('rm', [join(a.mnt, 'big.bin')])
  t.equal(rm.code, 0, 'the partial file can be removed')
  await sh(t, `echo after > "${join(a.mnt, 'after.txt')}"`)
  t.equal((await run('cat', [join(a.mnt, 'after.txt')])).stdout, 'after\n', 'once there is room again, writes work')

  await c.stop(t, a)
  await c.start(a)
  t.equal(await sum(), before, 'after a restart the stored file is intact')
  t.equal((await run('cat', [join(a.mnt, 'after.txt')])).stdout, 'after\n', '... and so is the one written after')
  const fsck = await run('git', ['--git-dir', join(disk, 'meta'), 'fsck', '--no-dangling'], { timeoutMs: 60_000 })
  t.equal(fsck.code, 0, 'git fsck finds the metadata repository sound', { stdout: fsck.stdout, stderr: fsck.stderr })
})

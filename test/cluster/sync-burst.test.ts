// A burst of creates on real nodes (issue 24): a commit of many new files is written as one pack
// (lib/meta/pack-writer.ts) and a peer reads fetched packs natively (lib/meta/packs.ts). Two real
// `swarmfs` processes on two namespace hosts, each with a real FUSE mount, write bursts of their
// own at the same time (so their histories diverge and merge over packed objects); every file
// written on either is then listed on both, both hold the same HEAD, and git finds both
// repositories sound. Deadlines only bound a hang; nothing asserts how fast anything is (that is
// bench/sync.ts).
import t from 'tap'
import type { Test } from 'tap'
import fs from 'node:fs'
import { join } from 'node:path'
import { Cluster, POLL_MS, SETTLE_MS, type SNode } from '../helpers/cluster.js'
import { run, sh } from '../helpers/volume.js'

const FILES = 600
const DIRS = 6

/** A shell script writing FILES small files, each with its own content, round-robin into DIRS directories under `top`. */
function burstScript (top: string): string {
  return `mkdir -p ${Array.from({ length: DIRS }, (_, d) => `${top}/d${d}`).join(' ')}
i=0; while [ $i -lt ${FILES} ]; do echo "${top} file $i" > ${top}/d$((i % ${DIRS}))/f$i; i=$((i + 1)); done`
}

/** `path size` of every file below `dir` (sorted); null when find failed. */
async function files (dir: string): Promise<string[] | null> {
  const r = await run('find', ['.', '-type', 'f', '-printf', '%P %s\\n'], { cwd: dir, timeoutMs: 60_000 })
  return r.code !== 0 ? null : r.stdout.split('\n').filter(l => l !== '').sort()
}

async function headOf (node: SNode): Promise<string> {
  const r = await run('git', ['--git-dir', join(node.disk, 'meta'), 'rev-parse', 'main'], { timeoutMs: 30_000 })
  return r.code === 0 ? r.stdout.trim() : `(rev-parse failed: ${r.stderr.trim()})`
}

/** Polls `probe` (what is still wrong) until it returns nothing or the deadline passes; asserts nothing is wrong. */
async function eventually (t: Test, msg: string, probe: () => Promise<string[]>): Promise<void> {
  const end = Date.now() + SETTLE_MS
  let wrong: string[] = []
  for (;;) {
    wrong = await probe()
    if (wrong.length === 0 || Date.now() > end) break
    await new Promise(resolve => setTimeout(resolve, POLL_MS))
  }
  t.same(wrong.slice(0, 20), [], msg, { left: wrong.length })
}

t.test('bursts of creates on two nodes at once are all listed on both, over packed objects', async t => {
  const c = await Cluster.create(t, 2)
  const [h1, h2] = c.net.hosts
  const { node: a, invite } = await c.init('A', h1)
  const b = await c.join('B', h2, invite)

  await Promise.all([sh(t, burstScript('from-a'), { cwd: a.mnt, timeoutMs: 600_000 }), sh(t, burstScript('from-b'), { cwd: b.mnt, timeoutMs: 600_000 })])

  // Every file with its path from the mount's root (from-a/... or from-b/...).
  const listed = async (n: SNode): Promise<string[]> => (await files(n.mnt))?.filter(l => l.startsWith('from-')) ?? []
  const want = [...(await listed(a)).filter(l => l.startsWith('from-a/')), ...(await listed(b)).filter(l => l.startsWith('from-b/'))].sort()
  t.equal(want.length, 2 * FILES, 'each node lists its own burst')
  for (const n of [a, b]) {
    await eventually(t, `${n.label} lists every file of both bursts`, async () => {
      const got = new Set(await listed(n))
      return want.filter(l => !got.has(l)).map(l => `missing ${l}`)
    })
  }
  await eventually(t, 'both nodes hold the same HEAD and the same files', async () => {
    const [ha, hb] = await Promise.all([headOf(a), headOf(b)])
    const [la, lb] = await Promise.all([listed(a), listed(b)])
    const wrong = ha === hb ? [] : [`A ${ha}, B ${hb}`]
    if (la.join('\n') !== want.join('\n')) wrong.push(`A lists ${la.length} files, not those written`)
    if (lb.join('\n') !== want.join('\n')) wrong.push(`B lists ${lb.length} files, not those written`)
    return wrong
  })

  for (const n of [a, b]) {
    const gitdir = join(n.disk, 'meta')
    const fsck = await run('git', ['--git-dir', gitdir, 'fsck', '--strict', '--no-dangling'], { timeoutMs: 120_000 })
    t.equal(fsck.code, 0, `git fsck finds ${n.label}'s repository sound`, { stderr: fsck.stderr.slice(0, 2000) })
    const tree = await run('git', ['--git-dir', gitdir, 'ls-tree', '-r', '--name-only', 'main'], { timeoutMs: 60_000 })
    t.equal(tree.stdout.split('\n').filter(p => /^from-[ab]\/d\d\/f\d+$/.test(p)).length, 2 * FILES, `git lists every file in ${n.label}'s HEAD`)
  }
  const packs = fs.readdirSync(join(a.disk, 'meta', 'objects', 'pack')).filter(n => n.endsWith('.pack')).length
  t.comment(`A holds ${packs} packs`)

  // A restart reads the index back (from its snapshot, else from the packs) and lists the same.
  await c.stop(t, a)
  await c.start(a)
  t.same(await listed(a), want, 'A lists the same files after a restart')
})

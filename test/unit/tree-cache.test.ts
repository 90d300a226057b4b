// A large directory's tree written from its last one (lib/meta/tree-cache.ts): the pure change of
// an encoded tree against encoding the result whole, and commits of a real Meta whose every
// directory keeps its last tree (the bound set to 1, unchecked: the path a node takes), each
// checked with git itself: `git fsck --strict` (order, duplicates) and `git ls-tree` against the index.
import t from 'tap'
import { execFileSync } from 'node:child_process'
import path from 'node:path'
import type { Meta as MetaType } from '../../lib/meta/meta.js'
import type { DirNode, Node } from '../../lib/meta/nodes.js'
import type { TreeItem } from '../../lib/meta/objects.js'

// Before lib/meta is loaded: every directory keeps its last tree, and nothing checks it but this test.
process.env.SWARMFS_LARGE_TREE_ENTRIES = '1'
process.env.SWARMFS_CHECK_TREES = '0'
const { changeTree, keptTreeOf, LARGE_TREE_ENTRIES, CHECK_TREES } = await import('../../lib/meta/tree-cache.js')
const { encodeTree } = await import('../../lib/meta/objects.js')
const { toGitName } = await import('../../lib/meta/names.js')
const { openMeta, pullInto, tempDir } = await import('../helpers/meta.js')

/** A small deterministic generator: the same cases on every run. */
function rng (seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0
    return s / 2 ** 32
  }
}

// Names whose UTF-16 order and byte order differ (a character beyond the BMP against U+E000 and
// up), prefixes of one another, and a name a directory's `/` sorts against.
const NAMES = ['a', 'a.b', 'a-', 'a0', 'ab', 'b', 'é', '\u{1F600}x', '\uE000y', '\uFFFDz', 'zz', 'a/b'.replace('/', '_'), 'x y', 'f10', 'f9']

function oidOf (i: number): string {
  return (i * 2654435761 >>> 0).toString(16).padStart(8, '0').repeat(5)
}

t.test('a tree changed in place is the tree encoded whole from its entries', async t => {
  t.equal(LARGE_TREE_ENTRIES, 1, 'the bound this test set')
  t.equal(CHECK_TREES, false, 'unchecked, as in use')
  const random = rng(7)
  for (let round = 0; round < 300; round++) {
    const entries = new Map<string, TreeItem>()
    const pick = (): string => NAMES[Math.floor(random() * NAMES.length)] + (random() < 0.5 ? '' : String(Math.floor(random() * 40)))
    const size = Math.floor(random() * 60)
    for (let i = 0; i < size; i++) {
      const name = pick()
      entries.set(name, { name, mode: random() < 0.3 ? '040000' : random() < 0.5 ? '100755' : '100644', oid: oidOf(i + round * 100) })
    }
    const base = encodeTree([...entries.values()])
    const read = keptTreeOf(base.body)
    if (read === null || !Buffer.from(read.starts.buffer).equals(Buffer.from(base.starts.buffer))) {
      t.fail(`round ${round}: a tree read back does not start its entries where it was written`)
      return
    }
    const gone = new Set<string>()
    const added: TreeItem[] = []
    for (let i = Math.floor(random() * 8); i > 0; i--) {
      const name = pick()
      gone.add(name)
      entries.delete(name)
      if (random() < 0.6) {
        // Now and then the same name as another kind: a file that became a directory.
        const item = { name, mode: random() < 0.5 ? '040000' : '120000', oid: oidOf(1000 + i + round) }
        entries.set(name, item)
        added.push(item)
      }
    }
    const changed = changeTree(base, gone, added.filter(a => entries.get(a.name) === a))
    const whole = encodeTree([...entries.values()])
    if (!changed.body.equals(whole.body) || !Buffer.from(changed.starts.buffer).equals(Buffer.from(whole.starts.buffer))) {
      t.fail(`round ${round}: the changed tree differs`, { gone: [...gone], added: added.map(a => a.name) })
      return
    }
  }
  t.pass('300 random trees, each changed by up to 7 names')
})

t.test('a tree out of git\'s order, with a name twice or cut short is not kept', async t => {
  const item = (name: string, mode = '100644'): TreeItem => ({ name, mode, oid: oidOf(name.length) })
  const ab = encodeTree([item('a'), item('b')])
  const ba = Buffer.concat([ab.body.subarray(ab.starts[1]), ab.body.subarray(0, ab.starts[1])])
  t.equal(keptTreeOf(ba), null, 'b before a')
  const twice = encodeTree([item('a')]).body
  t.equal(keptTreeOf(Buffer.concat([twice, twice])), null, 'a twice')
  t.equal(keptTreeOf(ab.body.subarray(0, ab.body.length - 1)), null, 'cut short')
  // A directory sorts as its name and `/`: `a-` (0x2d) before the directory `a` (`a/`, 0x2f).
  t.not(keptTreeOf(encodeTree([item('a', '040000'), item('a-')]).body), null, 'a directory after a name its `/` follows')
  t.equal(keptTreeOf(Buffer.concat([encodeTree([item('a', '040000')]).body, encodeTree([item('a-')]).body])), null, 'and not before it')
})

type Tt = Parameters<Parameters<typeof import('tap').default.test>[0]>[0]

const T0 = Date.UTC(2025, 0, 1)
const attrs = { perm: 0o644, uid: 1000, gid: 1000, mtime: T0, ctime: T0, atime: T0 }

function git (gitdir: string, ...args: string[]): string {
  return execFileSync('git', ['--git-dir', gitdir, ...args], { encoding: 'utf8', maxBuffer: 64 << 20 })
}

/** Every directory's tree in git holds the index's names, kinds and objects. */
function checkAgainstGit (t: Tt, meta: MetaType, gitdir: string, what: string): boolean {
  git(gitdir, 'fsck', '--strict', '--no-dangling', '--no-progress')
  const head = meta.head as string
  const walk = (dir: DirNode, prefix: string): boolean => {
    const listed = git(gitdir, 'ls-tree', '-z', prefix === '' ? head : `${head}:${prefix}`).split('\0').filter(l => l.length > 0)
    const inGit = new Map(listed.map(line => {
      const [meta, name] = line.split('\t')
      const [mode, , oid] = meta.split(' ')
      return [name, { mode, oid }]
    }))
    inGit.delete('.swarmfs-dir')
    const names = [...dir.children.keys()].map(n => toGitName(n)).sort()
    if (JSON.stringify(names) !== JSON.stringify([...inGit.keys()].sort())) {
      t.fail(`${what}: the names of /${prefix} in git are not the index's`, { index: names, git: [...inGit.keys()] })
      return false
    }
    for (const [name, node] of dir.children) {
      const entry = inGit.get(toGitName(name))
      if (entry === undefined || entry.oid !== node.oid || (entry.mode === '040000') !== (node.kind === 'dir')) {
        t.fail(`${what}: /${prefix}${name} in git is not the index's`, { git: entry, index: { oid: node.oid, kind: node.kind } })
        return false
      }
      if (node.kind === 'dir' && !walk(node, `${prefix}${toGitName(name)}/`)) return false
    }
    return true
  }
  return walk(meta.lookup('/') as DirNode, '')
}

t.test('commits of a Meta whose directories keep their last trees are what git reads', async t => {
  const dirA = tempDir(t)
  const dirB = tempDir(t)
  // Opened without openMeta, whose teardown would close it a second time after it is reopened below.
  const { GitStore } = await import('../../lib/meta/git-store.js')
  const { Meta } = await import('../../lib/meta/meta.js')
  const { silentLogger } = await import('../../lib/core/log.js')
  const openA = async (): Promise<MetaType> => await Meta.open({ gitdir: path.join(dirA, 'meta'), journalDir: path.join(dirA, 'journal'), stateDir: path.join(dirA, 'state'), nodeId: 'aaaa', log: silentLogger, onReleased: () => {}, commitDelayMs: 5 })
  await new GitStore(path.join(dirA, 'meta'), silentLogger).init()
  const a = await openA()
  let open = a
  t.teardown(async () => await open.close())
  const b = await openMeta(t, dirB, 'bbbb')
  const random = rng(11)
  const live: string[] = []
  const dirs = ['/', '/d/', '/d/e/']
  a.apply({ op: 'mkdir', path: '/d', attrs: { ...attrs, perm: 0o755 } })
  a.apply({ op: 'mkdir', path: '/d/e', attrs: { ...attrs, perm: 0o755 } })
  let made = 0
  for (let round = 0; round < 25; round++) {
    for (let i = 0; i < 12; i++) {
      const r = random()
      const where = dirs[Math.floor(random() * dirs.length)]
      if (r < 0.35 || live.length < 3) {
        const p = `${where}f${made++}${random() < 0.2 ? '\u{1F600}' : ''}`
        a.apply({ op: 'create', path: p, attrs })
        live.push(p)
      } else if (r < 0.5) {
        const p = `${where}l${made++}`
        a.apply({ op: 'symlink', path: p, target: 'somewhere', attrs })
        live.push(p)
      } else if (r < 0.6) {
        const p = live.splice(Math.floor(random() * live.length), 1)[0]
        a.apply({ op: 'unlink', path: p, time: T0 })
      } else if (r < 0.75) {
        const from = live.splice(Math.floor(random() * live.length), 1)[0]
        const to = `${dirs[Math.floor(random() * dirs.length)]}r${made++}`
        a.apply({ op: 'rename', from, to, ctime: T0 })
        live.push(to)
      } else if (r < 0.85) {
        const p = live[Math.floor(random() * live.length)]
        a.apply({ op: 'setattr', path: p, attrs: { perm: random() < 0.5 ? 0o755 : 0o600, ctime: T0 + round } })
      } else {
        const from = live[Math.floor(random() * live.length)]
        const node = a.lookup(from) as Node
        if (node.kind !== 'file') continue
        const to = `${dirs[Math.floor(random() * dirs.length)]}h${made++}`
        a.apply({ op: 'link', from, to, time: T0, linkId: node.linkId ?? `${made}`.padStart(16, '0') })
        live.push(to)
      }
    }
    await a.commitNow()
    if (!checkAgainstGit(t, a, path.join(dirA, 'meta'), `A, round ${round}`)) return
    // Now and then B changes the same directories, and A takes B's head: an adoption changes
    // A's directories under the trees they keep.
    if (round % 5 === 4) {
      await pullInto(a, dirA, b, dirB)
      b.apply({ op: 'create', path: `/d/b${round}`, attrs })
      b.apply({ op: 'create', path: `/b${round}`, attrs })
      await b.commitNow()
      await pullInto(b, dirB, a, dirA)
      if (!checkAgainstGit(t, a, path.join(dirA, 'meta'), `A after B's head, round ${round}`)) return
      live.push(`/d/b${round}`, `/b${round}`)
      // A change after the adoption, committed from the trees kept before it.
      a.apply({ op: 'create', path: `/d/e/after${round}`, attrs })
      live.push(`/d/e/after${round}`)
      await a.commitNow()
      if (!checkAgainstGit(t, a, path.join(dirA, 'meta'), `A's commit after B's head, round ${round}`)) return
    }
  }
  // Opened again: the large directories start from the trees git holds for them (read in the
  // background; the first commit waits until they are there, or it would write them whole).
  await a.close()
  const again = open = await openA()
  await new Promise(resolve => setTimeout(resolve, 200))
  for (let i = 0; i < 3; i++) {
    again.apply({ op: 'create', path: `/d/reopened${i}`, attrs })
    again.apply({ op: 'unlink', path: live.pop() as string, time: T0 })
    await again.commitNow()
    if (!checkAgainstGit(t, again, path.join(dirA, 'meta'), `A opened again, commit ${i}`)) return
  }
  t.pass('25 rounds of creates, symlinks, unlinks, renames, chmods and hard links, 5 adoptions, and 3 commits after opening again')
})

// Volume settings through Meta (index, journal, git, snapshot) on a temporary directory: no mount.
import t from 'tap'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import v8 from 'node:v8'
import { FsError } from '../../lib/core/errors.js'
import { silentLogger } from '../../lib/core/log.js'
import { GitStore } from '../../lib/meta/git-store.js'
import { defaultAttrs, Meta } from '../../lib/meta/meta.js'
import { DirNode } from '../../lib/meta/nodes.js'
import { loadSnapshot, saveSnapshot } from '../../lib/meta/snapshot.js'
import { DEFAULT_VOLUME_SETTINGS, type VolumeSettings } from '../../lib/meta/volume-settings.js'
import { conflictName } from '../../lib/meta/conflict-names.js'
import { mergeHeads } from '../../lib/meta/merge.js'
import { gitObjectStore } from '../../lib/meta/object-store.js'

type Tt = Parameters<Parameters<typeof t.test>[0]>[0]

interface Opened { meta: Meta, dir: string, seen: VolumeSettings[] }

function tempDir (tt: Tt): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'swarmfs-meta-volume-'))
  tt.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** A Meta on `dir` (a disk's layout); closed at the end of the test unless the test closed it. */
async function open (tt: Tt, dir: string, nodeId = '0123456789abcdef'): Promise<Opened> {
  const gitdir = path.join(dir, 'meta')
  await new GitStore(gitdir, silentLogger).init()
  const seen: VolumeSettings[] = []
  const meta = await Meta.open({
    gitdir, journalDir: path.join(dir, 'journal'), stateDir: path.join(dir, 'state'), nodeId, log: silentLogger, onReleased: () => {}, commitDelayMs: 5,
    onVolumeSettings: s => { seen.push(s) }
  })
  let closed = false
  const close = meta.close.bind(meta)
  meta.close = async () => { closed = true; await close() }
  tt.teardown(async () => { if (!closed) await meta.close() })
  return { meta, dir, seen }
}

/** The disk as it is this instant: what a crash right now would leave behind. */
function crashCopy (tt: Tt, dir: string): string {
  const copy = tempDir(tt)
  fs.cpSync(dir, copy, { recursive: true })
  return copy
}

function thrown (run: () => unknown): unknown {
  try {
    run()
  } catch (err) {
    return err
  }
  return undefined
}

t.test('defaults, changes, and what is refused', async t => {
  const { meta, seen } = await open(t, tempDir(t))
  t.same(meta.volumeSettings(), DEFAULT_VOLUME_SETTINGS)
  const before = Date.now()
  const first = meta.setVolumeSettings({ copies: 3 })
  t.same({ ...first, at: 0 }, { copies: 3, graceMs: DEFAULT_VOLUME_SETTINGS.graceMs, at: 0 }, 'what is left out keeps its value')
  t.ok(first.at >= before)
  const second = meta.setVolumeSettings({ graceMs: 5000 })
  t.same({ ...second, at: 0 }, { copies: 3, graceMs: 5000, at: 0 })
  t.ok(second.at > first.at, 'a second change in the same millisecond is still newer')
  t.same(seen, [first, second], 'the hook sees each change')
  t.same(meta.volumeSettings(), second)

  for (const bad of [{ copies: 0 }, { copies: 17 }, { copies: 2.5 }, { copies: Number.NaN }, { graceMs: -1 }, { graceMs: 0.5 }, { graceMs: Infinity }, { copies: 3, graceMs: -1 }]) {
    const err = thrown(() => meta.setVolumeSettings(bad))
    t.ok(err instanceof FsError && err.code === 'EINVAL', `${JSON.stringify(bad)}: EINVAL`)
  }
  t.same(meta.volumeSettings(), second, 'a refused change changes nothing')
  t.same(meta.setVolumeSettings({}), second, 'an empty change is none')
  t.equal(seen.length, 2)
})

t.test('a change survives a crash (journal), a restart from git, and a clean restart (snapshot)', async t => {
  const dir = tempDir(t)
  const first = await open(t, dir)
  const set = first.meta.setVolumeSettings({ copies: 5, graceMs: 42 })
  const crashed = crashCopy(t, dir)
  await first.meta.commitNow()
  const committed = crashCopy(t, dir)
  await first.meta.close()

  const fromJournal = await open(t, crashed)
  t.same(fromJournal.meta.volumeSettings(), set, 'replayed from the journal')
  const fromGit = await open(t, committed)
  t.same(fromGit.meta.volumeSettings(), set, 'loaded from the commit')
  t.notOk(fs.existsSync(path.join(committed, 'state', 'index-snapshot.jsonl')), 'no snapshot was there')
  const fromSnapshot = await open(t, dir)
  t.ok(fs.existsSync(path.join(dir, 'state', 'index-snapshot.jsonl')))
  t.same(fromSnapshot.meta.volumeSettings(), set, 'restored from the snapshot')
})

t.test('the snapshot keeps the settings; an older snapshot format is not read', async t => {
  const dir = tempDir(t)
  const root = new DirNode(defaultAttrs())
  root.isRoot = true
  root.volume = { copies: 7, graceMs: 1, at: 123 }
  saveSnapshot(dir, 'a'.repeat(40), root)
  t.same(loadSnapshot(dir)?.root.volume, { copies: 7, graceMs: 1, at: 123 })
  fs.rmSync(path.join(dir, 'index-snapshot.jsonl'))
  fs.writeFileSync(path.join(dir, 'index-snapshot.v8'), v8.serialize({ version: 2, head: 'a'.repeat(40), root: ['d', '', [0o755, 0, 0, 0, 0], undefined, []] }))
  t.equal(loadSnapshot(dir), null)
})

t.test('settings taken from a peer by a merge reach the index and the hook', async t => {
  const a = await open(t, tempDir(t), 'aaaaaaaaaaaaaaaa')
  const b = await open(t, tempDir(t), 'bbbbbbbbbbbbbbbb')
  b.meta.apply({ op: 'mkdir', path: '/b-only', attrs: defaultAttrs() })
  await b.meta.commitNow()
  const set = a.meta.setVolumeSettings({ copies: 4 })
  await a.meta.commitNow()
  const [aGit, bGit] = [path.join(a.dir, 'meta'), path.join(b.dir, 'meta')]
  fs.cpSync(path.join(aGit, 'objects'), path.join(bGit, 'objects'), { recursive: true })
  const store = gitObjectStore(bGit)
  const outcome = await b.meta.integrate(a.meta.head as string, async (o, th) => await mergeHeads(store, o, th, silentLogger), conflictName)
  t.equal(outcome.kind, 'merged')
  t.same(b.meta.volumeSettings(), set)
  t.same(b.seen, [set], 'the hook is told once')
  t.ok(b.meta.lookup('/b-only'), 'the rest of the merge is there too')

  const again = await b.meta.integrate(a.meta.head as string, async (o, th) => await mergeHeads(store, o, th, silentLogger), conflictName)
  t.equal(again.kind, 'up-to-date')
  t.equal(b.seen.length, 1, 'not told again when nothing changed')
})

t.test('a second close waits for the first and closes no fd twice; a change after it is refused', async t => {
  const dir = tempDir(t)
  const { meta } = await open(t, dir)
  meta.apply({ op: 'create', path: '/kept', attrs: defaultAttrs() })
  const first = meta.close()
  const again = meta.close()
  await Promise.all([first, again])
  // The numbers the journal had are free now: files opened next take them.
  const others = Array.from({ length: 8 }, (_, i) => fs.openSync(path.join(dir, `other-${i}`), 'w'))
  t.teardown(() => { for (const fd of others) fs.closeSync(fd) })
  await meta.close()
  for (const fd of others) t.doesNotThrow(() => fs.fstatSync(fd), `fd ${fd}, opened after the close, is still open`)
  t.match(thrown(() => meta.apply({ op: 'create', path: '/late', attrs: defaultAttrs() })), { code: 'SWARMFS_STOPPING' }, 'a change after the close: SWARMFS_STOPPING')
  const reopened = await open(t, dir)
  t.ok(reopened.meta.lookup('/kept'), 'what was applied before the close is there after a reopen')
  t.notOk(reopened.meta.lookup('/late'), 'and the refused change is not')
})

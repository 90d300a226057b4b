// Helpers for pure-logic tests of the index: a Meta on a temporary disk layout, and one sync step
// between two of them (objects copied, then the other's head merged in as the syncer does).
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type { Test } from 'tap'
import { silentLogger } from '../../lib/core/log.js'
import { GitStore } from '../../lib/meta/git-store.js'
import { Meta, type MergeOutcome } from '../../lib/meta/meta.js'
import { conflictName } from '../../lib/meta/conflict-names.js'
import { mergeHeads } from '../../lib/meta/merge.js'
import { gitObjectStore } from '../../lib/meta/object-store.js'

/** A temporary directory, removed at the end of the test. */
export function tempDir (tt: Test, prefix = 'swarmfs-meta-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  tt.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** A Meta on a new disk layout in `dir`, closed at the end of the test. */
export async function openMeta (tt: Test, dir: string, nodeId: string): Promise<Meta> {
  const gitdir = path.join(dir, 'meta')
  await new GitStore(gitdir, silentLogger).init()
  const meta = await Meta.open({ gitdir, journalDir: path.join(dir, 'journal'), stateDir: path.join(dir, 'state'), nodeId, log: silentLogger, onReleased: () => {}, commitDelayMs: 5 })
  tt.teardown(async () => await meta.close())
  return meta
}

/** `to` (opened on `toDir`) takes `from`'s head, as a sync does. */
export async function pullInto (from: Meta, fromDir: string, to: Meta, toDir: string): Promise<MergeOutcome> {
  fs.cpSync(path.join(fromDir, 'meta', 'objects'), path.join(toDir, 'meta', 'objects'), { recursive: true })
  const store = gitObjectStore(path.join(toDir, 'meta'))
  return await to.integrate(from.head as string, async (ours, theirs) => await mergeHeads(store, ours, theirs, silentLogger), conflictName)
}

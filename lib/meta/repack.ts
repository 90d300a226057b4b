// Keeps the metadata repository's objects in a few packs. Each fetch from a peer leaves a pack, a
// large commit writes one (pack-writer.ts), and small commits write loose objects. Left alone, a
// node that has run for a day has thousands of packs, every one searched per lookup, and a loose
// file per entry: a load of the index without a snapshot opened each (~100 µs a file, minutes for
// a million), where from a pack it is a binary search and an inflate (~20 µs, packs.ts).
//
// git's geometric repack rolls the small packs and every loose object into one new pack and
// leaves the larger packs alone while each holds at least twice the objects of the next smaller:
// the work is in proportion to what is new, not to the repository (a pack of a million objects is
// not rewritten when a hundred arrive). Every object of a rolled-up pack is kept, reachable or
// not, and so is every loose one (git-repack(1), --geometric), so an object a commit in flight
// wrote is never lost. git takes care of writers meanwhile: it only removes packs it rolled up and
// loose objects it finds in a pack.
//
// Power cuts: with core.fsync git syncs the new pack and its index before renaming them into
// place, and only then removes what they replace. A journaling filesystem commits those metadata
// changes in the order they were made, so a removal is never on the disk without the renames
// before it: a crash leaves the old packs, or the new one, or both.
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import { SwarmError } from '../core/errors.js'
import { packsOf } from './packs.js'

/** Staging directories of the loose unpacking earlier releases did instead; a crash may have left one. */
const OLD_STAGING_PREFIX = 'unpacking-'
/** Below the node's own priority: the repack competes with nothing that answers the mount. */
const NICENESS = 10
const GIT_TMP_PREFIX = '.tmp-'

export interface RepackOutcome { packsBefore: number, packsAfter: number }

const packCount = (gitdir: string): number => {
  try {
    return fs.readdirSync(join(gitdir, 'objects', 'pack')).filter(n => n.endsWith('.idx')).length
  } catch {
    return 0
  }
}

/**
 * Rolls the small packs and the loose objects of `gitdir` into one pack (see above). `signal` ends
 * git's processes (a node stopping does not wait for the work); what they had not finished is left
 * as it was, and its temporary packs go at the next repack.
 */
export async function repackObjects (gitdir: string, signal?: AbortSignal): Promise<RepackOutcome> {
  for (const name of fs.readdirSync(gitdir)) {
    if (name.startsWith(OLD_STAGING_PREFIX)) fs.rmSync(join(gitdir, name), { recursive: true, force: true })
  }
  const packsBefore = packCount(gitdir)
  const args = [
    '--git-dir', gitdir,
    '-c', 'core.fsync=objects,derived-metadata', '-c', 'core.fsyncMethod=fsync',
    // One thread, no bitmaps (nothing here serves them), no info/packs (the peers use the smart protocol).
    '-c', 'pack.threads=1', '-c', 'repack.writeBitmaps=false',
    'repack', '--geometric=2', '-d', '-q', '-n'
  ]
  const packDir = join(gitdir, 'objects', 'pack')
  // What a repack that was stopped left: git names its packs in the making .tmp-<pid>-pack-*, and
  // one repack runs at a time.
  for (const name of fs.existsSync(packDir) ? fs.readdirSync(packDir) : []) {
    if (name.startsWith(GIT_TMP_PREFIX)) fs.rmSync(join(packDir, name), { force: true })
  }
  // A process group of its own, so a stop ends git's pack-objects with it, not only git repack.
  const child = spawn('git', args, { stdio: ['ignore', 'ignore', 'pipe'], detached: true })
  try {
    if (child.pid !== undefined) os.setPriority(child.pid, NICENESS)
  } catch {}
  let stopped = false
  const stop = (): void => {
    stopped = true
    try {
      if (child.pid !== undefined) process.kill(-child.pid, 'SIGTERM')
    } catch {}
  }
  if (signal?.aborted === true) stop()
  else signal?.addEventListener('abort', stop, { once: true })
  let err = ''
  child.stderr.on('data', (c: Buffer) => { if (err.length < 4096) err += c.toString() })
  // Settled only once git has exited ('close' follows a failed spawn too): a stop waiting for
  // this must not release the disk while git still writes to it.
  await new Promise<void>((resolve, reject) => {
    let failure: Error | null = null
    child.on('error', e => { failure ??= e })
    child.on('close', code => {
      signal?.removeEventListener('abort', stop)
      if (stopped) reject(new SwarmError('SWARMFS_STOPPING', 'the repack was stopped'))
      else if (failure !== null) reject(failure)
      else if (code === 0) resolve()
      else reject(new SwarmError('SWARMFS_BAD_OBJECT', `git repack failed (${code ?? 'signal'}): ${err.trim().slice(0, 500)}`))
    })
  })
  // Lets go of the packs git removed: an open descriptor would keep each one's space in use.
  packsOf(gitdir).refresh()
  return { packsBefore, packsAfter: packCount(gitdir) }
}

// Turns the packs of the metadata repository into loose objects. A fetch from a peer arrives as a
// pack (isomorphic-git writes one per fetch), and so does a joining node's clone. Left as packs,
// they cost on every later read:
// - a packed object goes through isomorphic-git, which lists the pack directory and searches
//   every pack's index per object, and inflates in JavaScript: 2.6 ms an object here, against
//   0.1 ms for a loose one (objects.ts);
// - a node keeps one more pack per change it fetched, so a node that has run for a day has
//   thousands, and each read searches them all.
//
// One pipeline of two git processes, however many packs: `pack-objects` streams every object the
// packs list, and `unpack-objects` writes them loose. It writes into an empty object directory of
// its own, because it skips an object the repository already has in a pack. The objects are synced
// there (core.fsync), renamed into place, and only then are the packs removed: a reader never
// misses an object. A crash leaves the packs, or the loose copies, or both: a journaling
// filesystem commits metadata changes in the order they were made, so the removal of a pack is
// never on the disk without the renames before it. (An fsync of each directory instead took
// 1.2 s for the ~80 directories that 31 fetches' objects fall into.)
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import { basename, join } from 'node:path'
import { SwarmError } from '../core/errors.js'

const STAGING_PREFIX = 'unpacking-'
const FAN_OUT = /^[0-9a-f]{2}$/
const IDX_V2_MAGIC = 0xff744f63

/** Unpacks every pack of `gitdir` that has its index; returns how many it unpacked. */
export async function unpackPacks (gitdir: string): Promise<number> {
  const objects = join(gitdir, 'objects')
  const packDir = join(objects, 'pack')
  // A staging directory of an unpack a crash cut short: its packs are still in place.
  for (const name of fs.readdirSync(gitdir)) {
    if (name.startsWith(STAGING_PREFIX)) fs.rmSync(join(gitdir, name), { recursive: true, force: true })
  }
  const files = fs.existsSync(packDir) ? fs.readdirSync(packDir) : []
  // A pack without its index is still being written; a .keep file asks git to leave a pack be.
  const indexes = files
    .filter(n => n.endsWith('.idx') && files.includes(n.replace(/\.idx$/, '.pack')) && !files.includes(n.replace(/\.idx$/, '.keep')))
    .map(n => join(packDir, n))
  if (indexes.length === 0) return 0
  const oids = new Set<string>()
  for (const idx of indexes) for (const oid of oidsOfIndex(fs.readFileSync(idx), idx)) oids.add(oid)
  const staging = fs.mkdtempSync(join(gitdir, STAGING_PREFIX))
  try {
    await copyLoose(gitdir, [...oids], staging)
    for (const fan of fs.readdirSync(staging).filter(n => FAN_OUT.test(n))) {
      const dir = join(objects, fan)
      fs.mkdirSync(dir, { recursive: true })
      // Not one synchronous rename after another: a large fetch holds thousands of objects, and
      // this thread answers the mount meanwhile.
      await Promise.all(fs.readdirSync(join(staging, fan)).map(async file => await fs.promises.rename(join(staging, fan, file), join(dir, file))))
    }
    for (const idx of indexes) {
      // The index first: without it no reader uses the pack. Then the pack and what git keeps
      // beside it (.bitmap, .rev).
      fs.rmSync(idx)
      const base = basename(idx).replace(/\.idx$/, '.')
      for (const name of files.filter(n => n.startsWith(base))) fs.rmSync(join(packDir, name), { force: true })
    }
  } finally {
    fs.rmSync(staging, { recursive: true, force: true })
  }
  return indexes.length
}

/** The object ids a pack index lists (version 2, or the original version 1). */
export function oidsOfIndex (idx: Buffer, name = 'pack index'): string[] {
  const v2 = idx.length >= 8 && idx.readUInt32BE(0) === IDX_V2_MAGIC
  if (v2 && idx.readUInt32BE(4) !== 2) throw new SwarmError('SWARMFS_BAD_OBJECT', `${name}: version ${idx.readUInt32BE(4)} is not one git writes`)
  const fanout = v2 ? 8 : 0
  if (idx.length < fanout + 256 * 4) throw new SwarmError('SWARMFS_BAD_OBJECT', `${name}: cut short`)
  const count = idx.readUInt32BE(fanout + 255 * 4)
  const first = fanout + 256 * 4
  const stride = v2 ? 20 : 24
  const skip = v2 ? 0 : 4
  if (idx.length < first + count * stride) throw new SwarmError('SWARMFS_BAD_OBJECT', `${name}: cut short`)
  const out: string[] = []
  for (let i = 0; i < count; i++) {
    const at = first + i * stride + skip
    out.push(idx.toString('hex', at, at + 20))
  }
  return out
}

/** Writes `oids` (read from the repository) as loose objects into `objectDir`, synced. */
async function copyLoose (gitdir: string, oids: string[], objectDir: string): Promise<void> {
  // A shell pipe between the two: handed a child's stdout as its stdin, Node's own end of that
  // pipe would start reading too and could take bytes meant for unpack-objects. pack-objects
  // does no delta search and no compression: the stream only carries the objects across.
  const pipeline = 'git --git-dir "$1" pack-objects --stdout -q --window=0 --compression=0 | ' +
    'GIT_OBJECT_DIRECTORY="$2" GIT_ALTERNATE_OBJECT_DIRECTORIES= git --git-dir "$1" -c core.fsync=loose-object -c core.fsyncMethod=batch unpack-objects -q'
  const child = spawn('sh', ['-c', pipeline, 'sh', gitdir, objectDir], { stdio: ['pipe', 'ignore', 'pipe'] })
  let err = ''
  child.stderr.on('data', (c: Buffer) => { err += c.toString() })
  child.stdin.on('error', () => {})
  child.stdin.end(oids.join('\n') + '\n')
  await new Promise<void>((resolve, reject) => {
    child.on('error', reject)
    // unpack-objects fails on a stream pack-objects cut short or never began.
    child.on('exit', code => code === 0 ? resolve() : reject(new SwarmError('SWARMFS_BAD_OBJECT', `git pack-objects | unpack-objects failed (${code}): ${err.trim().slice(0, 500)}`)))
  })
}

// Builds a large volume fast but for real, in a child process and without a mount: every file gets
// a real content (staged, hashed and sealed by the ContentStore) and is entered into the index with
// the same records FUSE operations produce (Meta.apply: journaled), committed to git by Meta's own
// batched commits, and a clean close writes the index snapshot, as a stopped node would.
// node build-volume.js <disk> <dirs> <files per dir>      (the disk was made by `swarmfs init --no-start`)
// node build-volume.js <disk> --sizes <n0>,<n1>,...       (directory d<i> of n<i> files)
import fs from 'node:fs'
import { ContentStore } from '../../lib/content/store.js'
import { silentLogger } from '../../lib/core/log.js'
import { Meta } from '../../lib/meta/meta.js'
import { layout, lockDisk, readConfig } from '../../lib/node/disk.js'
import type { ContentRef } from '../../lib/meta/nodes.js'

const [disk, dirsArg, perDirArg] = process.argv.slice(2)
/** Files in each directory. */
const counts = dirsArg === '--sizes' ? perDirArg.split(',').map(Number) : Array.from({ length: Number(dirsArg) }, () => Number(perDirArg))
if (counts.length === 0 || counts.some(n => !Number.isInteger(n) || n < 0)) throw new Error(`build-volume: bad directory sizes ${process.argv.slice(3).join(' ')}`)
const dirs = counts.length
/** Files staged at once. */
const BATCH = 1000
const uid = process.getuid?.() ?? 0
const gid = process.getgid?.() ?? 0

async function contentOf (store: ContentStore, text: string): Promise<{ ref: ContentRef | null, size: number }> {
  const data = Buffer.from(text)
  const { id, fd, hasher } = await store.stage(null)
  try {
    fs.writeSync(fd, data, 0, data.length, 0)
    hasher.write(0, data)
  } finally {
    fs.closeSync(fd)
  }
  const ref = await store.seal(id, data.length, hasher)
  // As a node does once the seal is journaled: else the first start removes a staging file per file.
  store.remove([], [id])
  return { ref, size: data.length }
}

async function main (): Promise<void> {
  const config = readConfig(disk)
  const paths = layout(disk)
  const unlock = lockDisk(disk)
  const started = performance.now()
  try {
    const store = new ContentStore(disk, config.volumeId, silentLogger)
    const meta = await Meta.open({ gitdir: paths.meta, journalDir: paths.journal, stateDir: paths.state, nodeId: config.nodeId, log: silentLogger, onReleased: () => {} })
    const dw = String(dirs - 1).length
    for (let d = 0; d < dirs; d++) {
      const perDir = counts[d]
      const fw = String(perDir - 1).length
      const dir = `/d${String(d).padStart(dw, '0')}`
      const now = Date.now()
      meta.apply({ op: 'mkdir', path: dir, attrs: { perm: 0o755, uid, gid, mtime: now, ctime: now, atime: now } })
      // In batches: a directory of a million files must not open a million staging files at once.
      for (let from = 0; from < perDir; from += BATCH) {
        const files = await Promise.all(Array.from({ length: Math.min(BATCH, perDir - from) }, async (_, k) => {
          const path = `${dir}/file-${String(from + k).padStart(fw, '0')}.txt`
          // ~100 bytes, distinct for every file, so every file has its own content and infohash.
          const text = `swarmfs benchmark file ${path}\n`.padEnd(100, '.') + '\n'
          return { path, ...await contentOf(store, text) }
        }))
        for (const { path, ref, size } of files) {
          const t = Date.now()
          meta.apply({ op: 'create', path, attrs: { perm: 0o644, uid, gid, mtime: t, ctime: t, atime: t } })
          meta.apply({ op: 'setcontent', path, size, content: ref, mtime: t })
        }
        if (from > 0 && from % (BATCH * 10) === 0) await meta.commitNow()
      }
      // Let Meta's batched commits run as they would under a steady stream of FUSE operations.
      if (d % 10 === 9) await meta.commitNow()
    }
    await meta.close()
    store.close()
    await store.settle()
  } finally {
    unlock()
  }
  process.stdout.write(JSON.stringify({ files: counts.reduce((a, b) => a + b, 0), dirs, ms: performance.now() - started }) + '\n')
}

main().catch(err => {
  process.stderr.write(`build-volume: ${(err as Error).stack ?? String(err)}\n`)
  process.exit(1)
})

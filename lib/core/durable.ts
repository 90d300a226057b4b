// Writes that survive a power cut. A rename is atomic but not durable: until the directory is
// synced, a cut may leave the old name, or (for a file never fsynced) the new name on an empty or
// short file: ext4 allocates a file's blocks only at writeback, after the rename is already in
// its log. So every small state file is written temp + fsync + rename + fsync of the directory,
// and writes of many files (a commit's objects) sync each file, then each directory once.
import fs from 'node:fs'
import { randomBytes } from 'node:crypto'
import { dirname } from 'node:path'

/** Replaces `path` with `data` atomically and durably (synchronous: for small state files). */
export function writeFileDurableSync (path: string, data: string | Buffer, mode = 0o644): void {
  writeDurableSync(path, fd => fs.writeFileSync(fd, data), mode)
}

/** The same, for a file that `write` writes to `fd` in pieces (one too large for one string). */
export function writeDurableSync (path: string, write: (fd: number) => void, mode = 0o644): void {
  const tmp = `${path}.${randomBytes(4).toString('hex')}.tmp`
  const fd = fs.openSync(tmp, 'w', mode)
  try {
    write(fd)
    fs.fsyncSync(fd)
  } catch (err) {
    fs.closeSync(fd)
    fs.rmSync(tmp, { force: true })
    throw err
  }
  fs.closeSync(fd)
  fs.renameSync(tmp, path)
  fsyncDirSync(dirname(path))
}

/** The same, off the thread: for a write that the mount's thread must not wait on. */
export async function writeFileDurable (path: string, data: string | Buffer, mode = 0o644, tmp = `${path}.${randomBytes(4).toString('hex')}.tmp`): Promise<void> {
  await writeSynced(tmp, data, mode)
  await fs.promises.rename(tmp, path)
  await syncDir(dirname(path))
}

/**
 * Replaces `path` with `data` atomically, not durably: a crash leaves the old file or the new one
 * whole, a power cut may leave the old one. For state whose loss only costs work done again (and
 * whose writer makes what it names durable first, where that matters).
 */
export async function replaceFile (path: string, data: string | Uint8Array): Promise<void> {
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`
  try {
    await fs.promises.writeFile(tmp, data)
    await fs.promises.rename(tmp, path)
  } catch (err) {
    await fs.promises.rm(tmp, { force: true }).catch(() => {})
    throw err
  }
}

/** The same, synchronous (a state file written at stop). */
export function replaceFileSync (path: string, data: string | Uint8Array): void {
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`
  try {
    fs.writeFileSync(tmp, data)
    fs.renameSync(tmp, path)
  } catch (err) {
    fs.rmSync(tmp, { force: true })
    throw err
  }
}

/** Writes a new file and fsyncs it before closing; the caller makes its name durable. */
export async function writeSynced (path: string, data: string | Buffer | Buffer[], mode = 0o644): Promise<void> {
  const file = await fs.promises.open(path, 'w', mode)
  try {
    if (Array.isArray(data)) await writeParts(file, data)
    else await file.writeFile(data)
    await file.sync()
  } catch (err) {
    await file.close()
    await fs.promises.rm(path, { force: true })
    throw err
  }
  await file.close()
}

/** IOV_MAX on Linux. */
const MOST_PARTS_AT_ONCE = 1024

/** Parts one after another, a writev(2) for up to MOST_PARTS_AT_ONCE (a pack of small objects has thousands). */
async function writeParts (file: fs.promises.FileHandle, parts: Buffer[]): Promise<void> {
  for (let from = 0; from < parts.length; from += MOST_PARTS_AT_ONCE) {
    const batch = parts.slice(from, from + MOST_PARTS_AT_ONCE)
    const size = batch.reduce((n, p) => n + p.length, 0)
    const { bytesWritten } = await file.writev(batch)
    // A write cut short (a signal, a full disk on the way): the rest goes as writeFile writes, which says why it cannot.
    if (bytesWritten < size) await file.writeFile(Buffer.concat(batch, size).subarray(bytesWritten))
  }
}

/** fsync(2) of a file by name (one another handle wrote). */
export async function fsyncFile (path: string): Promise<void> {
  const file = await fs.promises.open(path, 'r')
  try {
    await file.sync()
  } finally {
    await file.close()
  }
}

export function fsyncDirSync (dir: string): void {
  const fd = fs.openSync(dir, 'r')
  try {
    fs.fsyncSync(fd)
  } finally {
    fs.closeSync(fd)
  }
}

/**
 * Directories whose entries changed since they were last synced, synced together: concurrent
 * callers share one round (a burst of seals or a commit's objects need each directory once).
 */
export class DirSyncs {
  private pending = new Set<string>()
  private round: Promise<void> | null = null

  add (dir: string): void {
    this.pending.add(dir)
  }

  /** Resolves once every directory added before the call is synced. */
  async flush (): Promise<void> {
    while (this.round !== null) await this.round.catch(() => {})
    if (this.pending.size === 0) return
    const dirs = [...this.pending]
    this.pending = new Set()
    this.round = Promise.all(dirs.map(syncDirIfThere)).then(() => {}, err => {
      // Not synced: the next flush tries them again.
      for (const d of dirs) this.pending.add(d)
      throw err
    }).finally(() => { this.round = null })
    await this.round
  }
}

/**
 * A directory gone since its entries changed has nothing left to sync: git's repack removes an
 * object directory once every object in it is in a pack it synced (meta/repack.ts). Retried, the
 * sync of a directory that is gone would fail every later flush.
 */
async function syncDirIfThere (dir: string): Promise<void> {
  try {
    await syncDir(dir)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
}

/** Syncs a directory: the names created, renamed or removed in it survive a power cut. */
export async function syncDir (dir: string): Promise<void> {
  const fd = await fs.promises.open(dir, fs.constants.O_RDONLY)
  try {
    await fd.sync()
  } finally {
    await fd.close().catch(() => {})
  }
}

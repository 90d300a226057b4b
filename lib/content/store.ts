// Contents on this disk, by infohash, and the staging files that become them. A content file is
// never changed in place: an overwrite copies it to staging first (copy-on-write), so whatever
// seeds or reads a content keeps seeing the bytes its infohash names.
//
// The one owner of the disk's content/ and partial/ folders: every other part learns their paths
// or what they hold from here (the torrent service is given contentDir and partialDir, and keeps
// partial/ as its own cache within it).
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { basename, join } from 'node:path'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import type { Logger } from '../core/log.js'
import { PieceHasher } from './piece-hasher.js'
import { bytesMatchPiece } from './piece-check.js'
import { BASE_PIECE_LENGTH, buildInfo, infoHash, isInfoHash, pieceCount } from '../core/torrent-info.js'
import type { ContentRef, TorrentInfo } from '../core/torrent-info.js'
import { DirSyncs, writeSynced } from '../core/durable.js'
import { SwarmError } from '../core/errors.js'

const run = promisify(execFile)
const openFile = promisify(fs.open)
/** Empty staging files kept ready for creates (refillSpares). */
const SPARE_STAGING = 32
/**
 * Above this size, or for a file with holes, a copy goes through cp(1), which keeps holes
 * (SEEK_HOLE) and reflinks where it can; Node's copyFile writes the holes out as zeros.
 */
const CP_THRESHOLD = 64 << 20

async function copySparse (from: string, to: string, size: number): Promise<void> {
  const sparse = (await fsp.stat(from)).blocks * 512 < size
  if (size < CP_THRESHOLD && !sparse) {
    await fsp.copyFile(from, to, fs.constants.COPYFILE_FICLONE)
    return
  }
  await run('cp', ['--reflink=auto', '--sparse=auto', '--', from, to])
}

/** The folders of a disk this store owns. */
const FOLDERS = { content: 'content', partial: 'partial', staging: 'staging' } as const

/** What a disk holds, counted from its folders without opening a store (for a stopped node too). */
export interface ContentsOnDisk {
  contents: number
  contentBytes: number
  /** Files being written (staging), not yet contents. */
  stagedFiles: number
  /** Contents partly fetched for reads (a cache: evicted when the disk needs room), and the bytes their pieces take. */
  cachedContents: number
  cachedBytes: number
}

export function contentsOnDisk (disk: string): ContentsOnDisk {
  // A disk made with --no-start and never started has none of these directories yet.
  const names = (dir: string): string[] => fs.existsSync(dir) ? fs.readdirSync(dir) : []
  const held: ContentsOnDisk = { contents: 0, contentBytes: 0, stagedFiles: names(join(disk, FOLDERS.staging)).length, cachedContents: 0, cachedBytes: 0 }
  for (const name of names(join(disk, FOLDERS.content))) {
    // A content removed since the listing (a drop, an eviction) is not counted.
    const st = fs.statSync(join(disk, FOLDERS.content, name), { throwIfNoEntry: false })
    if (st === undefined) continue
    held.contents++
    held.contentBytes += st.size
  }
  for (const name of names(join(disk, FOLDERS.partial))) {
    // The sparse data files only: not their bitfields, nor a bitfield's temporary being renamed.
    if (!isInfoHash(name)) continue
    const st = fs.statSync(join(disk, FOLDERS.partial, name), { throwIfNoEntry: false })
    if (st === undefined) continue
    held.cachedContents++
    // Sparse files: the blocks the fetched pieces take, not the length of the whole content.
    held.cachedBytes += st.blocks * 512
  }
  return held
}

export class ContentStore {
  /** Told of every content that comes to content/ or leaves it (the replicator keeps its holdings so). */
  private readonly watchers: Array<(infohash: string, present: boolean) => void> = []
  /** Removals of staged copies under way (settle waits for them). */
  private readonly removals = new Set<Promise<void>>()
  readonly contentDir: string
  /** Partly fetched contents (sparse files and their bitfields), which the torrent service keeps. */
  readonly partialDir: string
  readonly stagingDir: string

  constructor (disk: string, private readonly volumeId: string, private readonly log: Logger) {
    this.contentDir = join(disk, FOLDERS.content)
    this.partialDir = join(disk, FOLDERS.partial)
    this.stagingDir = join(disk, FOLDERS.staging)
    fs.mkdirSync(this.contentDir, { recursive: true })
    fs.mkdirSync(this.partialDir, { recursive: true })
    fs.mkdirSync(this.stagingDir, { recursive: true })
  }

  contentPath (infohash: string): string {
    if (!isInfoHash(infohash)) throw new SwarmError('SWARMFS_BAD_INPUT', `not an infohash: ${JSON.stringify(infohash)}`)
    return join(this.contentDir, infohash)
  }

  stagingPath (id: string): string {
    if (!/^[0-9a-f]{32}$/.test(id)) throw new SwarmError('SWARMFS_INTERNAL', `not a staging id: ${JSON.stringify(id)}`)
    return join(this.stagingDir, id)
  }

  newStagingId (): string {
    return randomBytes(16).toString('hex')
  }

  /**
   * A new empty staging file, or a copy of a content (reflinked where the disk can), opened for
   * reading and writing. An empty one is a spare made ahead (refillSpares), or, when none is left,
   * a single open(2) done synchronously: it is on the path of every file creation.
   */
  async stage (from: ContentRef | null): Promise<{ id: string, fd: number, hasher: PieceHasher }> {
    if (from === null) {
      const spare = this.spares.pop()
      this.refillSpares()
      if (spare !== undefined) return { id: spare.id, fd: spare.fd, hasher: new PieceHasher() }
      const id = this.newStagingId()
      return { id, fd: fs.openSync(this.stagingPath(id), 'wx+'), hasher: new PieceHasher() }
    }
    const id = this.newStagingId()
    await copySparse(this.contentPath(from.infohash), this.stagingPath(id), from.info.length)
    // The copied bytes keep their piece digests, so appending to a large file hashes only the tail.
    const digests: Buffer[] = []
    if (from.info.pieceLength === BASE_PIECE_LENGTH) {
      const all = Buffer.from(from.info.pieces, 'base64')
      const whole = Math.floor(from.info.length / BASE_PIECE_LENGTH)
      for (let i = 0; i < whole; i++) digests.push(all.subarray(i * 20, i * 20 + 20))
    }
    return { id, fd: fs.openSync(this.stagingPath(id), 'r+'), hasher: new PieceHasher(digests) }
  }

  /**
   * Keeps SPARE_STAGING empty staging files open, made in the thread pool: an open(2) that creates
   * a file waits for the filesystem's journal, which the seals' fsyncs keep busy, and on the thread
   * FUSE is served on it cost ~380 µs of each create (10,000 small files, 5 times: 18.8 s of the
   * 60 s that thread was busy).
   */
  private refillSpares (): void {
    if (this.refilling || this.closed || this.spares.length >= SPARE_STAGING) return
    this.refilling = true
    void (async () => {
      try {
        while (!this.closed && this.spares.length < SPARE_STAGING) {
          const id = this.newStagingId()
          const fd = await openFile(this.stagingPath(id), 'wx+')
          if (this.closed) {
            fs.closeSync(fd)
            this.remove([], [id])
            return
          }
          this.spares.push({ id, fd })
        }
      } catch (err) {
        // A full disk or a closed store: creates open their own file, and say why if that fails too.
        this.log.debug('could not make a spare staging file', { err: (err as Error).message })
      } finally {
        this.refilling = false
      }
    })()
  }

  /** Closes and removes the spare staging files (a stop; settle() waits for the removals). */
  close (): void {
    this.closed = true
    for (const { id, fd } of this.spares.splice(0)) {
      try {
        fs.closeSync(fd)
      } catch {}
      this.remove([], [id])
    }
  }

  /** Hashes a staging file into a content and links it into place; null for an empty file. */
  async seal (id: string, size: number, hasher: PieceHasher, keep?: (infohash: string) => void): Promise<ContentRef | null> {
    const path = this.stagingPath(id)
    if (size === 0) return null
    const { pieceLength, digests } = await hasher.finish(path, size)
    const info = buildInfo(this.volumeId, size, pieceLength, digests)
    const infohash = infoHash(info)
    // Synchronous from the existence check to `keep`, so no removal of the same infohash (a file
    // with equal bytes let go meanwhile) can fall in between: the caller's own code after the
    // await would run only after whatever else was queued. The staging file stays until the
    // caller has journaled the seal and removes it: a crash in between must leave the journal's
    // staged bytes where it says they are.
    const target = this.contentPath(infohash)
    const linked = !fs.existsSync(target)
    if (linked) fs.linkSync(path, target)
    keep?.(infohash)
    if (linked) this.changed(infohash, true)
    return { infohash, info }
  }

  /**
   * A whole content that came from a peer as bytes (a small copy, lib/node/small-copies.ts):
   * checked piece by piece against `info`, synced, and linked into content/ as a fetch completes
   * one. False when content/ had it already. Bytes that do not match throw, and nothing is kept.
   */
  async adoptWhole (infohash: string, info: TorrentInfo, bytes: Buffer): Promise<boolean> {
    if (infoHash(info) !== infohash) throw new SwarmError('SWARMFS_INTERNAL', `the info given for ${infohash} is another content's`)
    if (bytes.length !== info.length) throw new SwarmError('SWARMFS_PEER_BAD_RESPONSE', `${infohash}: ${bytes.length} bytes came, the content has ${info.length}`)
    for (let i = 0; i < pieceCount(info.length, info.pieceLength); i++) {
      if (!bytesMatchPiece(bytes.subarray(i * info.pieceLength, (i + 1) * info.pieceLength), info, i)) {
        throw new SwarmError('SWARMFS_PEER_BAD_RESPONSE', `${infohash}: piece ${i} that came does not match its hash`)
      }
    }
    const target = this.contentPath(infohash)
    if (fs.existsSync(target)) return false
    // Staged under a name of its own: a crash before the link leaves an orphan the next start removes.
    const staged = this.stagingPath(this.newStagingId())
    await writeSynced(staged, bytes)
    try {
      fs.linkSync(staged, target)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false
      throw err
    } finally {
      this.remove([], [basename(staged)])
    }
    // Copies at once share one sync of the directory.
    this.contentDirSyncs.add(this.contentDir)
    await this.contentDirSyncs.flush()
    this.changed(infohash, true)
    return true
  }

  private largest: number | null = null
  private readonly contentDirSyncs = new DirSyncs()
  private readonly spares: Array<{ id: string, fd: number }> = []
  private refilling = false
  private closed = false

  /**
   * The largest file this disk's filesystem holds (ext4 with 4 KiB blocks: 16 TiB - 4 KiB), and at
   * most what a JS number counts exactly. Nothing tells it but the filesystem's own EFBIG, so an
   * empty file is grown (sparse: nothing is allocated) to find it, once.
   */
  largestFile (): number {
    if (this.largest !== null) return this.largest
    const probe = this.stagingPath(this.newStagingId())
    const fd = fs.openSync(probe, 'wx')
    try {
      let fits = 0
      let tooLarge = Number.MAX_SAFE_INTEGER + 1
      while (tooLarge - fits > 1) {
        const size = fits + Math.floor((tooLarge - fits) / 2)
        try {
          fs.ftruncateSync(fd, size)
          fits = size
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EFBIG' && (err as NodeJS.ErrnoException).code !== 'EINVAL') throw err
          tooLarge = size
        }
      }
      this.largest = fits
    } finally {
      fs.closeSync(fd)
      this.removeFile(probe)
    }
    return this.largest
  }

  has (infohash: string): boolean {
    return fs.existsSync(this.contentPath(infohash))
  }

  /**
   * The contents this disk holds completely, as one listing of content/ (empty when it cannot be
   * read), read in batches (a million names do not hold the event loop at once).
   */
  async heldInfohashes (): Promise<Set<string>> {
    const held = new Set<string>()
    try {
      for await (const entry of await fsp.opendir(this.contentDir, { bufferSize: 1024 })) {
        if (isInfoHash(entry.name)) held.add(entry.name)
      }
    } catch {}
    return held
  }

  /** `listener` is told of every content that comes to content/ or leaves it from now on. */
  watch (listener: (infohash: string, present: boolean) => void): void {
    this.watchers.push(listener)
  }

  /**
   * A content came to content/ or left it other than through this store: a fetch completed (the
   * torrent service renames it into place), a damaged copy was set aside.
   */
  changed (infohash: string, present: boolean): void {
    for (const w of this.watchers) {
      try {
        w(infohash, present)
      } catch (err) {
        this.log.error('a watcher of the content store threw', { infohash, err })
      }
    }
  }

  /**
   * Contents synchronously, so that a seal of equal bytes right after finds the content gone, not
   * going. Staged copies off the thread: no one names a staging id again, and an unlink on the
   * thread FUSE is served on cost each small file ~0.2 ms of it (settle waits for them).
   */
  remove (contents: string[], staged: string[]): void {
    for (const ih of contents) {
      this.removeFile(this.contentPath(ih))
      this.changed(ih, false)
    }
    for (const id of staged) {
      const path = this.stagingPath(id)
      const removal = fsp.rm(path, { force: true }).catch((err: unknown) => {
        this.log.warn('could not remove a file no one refers to', { path, err })
      }).finally(() => this.removals.delete(removal))
      this.removals.add(removal)
    }
  }

  /** Resolves once every staged copy `remove` was given is gone. */
  async settle (): Promise<void> {
    while (this.removals.size > 0) await Promise.all([...this.removals])
  }

  private removeFile (path: string): void {
    try {
      fs.rmSync(path, { force: true })
    } catch (err) {
      this.log.warn('could not remove a file no one refers to', { path, err })
    }
  }

  /** Deletes staging files nothing refers to (left by writes that were never closed). */
  removeOrphanStaging (keep: Set<string>): number {
    let removed = 0
    for (const name of fs.readdirSync(this.stagingDir)) {
      if (!keep.has(name)) {
        fs.rmSync(join(this.stagingDir, name), { force: true })
        removed++
      }
    }
    return removed
  }
}

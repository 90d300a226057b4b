// Writes: the one write session per file open for writing, what its writers do to it (write,
// truncate, fallocate, fsync), the `stage` records that make closed bytes durable, and the seal
// that hashes them into a content once the last writer is gone.
import fs from 'node:fs'
import { dirname } from 'node:path'
import fileops from '@swarmfs/fileops'
import { DirSyncs, fsyncFile, syncDir } from '../core/durable.js'
import { FsError } from '../core/errors.js'
import type { ContentRef } from '../core/torrent-info.js'
import { PieceHasher } from '../content/piece-hasher.js'
import type { FileNode } from '../meta/nodes.js'
import type { Core } from './core.js'
import type { OpenStaging } from './ports.js'
import { WriteSession } from './sessions.js'

export class Writes {
  /** The content directory's new names (sealed contents), synced together by concurrent seals. */
  private readonly names = new DirSyncs()

  constructor (private readonly core: Core) {}

  /** The file's write session, joined as one more writer; `truncate` empties it (O_TRUNC). */
  async session (file: FileNode, truncate: boolean): Promise<WriteSession> {
    const { sessions, sealing, content } = this.core
    for (;;) {
      // A release under way closes the last session and seals it: the next one starts from there.
      const pending = sealing.get(file)
      if (pending !== undefined) {
        await pending
        continue
      }
      const session = sessions.get(file)
      if (session !== undefined) {
        session.writers++
        if (truncate) {
          try {
            await session.truncate(0, this.core.now())
          } catch (err) {
            this.leave(session)
            throw err
          }
        }
        return session
      }
      let staged: OpenStaging
      let size: number
      if (file.staged !== null && !truncate) {
        // Closed but not yet sealed (a seal that failed, or one replayed from the journal).
        staged = { id: file.staged.id, fd: fs.openSync(content.stagingPath(file.staged.id), 'r+'), hasher: new PieceHasher() }
        size = file.staged.size
      } else {
        const from = truncate ? null : file.content
        if (from !== null && !content.has(from.infohash)) {
          // A change to part of a content held elsewhere starts from a whole local copy.
          await this.core.remote.fetchAll(from)
        }
        staged = await content.stage(from)
        size = truncate ? 0 : file.size
        if (sessions.has(file) || sealing.has(file) || (!truncate && (file.staged !== null || file.content !== from))) {
          // Another writer came meanwhile (and may have gone): start again from what it left.
          fs.closeSync(staged.fd)
          content.remove([], [staged.id])
          continue
        }
      }
      const created = new WriteSession(file, staged.id, staged.fd, size, staged.hasher)
      if (truncate && (file.size > 0 || file.staged !== null)) created.dirty = true
      created.writers++
      sessions.set(file, created)
      this.core.meta.beginWrite(file)
      return created
    }
  }

  write (fh: number, buf: Buffer, len: number, pos: number): Promise<number> {
    const { h, session } = this.core.writer(fh)
    const at = h.append ? session.size : pos
    let n = len
    if (at + n > session.size) {
      // As a local disk: EFBIG at or past its largest file, and a write across it stops there.
      const largest = this.core.content.largestFile()
      if (at >= largest) throw new FsError('EFBIG', `EFBIG: ${h.file.path()} cannot grow past ${largest} bytes on this disk`)
      n = Math.min(n, largest - at)
      // Growing the file takes space; rewriting bytes it has does not.
      this.core.space.claim(at + n - session.size)
    }
    session.stamp(this.core.now())
    return session.write(buf, n, h.append ? null : pos)
  }

  async ftruncate (fh: number, size: number): Promise<void> {
    const { h, session } = this.core.writer(fh)
    this.checkSize(h.file, size)
    await session.truncate(size, this.core.now())
  }

  /**
   * fallocate(2) on a file open for writing, done by the disk on its staging copy: space reserved
   * (growing the file unless KEEP_SIZE), or a range punched out or zeroed. Other modes (collapse,
   * insert, unshare) are EOPNOTSUPP, as on a filesystem without them.
   */
  async fallocate (fh: number, mode: number, offset: number, length: number): Promise<void> {
    const { h, session } = this.core.writer(fh)
    const kind = mode & ~fileops.FALLOC_FL_KEEP_SIZE
    if (kind !== 0 && kind !== fileops.FALLOC_FL_PUNCH_HOLE && kind !== fileops.FALLOC_FL_ZERO_RANGE) {
      throw new FsError('ENOTSUP', `ENOTSUP: fallocate mode ${mode} of ${h.file.path()}`)
    }
    if (offset < 0 || length <= 0) throw new FsError('EINVAL', `EINVAL: fallocate of ${length} bytes at ${offset}`)
    const grows = (mode & fileops.FALLOC_FL_KEEP_SIZE) === 0 && offset + length > session.size
    if (grows) {
      this.checkSize(h.file, offset + length)
      this.core.space.claim(offset + length - session.size)
    }
    await session.allocate(mode, offset, length, this.core.now())
  }

  /** EFBIG for a size this disk cannot hold in a file, before anything changes, as a local disk answers. */
  checkSize (file: FileNode, size: number): void {
    if (size > this.core.content.largestFile()) throw new FsError('EFBIG', `EFBIG: ${file.path()} cannot be ${size} bytes on this disk`)
  }

  /**
   * fsync(2) and fdatasync(2): durable against a power cut before the answer. The staged bytes and
   * their file's name, then the journal with the record that names them (and every record before
   * it: the file's own name, a rename of it).
   */
  async fsync (fh: number): Promise<void> {
    const h = this.core.handle(fh)
    if (h.session !== null) {
      const session = h.session
      // The bytes and the staging file's name together (one journal commit of the disk's
      // filesystem, not two), both before the record that names them.
      await Promise.all([session.sync(), session.nameSynced ? null : syncDir(dirname(this.core.content.stagingPath(session.stagingId)))])
      session.nameSynced = true
      this.stage(session)
    } else if (h.file.staged !== null) {
      // Written through another handle, closed, not sealed yet: its staged bytes are what the
      // journal names.
      const path = this.core.content.stagingPath(h.file.staged.id)
      try {
        await Promise.all([fsyncFile(path), syncDir(dirname(path))])
      } catch (err) {
        // Sealed and let go meanwhile, which happens only once the seal is durable.
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
      }
    }
    await this.core.meta.syncJournalAsync()
  }

  /** Records what the session holds now (a `stage` record with its writers' times). */
  stage (session: WriteSession): void {
    if (!session.dirty) return
    const file = session.file
    if (!file.attached()) return
    const { mtime, mtimeNs, ctime } = session.modified ?? { mtime: file.attrs.mtime, mtimeNs: file.attrs.mtimeNs ?? 0, ctime: file.attrs.ctime }
    // A chmod or a link since the last write changed ctime later than the write did.
    const times = { mtime, ...(mtimeNs !== 0 ? { mtimeNs } : {}), ctime: Math.max(ctime, file.attrs.ctime) }
    this.core.meta.apply({ op: 'stage', path: file.path(), staged: { id: session.stagingId, size: session.size }, ...times })
    session.dirty = false
  }

  /**
   * One writer fewer. The last one's session stays until every change queued on it is on the disk
   * (a truncate(2) by path may have joined it after the writer's close(2) returned, before the
   * kernel's RELEASE came), then closes; what it staged is then sealed.
   */
  leave (session: WriteSession): void {
    if (--session.writers > 0) return
    const file = session.file
    this.track(file, (async () => {
      // The session stays findable until it closes, so reads and truncates may still come: the
      // close waits for those too, and follows the last check in the same step.
      while (session.busy) await session.idle()
      if (this.core.sessions.get(file) === session) {
        this.core.sessions.delete(file)
        this.core.meta.endWrite(file)
      }
      session.close()
      // Changes done since the release's own stage record (that truncate) are recorded now.
      this.stage(session)
      if (file.staged?.id !== session.stagingId) {
        // Nothing was written (or the file is gone): the staging copy is not needed.
        this.core.content.remove([], [session.stagingId])
        return
      }
      await this.seal(file, session.hasher, !session.unsynced)
    })())
  }

  /** Registers a release or a seal under way for `file`; a write session waits for it. */
  private track (file: FileNode, work: Promise<void>): void {
    const tracked: Promise<void> = work.catch(err => {
      this.core.log.error('could not seal a written file; its bytes stay staged and are retried at the next start', { path: file.path(), err })
    }).finally(() => {
      if (this.core.sealing.get(file) === tracked) this.core.sealing.delete(file)
    })
    this.core.sealing.set(file, tracked)
  }

  /** Hashes a closed file's staged bytes into a content; readers use staging meanwhile. */
  /** `synced`: the writer's fsync covered every byte (the seal need not sync them again). */
  private async seal (file: FileNode, hasher: PieceHasher, synced = false): Promise<void> {
    const { content: store, meta } = this.core
    const staged = file.staged
    if (staged === null || !file.attached()) return
    let content: ContentRef | null
    try {
      // The bytes are durable before a record names them as a content (a power cut may keep the
      // record and lose unsynced bytes), and so is the content's name.
      if (staged.size > 0 && !synced) await fsyncFile(store.stagingPath(staged.id))
      // Pinned from the step that finds the content's file: a removal of equal bytes let go
      // earlier must not take the file before the record below names it.
      content = await store.seal(staged.id, staged.size, hasher, infohash => meta.pin(infohash))
      if (content !== null) {
        try {
          this.names.add(dirname(store.contentPath(content.infohash)))
          await this.names.flush()
        } finally {
          meta.unpin(content.infohash)
        }
      }
    } catch (err) {
      // Unlinked meanwhile, which let the staged bytes go: there is nothing left to seal.
      if (!file.attached() || file.staged?.id !== staged.id) return
      throw err
    }
    if (!file.attached() || file.staged?.id !== staged.id) {
      // The file went away or changed meanwhile: this seal names the content nowhere. Another
      // seal of equal bytes may be about to (pinned), or a record not yet durable may still.
      if (content !== null) meta.letGo(content.infohash)
      return
    }
    meta.apply({ op: 'seal', path: file.path(), stagedId: staged.id, size: staged.size, content })
    // Only once the record that names the content is durable may the staged copy go.
    meta.whenDurable(() => store.remove([], [staged.id]))
  }

  /** Seals what earlier runs staged but did not seal (from the journal). */
  resumeSeals (): void {
    for (const file of this.core.meta.stagedNow()) if (!this.core.sessions.has(file)) this.track(file, this.seal(file, new PieceHasher()))
  }

  /** Waits until every closed file is sealed; open sessions are staged first. */
  async settle (): Promise<void> {
    for (const session of this.core.sessions.values()) this.stage(session)
    while (this.core.sealing.size > 0) await Promise.all([...this.core.sealing.values()])
  }
}

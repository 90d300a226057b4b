// Reads through an open handle: from its write session, the staged file, the content on this disk,
// or, for a content this disk does not hold, from the nodes that do.
import fs from 'node:fs'
import { FsError } from '../core/errors.js'
import type { FileNode } from '../meta/nodes.js'
import type { Core, Handle } from './core.js'
import { readAt } from './sessions.js'

/** readSource's answer for a content that is not on this disk. */
const REMOTE = 'remote'
const REMOTE_RECHECK_MS = 1000

function sourceKey (file: FileNode): string | null {
  return file.staged !== null ? 's' + file.staged.id : file.content !== null ? file.content.infohash : null
}

export class Reads {
  constructor (private readonly core: Core) {}

  async read (fh: number, buf: Buffer, len: number, pos: number): Promise<number> {
    const h = this.core.handle(fh)
    const session = this.core.sessions.get(h.file)
    if (session !== undefined) return await session.read(buf, len, pos)
    h.reads++
    try {
      const fd = await this.readSource(h)
      if (fd === null) return 0
      if (fd === REMOTE) {
        const ref = h.file.content
        if (ref === null) throw new FsError('EIO', 'EIO: content not on this disk')
        if (pos >= ref.info.length) return 0
        return await this.core.remote.read(ref, pos, Math.min(len, buf.length, ref.info.length - pos), buf)
      }
      return await readAt(fd, buf, len, pos)
    } finally {
      h.reads--
      this.closeRetired(h)
    }
  }

  /** The fd to read `h.file` from now, when no write session has it: a staged file or the content. */
  async readSource (h: Handle): Promise<number | null | typeof REMOTE> {
    for (;;) {
      const file = h.file
      const key = sourceKey(file)
      if (key === null) return null
      if (key === h.readKey && h.readFd !== null) return h.readFd
      // Until a fetch completes the content, it stays remote: look on the disk again at most every
      // REMOTE_RECHECK_MS rather than at every 128 KiB read.
      if (key === h.readKey && h.readFd === null && Date.now() - h.remoteAt < REMOTE_RECHECK_MS) return REMOTE
      const path = file.staged !== null ? this.core.content.stagingPath(file.staged.id) : this.core.content.contentPath(key)
      let fd: number
      try {
        fd = await new Promise<number>((resolve, reject) => fs.open(path, 'r', (err, fd) => err ? reject(err) : resolve(fd)))
      } catch (err) {
        // A seal may have moved the staged bytes into content/ while this open was under way; the
        // file then names its new source, so look again. Otherwise the bytes are really missing.
        if ((err as NodeJS.ErrnoException).code === 'ENOENT' && sourceKey(file) !== key) continue
        if ((err as NodeJS.ErrnoException).code === 'ENOENT' && file.staged === null && file.content !== null) {
          // The entry names a content this disk does not hold (written on another node).
          this.retireReadFd(h)
          h.readKey = key
          h.remoteAt = Date.now()
          return REMOTE
        }
        throw err
      }
      this.retireReadFd(h)
      h.readFd = fd
      h.readKey = key
      return fd
    }
  }

  /** Closes the handle's read fd, or leaves it to the last read under way on the handle. */
  retireReadFd (h: Handle): void {
    if (h.readFd !== null) h.retired.push(h.readFd)
    h.readFd = null
    this.closeRetired(h)
  }

  private closeRetired (h: Handle): void {
    if (h.reads === 0 && h.retired.length > 0) for (const fd of h.retired.splice(0)) fs.close(fd, () => {})
  }

  /**
   * This disk's copy of a content was set aside, having failed its hash check. Descriptors opened
   * on it would keep reading the bad bytes; each handle reading it looks for its source again at
   * its next read, which then goes the remote way (good pieces from the partial file, bad ones
   * fetched from another holder, or EIO).
   */
  copySetAside (infohash: string): void {
    for (const h of this.core.handles.values()) {
      if (h.readKey !== infohash) continue
      this.retireReadFd(h)
      h.readKey = null
    }
  }

  /** Whether a file open on this mount reads a content (a copy of it must not be dropped now). */
  isOpen (infohash: string): boolean {
    for (const h of this.core.handles.values()) if (h.file.content?.infohash === infohash) return true
    return false
  }
}

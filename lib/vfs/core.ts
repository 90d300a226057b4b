// The state the parts of the filesystem core share: the ports it was given, the open handles, the
// write sessions and the files unlinked while open.
import { FsError } from '../core/errors.js'
import type { Logger } from '../core/log.js'
import type { FileNode } from '../meta/nodes.js'
import { HiddenFiles } from './hidden-files.js'
import type { ContentPort, MetadataIndex, RemoteContent, SpacePort, VolumeFsParts } from './ports.js'
import type { WriteSession } from './sessions.js'

export interface Handle {
  file: FileNode
  session: WriteSession | null
  append: boolean
  /** The fd last opened for reading, and the content (infohash or staging id) it holds. */
  readFd: number | null
  readKey: string | null
  /**
   * Reads under way, and the read fds replaced meanwhile: those are closed once none is left, as
   * another read of the handle (the kernel reads ahead in parallel) may still be using one.
   */
  reads: number
  retired: number[]
  /** When a content was last found missing here, so a remote read does not retry open() on every read. */
  remoteAt: number
}

export class Core {
  readonly meta: MetadataIndex
  readonly content: ContentPort
  readonly remote: RemoteContent
  readonly space: SpacePort
  readonly log: Logger
  readonly handles = new Map<number, Handle>()
  readonly sessions = new Map<FileNode, WriteSession>()
  /** Per file, the last writer's release under way: its session closing, then the seal of what it staged. */
  readonly sealing = new Map<FileNode, Promise<void>>()
  readonly hidden = new HiddenFiles()

  constructor (parts: VolumeFsParts) {
    this.meta = parts.meta
    this.content = parts.content
    this.remote = parts.remote
    this.space = parts.space
    this.log = parts.log
  }

  now (): number {
    return Date.now()
  }

  handle (fh: number): Handle {
    const h = this.handles.get(fh)
    if (h === undefined) throw new FsError('EBADF', `EBADF: no open file ${fh}`)
    return h
  }

  /** A handle open for writing, with its session. */
  writer (fh: number): { h: Handle, session: WriteSession } {
    const h = this.handle(fh)
    if (h.session === null) throw new FsError('EBADF', 'EBADF: file not open for writing')
    return { h, session: h.session }
  }

  handlesOf (file: FileNode): number {
    let n = 0
    for (const h of this.handles.values()) if (h.file === file) n++
    return n
  }
}

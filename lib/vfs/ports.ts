// What the filesystem core is given, and all it knows of the parts behind it: the metadata index
// (the tree, changed only by ops), the content store (contents by infohash and the staging files
// that become them), the nodes that hold what this disk does not, and this disk's space. The real
// parts (Meta, ContentStore, the node's remote reader, diskSpace) fit these by their shape; each
// has a memory version in memory-parts.ts.
import type fs from 'node:fs'
import type { ContentRef } from '../core/torrent-info.js'
import type { Logger } from '../core/log.js'
import type { Op } from '../meta/ops.js'
import type { FileNode, Node } from '../meta/nodes.js'
import type { PieceHasher } from '../content/piece-hasher.js'

/** The volume's tree: read freely, changed only by `apply`. */
export interface MetadataIndex {
  lookup (path: string): Node | undefined
  /** Throws ENOENT (ENOTDIR, ENAMETOOLONG) as a lookup on a local disk does. */
  mustLookup (path: string): Node
  /** Applies a change (and journals it, where there is a journal); throws an FsError when POSIX forbids it. */
  apply (op: Op): void
  /** A write session opened on `file`, and closed: a sync keeps a peer's version beside it meanwhile. */
  beginWrite (file: FileNode): void
  endWrite (file: FileNode): void
  /** Keeps a content's file from being removed until `unpin`. */
  pin (infohash: string): void
  unpin (infohash: string): void
  /**
   * A content a seal linked that no record names (its file changed meanwhile): removed once the
   * changes so far are durable, unless a record or a pin has it by then (a seal of equal bytes).
   */
  letGo (infohash: string): void
  /** The contents the tree refers to. */
  readonly contentRefs: { has (infohash: string): boolean }
  /** Runs `run` once every change applied so far is durable. */
  whenDurable (run: () => void): void
  /** Files whose staged bytes still wait to be sealed into content. */
  stagedNow (): FileNode[]
  /** fsync(2): every change so far durable against a power cut. */
  syncJournalAsync (): Promise<void>
  /** fsyncdir(2): the names and attributes changed so far durable. */
  syncDirectory (): void
}

/** A staging file opened for reading and writing, with the hasher of its pieces. */
export interface OpenStaging {
  id: string
  fd: number
  hasher: PieceHasher
}

/**
 * Contents on this disk and the staging files that become them. Where they live is the store's
 * business: the core asks for the file of a content or of a staging id.
 */
export interface ContentPort {
  /** The file holding a content's bytes (it may not exist: a content held elsewhere). */
  contentPath (infohash: string): string
  /** The file holding a staging id's bytes. */
  stagingPath (id: string): string
  has (infohash: string): boolean
  /** A new empty staging file, or a copy of a content. */
  stage (from: ContentRef | null): Promise<OpenStaging>
  /**
   * Hashes a staging file into a content, in place; null for an empty file. `keep` is called with
   * the infohash in the same step that finds or links the content's file, before any removal can
   * run (the caller pins it there).
   */
  seal (id: string, size: number, hasher: PieceHasher, keep?: (infohash: string) => void): Promise<ContentRef | null>
  /** Synchronous, so that a seal of equal bytes right after finds the content gone, not going. */
  remove (contents: string[], staged: string[]): void
  /** The largest file the disk holds. */
  largestFile (): number
}

/** Contents this disk does not hold, fetched from the nodes that do (lib/content/torrents). */
export interface RemoteContent {
  /** Bytes of a content from `offset`, into `into`; resolves with how many; rejects with an EIO error when they cannot come in time. */
  read (ref: ContentRef, offset: number, length: number, into: Buffer): Promise<number>
  /** Fetches a whole content onto this disk (for a write that changes part of it). */
  fetchAll (ref: ContentRef): Promise<void>
}

/** This disk's room for file data, and the space `df` shows. */
export interface SpacePort {
  /** Allows a write of `bytes` of file data, or throws ENOSPC. */
  claim (bytes: number): void
  statfs (): fs.StatsFs
}

/** What a VolumeFs is made of, given by the node that wires it. */
export interface VolumeFsParts {
  meta: MetadataIndex
  content: ContentPort
  /** Contents this disk does not hold: read from, or fetched whole from, the nodes that do. */
  remote: RemoteContent
  space: SpacePort
  log: Logger
}

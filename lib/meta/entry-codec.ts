// How one node is stored in git: a file is a blob at its own path holding its entry (attributes and
// the torrent info, so a first remote read needs no round trip); a directory's own attributes live
// in its marker blob; a symlink is a git symlink. Decoding checks everything, since a tree may come
// from a peer.
import { isNodeId } from '../core/ids.js'
import { sharedIds } from '../core/interner.js'
import { compactInfo, infoHash, infoProblem, isInfoHash } from '../core/torrent-info.js'
import { isVolumeInode, S_IFLNK, SPECIAL_TYPES, subMsNs, type Attrs, type ContentRef, type DirNode, type FileNode, type Node, type Special } from './nodes.js'
import { parseVolumeSettings, type VolumeSettings } from './volume-settings.js'

export interface FileEntry {
  size: number
  attrs: Attrs
  content: ContentRef | null
  special: Special | null
  /** The id the names of a hard-linked file share; null when absent or malformed. */
  linkId: string | null
  /** Its volume-wide inode number; null when absent (an older release's entry) or malformed. */
  ino: number | null
  /** The node that wrote this version; null when absent or malformed. */
  by: string | null
}

export function encodeFile (file: FileNode): string {
  const { perm, uid, gid, mtime, ctime } = file.attrs
  const entry: Record<string, unknown> = { v: 1, size: file.size, perm, uid, gid, mtime, ctime }
  putFineTimes(entry, file.attrs)
  putInode(entry, file)
  if (file.by !== null) entry.by = file.by
  // A release before this one reads every name as a file of its own, with the same content.
  if (file.linkId !== null) entry.linkId = file.linkId
  if (file.special !== null) {
    // A release before special files reads such an entry as an empty file; one before hard-linked
    // symlinks refuses a symlink's entry (an unknown type), which leaves that name out.
    entry.type = ENTRY_TYPES.get(file.special.type)
    if (file.special.rdev !== 0) entry.rdev = file.special.rdev
    if (file.special.target !== undefined) entry.target = file.special.target
  }
  if (file.content !== null) {
    entry.infohash = file.content.infohash
    entry.info = file.content.info
  }
  return JSON.stringify(entry) + '\n'
}

export function encodeDirMarker (dir: DirNode): string {
  const { perm, uid, gid, mtime, ctime } = dir.attrs
  const marker: Record<string, unknown> = { v: 1, perm, uid, gid, mtime, ctime }
  putFineTimes(marker, dir.attrs)
  putInode(marker, dir)
  // A git symlink holds only its target, so the times and owner of the directory's symlinks
  // live here, or a restart or a peer would show them with its own clock.
  const links: Record<string, number[]> = {}
  let any = false
  for (const [name, child] of dir.children.symlinks > 0 ? dir.children : []) {
    if (child.kind !== 'symlink') continue
    const { mtime, ctime, uid, gid, atime, mtimeNs = 0, atimeNs = 0 } = child.attrs
    links[name] = isVolumeInode(child.inode)
      ? [mtime, ctime, uid, gid, atime, mtimeNs, atimeNs, child.inode]
      : mtimeNs !== 0 || atimeNs !== 0
        ? [mtime, ctime, uid, gid, atime, mtimeNs, atimeNs]
        : atime === mtime ? [mtime, ctime, uid, gid] : [mtime, ctime, uid, gid, atime]
    any = true
  }
  if (any) marker.links = links
  if (dir.isRoot && dir.volume !== null) marker.volume = settingsField(dir.volume)
  return JSON.stringify(marker) + '\n'
}

/**
 * atime is written only where it differs from mtime: an entry without one reads as atime = mtime,
 * which is what every entry of an older release means, and an entry whose atime was never set
 * apart keeps the bytes (and the oid) an older release writes for it. The nanoseconds past a
 * millisecond likewise, only where not 0 (an older release reads the time to the millisecond).
 */
function putFineTimes (entry: Record<string, unknown>, attrs: Attrs): void {
  const { mtimeNs = 0, atimeNs = 0 } = attrs
  if (mtimeNs !== 0) entry.mtimeNs = mtimeNs
  if (attrs.atime !== attrs.mtime || atimeNs !== mtimeNs) {
    entry.atime = attrs.atime
    if (atimeNs !== 0) entry.atimeNs = atimeNs
  }
}

/**
 * Only a volume-wide number is written: one of this process's own range means nothing to another
 * node, and an entry without one keeps the bytes an older release wrote for it.
 */
function putInode (entry: Record<string, unknown>, node: Node): void {
  if (isVolumeInode(node.inode)) entry.ino = node.inode
}

/** The settings as a marker holds them: these three fields in this order, so equal settings are equal bytes. */
function settingsField (s: VolumeSettings): VolumeSettings {
  return { copies: s.copies, graceMs: s.graceMs, at: s.at }
}

/** A symlink's attributes, and its volume-wide inode number where the marker holds one. */
export type MarkerLinks = Map<string, { attrs: Pick<Attrs, 'mtime' | 'ctime' | 'uid' | 'gid' | 'atime' | 'mtimeNs' | 'atimeNs'>, ino: number | null }>

/** Everything a directory's marker holds, read with one parse. */
export interface DirMarker {
  attrs: Attrs
  /** The directory's volume-wide inode number; null when absent or malformed. */
  ino: number | null
  links: MarkerLinks
  /** Meaningful in the root's marker only; null when absent or malformed. */
  volume: VolumeSettings | null
}

export function decodeMarker (text: string, fallback: Attrs): DirMarker {
  const e = parseJson(text)
  return {
    attrs: e === null ? fallback : decodeAttrs(e, fallback),
    ino: inodeOf(e?.ino),
    links: linksOf(e?.links),
    volume: parseVolumeSettings(e?.volume)
  }
}

/** The volume settings a marker holds; null when it holds none that are valid. */
export function decodeMarkerVolume (text: string): VolumeSettings | null {
  return parseVolumeSettings(parseJson(text)?.volume)
}

/**
 * The marker with `volume` in place of its own settings, or null when the marker is not a JSON
 * object. A pure function of its inputs: a merge writing it gives the same blob on every node.
 */
export function withMarkerVolume (text: string, volume: VolumeSettings): string | null {
  const e = parseJson(text)
  if (e === null) return null
  e.volume = settingsField(volume)
  return JSON.stringify(e) + '\n'
}

/** The attributes of a directory's symlinks as its marker holds them (by name). */
function linksOf (raw: unknown): MarkerLinks {
  const links: MarkerLinks = new Map()
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return links
  for (const [name, v] of Object.entries(raw as Record<string, unknown>)) {
    // A fifth number is the atime, where it differs from the mtime; a sixth and seventh the
    // nanoseconds past the mtime's and the atime's millisecond, where either is not 0; an eighth
    // the symlink's volume-wide inode number (the five before it then all there).
    if (!Array.isArray(v) || ![4, 5, 7, 8].includes(v.length) || !v.every(n => typeof n === 'number' && Number.isFinite(n))) continue
    const [mtime, ctime, uid, gid, atime, mtimeNs, atimeNs, ino] = v as number[]
    if (!Number.isSafeInteger(uid) || uid < 0 || !Number.isSafeInteger(gid) || gid < 0) continue
    links.set(name, { attrs: withFineTimes({ mtime, ctime, uid, gid, atime: atime ?? mtime }, subMsNs(mtimeNs), subMsNs(atimeNs)), ino: inodeOf(ino) })
  }
  return links
}

function inodeOf (v: unknown): number | null {
  return isVolumeInode(v) ? v : null
}

function isTime (v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v)
}

function decodeAttrs (e: Record<string, unknown>, fallback: Attrs): Attrs {
  const int = (v: unknown, d: number): number => Number.isSafeInteger(v) && (v as number) >= 0 ? v as number : d
  const mtime = isTime(e.mtime) ? e.mtime : fallback.mtime
  const mtimeNs = isTime(e.mtime) ? subMsNs(e.mtimeNs) : fallback.mtimeNs ?? 0
  const attrs = {
    perm: int(e.perm, fallback.perm) & 0o7777,
    uid: int(e.uid, fallback.uid),
    gid: int(e.gid, fallback.gid),
    mtime,
    ctime: isTime(e.ctime) ? e.ctime : (isTime(e.mtime) ? e.mtime : fallback.ctime),
    atime: isTime(e.atime) ? e.atime : mtime
  }
  return withFineTimes(attrs, mtimeNs, isTime(e.atime) ? subMsNs(e.atimeNs) : mtimeNs)
}

/** `attrs` with the nanoseconds past its mtime's and atime's millisecond, where they are not 0. */
function withFineTimes<T extends Partial<Attrs>> (attrs: T, mtimeNs: number, atimeNs: number): T {
  if (mtimeNs !== 0) attrs.mtimeNs = mtimeNs
  if (atimeNs !== 0) attrs.atimeNs = atimeNs
  return attrs
}

function parseJson (text: string): Record<string, unknown> | null {
  try {
    const v: unknown = JSON.parse(text)
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? v as Record<string, unknown> : null
  } catch {
    return null
  }
}

/**
 * The entry, or a reason it is refused. `verifyInfoHash` recomputes the infohash from the info (a
 * bencode and a SHA-1): needed for what a peer sends, skipped for this node's own repository, whose
 * entries were checked when they arrived. The torrent info is checked by infoProblem, its name
 * against `volumeId` (null: a reader that does not know the volume, such as status).
 */
export function decodeFile (text: string, fallback: Attrs, verifyInfoHash = true, volumeId: string | null = null): FileEntry | string {
  const e = parseJson(text)
  if (e === null) return 'entry is not a JSON object'
  const size = e.size
  if (!Number.isSafeInteger(size) || (size as number) < 0) return 'size is not a non-negative integer'
  const attrs = decodeAttrs(e, fallback)
  // A malformed id only unlinks the name from the others: the file itself is sound.
  const linkId = isNodeId(e.linkId) ? e.linkId : null
  const ino = inodeOf(e.ino)
  const by = isNodeId(e.by) ? sharedIds.of(e.by) : null
  if (e.type !== undefined) {
    const type = [...ENTRY_TYPES].find(([, name]) => name === e.type)?.[0]
    if (type === undefined) return 'type is not fifo, socket, char, block or symlink'
    const rdev = e.rdev ?? 0
    if (!Number.isSafeInteger(rdev) || (rdev as number) < 0 || (rdev as number) > 0xffffffff) return 'rdev is not a 32-bit device number'
    if (size !== 0 || e.infohash !== undefined) return 'a special file has content'
    if (type !== S_IFLNK) {
      if (e.target !== undefined) return 'only a symlink has a target'
      return { size: 0, attrs, content: null, special: { type, rdev: rdev as number }, linkId, ino, by }
    }
    if (!isSymlinkTarget(e.target)) return 'symlink target is not a non-empty string without NUL'
    if (rdev !== 0) return 'a symlink has no device number'
    return { size: 0, attrs, content: null, special: { type, rdev: 0, target: e.target }, linkId, ino, by }
  }
  if (size === 0) return { size: 0, attrs, content: null, special: null, linkId, ino, by }
  if (!isInfoHash(e.infohash)) return 'infohash is not 40 hex characters'
  const problem = infoProblem(e.info, size as number, volumeId)
  if (problem !== null) return problem
  const info = compactInfo(e.info as ContentRef['info'])
  if (verifyInfoHash && infoHash(info) !== e.infohash) return 'infohash does not match the torrent info'
  return { size: size as number, attrs, content: { infohash: e.infohash, info }, special: null, linkId, ino, by }
}

export function decodeDirMarker (text: string, fallback: Attrs): Attrs {
  const e = parseJson(text)
  return e === null ? fallback : decodeAttrs(e, fallback)
}

/** A symlink's target as the kernel takes one: not empty, no NUL. */
export function isSymlinkTarget (v: unknown): v is string {
  return typeof v === 'string' && v.length > 0 && !v.includes('\0')
}

/** The `type` of a special file's entry. */
const ENTRY_TYPES: ReadonlyMap<number, string> = new Map([...SPECIAL_TYPES, [S_IFLNK, 'symlink']])

// What a node tells its peers about its disk (GET /holdings): the contents it holds completely, the
// copies it is making, its space. Everything read from a peer is checked: a malformed document is
// refused whole.
import { isNodeId } from '../core/ids.js'
import { isInfoHash } from '../core/torrent-info.js'

export interface CopyProgress {
  infohash: string
  done: number
  total: number
  /** The transfer has started (otherwise the copy is only announced). */
  started: boolean
}

export interface Holdings {
  v: 1
  nodeId: string
  /** Changes whenever anything below does; a peer that has this generation gets `unchanged`. */
  generation: string
  total: number
  free: number
  reserve: number
  complete: string[]
  /**
   * Those of `complete` that reads on this node fetched (a cache, not a copy made for the target).
   * Absent from older nodes' holdings: none.
   */
  cached?: string[]
  copying: CopyProgress[]
  /**
   * Contents this node announced it will drop (drops.ts): peers do not count its copy of them
   * toward a drop of their own. Absent from older nodes' holdings: none.
   */
  dropping?: string[]
  retiring: boolean
}

/** A peer that has `generation` already. */
export interface Unchanged { v: 1, unchanged: true, generation: string }

/** More contents than any volume of ours has; bounds what a peer can make us hold in memory. */
const MAX_CONTENTS = 10_000_000
/** A node announces at most MAX_DROPPING (drops.ts) drops at once; a longer list is refused with room to spare. */
const MAX_DROPPING_LISTED = 1024

const isInfohashList = (v: unknown): v is string[] => Array.isArray(v) && v.length <= MAX_CONTENTS && v.every(isInfoHash)
const isSize = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0

/** The holdings in a peer's answer, `unchanged`, or a string saying what is wrong with it. */
export function parseHoldings (raw: unknown): Holdings | Unchanged | string {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return 'not an object'
  const r = raw as Record<string, unknown>
  if (r.v !== 1) return `unknown version ${JSON.stringify(r.v)}`
  if (typeof r.generation !== 'string' || r.generation.length > 64) return 'bad generation'
  if (r.unchanged === true) return { v: 1, unchanged: true, generation: r.generation }
  if (!isNodeId(r.nodeId)) return 'bad node id'
  if (!isSize(r.total) || !isSize(r.free) || !isSize(r.reserve)) return 'bad disk sizes'
  if (!isInfohashList(r.complete)) return 'bad list of contents'
  if (r.cached !== undefined && !isInfohashList(r.cached)) return 'bad list of cached contents'
  if (r.dropping !== undefined && !(isInfohashList(r.dropping) && r.dropping.length <= MAX_DROPPING_LISTED)) return 'bad list of drops'
  if (!Array.isArray(r.copying) || r.copying.length > MAX_CONTENTS) return 'bad list of copies'
  const copying: CopyProgress[] = []
  for (const c of r.copying as unknown[]) {
    const p = c as Record<string, unknown>
    if (typeof c !== 'object' || c === null || !isInfoHash(p.infohash) || !isSize(p.done) || !isSize(p.total) || typeof p.started !== 'boolean') return 'bad copy'
    copying.push({ infohash: p.infohash, done: p.done, total: p.total, started: p.started })
  }
  if (typeof r.retiring !== 'boolean') return 'bad retiring flag'
  return { v: 1, nodeId: r.nodeId, generation: r.generation, total: r.total, free: r.free, reserve: r.reserve, complete: r.complete, cached: r.cached ?? [], copying, dropping: r.dropping ?? [], retiring: r.retiring }
}

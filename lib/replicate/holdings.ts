// What a node tells its peers about its disk (GET /holdings): the contents it holds completely, the
// copies it is making, its space. Everything read from a peer is checked: a malformed document is
// refused whole.
//
// A peer that has a generation already asks `?have=<generation>`. Old nodes answer `unchanged` or
// the whole document; a peer that also says `delta=1` may get a delta instead (holdings-log.ts):
// the contents added to and removed from each list since that generation, with the small figures
// (space, copies under way) whole. A delta is checked as strictly as a whole document, and against
// what the receiver holds of that peer (applyDelta): it must name the generation the receiver has,
// add only what is not there and remove only what is.
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

/** The lists of a node's holdings that travel as deltas; `copying` is the infohashes of its copies (announced or started). */
export const SET_NAMES = ['complete', 'cached', 'dropping', 'copying'] as const
export type SetName = typeof SET_NAMES[number]
export type SetChanges = Record<SetName, string[]>

/** What changed since generation `from`: the lists' changes, and the small figures whole. */
export interface HoldingsDelta {
  v: 1
  delta: true
  nodeId: string
  from: string
  generation: string
  total: number
  free: number
  reserve: number
  retiring: boolean
  /** The copies whose transfer has started, with their progress (few: replicator.ts's MAX_COPIES). */
  progress: CopyProgress[]
  add: SetChanges
  remove: SetChanges
}

/** More contents than any volume of ours has; bounds what a peer can make us hold in memory. */
export const MAX_CONTENTS = 10_000_000
/** A node announces at most MAX_DROPPING (drops.ts) drops at once; a longer list is refused with room to spare. */
export const MAX_DROPPING_LISTED = 1024
/** Transfers under way a peer may list (it runs MAX_COPIES at once). */
export const MAX_PROGRESS_LISTED = 1024

const isInfohashList = (v: unknown): v is string[] => Array.isArray(v) && v.length <= MAX_CONTENTS && v.every(isInfoHash)
const isSize = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0
const isGeneration = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= 64

function parseProgress (list: unknown, max: number): CopyProgress[] | string {
  if (!Array.isArray(list) || list.length > max) return 'bad list of copies'
  const out: CopyProgress[] = []
  for (const c of list as unknown[]) {
    const p = c as Record<string, unknown>
    if (typeof c !== 'object' || c === null || !isInfoHash(p.infohash) || !isSize(p.done) || !isSize(p.total) || typeof p.started !== 'boolean') return 'bad copy'
    out.push({ infohash: p.infohash, done: p.done, total: p.total, started: p.started })
  }
  return out
}

/** The holdings in a peer's answer, `unchanged`, a delta (checked on its own; applyDelta checks it against what we hold), or what is wrong with it. */
export function parseHoldings (raw: unknown): Holdings | Unchanged | HoldingsDelta | string {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return 'not an object'
  const r = raw as Record<string, unknown>
  if (r.v !== 1) return `unknown version ${JSON.stringify(r.v)}`
  if (!isGeneration(r.generation)) return 'bad generation'
  if (r.unchanged === true) return { v: 1, unchanged: true, generation: r.generation }
  if (!isNodeId(r.nodeId)) return 'bad node id'
  if (!isSize(r.total) || !isSize(r.free) || !isSize(r.reserve)) return 'bad disk sizes'
  if (typeof r.retiring !== 'boolean') return 'bad retiring flag'
  if (r.delta === true) return parseDelta(r, r.nodeId, r.generation, r.total, r.free, r.reserve, r.retiring)
  if (!isInfohashList(r.complete)) return 'bad list of contents'
  if (r.cached !== undefined && !isInfohashList(r.cached)) return 'bad list of cached contents'
  if (r.dropping !== undefined && !(isInfohashList(r.dropping) && r.dropping.length <= MAX_DROPPING_LISTED)) return 'bad list of drops'
  const copying = parseProgress(r.copying, MAX_CONTENTS)
  if (typeof copying === 'string') return copying
  return { v: 1, nodeId: r.nodeId, generation: r.generation, total: r.total, free: r.free, reserve: r.reserve, complete: r.complete, cached: r.cached ?? [], copying, dropping: r.dropping ?? [], retiring: r.retiring }
}

function parseDelta (r: Record<string, unknown>, nodeId: string, generation: string, total: number, free: number, reserve: number, retiring: boolean): HoldingsDelta | string {
  if (!isGeneration(r.from) || r.from === generation) return 'bad delta base'
  const progress = parseProgress(r.progress, MAX_PROGRESS_LISTED)
  if (typeof progress === 'string') return progress
  if (progress.some(p => !p.started)) return 'bad copy'
  const changes = (v: unknown): SetChanges | string => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return 'bad delta lists'
    const o = v as Record<string, unknown>
    const out: Partial<SetChanges> = {}
    for (const name of SET_NAMES) {
      const list = o[name] ?? []
      if (!isInfohashList(list)) return `bad delta list of ${name}`
      out[name] = list
    }
    return out as SetChanges
  }
  const add = changes(r.add)
  if (typeof add === 'string') return add
  const remove = changes(r.remove)
  if (typeof remove === 'string') return remove
  return { v: 1, delta: true, nodeId, from: r.from, generation, total, free, reserve, retiring, progress, add, remove }
}

/** A peer's holdings as a node keeps them: sets, changed in place by its deltas. */
export interface PeerHoldings {
  nodeId: string
  generation: string
  total: number
  free: number
  reserve: number
  retiring: boolean
  complete: Set<string>
  cached: Set<string>
  dropping: Set<string>
  /** Copies it announced or is making. */
  copying: Set<string>
  /** Those of `copying` whose transfer has started, with their progress. */
  progress: CopyProgress[]
}

/** A whole document as sets. */
export function holdingsSets (h: Holdings): PeerHoldings {
  return {
    nodeId: h.nodeId,
    generation: h.generation,
    total: h.total,
    free: h.free,
    reserve: h.reserve,
    retiring: h.retiring,
    complete: new Set(h.complete),
    cached: new Set(h.cached ?? []),
    dropping: new Set(h.dropping ?? []),
    copying: new Set(h.copying.map(c => c.infohash)),
    progress: h.copying.filter(c => c.started)
  }
}

/**
 * Applies a delta to what we hold of its peer, in place, calling `changed` for every content of
 * `complete` added (+1) or removed (-1); refuses it whole (a string, nothing changed) when it
 * does not follow from what we hold: another base generation, another node, an addition of what
 * is there, a removal of what is not, lists beyond their bounds.
 */
export function applyDelta (h: PeerHoldings, d: HoldingsDelta, changed: (infohash: string, by: 1 | -1) => void): string | null {
  if (d.nodeId !== h.nodeId) return 'a delta of another node'
  if (d.from !== h.generation) return 'a delta from a generation we do not hold'
  let copyingAfter: (ih: string) => boolean = () => false
  for (const name of SET_NAMES) {
    const set = h[name]
    const add = d.add[name]
    const remove = d.remove[name]
    const removing = new Set(remove)
    if (removing.size !== remove.length || remove.some(ih => !set.has(ih))) return `a delta removes from ${name} what is not there`
    const adding = new Set(add)
    if (adding.size !== add.length || add.some(ih => set.has(ih) && !removing.has(ih))) return `a delta adds to ${name} what is there`
    const size = set.size - remove.length + add.length
    if (size > (name === 'dropping' ? MAX_DROPPING_LISTED : MAX_CONTENTS)) return `a delta makes the list of ${name} too long`
    if (name === 'copying') copyingAfter = ih => adding.has(ih) || (set.has(ih) && !removing.has(ih))
  }
  if (!d.progress.every(p => copyingAfter(p.infohash))) return 'a delta lists progress of a copy it does not announce'
  for (const name of SET_NAMES) {
    const set = h[name]
    for (const ih of d.remove[name]) {
      set.delete(ih)
      if (name === 'complete') changed(ih, -1)
    }
    for (const ih of d.add[name]) {
      set.add(ih)
      if (name === 'complete') changed(ih, 1)
    }
  }
  h.generation = d.generation
  h.total = d.total
  h.free = d.free
  h.reserve = d.reserve
  h.retiring = d.retiring
  h.progress = d.progress
  return null
}

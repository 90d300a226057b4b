// The space port of a real disk: writes claim room from the disk's guard (shared with the pieces
// fetched onto it), and `df` shows the volume's space once known, else this disk's own.
import fs from 'node:fs'
import type { SpaceGuard } from '../content/space-guard.js'
import type { SpacePort } from './ports.js'

/**
 * `volumeSpace`: every disk's space divided by the copy target, as `df` on the mount shows it;
 * null until known.
 */
export function diskSpace (guard: SpaceGuard, disk: string, volumeSpace: () => { total: number, free: number } | null): SpacePort {
  return {
    claim: guard.claim.bind(guard),
    statfs () {
      const local = fs.statfsSync(disk)
      const space = volumeSpace()
      if (space === null) return local
      const blocks = Math.floor(space.total / local.bsize)
      const free = Math.min(blocks, Math.floor(space.free / local.bsize))
      return { ...local, blocks, bfree: free, bavail: free }
    }
  }
}

// When a retiring disk is done: every content it holds has enough copies on other disks, and the
// peers it reaches have its tree (so nothing written here is lost with it).

export interface RetireView {
  /** Contents still waiting for enough copies elsewhere (null: not retiring). */
  retireRemaining: number | null
}

export interface SyncView {
  inSync: boolean
  peers: Array<{ lastError: string | null }>
}

export function retireDone (replication: RetireView, sync: SyncView): boolean {
  return replication.retireRemaining === 0 && sync.inSync && sync.peers.some(p => p.lastError === null)
}

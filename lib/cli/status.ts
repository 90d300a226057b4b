// What `swarmfs status` reports, read from the disk (and the lock) without disturbing a running node.
import fs from 'node:fs'
import { GitStore } from '../meta/git-store.js'
import { silentLogger } from '../log/index.js'
import { layout, lockHolder, readConfig } from '../node/disk.js'

export interface Status {
  volume: string
  volumeId: string
  nodeId: string
  disk: string
  mountPoint: string | null
  running: boolean
  pid: number | null
  head: string | null
  lastCommit: string | null
  contents: number
  contentBytes: number
  stagedFiles: number
  diskFreeBytes: number
}

export async function statusOf (disk: string): Promise<Status> {
  const config = readConfig(disk)
  const paths = layout(disk)
  const git = new GitStore(paths.meta, silentLogger)
  const head = await git.head()
  let lastCommit: string | null = null
  if (head !== null) {
    const { default: isogit } = await import('isomorphic-git')
    const { commit } = await isogit.readCommit({ fs, gitdir: paths.meta, oid: head })
    lastCommit = new Date(commit.committer.timestamp * 1000).toISOString()
  }
  let contents = 0
  let contentBytes = 0
  for (const name of fs.readdirSync(paths.content)) {
    contents++
    contentBytes += fs.statSync(`${paths.content}/${name}`).size
  }
  const pid = lockHolder(disk)
  const free = fs.statfsSync(disk)
  return {
    volume: config.volumeName,
    volumeId: config.volumeId,
    nodeId: config.nodeId,
    disk,
    mountPoint: config.mountPoint,
    running: pid !== null,
    pid,
    head,
    lastCommit,
    contents,
    contentBytes,
    stagedFiles: fs.readdirSync(paths.staging).length,
    diskFreeBytes: free.bavail * free.bsize
  }
}

const gib = (n: number): string => `${(n / 2 ** 30).toFixed(2)} GiB`

export function formatStatus (s: Status): string {
  return [
    `volume:      ${s.volume} (id ${s.volumeId})`,
    `node:        ${s.nodeId} ${s.running ? `running (pid ${s.pid ?? '?'})` : 'stopped'}`,
    `disk:        ${s.disk} (${gib(s.diskFreeBytes)} free)`,
    `mount:       ${s.mountPoint ?? '(none)'}`,
    `head:        ${s.head ?? '(no commit)'}${s.lastCommit !== null ? ` at ${s.lastCommit}` : ''}`,
    `contents:    ${s.contents} files, ${gib(s.contentBytes)}${s.stagedFiles > 0 ? `; ${s.stagedFiles} being written` : ''}`
  ].join('\n') + '\n'
}

// What `swarmfs status` prints from a status (formatStatus is pure): the sync line with peers that
// cannot be reached, the mount of the running node, counts in the singular.
import t from 'tap'
import { formatStatus, type Status } from '../../lib/cli/status.js'

const peer = (nodeId: string, lastError: string | null) => ({ nodeId, host: '10.0.0.2', httpPort: 1, head: 'a'.repeat(40), lastSeen: 0, lastError })

function status (over: Partial<Status> = {}): Status {
  return {
    volume: 'v',
    volumeId: 'f'.repeat(40),
    nodeId: '0123456789abcdef',
    disk: '/d',
    mountPoint: '/m',
    running: true,
    retired: false,
    pid: 1,
    head: null,
    lastCommit: null,
    contents: 1,
    contentBytes: 2048,
    stagedFiles: 0,
    cachedContents: 1,
    cachedBytes: 0,
    diskFreeBytes: 0,
    live: { head: null, inSync: true, peers: [peer('1111111111111111', null), peer('2222222222222222', null)] },
    ...over
  }
}

t.test('the sync line says when peers cannot be reached', async t => {
  t.match(formatStatus(status()), /^sync: +in sync with every peer \(2 peers\)$/m, 'every peer reached and in sync')
  const oneDown = status({ live: { head: null, inSync: true, peers: [peer('1111111111111111', null), peer('2222222222222222', 'ENETUNREACH')] } })
  t.match(formatStatus(oneDown), /^sync: +in sync with the peers it reaches; 1 unreachable \(2 peers\)$/m, 'one of two unreachable')
  const allDown = status({ live: { head: null, inSync: true, peers: [peer('1111111111111111', 'ETIMEDOUT')] } })
  t.match(formatStatus(allDown), /^sync: +no peer reachable \(1 peer\)$/m, 'none reachable')
  const behind = status({ live: { head: null, inSync: false, peers: [peer('1111111111111111', 'ETIMEDOUT')] } })
  t.match(formatStatus(behind), /^sync: +catching up \(1 peer\)$/m, 'behind')
})

t.test('mount, node state and counts', async t => {
  t.match(formatStatus(status()), /^mount: +\/m$/m, 'the running node\'s mount')
  t.match(formatStatus(status({ running: false, live: null })), /^mount: +\/m \(when started\)$/m, 'a stopped node: where a start mounts')
  t.match(formatStatus(status({ mountPoint: null })), /^mount: +\(none\)$/m, 'no mount')
  t.match(formatStatus(status({ running: false, retired: true, live: null })), /^node: +0123456789abcdef retired/m, 'a retired disk')
  t.match(formatStatus(status()), /^contents: +1 file, 2\.0 KiB$/m, 'one file')
  t.match(formatStatus(status()), /^cache: +1 partly fetched file, 0 B/m, 'one partly fetched file')
})

// A peer that holds the volume key but serves a crafted repository: a real node syncing with it
// must take the honest entries, refuse the others one by one (and log each), and touch nothing
// outside its own disk. The same peer's malformed reports of bad pieces are refused.
import fs from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { createNetwork, outputOf, stopProcess, waitForLine } from '../helpers/netns.js'
import { CLI, isMounted, ROOT, run } from '../helpers/volume.js'

const FAKE = join(ROOT, 'test', 'cluster', 'fixtures', 'fake-peer.mjs')
const PEER_REQUEST = join(ROOT, 'test', 'cluster', 'fixtures', 'peer-request.mjs')

t.test('entries a hostile peer serves are refused one by one', async t => {
  const net = await createNetwork(t, { hosts: 2 })
  const [victimHost, fakeHost] = net.hosts
  const base = fs.mkdtempSync(join(os.tmpdir(), 'swarmfs-hostile-'))
  const disk = join(base, 'disk')
  const mnt = join(base, 'mnt')
  t.teardown(async () => {
    await net.cleanup()
    if (isMounted(mnt)) await run('fusermount', ['-uz', mnt])
    fs.rmSync(base, { recursive: true, force: true })
  })

  const init = await net.exec(victimHost, process.execPath, [CLI, 'init', 'media', '--disk', disk, '--mount', mnt, '--no-start'])
  t.equal(init.code, 0, 'init', { stderr: init.stderr })
  const key = /invite: swarmfs:\/\/media\/(\S+)/.exec(init.stdout)?.[1] ?? ''
  t.ok(key.length > 0, 'the invite carries the key')

  const fake = net.spawn(fakeHost, process.execPath, [FAKE, join(base, 'fake'), key, fakeHost.address])
  const [, port, fakeHead] = (await waitForLine(fake, /^listening (\d+) ([0-9a-f]{40})$/m, 30_000)).trim().split(' ')

  const node = net.spawn(victimHost, process.execPath, [CLI, 'start', '--disk', disk, '--peer', `${fakeHost.address}:${port}`, '-v'])
  await waitForLine(node, /running/, 60_000)
  // The node merges the fake head (there is no common history) as soon as it has asked the peer.
  let merged = false
  for (let i = 0; i < 300 && !merged; i++) {
    const parents = await run('git', ['--git-dir', join(disk, 'meta'), 'log', '-1', '--format=%P', 'main'])
    merged = parents.stdout.includes(fakeHead)
    if (!merged) await new Promise(resolve => setTimeout(resolve, 200))
  }
  t.ok(merged, 'the node merged the peer\'s head')

  const listing = fs.readdirSync(mnt).sort()
  t.same(listing, ['good-dir', 'good.txt'], 'only the honest entries appear in the mount')
  t.same(fs.readdirSync(join(mnt, 'good-dir')), ['inside.txt'], 'an honest directory keeps its honest entries only')
  t.notOk(fs.existsSync(join(base, 'escaped.txt')) || fs.existsSync(join(disk, '..', 'escaped.txt')), 'nothing was written outside the disk')

  const tree = await run('git', ['--git-dir', join(disk, 'meta'), 'ls-tree', '-r', '--name-only', 'main'])
  t.same(tree.stdout.trim().split('\n').sort(), ['.swarmfs-dir', 'good-dir/.swarmfs-dir', 'good-dir/inside.txt', 'good.txt'], 'the merge commit holds only the honest entries')
  // (The peer's own commit stays in history as a parent of the merge, so `git fsck` still reports
  // its trees; what the node serves and mounts is the merge's tree, checked above.)
  const own = await run('git', ['--git-dir', join(disk, 'meta'), 'ls-tree', '-r', '-t', 'main'])
  t.notOk(/\t(\.\.?|submodule)$/m.test(own.stdout), 'no hostile entry is reachable from the merged tree')

  // Reports of bad pieces (POST /bad-piece) that are malformed, or name what the node does not
  // hold: refused or answered, and the node goes on.
  const { httpPort } = JSON.parse(fs.readFileSync(join(disk, 'node.json'), 'utf8')) as { httpPort: number }
  const report = async (body: string): Promise<string> => {
    const r = await net.exec(fakeHost, process.execPath, [PEER_REQUEST, victimHost.address, String(httpPort), key, 'POST', '/bad-piece', body])
    return r.stdout.replace(/\s+/g, ' ').trim()
  }
  t.match(await report('{"infohash":'), /not valid JSON 400$/, 'a report that is not JSON: 400')
  t.match(await report('{"infohash":"zz","piece":1}'), /infohash must be 40 lowercase hex characters 400$/, 'a malformed infohash: 400')
  t.match(await report(`{"infohash":"${'a'.repeat(40)}","piece":-3}`), /piece must be a non-negative integer 400$/, 'a negative piece: 400')
  t.equal(await report(`{"infohash":"${'a'.repeat(40)}","piece":0}`), '{"copy":"not held"} 200', 'a content the node does not know: not held')
  t.equal(await report(`{"infohash":"${'a'.repeat(40)}","piece":9007199254740991}`), '{"copy":"not held"} 200', 'a piece far past any content: not held')
  const status = await net.exec(fakeHost, process.execPath, [PEER_REQUEST, victimHost.address, String(httpPort), key, 'GET', '/status'])
  t.match(status.stdout.trim(), / 200$/, 'the node still answers after them')

  const stop = await stopProcess(node, 30_000)
  t.equal(stop.code, 0, 'the node stops cleanly')
  const log = outputOf(node).stderr
  for (const what of ['..', 'a/b', 'bad-hash.txt', 'bad-json.txt', 'submodule', '.git']) {
    t.ok(log.split('\n').some(line => /"level":"warn"/.test(line) && /refus/i.test(line) && line.includes(JSON.stringify(what).slice(1, -1))), `the refusal of ${JSON.stringify(what)} is logged`)
  }
})

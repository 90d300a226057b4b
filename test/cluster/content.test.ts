// Contents move between nodes as torrents: a file written on one mount is read on another with
// real tools (cat, sha256sum, dd at offsets), a changed copy goes back, and a read whose only
// holder is gone fails with EIO while the rest of the mount keeps answering.
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { createNetwork, stopProcess, waitForLine, type Network, type NetHost, until } from '../helpers/netns.js'
import { CLI, isMounted, listedWith, prng, randomBytesSeeded, run } from '../helpers/volume.js'

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

t.test('contents written on one node are read on another', async t => {
  const net: Network = await createNetwork(t, { hosts: 2 })
  const [hostA, hostB]: NetHost[] = net.hosts
  const base = fs.mkdtempSync(join(os.tmpdir(), 'swarmfs-content-'))
  const dir = (n: string): string => join(base, n)
  const mntA = dir('mnt-a')
  const mntB = dir('mnt-b')
  t.teardown(async () => {
    await net.cleanup()
    for (const m of [mntA, mntB]) if (isMounted(m)) await run('fusermount', ['-uz', m])
    fs.rmSync(base, { recursive: true, force: true })
  })

  const a = net.spawn(hostA, process.execPath, [CLI, 'init', 'media', '--disk', dir('disk-a'), '--mount', mntA])
  const invite = (await waitForLine(a, /invite: (\S+)/, 60_000)).match(/invite: (\S+)/)?.[1] ?? ''
  await waitForLine(a, /running/, 60_000)
  // Reads of what one node holds: no replication behind the test's back (lonely.bin stays A's alone).
  const copies = await net.exec(hostA, process.execPath, [CLI, 'volume', '--copies', '1', '--disk', dir('disk-a')], { timeoutMs: 30_000 })
  t.equal(copies.code, 0, 'copy target 1 for this volume', { stderr: copies.stderr })
  const rand = prng(7)
  const big = randomBytesSeeded(rand, 24 * 1024 * 1024 + 4321)
  fs.writeFileSync(join(mntA, 'big.bin'), big)
  fs.writeFileSync(join(mntA, 'one-byte'), 'x')
  fs.writeFileSync(join(mntA, 'empty'), '')
  const part = randomBytesSeeded(rand, 48 * 1024 * 1024)
  fs.writeFileSync(join(mntA, 'part.bin'), part)

  const b = net.spawn(hostB, process.execPath, [CLI, 'join', invite, '--disk', dir('disk-b'), '--mount', mntB, '--wait', '60'])
  await waitForLine(b, /running/, 90_000)
  await until('big.bin listed on B', () => fs.existsSync(join(mntB, 'big.bin')) && fs.statSync(join(mntB, 'big.bin')).size === big.length)

  const sum = await run('sha256sum', [join(mntB, 'big.bin')], { timeoutMs: 120_000 })
  t.equal(sum.stdout.split(' ')[0], sha256(big), 'sha256sum on B reads the bytes written on A', { stderr: sum.stderr })
  const small = await run('cat', [join(mntB, 'one-byte'), join(mntB, 'empty')])
  t.equal(small.stdout, 'x', 'a one-byte and an empty file read back')
  for (const offset of [0, 1, 4095, 1024 * 1024 - 1, 13 * 1024 * 1024 + 17, big.length - 5000]) {
    const dd = await run('sh', ['-c', `dd if="${join(mntB, 'big.bin')}" bs=1 skip=${offset} count=4096 status=none | sha256sum`])
    t.equal(dd.stdout.split(' ')[0], sha256(big.subarray(offset, offset + 4096)), `dd at offset ${offset}`)
  }

  // Part of a file read: its pieces stay on B's disk as a cache, which status reports.
  await until('part.bin listed on B', () => listedWith(join(mntB, 'part.bin'), part.length))
  const partRead = await run('sh', ['-c', `dd if="${join(mntB, 'part.bin')}" bs=1M skip=30 count=1 status=none | sha256sum`])
  t.equal(partRead.stdout.split(' ')[0], sha256(part.subarray(30 * 1024 * 1024, 31 * 1024 * 1024)), 'one MiB in the middle of a 48 MiB file')
  const statusB = await net.exec(hostB, process.execPath, [CLI, 'status', '--disk', dir('disk-b')], { timeoutMs: 30_000 })
  t.match(statusB.stdout, /^cache: +1 partly fetched file, [1-9][0-9.]* MiB /m, 'status shows the pieces fetched for it', { stdout: statusB.stdout })

  // A change made on B (an append to a content A wrote) comes back to A.
  const appended = Buffer.concat([big, Buffer.from('appended on B\n')])
  const app = await run('sh', ['-c', `printf 'appended on B\\n' >> "${join(mntB, 'big.bin')}"`])
  t.equal(app.code, 0, 'append on B to a file written on A', { stderr: app.stderr })
  await until('the append is listed on A', () => fs.statSync(join(mntA, 'big.bin')).size === appended.length)
  const back = await run('sha256sum', [join(mntA, 'big.bin')], { timeoutMs: 120_000 })
  t.equal(back.stdout.split(' ')[0], sha256(appended), 'A reads the bytes B wrote')

  // Only A holds this one; with A gone, B's read fails with EIO and B's mount keeps answering.
  const lonely = randomBytesSeeded(rand, 3 * 1024 * 1024)
  fs.writeFileSync(join(mntA, 'lonely.bin'), lonely)
  await until('lonely.bin listed on B', () => fs.existsSync(join(mntB, 'lonely.bin')) && fs.statSync(join(mntB, 'lonely.bin')).size === lonely.length)
  const stopped = await stopProcess(a, 30_000)
  t.equal(stopped.code, 0, 'A stops')
  const reading = run('dd', [`if=${join(mntB, 'lonely.bin')}`, 'of=/dev/null', 'bs=128k'], { timeoutMs: 90_000 })
  const ls = await run('ls', [mntB], { timeoutMs: 10_000 })
  t.equal(ls.code, 0, 'ls on B answers while a read waits for a holder')
  const failed = await reading
  t.not(failed.code, 0, 'the read of a content no live node holds fails')
  t.match(failed.stderr, /Input\/output error/, '... with EIO')

  const stoppedB = await stopProcess(b, 30_000)
  t.equal(stoppedB.code, 0, 'B stops')
})

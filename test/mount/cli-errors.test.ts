// Bad input to the CLI gets one line on stderr starting with "swarmfs:" and a non-zero exit, and
// creates nothing: a disk or mount point that cannot be made (under /proc, under a file), a disk
// that is not one, a wrong flag, a number out of its range, a mount point that cannot be one (also
// through a symlink; checked before init or join writes anything), an address that is not this
// machine's, a start on a disk whose node runs. A retired disk says what to do. What changes a disk
// or the volume comes only over the node's own socket, never from a peer, even one with the key.
import t from 'tap'
import fs from 'node:fs'
import https from 'node:https'
import { join } from 'node:path'
import { CLI, cli, run, startHelperProcess, startVolume, tmpDir } from '../helpers/volume.js'
import { volumeTls } from '../../lib/transport/volume-tls.js'

/** Bounds a hang only: every command here fails at once. */
const DEADLINE_MS = 30_000

t.test('directories that cannot be made, disks that are not, wrong flags', async t => {
  const dir = await tmpDir(t)
  const file = join(dir, 'a-file')
  fs.writeFileSync(file, 'x')
  const cases: Array<{ args: string[], code: number, error: RegExp }> = [
    // Node's recursive mkdir spun forever at full CPU on these (a parent that exists but refuses children with ENOENT).
    { args: ['init', 'v', '--disk', '/proc/swarmfs-no-such-dir/disk', '--no-start'], code: 1, error: /^swarmfs: cannot create the disk directory \/proc\/swarmfs-no-such-dir\/disk: ENOENT/ },
    { args: ['init', 'v', '--disk', '/proc/swarmfs-no-such-dir', '--no-start'], code: 1, error: /^swarmfs: cannot create the disk directory \/proc\/swarmfs-no-such-dir: ENOENT/ },
    { args: ['init', 'v', '--disk', join(file, 'disk'), '--no-start'], code: 1, error: /^swarmfs: cannot create the disk directory .*: ENOTDIR/ },
    { args: ['start', '--disk', join(dir, 'none')], code: 1, error: /^swarmfs: .* is not a swarmfs disk/ },
    { args: ['init', 'v', '--disk', join(dir, 'disk'), '--bogus'], code: 2, error: /^swarmfs: unknown option '--bogus'; see "swarmfs --help"$/m },
    { args: ['init', 'v', '--dsk', join(dir, 'disk')], code: 2, error: /^swarmfs: unknown option '--dsk' \(Did you mean --disk\?\)/ },
    { args: ['stat'], code: 2, error: /^swarmfs: unknown command 'stat' \(Did you mean start\?\)/ },
    // A reserve of the whole disk or more would leave the node no room for any copy or read.
    { args: ['init', 'v', '--disk', join(dir, 'disk'), '--reserve', '100%', '--no-start'], code: 1, error: /^swarmfs: --reserve 100% is not less than the disk's size \(.*\): the node could keep no copy and cache no read; give less$/m },
    { args: ['init', 'v', '--disk', join(dir, 'disk'), '--reserve', '1000T', '--no-start'], code: 1, error: /^swarmfs: --reserve 1000T is not less than the disk's size/ }
  ]
  for (const c of cases) {
    const r = await cli(c.args, { timeoutMs: DEADLINE_MS })
    const what = `swarmfs ${c.args.join(' ')}`
    t.equal(r.code, c.code, `${what}: exit ${c.code}`, { signal: r.signal, stderr: r.stderr })
    t.equal(r.stderr.trim().split('\n').length, 1, `${what}: one line`, { stderr: r.stderr })
    t.match(r.stderr, c.error, `${what}: says what went wrong`)
  }
  t.same(fs.readdirSync(dir).sort(), ['a-file'], 'nothing was created')
})

t.test('a mount point that cannot be made stops the node with one line, and the disk starts again', async t => {
  const dir = await tmpDir(t)
  const disk = join(dir, 'disk')
  t.equal((await cli(['init', 'v', '--disk', disk, '--no-start'], { timeoutMs: DEADLINE_MS })).code, 0, 'a volume made without starting it')
  const r = await cli(['start', '--disk', disk, '--mount', '/proc/swarmfs-no-such-dir/mnt'], { timeoutMs: DEADLINE_MS })
  t.equal(r.code, 1, 'exit 1', { signal: r.signal, stderr: r.stderr })
  t.match(r.stderr, /^swarmfs: cannot create the mount point \/proc\/swarmfs-no-such-dir\/mnt: ENOENT/m, 'says the mount point cannot be made')
  const again = await cli(['status', '--disk', disk], { timeoutMs: DEADLINE_MS })
  t.match(again.stdout, /stopped/, 'the node is not left running (the disk is free for a start)', { stdout: again.stdout })
})

t.test('a mount point init cannot use is refused before the disk is made', async t => {
  const dir = await tmpDir(t)
  const disk = join(dir, 'disk')
  const full = join(dir, 'full')
  fs.mkdirSync(full)
  fs.writeFileSync(join(full, 'x'), 'x')
  const other = join(dir, 'tmpfs')
  fs.mkdirSync(other)
  const mounted = await run('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', other])
  t.equal(mounted.code, 0, 'a tmpfs mounted where a mount point could be', { stderr: mounted.stderr })
  t.teardown(async () => { await run('umount', ['-l', other]) })
  const cases: Array<{ mount: string, error: RegExp }> = [
    { mount: full, error: /^swarmfs: mount point .*\/full is not empty; choose an empty directory$/m },
    { mount: other, error: /^swarmfs: .*\/tmpfs is where a tmpfs filesystem is mounted; choose an empty directory that is not a mount point$/m },
    { mount: join(disk, 'mnt'), error: /^swarmfs: the mount point .* and the disk directory .* must be apart/ },
    { mount: dir, error: /^swarmfs: the mount point .* and the disk directory .* must be apart/ },
    { mount: join(full, 'x'), error: /^swarmfs: mount point .*\/x is not a directory/ }
  ]
  for (const c of cases) {
    for (const args of [['init', 'v', '--disk', disk, '--mount', c.mount], ['join', 'swarmfs://v/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', '--disk', disk, '--mount', c.mount, '--wait', '1']]) {
      const r = await cli(args, { timeoutMs: DEADLINE_MS })
      const what = `swarmfs ${args[0]} --mount ${c.mount}`
      t.equal(r.code, 1, `${what}: exit 1`, { stderr: r.stderr, stdout: r.stdout })
      t.match(r.stderr, c.error, `${what}: says what is wrong with the mount point`)
      t.equal(r.stdout, '', `${what}: says nothing else`)
      t.notOk(fs.existsSync(disk), `${what}: no disk was made`)
    }
  }
  t.same(fs.readdirSync(full), ['x'], 'the non-empty directory is untouched')

  const ok = await cli(['init', 'v', '--disk', disk, '--mount', join(dir, 'mnt'), '--no-start'], { timeoutMs: DEADLINE_MS })
  t.equal(ok.code, 0, 'with a good mount point the same command works', { stderr: ok.stderr })
  t.ok(fs.statSync(join(dir, 'mnt')).isDirectory(), '... and the mount point is made')
})

t.test('addresses, stored settings, the invite again, a disk never started, a retired disk', async t => {
  const dir = await tmpDir(t)
  const disk = join(dir, 'disk')
  for (const [address, error] of [['999.1.1.1', /^swarmfs: invalid --address "999\.1\.1\.1": give an IPv4 address of this machine/], ['192.0.2.7', /^swarmfs: --address 192\.0\.2\.7 is not an address of this machine; choose one of: .*127\.0\.0\.1/]] as const) {
    const r = await cli(['init', 'v', '--disk', disk, '--address', address, '--no-start'], { timeoutMs: DEADLINE_MS })
    t.equal(r.code, 1, `--address ${address}: exit 1`, { stderr: r.stderr })
    t.equal(r.stderr.trim().split('\n').length, 1, `--address ${address}: one line`, { stderr: r.stderr })
    t.match(r.stderr, error, `--address ${address}: says what is wrong`)
  }
  t.notOk(fs.existsSync(disk), 'no disk was made')

  const made = await cli(['init', 'v', '--disk', disk, '--peer', '127.0.0.1:9', '--address', '127.0.0.1', '--no-start'], { timeoutMs: DEADLINE_MS })
  t.equal(made.code, 0, 'init --no-start with --peer and --address', { stderr: made.stderr })
  const config = JSON.parse(fs.readFileSync(join(disk, 'node.json'), 'utf8')) as { peers?: string[], address?: string, volumeKey: string }
  t.same([config.peers, config.address], [['127.0.0.1:9'], '127.0.0.1'], 'both are kept for later starts, as join keeps them')
  const invite = /invite: (\S+)/.exec(made.stdout)?.[1]
  const again = await cli(['invite', '--disk', disk], { timeoutMs: DEADLINE_MS })
  t.equal(again.stdout, `${invite ?? '(init printed none)'}\n`, 'swarmfs invite prints the invite init printed')
  const status = await cli(['status', '--disk', disk], { timeoutMs: DEADLINE_MS })
  t.equal(status.code, 0, 'status of a disk never started', { stderr: status.stderr })
  t.match(status.stdout, /^node: +[0-9a-f]{16} stopped$/m, '... says the node is stopped')
  t.match(status.stdout, /^contents: +0 files, 0 B$/m, '... and that it holds nothing')
  // Pieces a read fetched: a sparse file, its bitfield and (a write of the bitfield under way) the
  // bitfield's temporary. One partly fetched file, as big as the blocks it takes.
  const partial = join(disk, 'partial')
  const ih = 'ab'.repeat(20)
  fs.mkdirSync(partial, { recursive: true })
  const sparse = fs.openSync(join(partial, ih), 'w')
  fs.writeSync(sparse, Buffer.alloc(1024 * 1024, 1), 0, 1024 * 1024, 30 * 1024 * 1024)
  fs.closeSync(sparse)
  fs.writeFileSync(join(partial, `${ih}.bitfield`), Buffer.alloc(6))
  fs.writeFileSync(join(partial, `${ih}.bitfield.0123456789ab.tmp`), Buffer.alloc(6))
  const cached = await cli(['status', '--disk', disk], { timeoutMs: DEADLINE_MS })
  t.match(cached.stdout, /^cache: +1 partly fetched file, 1\.0 MiB /m, 'status counts a partly fetched file once, with its blocks, whatever files are beside it', { stdout: cached.stdout })
  fs.rmSync(partial, { recursive: true })
  const scrub = await cli(['scrub', '--disk', disk], { timeoutMs: DEADLINE_MS })
  t.equal(scrub.code, 1, 'scrub of a disk whose node is not running: exit 1')
  t.match(scrub.stderr, /^swarmfs: the node of .* is not running; start it first with "swarmfs start --disk .*"\n$/, '... in one line that says what to do')
  const version = await cli(['--version'], { timeoutMs: DEADLINE_MS })
  t.match(version.stdout, /^\d+\.\d+\.\d+\n$/, 'swarmfs --version prints the version')

  // What a finished retire leaves in node.json.
  fs.writeFileSync(join(disk, 'node.json'), JSON.stringify({ ...config, retired: true }))
  for (const args of [['start', '--disk', disk], ['join', invite ?? '', '--disk', disk], ['volume', '--disk', disk], ['retire', '--disk', disk], ['scrub', '--disk', disk]]) {
    const r = await cli(args, { timeoutMs: DEADLINE_MS })
    t.equal(r.code, 1, `${args[0]} on a retired disk: exit 1`, { stderr: r.stderr })
    t.match(r.stderr, /^swarmfs: .* was retired from volume "v" .* cannot run again; to add it to the volume again, delete it \(rm -r .*\) and run "swarmfs join <invite> --disk .*"$/m, `${args[0]} on a retired disk: says it cannot run, and how to use the directory again`)
  }
  const retired = await cli(['status', '--disk', disk], { timeoutMs: DEADLINE_MS })
  t.match(retired.stdout, /^node: +[0-9a-f]{16} retired/m, 'status says the disk is retired')
})

t.test('every numeric flag goes through one parser: one line saying what is wrong and what is taken, nothing written', async t => {
  const dir = await tmpDir(t)
  const disk = join(dir, 'disk')
  const invite = 'swarmfs://v/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'
  const cases: Array<{ args: string[], error: RegExp }> = [
    // Number('') is 0 and Number('1e9') is a billion: both were taken.
    { args: ['volume', '--disk', disk, '--grace-period', ''], error: /^swarmfs: invalid --grace-period "": it is empty; give a number of seconds from 0 to 2073600 \(24 days\)$/m },
    { args: ['volume', '--disk', disk, '--grace-period', '1e9'], error: /^swarmfs: invalid --grace-period "1e9": exponent forms are not taken; give a number of seconds/ },
    { args: ['volume', '--disk', disk, '--grace-period', '-5'], error: /^swarmfs: invalid --grace-period "-5": it is negative; give a number of seconds/ },
    { args: ['volume', '--disk', disk, '--grace-period', '2073601'], error: /^swarmfs: invalid --grace-period "2073601": too large; give a number of seconds from 0 to 2073600/ },
    { args: ['volume', '--disk', disk, '--grace-period', '0x10'], error: /^swarmfs: invalid --grace-period "0x10": it is not a plain decimal number/ },
    { args: ['volume', '--disk', disk, '--copies', '2.5'], error: /^swarmfs: invalid --copies "2\.5": it is not a whole number; give a whole number of disks from 1 to 16$/m },
    { args: ['volume', '--disk', disk, '--copies', '0'], error: /^swarmfs: invalid --copies "0": too small; give a whole number of disks from 1 to 16$/m },
    { args: ['volume', '--disk', disk, '--copies', 'Infinity'], error: /^swarmfs: invalid --copies "Infinity": it is not a plain decimal number/ },
    // 1e10 s overflowed setTimeout, which then fired at once: join gave up without looking.
    { args: ['join', invite, '--disk', disk, '--wait', '1e10'], error: /^swarmfs: invalid --wait "1e10": exponent forms are not taken; give a whole number of seconds from 1 to 86400 \(a day\)$/m },
    { args: ['join', invite, '--disk', disk, '--wait', '10000000000'], error: /^swarmfs: invalid --wait "10000000000": too large; give a whole number of seconds from 1 to 86400/ },
    { args: ['join', invite, '--disk', disk, '--wait', ''], error: /^swarmfs: invalid --wait "": it is empty/ },
    { args: ['join', invite, '--disk', disk, '--wait', '0'], error: /^swarmfs: invalid --wait "0": too small/ },
    { args: ['init', 'v', '--disk', disk, '--no-start', '--peer', '127.0.0.1:99999'], error: /^swarmfs: invalid port of --peer 127\.0\.0\.1:99999 "99999": too large; give a port from 1 to 65535, as in host:port$/m },
    { args: ['init', 'v', '--disk', disk, '--no-start', '--peer', '127.0.0.1:1e3'], error: /^swarmfs: invalid port of --peer 127\.0\.0\.1:1e3 "1e3": exponent forms are not taken/ },
    { args: ['join', invite, '--disk', disk, '--peer', '127.0.0.1:'], error: /^swarmfs: invalid port of --peer 127\.0\.0\.1: "": it is empty/ },
    { args: ['init', 'v', '--disk', disk, '--no-start', '--reserve', '1e9'], error: /^swarmfs: invalid --reserve "1e9": exponent forms are not taken; give bytes, or a number with K, M, G, T \(at most 8191T\) or %, e\.g\. 2G$/m },
    { args: ['init', 'v', '--disk', disk, '--no-start', '--reserve', '-1G'], error: /^swarmfs: invalid --reserve "-1G": it is negative; give bytes/ },
    { args: ['init', 'v', '--disk', disk, '--no-start', '--reserve', 'G'], error: /^swarmfs: invalid --reserve "G": no number before the unit; give bytes/ },
    { args: ['init', 'v', '--disk', disk, '--no-start', '--reserve', '101%'], error: /^swarmfs: invalid --reserve "101%": too large; give a percentage from 0 to 100%, or a size such as 2G$/m },
    { args: ['init', 'v', '--disk', disk, '--no-start', '--reserve', '9000T'], error: /^swarmfs: invalid --reserve "9000T": too large; give bytes/ },
    { args: ['init', 'v', '--disk', disk, '--no-start', '--reserve', '99999999999999999999'], error: /^swarmfs: invalid --reserve "99999999999999999999": too large; give bytes/ }
  ]
  for (const c of cases) {
    const r = await cli(c.args, { timeoutMs: DEADLINE_MS })
    const what = `swarmfs ${c.args.map(a => a === '' ? "''" : a).join(' ')}`
    t.equal(r.code, 1, `${what}: exit 1`, { signal: r.signal, stderr: r.stderr })
    t.equal(r.stderr.trim().split('\n').length, 1, `${what}: one line`, { stderr: r.stderr })
    t.match(r.stderr, c.error, `${what}: says what is wrong and what is taken`)
  }
  t.same(fs.readdirSync(dir), [], 'nothing was created')

  // A disk that exists: a bad number to start changes nothing in node.json either.
  t.equal((await cli(['init', 'v', '--disk', disk, '--no-start'], { timeoutMs: DEADLINE_MS })).code, 0, 'a volume made without starting it')
  const before = fs.readFileSync(join(disk, 'node.json'), 'utf8')
  for (const args of [['start', '--disk', disk, '--no-mount', '--reserve', '1e3'], ['start', '--disk', disk, '--no-mount', '--peer', 'host:0'], ['start', '--disk', disk, '--no-mount', '--reserve', '100%']]) {
    const r = await cli(args, { timeoutMs: DEADLINE_MS })
    t.equal(r.code, 1, `swarmfs ${args.join(' ')}: exit 1`, { stderr: r.stderr })
    t.match(r.stderr, /^swarmfs: (invalid|--reserve 100% is not less)/, `swarmfs ${args.join(' ')}: says why`)
  }
  t.equal(fs.readFileSync(join(disk, 'node.json'), 'utf8'), before, 'node.json is as it was')
})

t.test('a mount point in the disk through a symlink is refused, whether the path exists or not', async t => {
  const dir = await tmpDir(t)
  const disk = join(dir, 'disk')
  t.equal((await cli(['init', 'v', '--disk', disk, '--no-start'], { timeoutMs: DEADLINE_MS })).code, 0, 'a volume made without starting it')
  fs.mkdirSync(join(disk, 'inside'))
  fs.symlinkSync(join(disk, 'inside'), join(dir, 'into-disk'))
  fs.symlinkSync(disk, join(dir, 'disk-link'))
  const before = fs.readFileSync(join(disk, 'node.json'), 'utf8')
  // An existing symlink to a directory in the disk; a path not yet made below a symlink to the disk.
  for (const mount of [join(dir, 'into-disk'), join(dir, 'disk-link', 'mnt', 'deeper')]) {
    const r = await cli(['start', '--disk', disk, '--mount', mount, '--reserve', '1G'], { timeoutMs: DEADLINE_MS })
    t.equal(r.code, 1, `start --mount ${mount}: exit 1`, { stderr: r.stderr, stdout: r.stdout })
    t.equal(r.stderr.trim().split('\n').length, 1, `start --mount ${mount}: one line`, { stderr: r.stderr })
    t.match(r.stderr, /^swarmfs: the mount point .* and the disk directory .* must be apart \(neither inside the other\) \(through symlinks: .*\); choose another mount point$/m, `start --mount ${mount}: says the two are not apart, and through what`)
  }
  t.notOk(fs.existsSync(join(disk, 'mnt')), 'no mount point was made in the disk')
  t.equal(fs.readFileSync(join(disk, 'node.json'), 'utf8'), before, 'node.json is as it was (the --reserve was not written)')
  // A disk not made yet, and a mount point in it through a symlink to their common parent.
  fs.symlinkSync(dir, join(dir, 'dir-link'))
  const other = join(dir, 'other')
  const r = await cli(['init', 'w', '--disk', other, '--mount', join(dir, 'dir-link', 'other', 'mnt')], { timeoutMs: DEADLINE_MS })
  t.equal(r.code, 1, 'init with a mount point inside its disk-to-be through a symlink: exit 1', { stderr: r.stderr })
  t.match(r.stderr, /must be apart/, '... says why')
  t.notOk(fs.existsSync(other), '... and no disk was made')
  // A disk reached through a symlink to the mount point's parent, the other way round.
  fs.mkdirSync(join(dir, 'mnts'))
  fs.symlinkSync(join(dir, 'mnts'), join(dir, 'mnts-link'))
  const r2 = await cli(['init', 'x', '--disk', join(dir, 'mnts-link', 'x-disk', 'deep'), '--mount', join(dir, 'mnts', 'x-disk')], { timeoutMs: DEADLINE_MS })
  t.equal(r2.code, 1, 'init with a disk inside the mount point through a symlink: exit 1', { stderr: r2.stderr })
  t.match(r2.stderr, /must be apart/, '... says why')
  t.same(fs.readdirSync(join(dir, 'mnts')), [], '... and made nothing')
})

/** A request to the peer port as a peer makes it: over the volume's TLS, proving the key. */
function asPeer (port: number, key: string, method: string, path: string, body?: unknown): Promise<{ status: number, body: string }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? '' : JSON.stringify(body)
    const req = https.request({ ...volumeTls(key).client, agent: false, host: '127.0.0.1', port, method, path, timeout: DEADLINE_MS, headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload) } }, res => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => { text += d })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }))
    })
    req.on('timeout', () => req.destroy(new Error('no answer')))
    req.on('error', reject)
    req.end(payload)
  })
}

t.test('a peer with the key cannot retire the disk, change the volume or scrub; the owner\'s CLI does it over a 0600 socket', async t => {
  const vol = await startVolume(t)
  const config = JSON.parse(fs.readFileSync(join(vol.disk, 'node.json'), 'utf8')) as { volumeKey: string, httpPort: number }
  const sock = join(vol.disk, 'node.sock')
  const st = fs.statSync(sock)
  t.ok(st.isSocket(), 'the running node listens on <disk>/node.sock')
  t.equal(st.mode & 0o777, 0o600, '... of mode 0600')
  t.same(fs.readdirSync(vol.disk).filter(n => n.startsWith('.node.sock-')), [], '... and the private directory it was made in is gone')

  const holdings = await asPeer(config.httpPort, config.volumeKey, 'GET', '/holdings')
  t.equal(holdings.status, 200, 'a peer with the key is answered what peers need (holdings)', { body: holdings.body })
  t.equal((await asPeer(config.httpPort, config.volumeKey, 'GET', '/status')).status, 200, '... and the status sync polls')
  for (const [method, path, body] of [['POST', '/retire', undefined], ['POST', '/volume', { copies: 1, graceMs: 0 }], ['POST', '/scrub', undefined], ['GET', '/scrub', undefined], ['GET', '/replication', undefined]] as const) {
    const r = await asPeer(config.httpPort, config.volumeKey, method, path, body)
    t.equal(r.status, 404, `a peer's ${method} ${path} gets 404`, { body: r.body })
  }
  const after = JSON.parse(fs.readFileSync(join(vol.disk, 'node.json'), 'utf8')) as { retiring?: boolean }
  t.notOk(after.retiring, 'the disk is not retiring')
  const settings = await cli(['volume', '--disk', vol.disk, '--json'], { timeoutMs: DEADLINE_MS })
  t.same(JSON.parse(settings.stdout), { copies: 2, graceMs: 600_000, at: 0 }, 'the volume keeps its settings', { stderr: settings.stderr })

  // Another user cannot open the socket, though the directories above it let them through.
  for (const d of [vol.disk, join(vol.disk, '..')]) fs.chmodSync(d, 0o711)
  const nobody = await run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '-e',
    `require('net').connect(${JSON.stringify(sock)}).on('connect', () => { console.log('connected'); process.exit(0) }).on('error', e => { console.log(e.code); process.exit(0) })`], { timeoutMs: DEADLINE_MS })
  t.equal(nobody.stdout.trim(), 'EACCES', 'another user is refused the socket', { stderr: nobody.stderr })

  const changed = await cli(['volume', '--disk', vol.disk, '--copies', '1', '--grace-period', '30'], { timeoutMs: DEADLINE_MS })
  t.equal(changed.code, 0, 'the owner\'s CLI changes the settings over the socket', { stderr: changed.stderr })
  t.match(changed.stdout, /^copies: 1\ngrace period: 30 s\n$/m, '... and says what they are now')
  const status = await cli(['status', '--disk', vol.disk], { timeoutMs: DEADLINE_MS })
  t.match(status.stdout, /^node: +[0-9a-f]{16} running/m, 'status of the running node', { stderr: status.stderr })
  t.match(status.stdout, /^copies: +target 1 \(grace period 30 s\)/m, '... shows what the node answered on the socket')

  // A start --reserve on the disk of a running node changes nothing and says why.
  const before = fs.readFileSync(join(vol.disk, 'node.json'), 'utf8')
  const again = await cli(['start', '--disk', vol.disk, '--reserve', '1G'], { timeoutMs: DEADLINE_MS })
  t.equal(again.code, 1, 'start on a disk whose node runs: exit 1', { stderr: again.stderr })
  t.match(again.stderr, /^swarmfs: .* is in use by a running node \(pid \d+\); stop it first\n$/m, '... in one line')
  t.equal(fs.readFileSync(join(vol.disk, 'node.json'), 'utf8'), before, '... and node.json is as it was')

  // A node that crashed leaves its socket: the next start replaces it.
  await vol.kill9()
  t.ok(fs.existsSync(sock), 'a killed node leaves its socket behind')
  await vol.restart()
  const live = await cli(['status', '--disk', vol.disk, '--json'], { timeoutMs: DEADLINE_MS })
  t.not((JSON.parse(live.stdout) as { live: unknown }).live, null, 'the restarted node answers on its socket', { stderr: live.stderr })
  await vol.stop()
  t.notOk(fs.existsSync(sock), 'a node that stops removes its socket')
  const stopped = await cli(['status', '--disk', vol.disk], { timeoutMs: DEADLINE_MS })
  t.match(stopped.stdout, /^node: +[0-9a-f]{16} stopped$/m, 'status of a stopped node still works, from the disk', { stderr: stopped.stderr })
})

t.test('a disk at a path too long for a unix socket\'s name still gets its socket, its owner\'s, and the CLI reaches it', async t => {
  const dir = await tmpDir(t)
  // sun_path holds 107 bytes: this socket's path is longer.
  const disk = join(dir, 'd'.repeat(60), 'e'.repeat(60))
  const sock = join(disk, 'node.sock')
  t.ok(Buffer.byteLength(sock) > 107, `the socket path is ${Buffer.byteLength(sock)} bytes`)
  t.equal((await cli(['init', 'v', '--disk', disk, '--no-start'], { timeoutMs: DEADLINE_MS })).code, 0, 'a volume made without starting it')
  // The disk belongs to another user than the one running the node (root): the socket is theirs.
  fs.chownSync(disk, 65534, 65534)
  fs.chmodSync(dir, 0o711)
  const node = await startHelperProcess(t, `exec ${JSON.stringify(process.execPath)} ${JSON.stringify(CLI)} start --disk ${JSON.stringify(disk)} --no-mount`, 'running')
  const st = fs.statSync(sock)
  t.equal(st.mode & 0o777, 0o600, 'the node made its socket, mode 0600')
  t.same([st.uid, st.gid], [65534, 65534], '... owned by the owner of the disk')
  for (const [uid, expected] of [[65534, 'connected'], [65533, 'EACCES']] as const) {
    const r = await run('setpriv', [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', process.execPath, '-e',
      // From inside the disk: its full path is too long to connect to.
      "require('net').connect('node.sock').on('connect', () => { console.log('connected'); process.exit(0) }).on('error', e => { console.log(e.code); process.exit(0) })"], { cwd: disk, timeoutMs: DEADLINE_MS })
    t.equal(r.stdout.trim(), expected, `uid ${uid} connecting: ${expected}`, { stderr: r.stderr })
  }
  const changed = await cli(['volume', '--disk', disk, '--copies', '3'], { timeoutMs: DEADLINE_MS })
  t.equal(changed.code, 0, 'the CLI changes the settings over it', { stderr: changed.stderr })
  t.match(changed.stdout, /^copies: 3$/m, '... and the node answers')
  process.kill(node.pid, 'SIGTERM')
  const gone = await run('tail', [`--pid=${node.pid}`, '-f', '/dev/null'], { timeoutMs: DEADLINE_MS })
  t.equal(gone.code, 0, 'the node exits after SIGTERM', { output: node.output() })
  t.notOk(fs.existsSync(sock), '... and removes its socket')
})

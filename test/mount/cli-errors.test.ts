// Bad input to the CLI gets one line on stderr starting with "swarmfs:" and a non-zero exit, and
// creates nothing: a disk or mount point that cannot be made (under /proc, under a file), a disk
// that is not one, a wrong flag.
import t from 'tap'
import fs from 'node:fs'
import { join } from 'node:path'
import { cli, tmpDir } from '../helpers/volume.js'

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
    { args: ['stat'], code: 2, error: /^swarmfs: unknown command 'stat' \(Did you mean start\?\)/ }
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

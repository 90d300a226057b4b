// What fsync acknowledged survives a power cut, the way filesystem developers test it: the node's
// disk directory is on an ext4 image on a loop device; while a writer fsyncs files through the
// mount, the ext4 is shut down without flushing its log (FS_IOC_SHUTDOWN with
// FS_GOING_DOWN_NOLOGFLUSH: what is not in the on-disk journal by then is gone, as at a power cut),
// mounted again (its journal replays), and the node started on it. Every file the writer had
// acknowledged (fsync of the file, then of its directory) must be there with its bytes, at every cut.
import t from 'tap'
import type { Test } from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import { until } from '../helpers/netns.js'
import { prng, ROOT, run, startVolume, type Volume } from '../helpers/volume.js'

const CUTS = 12
const WRITER = join(ROOT, 'test', 'fixtures', 'fsync-writer.py')
// FS_IOC_SHUTDOWN = _IOR('X', 125, __u32); FS_GOING_DOWN_NOLOGFLUSH = 2.
const SHUTDOWN = 'import fcntl, os, struct, sys; fd = os.open(sys.argv[1], os.O_RDONLY); fcntl.ioctl(fd, 0x8004587D, struct.pack("I", 2))'

async function must (cmd: string, args: string[]): Promise<string> {
  const r = await run(cmd, args, { timeoutMs: 60_000 })
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.code}): ${r.stderr}`)
  return r.stdout
}

/** Waits until a detached loop device is let go by everything that held it. */
async function released (loop: string): Promise<void> {
  const backing = `/sys/block/${loop.replace('/dev/', '')}/loop/backing_file`
  // Another mount namespace keeping the shut-down ext4 (see /proc/*/mountinfo) holds it longer.
  await until(`${loop} let go after umount and losetup -d`, () => !fs.existsSync(backing), 120_000)
}

/** An ext4 image on a loop device, mounted; unmounted, detached and deleted at teardown. */
async function ext4Disk (t: Test): Promise<{ dir: string, cut: () => Promise<void>, remount: () => Promise<void> }> {
  const base = await fsp.realpath(await fsp.mkdtemp(join(os.tmpdir(), 'swarmfs-power-')))
  const image = join(base, 'disk.img')
  const dir = join(base, 'ext4')
  let loop: string | null = null
  let mounted = false
  t.teardown(async () => {
    if (mounted) {
      const r = await run('umount', [dir])
      if (r.code !== 0) await run('umount', ['-l', dir])
    }
    if (loop !== null) await run('losetup', ['-d', loop])
    await fsp.rm(base, { recursive: true, force: true })
  })
  await fsp.mkdir(dir)
  await fsp.writeFile(image, '')
  await fsp.truncate(image, 384 << 20)
  // No lazy initialisation: nothing writes behind the test's back after the mount.
  await must('mkfs.ext4', ['-q', '-F', '-E', 'lazy_itable_init=0,lazy_journal_init=0', image])
  const mount = async (): Promise<void> => {
    loop = (await must('losetup', ['--find', '--show', image])).trim()
    await must('mount', ['-t', 'ext4', loop, dir])
    mounted = true
  }
  await mount()
  return {
    dir,
    cut: async () => { await must('python3', ['-c', SHUTDOWN, dir]) },
    remount: async () => {
      await must('umount', [dir])
      mounted = false
      // A new loop device each time: a mount namespace made meanwhile (another test's `ip netns
      // exec`) keeps its copy of the mount, and with it the shut-down filesystem, alive; a mount
      // of the same device would take that one again, not replay the journal.
      const old = loop as string
      await must('losetup', ['-d', old])
      loop = null
      // Until the old device is let go, the shut-down filesystem lives on somewhere (a mount
      // namespace made meanwhile keeps a copy of the mount), and writes back whatever it still
      // holds when it goes: only then may the disk be mounted again, as after a real power cut.
      await released(old)
      await mount()
    }
  }
}

/** The writer: resolves `acked` with each acknowledged file as it comes. */
function startWriter (t: Test, cwd: string, seed: number, prefix: string, acked: Map<string, string>): { child: ChildProcess, count: () => number, ready: Promise<void>, log: () => string } {
  const child = spawn('python3', [WRITER, String(seed), prefix], { cwd, stdio: ['ignore', 'pipe', 'pipe'] })
  let n = 0
  let buf = ''
  let err = ''
  let onReady: () => void = () => {}
  const ready = new Promise<void>((resolve, reject) => {
    onReady = resolve
    child.on('exit', code => reject(new Error(`writer exited (${code}) before it was ready: ${err}`)))
  })
  ready.catch(() => {})
  child.stdout.setEncoding('utf8').on('data', (s: string) => {
    buf += s
    let nl: number
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl)
      buf = buf.slice(nl + 1)
      if (line === 'ready') onReady()
      const m = /^ack ([0-9a-f]{64}) (.+)$/.exec(line)
      if (m !== null) {
        acked.set(m[2], m[1])
        n++
      }
    }
  })
  child.stderr.setEncoding('utf8').on('data', (s: string) => { err += s })
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  return { child, count: () => n, ready, log: () => err }
}

async function waitFor (what: string, check: () => boolean, child: ChildProcess): Promise<void> {
  while (!check()) {
    if (child.exitCode !== null) throw new Error(`writer exited before ${what}`)
    await new Promise<void>(resolve => child.stdout?.once('data', () => resolve()) ?? resolve())
  }
}

async function killed (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exit = new Promise(resolve => child.once('exit', resolve))
  child.kill('SIGKILL')
  await exit
}

/** Lines `<path>` of every acknowledged file that is missing or whose bytes differ. */
async function lost (vol: Volume, acked: Map<string, string>): Promise<string[]> {
  const list = join(vol.scratch, 'acked.sha256')
  fs.writeFileSync(list, [...acked].map(([path, sum]) => `${sum}  ${path}\n`).join(''))
  const r = await run('sha256sum', ['--check', '--quiet', list], { cwd: vol.mnt, timeoutMs: 120_000 })
  return r.stdout.split('\n').filter(l => l.length > 0)
}

t.test(`every acknowledged fsync survives ${CUTS} power cuts at random instants`, async t => {
  const disk = await ext4Disk(t)
  const vol = await startVolume(t, { disk: join(disk.dir, 'disk') })
  const rand = prng(2212)
  const acked = new Map<string, string>()
  let lostTotal = 0
  for (let cut = 1; cut <= CUTS; cut++) {
    const writer = startWriter(t, vol.mnt, cut, `c${cut}`, acked)
    await writer.ready
    // A random instant: after a random number of acknowledgements, while commits run behind them.
    const target = writer.count() + 5 + Math.floor(rand() * 120)
    await waitFor(`${target} acknowledgements`, () => writer.count() >= target, writer.child)
    await disk.cut()
    const pid = vol.pid
    try { process.kill(pid, 'SIGKILL') } catch {}
    await vol.exited
    await killed(writer.child)
    await disk.remount()
    // What the cut left, before the node replays it: for the report of a loss.
    const left = join(vol.scratch, `cut-${cut}`)
    await run('sh', ['-c', 'mkdir -p "$1" && cp -a "$0/journal" "$0/state" "$1/" && git --git-dir "$0/meta" rev-parse HEAD > "$1/head" 2>&1', vol.disk, left])
    await vol.restart()
    // The head the node runs on now: every later cut must leave a descendant of it (for the report of a loss).
    await run('sh', ['-c', 'git --git-dir "$0/meta" rev-parse HEAD > "$1/head-after-start"', vol.disk, left])
    const missing = await lost(vol, acked)
    lostTotal += missing.length
    t.same(missing, [], `cut ${cut}: the node started and all ${acked.size} acknowledged files are there`)
    if (missing.length > 0) {
      // What the node says of the files it lost, to find why.
      const names = missing.slice(0, 5).map(l => l.replace(/: FAILED.*$/, ''))
      const seen = await run('sh', ['-c', 'for f; do stat -c "%n %s bytes" "$f"; cat "$f" >/dev/null; ls -a "$(dirname "$f")" | tr "\\n" " "; echo; done 2>&1', 'sh', ...names], { cwd: vol.mnt })
      const meta = join(vol.disk, 'meta')
      const inGit = await run('sh', ['-c', 'd="$1"; shift; for f; do git --git-dir "$0" log --format="%h %p %ct" -- "$f" "$(dirname "$f")/.tmp$(basename "$f" | tr -d f)"; git --git-dir "$0" ls-tree HEAD "$f"; done; git --git-dir "$0" log --format="%h %p %ct" | wc -l; for c in $(ls -d "$d"/cut-* | sort -t- -k2 -n); do echo "$(basename $c): after the cut $(cat "$c/head") $(cat "$c/state/commit-state.json"), after the start $(cat "$c/head-after-start")"; done; p=""; for c in $(ls -d "$d"/cut-* | sort -t- -k2 -n); do [ -n "$p" ] && { git --git-dir "$0" merge-base --is-ancestor "$p" "$(cat "$c/head")" && echo "$(basename $c): descends" || echo "$(basename $c): the disk went back: $(cat "$c/head") does not descend from $p"; }; p=$(cat "$c/head-after-start"); done 2>&1', meta, vol.scratch, ...names])
      const inJournal = await run('sh', ['-c', 'cat "$0/head" "$0/state/commit-state.json"; ls -la "$0/journal"; for j in "$0"/journal/*; do echo "$j ends:"; tail -c 700 "$j"; done; for f; do grep -h "$(basename "$f")\\"" "$0"/journal/* | cut -c1-400; done 2>&1', join(vol.scratch, `cut-${cut}`), ...names])
      t.comment(`git: ${inGit.stdout}\njournal: ${inJournal.stdout}`)
      t.comment(`lost: ${seen.stdout}\nnode output: ${vol.output.stdout.slice(-2000)}${vol.output.stderr.slice(-3000)}`)
    }
  }
  t.comment(`files lost over ${CUTS} power cuts: ${lostTotal} of ${acked.size} acknowledged`)
  await vol.stop()
  const fsck = await run('git', ['--git-dir', join(vol.disk, 'meta'), 'fsck', '--no-progress'])
  t.equal(fsck.code, 0, 'git fsck of the metadata repository passes after the cuts', { stderr: fsck.stderr.slice(0, 2000) })
})

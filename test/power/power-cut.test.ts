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
  loop = (await must('losetup', ['--find', '--show', image])).trim()
  const mount = async (): Promise<void> => {
    await must('mount', ['-t', 'ext4', loop as string, dir])
    mounted = true
  }
  await mount()
  return {
    dir,
    cut: async () => { await must('python3', ['-c', SHUTDOWN, dir]) },
    remount: async () => {
      await must('umount', [dir])
      mounted = false
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
    await vol.restart()
    const missing = await lost(vol, acked)
    lostTotal += missing.length
    t.same(missing, [], `cut ${cut}: the node started and all ${acked.size} acknowledged files are there`)
    if (missing.length > 0) t.comment(vol.output.stderr.slice(-3000))
  }
  t.comment(`files lost over ${CUTS} power cuts: ${lostTotal} of ${acked.size} acknowledged`)
  await vol.stop()
  const fsck = await run('git', ['--git-dir', join(vol.disk, 'meta'), 'fsck', '--no-progress'])
  t.equal(fsck.code, 0, 'git fsck of the metadata repository passes after the cuts', { stderr: fsck.stderr.slice(0, 2000) })
})

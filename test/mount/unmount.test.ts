// A mount unmounted from outside (fusermount -u, umount, a shutdown unmounting filesystems) ends
// its node cleanly, as the process of any FUSE filesystem ends with its mount: writes finished,
// committed, the disk released. A start then finds everything written before.
import t from 'tap'
import { isMounted, run, sh, startVolume } from '../helpers/volume.js'

const EXIT_WAIT_MS = 30_000

t.test('a mount unmounted from outside stops its node cleanly; a restart finds everything', async t => {
  const vol = await startVolume(t)
  let round = 0
  for (const cmd of [['fusermount', '-u'], ['umount']]) {
    round++
    await sh(t, `printf 'round ${round}' > f${round}; mkdir d${round}`, { cwd: vol.mnt })
    const exited = vol.exited
    const r = await run(cmd[0]!, [...cmd.slice(1), vol.mnt])
    t.equal(r.code, 0, `${cmd.join(' ')} of the mount succeeds`, { stderr: r.stderr })
    let timer: NodeJS.Timeout | undefined
    const exit = await Promise.race([exited, new Promise(resolve => { timer = setTimeout(() => resolve('still running'), EXIT_WAIT_MS) })])
    clearTimeout(timer)
    t.same(exit, { code: 0, signal: null }, `after ${cmd[0]}, the node exits 0`, { stderr: vol.output.stderr.slice(-2000) })
    t.match(vol.output.stderr, /was unmounted; stopping/, 'it says why it stops')
    t.notMatch(vol.output.stderr, /unmount failed/, 'it reports no failed unmount')
    t.notOk(isMounted(vol.mnt), 'nothing is left mounted')
    await vol.restart()
    const back = await sh(t, `cat f${round}; [ -d d${round} ] && echo ' dir'`, { cwd: vol.mnt })
    t.equal(back.stdout, `round ${round} dir\n`, 'after a start, what was written before is there')
  }
  await vol.stop()
})

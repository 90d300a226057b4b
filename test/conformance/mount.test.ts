// The conformance scenarios against a real mount of a real node: the same ones memory.test.ts runs
// in process, through the kernel and libfuse, driven from a child process.
import t from 'tap'
import { startVolume } from '../helpers/volume.js'
import { mountDriver } from './mount-driver.js'
import { scenarios } from './scenarios.js'

t.test('conformance, through a real mount', async t => {
  const vol = await startVolume(t)
  const d = mountDriver(vol.mnt)
  t.teardown(async () => await d.end())
  let n = 0
  for (const s of scenarios) {
    const dir = `s${n++}`
    await d.mkdir(dir)
    await t.test(s.name, async t => await s.run(t, d, dir))
  }
})

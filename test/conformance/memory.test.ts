// The conformance scenarios against the core in this process, with memory parts: no mount, no
// node, in seconds.
import t from 'tap'
import { memoryDriver } from './memory-driver.js'
import { scenarios } from './scenarios.js'

t.test('conformance, in process (memory parts)', async t => {
  const d = memoryDriver()
  t.teardown(async () => await d.end())
  let n = 0
  for (const s of scenarios) {
    const dir = `/s${n++}`
    await d.mkdir(dir)
    await t.test(s.name, async t => await s.run(t, d, dir))
  }
})

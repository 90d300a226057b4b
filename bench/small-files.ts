// Row 3: creating 10,000 files of 100 bytes (SMALL: 1,000) from one client process, and `ls -l` of
// that directory, on swarmfs, the do-nothing in-memory FUSE filesystem and the native disk.
// Each repetition creates a fresh directory, once swarmfs has committed the previous one and the
// disk has written back (sync). `ls -l` runs after 1.2 s of quiet, longer than the mounts'
// entry/attr timeouts (1 s), so every entry is looked up through the filesystem again.
import fs from 'node:fs'
import { join } from 'node:path'
import { benchDist, node, sizes } from './lib/env.js'
import type { Context } from './lib/context.js'
import { runOk, sleep } from './lib/proc.js'
import { settle, swarmfsQuiet } from './lib/quiet.js'
import { initVolume, startMemfs, startSwarmfs, type Server } from './lib/servers.js'
import { median, type Row } from './lib/table.js'

export async function smallFiles (ctx: Context): Promise<Row[]> {
  const n = sizes.smallFiles
  const w = join(ctx.work, 'small')
  const swDisk = join(w, 'swarmfs-disk')
  const native = join(w, 'native')
  fs.mkdirSync(native, { recursive: true })
  await initVolume(swDisk)
  const servers: Server[] = []
  const create: Record<string, number[]> = {}
  const ls: Record<string, number[]> = {}
  const commitLag: number[] = []
  try {
    servers.push(await startSwarmfs(swDisk, join(w, 'swarmfs-mnt')))
    servers.push(await startMemfs(join(w, 'memfs-mnt')))
    const targets = [
      { name: 'swarmfs', dir: servers[0].mountPoint },
      { name: 'memfs', dir: servers[1].mountPoint },
      { name: 'native', dir: native }
    ]
    for (let rep = 0; rep < sizes.reps; rep++) {
      for (const t of targets) {
        await settle()
        const r = await runOk(node, [join(benchDist, 'lib', 'clients', 'create-files.js'), join(t.dir, `r${rep}`), String(n), String(sizes.smallFileBytes)])
        const { ms } = JSON.parse(r.stdout) as { ms: number }
        ;(create[t.name] ??= []).push(n / (ms / 1000))
        if (t.name === 'swarmfs') commitLag.push(await swarmfsQuiet(swDisk))
      }
    }
    for (let rep = 0; rep < sizes.reps; rep++) {
      for (const t of targets) {
        await swarmfsQuiet(swDisk)
        await settle()
        await sleep(1200)
        const r = await runOk('ls', ['-l', join(t.dir, 'r0')], { stdoutToNull: true })
        ;(ls[t.name] ??= []).push(r.ms)
      }
    }
    // Not timed: every file is there.
    const count = (await runOk('ls', [join(targets[0].dir, 'r0')])).stdout.split('\n').filter(Boolean).length
    if (count !== n) throw new Error(`swarmfs lists ${count} files in r0, expected ${n}`)
  } finally {
    for (const s of servers) await s.stop()
    fs.rmSync(w, { recursive: true, force: true })
  }
  ctx.note(`create files/s per repetition: ` + Object.entries(create).map(([k, v]) => `${k} ${v.map(x => x.toFixed(0)).join(', ')}`).join('; '))
  ctx.note(`swarmfs: after the creating client exited, its journal was fully committed to git within ${commitLag.map(x => x.toFixed(0)).join(', ')} ms`)
  ctx.note(`ls -l ms per repetition: ` + Object.entries(ls).map(([k, v]) => `${k} ${v.map(x => x.toFixed(0)).join(', ')}`).join('; '))
  const k = n.toLocaleString('en-US')
  return [
    { measurement: `create ${k} files of ${sizes.smallFileBytes} B (one client)`, unit: 'files/s', better: 'higher', value: median(create.swarmfs), baseline: 'do-nothing FUSE', baselineValue: median(create.memfs), samples: { value: create.swarmfs, baseline: create.memfs } },
    { measurement: `create ${k} files of ${sizes.smallFileBytes} B (one client)`, unit: 'files/s', better: 'higher', value: median(create.swarmfs), baseline: 'native disk', baselineValue: median(create.native), samples: { value: create.swarmfs, baseline: create.native } },
    { measurement: `ls -l of those ${k} files`, unit: 'ms', better: 'lower', value: median(ls.swarmfs), baseline: 'do-nothing FUSE', baselineValue: median(ls.memfs), samples: { value: ls.swarmfs, baseline: ls.memfs } },
    { measurement: `ls -l of those ${k} files`, unit: 'ms', better: 'lower', value: median(ls.swarmfs), baseline: 'native disk', baselineValue: median(ls.native), samples: { value: ls.swarmfs, baseline: ls.native } }
  ]
}

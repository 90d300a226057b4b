// What durability against a power cut costs: creating 1,000 files of 100 bytes (SMALL: 100), each
// fsynced with its directory before the next (bench/lib/clients/create-synced.ts), on swarmfs and
// on the native disk beside it. On swarmfs each such create syncs the staging file, its directory
// once, and the journal; the seal and the commit that follow sync the content and the git objects
// behind the client's back, grouped.
import fs from 'node:fs'
import { join } from 'node:path'
import { benchDist, node, sizes, SMALL } from './lib/env.js'
import type { Context } from './lib/context.js'
import { runOk } from './lib/proc.js'
import { settle, swarmfsQuiet } from './lib/quiet.js'
import { initVolume, startSwarmfs, type Server } from './lib/servers.js'
import { median, type Row } from './lib/table.js'

export async function fsyncFiles (ctx: Context): Promise<Row[]> {
  const n = SMALL ? 100 : 1000
  const w = join(ctx.work, 'fsync')
  const swDisk = join(w, 'swarmfs-disk')
  const native = join(w, 'native')
  fs.mkdirSync(native, { recursive: true })
  await initVolume(swDisk)
  const servers: Server[] = []
  const create: Record<string, number[]> = {}
  try {
    servers.push(await startSwarmfs(swDisk, join(w, 'swarmfs-mnt')))
    const targets = [{ name: 'swarmfs', dir: servers[0].mountPoint }, { name: 'native', dir: native }]
    for (let rep = 0; rep < sizes.reps; rep++) {
      for (const t of targets) {
        await swarmfsQuiet(swDisk)
        await settle()
        const r = await runOk(node, [join(benchDist, 'lib', 'clients', 'create-synced.js'), join(t.dir, `r${rep}`), String(n), String(sizes.smallFileBytes)])
        const { ms } = JSON.parse(r.stdout) as { ms: number }
        ;(create[t.name] ??= []).push(n / (ms / 1000))
      }
    }
  } finally {
    for (const s of servers) await s.stop()
    fs.rmSync(w, { recursive: true, force: true })
  }
  ctx.note('fsynced creates files/s per repetition: ' + Object.entries(create).map(([k, v]) => `${k} ${v.map(x => x.toFixed(0)).join(', ')}`).join('; '))
  const k = n.toLocaleString('en-US')
  return [
    { measurement: `create ${k} files of ${sizes.smallFileBytes} B, each fsynced with its directory`, unit: 'files/s', better: 'higher', value: median(create.swarmfs), baseline: 'native disk', baselineValue: median(create.native), samples: { value: create.swarmfs, baseline: create.native } }
  ]
}

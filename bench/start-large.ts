// Row 4: a volume of 100,000 files in 1,000 directories (SMALL: 10,000 in 100). Time from spawning
// `swarmfs start` to its "running" line and then a first successful `ls` of the root from a child,
// cold (index snapshot deleted: the index is loaded from the git trees) and warm (snapshot written by
// the previous clean stop); and the node's RSS (VmRSS) right after. Baseline: an empty volume.
import fs from 'node:fs'
import { join } from 'node:path'
import { benchDist, node, sizes } from './lib/env.js'
import type { Context } from './lib/context.js'
import { rssOf, runOk } from './lib/proc.js'
import { initVolume, startSwarmfs } from './lib/servers.js'
import { median, MiB, type Row } from './lib/table.js'

interface StartSample { runningMs: number, lsMs: number, rss: number }

async function timedStart (disk: string, mnt: string, check?: { dir: string, entries: number }): Promise<StartSample> {
  const s = await startSwarmfs(disk, mnt)
  try {
    const ls = await runOk('ls', [mnt])
    const lsMs = performance.now() - s.spawnedAt
    if (ls.stdout.trim() === '' && check !== undefined) throw new Error('ls of the root of the large volume printed nothing')
    const rss = rssOf(s.pid)
    if (check !== undefined) {
      const listed = (await runOk('ls', [join(mnt, check.dir)])).stdout.split('\n').filter(Boolean).length
      if (listed !== check.entries) throw new Error(`${check.dir} lists ${listed} entries, expected ${check.entries}`)
    }
    return { runningMs: s.readyMs, lsMs, rss }
  } finally {
    await s.stop()
  }
}

export async function startLarge (ctx: Context): Promise<Row[]> {
  const { bigVolumeDirs: dirs, bigVolumeFilesPerDir: perDir } = sizes
  const w = join(ctx.work, 'start')
  const bigDisk = join(w, 'big-disk')
  const emptyDisk = join(w, 'empty-disk')
  const mnt = join(w, 'mnt')
  const snapshot = join(bigDisk, 'state', 'index-snapshot.v8')
  const empty: StartSample[] = []
  const cold: StartSample[] = []
  const warm: StartSample[] = []
  try {
    await initVolume(emptyDisk)
    await initVolume(bigDisk)
    const built = await runOk(node, [join(benchDist, 'lib', 'build-volume.js'), bigDisk, String(dirs), String(perDir)], { timeoutMs: 3_600_000 })
    const b = JSON.parse(built.stdout) as { files: number, ms: number }
    ctx.note(`large volume: built ${b.files.toLocaleString('en-US')} files in ${dirs} directories in-process (ContentStore + Meta.apply + commits) in ${(b.ms / 1000).toFixed(1)} s`)
    if (!fs.existsSync(snapshot)) throw new Error('the build left no index snapshot')
    const check = { dir: `d${'0'.repeat(String(dirs - 1).length)}`, entries: perDir }
    for (let rep = 0; rep < sizes.startReps; rep++) {
      empty.push(await timedStart(emptyDisk, mnt))
      warm.push(await timedStart(bigDisk, mnt, rep === 0 ? check : undefined))
      fs.rmSync(snapshot)
      cold.push(await timedStart(bigDisk, mnt, rep === 0 ? check : undefined))
      if (!fs.existsSync(snapshot)) throw new Error('a clean stop wrote no index snapshot')
    }
  } finally {
    fs.rmSync(w, { recursive: true, force: true })
  }
  const show = (xs: StartSample[]): string => xs.map(x => `${x.runningMs.toFixed(0)}/${x.lsMs.toFixed(0)} ms ${(x.rss / MiB).toFixed(0)} MiB`).join(', ')
  ctx.note(`start samples (running line / ls ok, RSS): empty ${show(empty)}; warm ${show(warm)}; cold ${show(cold)}`)
  const k = (dirs * perDir).toLocaleString('en-US')
  const ms = (xs: StartSample[]): number[] => xs.map(x => x.lsMs)
  const mib = (xs: StartSample[]): number[] => xs.map(x => x.rss / MiB)
  const run = (xs: StartSample[]): number[] => xs.map(x => x.runningMs)
  return [
    { measurement: `start → "running" → ls ok, ${k} files, cold (no snapshot)`, unit: 'ms', better: 'lower', value: median(ms(cold)), baseline: 'empty volume', baselineValue: median(ms(empty)), samples: { value: ms(cold), baseline: ms(empty) } },
    { measurement: `start → "running" → ls ok, ${k} files, warm (snapshot)`, unit: 'ms', better: 'lower', value: median(ms(warm)), baseline: 'empty volume', baselineValue: median(ms(empty)), samples: { value: ms(warm), baseline: ms(empty) } },
    { measurement: `start → "running" line only, ${k} files, cold`, unit: 'ms', better: 'lower', value: median(run(cold)), baseline: 'empty volume', baselineValue: median(run(empty)) },
    { measurement: `node RSS after mount, ${k} files, cold`, unit: 'MiB', better: 'lower', value: median(mib(cold)), baseline: 'empty volume', baselineValue: median(mib(empty)), samples: { value: mib(cold), baseline: mib(empty) } },
    { measurement: `node RSS after mount, ${k} files, warm`, unit: 'MiB', better: 'lower', value: median(mib(warm)), baseline: 'empty volume', baselineValue: median(mib(empty)), samples: { value: mib(warm), baseline: mib(empty) } }
  ]
}

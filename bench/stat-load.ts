// stat(2) latency under load: a client stats names (each a round trip to the filesystem's
// JavaScript thread) for 3 s with the mount idle, then again while `dd` copies the 1 GiB random file
// (SMALL: 100 MiB) into the same mount. swarmfs against the passthrough baseline.
import fs from 'node:fs'
import { join } from 'node:path'
import { benchDist, node, sizes } from './lib/env.js'
import { mbps, type Context } from './lib/context.js'
import { runOk, spawnTracked, stopChild, waitExit } from './lib/proc.js'
import { settle } from './lib/quiet.js'
import { initVolume, startPassthrough, startSwarmfs, type Server } from './lib/servers.js'
import { median, type Row } from './lib/table.js'

interface StatResult { count: number, seconds: number, rate: number, p50: number, p99: number, p999: number, max: number }

const statLoop = join(benchDist, 'lib', 'clients', 'stat-loop.js')

async function idle (dir: string): Promise<StatResult> {
  return JSON.parse((await runOk(node, [statLoop, dir, '3'])).stdout) as StatResult
}

async function underCopy (dir: string, src: string): Promise<{ stat: StatResult, copyMBps: number }> {
  const child = spawnTracked(node, [statLoop, dir, '0'], { stdio: ['pipe', 'pipe', 'pipe'] })
  let out = ''
  child.stdout!.setEncoding('utf8').on('data', (d: string) => { out += d })
  try {
    const file = join(dir, 'copy.bin')
    const copy = await runOk('dd', [`if=${src}`, `of=${file}`, 'bs=1M', 'conv=fsync', 'status=none'])
    child.stdin!.end()
    if (!await waitExit(child, 30_000) || child.exitCode !== 0) throw new Error(`stat client failed (${child.exitCode ?? child.signalCode})`)
    await new Promise(resolve => setImmediate(resolve))
    await runOk('rm', ['-f', file])
    return { stat: JSON.parse(out) as StatResult, copyMBps: mbps(sizes.seqBytes, copy.ms) }
  } finally {
    await stopChild(child, 5000)
  }
}

interface Sample { idle: StatResult, load: StatResult, copyMBps: number }

export async function statLoad (ctx: Context): Promise<Row[]> {
  const src = ctx.randomFile()
  const w = join(ctx.work, 'statload')
  const swDisk = join(w, 'swarmfs-disk')
  await initVolume(swDisk)
  const res: Record<string, Sample[]> = { swarmfs: [], passthrough: [] }
  const servers: Record<string, Server> = {}
  try {
    servers.swarmfs = await startSwarmfs(swDisk, join(w, 'swarmfs-mnt'))
    servers.passthrough = await startPassthrough(join(w, 'passthrough-backing'), join(w, 'passthrough-mnt'))
    for (let rep = 0; rep < sizes.reps; rep++) {
      for (const name of ['swarmfs', 'passthrough']) {
        const dir = servers[name].mountPoint
        await settle()
        const i = await idle(dir)
        await settle()
        const { stat, copyMBps } = await underCopy(dir, src)
        res[name].push({ idle: i, load: stat, copyMBps })
      }
    }
  } finally {
    for (const s of Object.values(servers)) await s.stop()
    fs.rmSync(w, { recursive: true, force: true })
  }
  const f = (s: StatResult): string => `${s.rate.toFixed(0)}/s p50 ${(s.p50 * 1000).toFixed(0)} µs p99 ${(s.p99 * 1000).toFixed(0)} µs max ${s.max.toFixed(1)} ms`
  for (const [name, samples] of Object.entries(res)) {
    ctx.note(`stat ${name}, idle: ${samples.map(x => f(x.idle)).join('; ')}`)
    ctx.note(`stat ${name}, during copy: ${samples.map(x => f(x.load) + ` (copy ${x.copyMBps.toFixed(0)} MB/s)`).join('; ')}`)
  }
  const m = (name: string, pick: (s: Sample) => number): number => median(res[name].map(pick))
  const gib = `${(sizes.seqBytes / (1 << 30)).toFixed(sizes.seqBytes >= 1 << 30 ? 0 : 2)} GiB`
  const row = (measurement: string, unit: string, better: 'higher' | 'lower', pick: (s: Sample) => number): Row =>
    ({ measurement, unit, better, value: m('swarmfs', pick), baseline: 'passthrough FUSE', baselineValue: m('passthrough', pick) })
  return [
    row('stat rate, idle mount (one client)', 'stat/s', 'higher', s => s.idle.rate),
    row(`stat rate during a ${gib} copy into the mount`, 'stat/s', 'higher', s => s.load.rate),
    row('stat p99 latency during the copy', 'ms', 'lower', s => s.load.p99),
    row('stat max latency during the copy', 'ms', 'lower', s => s.load.max),
    row('the copy itself, with the stat client running', 'MB/s', 'higher', s => s.copyMBps)
  ]
}

// Rows 1-2: sequential write and read of one large file (1 GiB; SMALL: 100 MiB) through swarmfs,
// the passthrough baseline and the native disk. Writes: `dd bs=1M conv=fsync` from a file of random
// bytes already in the page cache. Reads: `dd bs=1M` to /dev/null after a fresh mount of each
// filesystem (the FUSE page cache goes with the mount), once with the backing file evicted from the
// page cache (cold: disk → backing → FUSE) and once with it cached (FUSE overhead alone).
import fs from 'node:fs'
import { join } from 'node:path'
import { sizes } from './lib/env.js'
import { bigFilesUnder, evict, mbps, type Context } from './lib/context.js'
import { runOk } from './lib/proc.js'
import { settle } from './lib/quiet.js'
import { initVolume, startPassthrough, startSwarmfs, type Server } from './lib/servers.js'
import { median, type Row } from './lib/table.js'

interface Target {
  name: string
  /** Directory the client writes into and reads from. */
  dir: string
  /** (Re)mounts; undefined for the native disk. */
  remount?: () => Promise<void>
  stop: () => Promise<void>
  /** The files holding the bytes on the native disk, to evict. */
  backing: () => string[]
}

export async function seqIo (ctx: Context): Promise<Row[]> {
  const bytes = sizes.seqBytes
  const src = ctx.randomFile()
  const w = join(ctx.work, 'seq')
  const swDisk = join(w, 'swarmfs-disk')
  const swMnt = join(w, 'swarmfs-mnt')
  const ptBacking = join(w, 'passthrough-backing')
  const ptMnt = join(w, 'passthrough-mnt')
  const native = join(w, 'native')
  fs.mkdirSync(native, { recursive: true })
  await initVolume(swDisk)

  let sw: Server | null = null
  let pt: Server | null = null
  const targets: Target[] = [
    {
      name: 'native',
      dir: native,
      stop: async () => {},
      backing: () => [join(native, 'big.bin')]
    },
    {
      name: 'passthrough',
      dir: ptMnt,
      remount: async () => {
        await pt?.stop()
        pt = null
        pt = await startPassthrough(ptBacking, ptMnt)
      },
      stop: async () => { await pt?.stop(); pt = null },
      backing: () => [join(ptBacking, 'big.bin')]
    },
    {
      name: 'swarmfs',
      dir: swMnt,
      remount: async () => {
        await sw?.stop()
        sw = null
        sw = await startSwarmfs(swDisk, swMnt)
      },
      stop: async () => { await sw?.stop(); sw = null },
      backing: () => [...bigFilesUnder(join(swDisk, 'content'), 1 << 20), ...bigFilesUnder(join(swDisk, 'staging'), 1 << 20)]
    }
  ]
  const write: Record<string, number[]> = {}
  const cold: Record<string, number[]> = {}
  const cached: Record<string, number[]> = {}
  try {
    for (const t of targets) await t.remount?.()
    for (let rep = 0; rep < sizes.reps; rep++) {
      for (const t of targets) {
        const file = join(t.dir, 'big.bin')
        await runOk('rm', ['-f', file])
        await settle()
        const r = await runOk('dd', [`if=${src}`, `of=${file}`, 'bs=1M', 'conv=fsync', 'status=none'])
        ;(write[t.name] ??= []).push(mbps(bytes, r.ms))
      }
    }
    for (let rep = 0; rep < sizes.reps; rep++) {
      for (const t of targets) {
        const file = join(t.dir, 'big.bin')
        // Stop first, so the backing holds every byte (swarmfs seals at stop) and its pages are clean.
        await t.stop()
        await settle()
        for (const b of t.backing()) await evict(b)
        await t.remount?.()
        const r1 = await runOk('dd', [`if=${file}`, 'of=/dev/null', 'bs=1M', 'status=none'])
        ;(cold[t.name] ??= []).push(mbps(bytes, r1.ms))
        await t.stop()
        await t.remount?.()
        await settle()
        const r2 = await runOk('dd', [`if=${file}`, 'of=/dev/null', 'bs=1M', 'status=none'])
        ;(cached[t.name] ??= []).push(mbps(bytes, r2.ms))
      }
    }
    // Not timed: the bytes read back through swarmfs are the bytes written.
    await runOk('cmp', [src, join(swMnt, 'big.bin')])
  } finally {
    for (const t of targets) await t.stop()
    fs.rmSync(w, { recursive: true, force: true })
  }
  for (const [what, m] of [['write', write], ['read cold', cold], ['read cached', cached]] as const) {
    ctx.note(`seq ${what} MB/s per repetition: ` + Object.entries(m).map(([k, v]) => `${k} ${v.map(x => x.toFixed(0)).join(', ')}`).join('; '))
  }
  const gib = `${(bytes / (1 << 30)).toFixed(bytes >= 1 << 30 ? 0 : 2)} GiB`
  const rows = (measurement: string, m: Record<string, number[]>, target: number, nativeLabel: string): Row[] => [
    { measurement, unit: 'MB/s', better: 'higher', value: median(m.swarmfs), baseline: 'passthrough FUSE', baselineValue: median(m.passthrough), target, samples: { value: m.swarmfs, baseline: m.passthrough } },
    { measurement, unit: 'MB/s', better: 'higher', value: median(m.swarmfs), baseline: nativeLabel, baselineValue: median(m.native), samples: { value: m.swarmfs, baseline: m.native } }
  ]
  return [
    ...rows(`seq write ${gib} (dd bs=1M conv=fsync, random data)`, write, 0.7, 'native disk'),
    ...rows(`seq read ${gib}, fresh mount, backing file evicted`, cold, 0.8, 'native disk, evicted'),
    ...rows(`seq read ${gib}, fresh mount, backing file cached`, cached, 0.8, 'native disk, cached')
  ]
}

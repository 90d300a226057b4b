// What encrypting node-to-node traffic costs (issue 22): a remote sequential read of one file on a
// fresh node, with this tree's swarmfs (every wire TLS with the volume's pre-shared key) against
// the same read with the release before encryption (plain TCP wires), in one run, repetitions
// alternating between the two. The earlier release is a checkout with its dist/ built, named by
// SWARMFS_BENCH_BEFORE (its bin/swarmfs.js is run); without it the row is skipped with a note.
// Each version has its own volume: node A (host 1) holds the file, a fresh node on host 2 joins
// with --peer A and reads it through its mount (`dd bs=1M`), then stops and its disk is removed.
import fs from 'node:fs'
import { join } from 'node:path'
import { node, sizes, swarmfsBin } from './lib/env.js'
import { mbps, type Context } from './lib/context.js'
import { isMounted } from './lib/mounts.js'
import { createNetwork, type NetHost } from './lib/netns.js'
import { run, runOk, sleep } from './lib/proc.js'
import { settle, swarmfsQuiet } from './lib/quiet.js'
import { startSwarmfsNode, type Server } from './lib/servers.js'
import { median, type Row } from './lib/table.js'

const READ_TIMEOUT_MS = 30 * 60_000

interface Version { label: string, bin: string, invite: string, peer: string }

export async function encryptionBench (ctx: Context): Promise<Row[]> {
  const before = process.env.SWARMFS_BENCH_BEFORE
  if (before === undefined || before === '') {
    ctx.note('encryption: skipped; set SWARMFS_BENCH_BEFORE to a checkout of the release before encryption (with its dist/ built) to measure it')
    return []
  }
  const bytes = sizes.seqBytes
  const src = ctx.randomFile()
  const w = join(ctx.work, 'encryption')
  fs.mkdirSync(w, { recursive: true })
  const net = await createNetwork(2)
  const [h1, h2] = net.hosts
  const servers: Server[] = []
  const mounts: string[] = []
  const samples: Record<string, number[]> = { plain: [], tls: [] }
  try {
    const versions: Version[] = []
    for (const [label, bin] of [['plain', join(before, 'bin', 'swarmfs.js')], ['tls', swarmfsBin]]) {
      const disk = join(w, `disk-a-${label}`)
      const mnt = join(w, `mnt-a-${label}`)
      mounts.push(mnt)
      servers.push(await startSwarmfsNode(['init', `enc-${label}`, '--disk', disk, '--mount', mnt], mnt, { via: net.via(h1), label: `swarmfs-A-${label}`, bin }))
      const config = JSON.parse(fs.readFileSync(join(disk, 'node.json'), 'utf8')) as { volumeName: string, volumeKey: string, httpPort: number }
      const copies = await net.exec(h1, node, [bin, 'volume', '--copies', '1', '--disk', disk], { timeoutMs: 60_000 })
      if (copies.code !== 0) throw new Error(`${label}: swarmfs volume --copies 1 failed: ${copies.stderr.trim()}`)
      await runOk('dd', [`if=${src}`, `of=${join(mnt, 'file.bin')}`, 'bs=1M', 'conv=fsync', 'status=none'], { timeoutMs: READ_TIMEOUT_MS })
      await swarmfsQuiet(disk, 300_000)
      versions.push({ label, bin, invite: `swarmfs://${config.volumeName}/${config.volumeKey}`, peer: `${h1.address}:${config.httpPort}` })
    }
    await settle()
    let k = 0
    for (let rep = 0; rep < sizes.reps; rep++) {
      for (const v of rep % 2 === 0 ? versions : [...versions].reverse()) {
        samples[v.label].push(await readOnFreshNode(h2, v, ++k))
      }
    }
  } finally {
    for (const s of [...servers].reverse()) await s.stop()
    await net.cleanup()
    if (mounts.every(m => !isMounted(m))) fs.rmSync(w, { recursive: true, force: true })
  }
  const list = (xs: number[]): string => xs.map(x => x.toFixed(0)).join(', ')
  ctx.note(`encryption: remote read of ${bytes / 2 ** 20} MiB on a fresh node, alternating; before (plain TCP wires, ${before}): ${list(samples.plain)} MB/s; TLS-PSK wires: ${list(samples.tls)} MB/s`)
  return [{
    measurement: `encryption: remote sequential read of ${bytes / 2 ** 20} MiB, every wire TLS (ECDHE-PSK-CHACHA20-POLY1305)`,
    unit: 'MB/s',
    better: 'higher',
    value: median(samples.tls),
    baseline: 'the same read with the release before encryption (plain TCP)',
    baselineValue: median(samples.plain),
    target: 0.9,
    samples: { value: samples.tls, baseline: samples.plain }
  }]

  async function readOnFreshNode (host: NetHost, v: Version, n: number): Promise<number> {
    const disk = join(w, `disk-b-${v.label}-${n}`)
    const mnt = join(w, `mnt-b-${v.label}-${n}`)
    mounts.push(mnt)
    const b = await startSwarmfsNode(['join', v.invite, '--disk', disk, '--mount', mnt, '--wait', '60', '--peer', v.peer], mnt, { via: net.via(host), label: `swarmfs-B-${v.label}${n}`, bin: v.bin })
    servers.push(b)
    try {
      const file = join(mnt, 'file.bin')
      for (let i = 0; i < 6000 && (fs.statSync(file, { throwIfNoEntry: false })?.size ?? -1) !== bytes; i++) await sleep(20)
      const r = await runOk('dd', [`if=${file}`, 'of=/dev/null', 'bs=1M', 'status=none'], { timeoutMs: READ_TIMEOUT_MS })
      if (n <= 2) {
        const same = await run('cmp', [src, file], { timeoutMs: READ_TIMEOUT_MS })
        if (same.code !== 0) throw new Error(`${v.label}: the file read on B differs from the one written on A`)
      }
      return mbps(bytes, r.ms)
    } finally {
      await b.stop()
      servers.splice(servers.indexOf(b), 1)
      if (!isMounted(mnt)) fs.rmSync(disk, { recursive: true, force: true })
    }
  }
}

// What the baseline filesystems (passthrough.ts, memfs.ts) share: swarmfs's own mount options, and
// running as a child process that prints "mounted" once the kernel talks to it and unmounts on
// SIGTERM.
import Fuse from 'fuse-native'
import { mountOptions } from '../../lib/fuse/mount.js'

/** swarmfs's mount options, unchanged except for the label in the mount table. */
export function baselineMountOptions (label: string): Record<string, unknown> {
  const opts = { ...mountOptions() }
  const fsname = String(opts.fsname ?? '')
  opts.fsname = [label, ...fsname.split(',').slice(1)].join(',')
  opts.subtype = label
  return opts
}

type Errnoish = { errno?: unknown }
/** A Node fs error as the negative errno fuse-native expects. */
export function errnoOf (err: unknown): number {
  const e = (err as Errnoish | null)?.errno
  return typeof e === 'number' && e < 0 ? e : -5
}

export function serve (mountPoint: string, ops: Record<string, (...args: any[]) => void>, label: string): void {
  const fuse = new Fuse(mountPoint, ops, baselineMountOptions(label) as any)
  fuse.mount(err => {
    if (err) {
      process.stderr.write(`${label}: mount failed: ${err.message}\n`)
      process.exit(1)
    }
    process.stdout.write(`${label}: mounted at ${mountPoint}\n`)
  })
  let stopping = false
  const stop = (): void => {
    if (stopping) process.exit(130)
    stopping = true
    fuse.unmount(err => {
      if (err) process.stderr.write(`${label}: unmount failed: ${err.message}\n`)
      process.exit(err ? 1 : 0)
    })
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
}

// Mount bookkeeping for the benchmarks: which of our mount points are still mounted, and the lazy
// unmount that frees one whose server is gone.
import fs from 'node:fs'
import { execFileSync } from 'node:child_process'
import { resolve } from 'node:path'

const ours = new Set<string>()

/** Remembers a mount point so the final cleanup unmounts it if a server left it behind. */
export function trackMount (mountPoint: string): void {
  ours.add(resolve(mountPoint))
}

function unescapeMount (s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)))
}

/** True while a FUSE filesystem is mounted at `mountPoint` (read from the mount table, never by touching the mount). */
export function isMounted (mountPoint: string): boolean {
  const want = resolve(mountPoint)
  return fs.readFileSync('/proc/self/mounts', 'utf8').split('\n').some(line => {
    const [, where, type] = line.split(' ')
    return where !== undefined && unescapeMount(where) === want && type?.startsWith('fuse') === true
  })
}

/** fusermount -uz if still mounted; returns whether it had to. */
export function forceUnmount (mountPoint: string): boolean {
  if (!isMounted(mountPoint)) return false
  try {
    execFileSync('fusermount', ['-uz', mountPoint], { stdio: 'ignore' })
  } catch {
    try { execFileSync('umount', ['-l', mountPoint], { stdio: 'ignore' }) } catch {}
  }
  return true
}

/** Unmounts every tracked mount point still mounted (synchronous, so it also works from an exit handler). */
export function unmountAllSync (): string[] {
  const left: string[] = []
  for (const mp of ours) if (forceUnmount(mp)) left.push(mp)
  return left
}

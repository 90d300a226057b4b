// Directories a user names (a disk, a mount point): made as mkdir -p with a one-line error, and
// compared where the kernel puts them.
import fs from 'node:fs'
import { dirname, isAbsolute, resolve, sep } from 'node:path'
import { UserError } from './errors.js'

/**
 * The path the kernel reaches for `path`, symlinks followed: the realpath of its deepest existing
 * ancestor, the missing rest appended. The ancestors are tried as written (not normalized first), as
 * the kernel walks them: `link/..` is the parent of where `link` points.
 */
export function realPathOf (path: string): string {
  const parts = (isAbsolute(path) ? path : process.cwd() + sep + path).split(sep)
  for (let i = parts.length; i > 1; i--) {
    try {
      return resolve(fs.realpathSync(parts.slice(0, i).join(sep)), ...parts.slice(i))
    } catch {
      // Missing (or a dead FUSE mount, ENOTCONN): its parent is asked.
    }
  }
  return resolve(path)
}

/**
 * A mount point and a disk directory must be apart: a volume mounted inside its own disk (or its disk
 * inside the mount) would store into itself. Compared where the kernel puts them, so a symlink into
 * the disk, or a path through one, is refused too.
 */
export function checkApart (mountPoint: string, disk: string): void {
  const mnt = realPathOf(mountPoint)
  const d = realPathOf(disk)
  const inside = (a: string, b: string): boolean => a === b || a.startsWith(b.endsWith(sep) ? b : b + sep)
  if (inside(mnt, d) || inside(d, mnt)) {
    const via = mnt !== resolve(mountPoint) || d !== resolve(disk) ? ` (through symlinks: ${mnt} and ${d})` : ''
    throw new UserError(`the mount point ${resolve(mountPoint)} and the disk directory ${resolve(disk)} must be apart (neither inside the other)${via}; choose another mount point`)
  }
}

/**
 * Creates a directory the user named (a disk, a mount point) and its missing parents, as mkdir -p;
 * throws a UserError saying `what` could not be made, and why. Node's own recursive mkdir (v20)
 * loops forever at full CPU when a parent exists but refuses children with ENOENT (under /proc).
 */
export function makeDirs (path: string, what: string): void {
  const missing: string[] = []
  try {
    for (let p = resolve(path); ; p = dirname(p)) {
      const st = fs.statSync(p, { throwIfNoEntry: false })
      if (st !== undefined) {
        if (!st.isDirectory()) throw Object.assign(new Error(`${p} is not a directory`), { code: 'ENOTDIR' })
        break
      }
      missing.push(p)
      if (dirname(p) === p) break
    }
    for (const dir of missing.reverse()) {
      try {
        fs.mkdirSync(dir)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || !fs.statSync(dir).isDirectory()) throw err
      }
    }
  } catch (err) {
    throw new UserError(`cannot create the ${what} ${path}: ${(err as Error).message}`)
  }
}

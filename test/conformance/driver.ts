// What a conformance scenario may do to a filesystem: a few POSIX calls, by paths relative to the
// volume's root, every one asynchronous. A failure rejects with an error whose `code` is the errno
// name (ENOENT, EEXIST...), whichever driver ran it.
export interface Stat {
  ino: number
  /** Type and permission bits. */
  mode: number
  uid: number
  gid: number
  size: number
  nlink: number
  blocks: number
  /** Milliseconds, with the fraction the nanoseconds give. */
  atimeMs: number
  mtimeMs: number
  ctimeMs: number
}

export interface Driver {
  readonly name: string
  mkdir (path: string, mode?: number): Promise<void>
  rmdir (path: string): Promise<void>
  unlink (path: string): Promise<void>
  rename (from: string, to: string): Promise<void>
  link (from: string, to: string): Promise<void>
  symlink (target: string, path: string): Promise<void>
  readlink (path: string): Promise<string>
  /** lstat(2): a symlink's own. */
  stat (path: string): Promise<Stat>
  /** The names, sorted, without . and .. */
  readdir (path: string): Promise<string[]>
  chmod (path: string, mode: number): Promise<void>
  chown (path: string, uid: number, gid: number): Promise<void>
  /** Times in milliseconds. */
  utimes (path: string, atimeMs: number, mtimeMs: number): Promise<void>
  truncate (path: string, size: number): Promise<void>
  /** open(2) with fs.constants flags (O_CREAT makes a file of `mode`); resolves with a descriptor. */
  open (path: string, flags: number, mode?: number): Promise<number>
  /** pwrite(2), or write(2) at the end for a descriptor opened O_APPEND (`pos` null). */
  write (fd: number, data: Buffer, pos: number | null): Promise<number>
  /** Reads up to `length` bytes from `pos`, fewer only at the end of the file. */
  read (fd: number, length: number, pos: number): Promise<Buffer>
  ftruncate (fd: number, size: number): Promise<void>
  fstat (fd: number): Promise<Stat>
  fsync (fd: number): Promise<void>
  close (fd: number): Promise<void>
  /** Ends the driver (the mount's child process). */
  end (): Promise<void>
}

/** The errno name a call failed with, or 'ok'. */
export async function errnoOf (call: Promise<unknown>): Promise<string> {
  try {
    await call
    return 'ok'
  } catch (err) {
    const code = (err as { code?: unknown }).code
    if (typeof code === 'string') return code
    throw err
  }
}

export async function writeFile (d: Driver, path: string, data: Buffer | string, flags?: number): Promise<void> {
  const { O_WRONLY, O_CREAT, O_TRUNC } = await import('node:fs').then(m => m.constants)
  const fd = await d.open(path, flags ?? (O_WRONLY | O_CREAT | O_TRUNC), 0o644)
  try {
    const bytes = typeof data === 'string' ? Buffer.from(data) : data
    if (bytes.length > 0) await d.write(fd, bytes, 0)
  } finally {
    await d.close(fd)
  }
}

export async function readFile (d: Driver, path: string): Promise<Buffer> {
  const fd = await d.open(path, 0)
  try {
    const { size } = await d.fstat(fd)
    return await d.read(fd, size, 0)
  } finally {
    await d.close(fd)
  }
}

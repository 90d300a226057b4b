// The POSIX behaviour the volume promises, written once against a Driver and run against the core
// with memory parts (memory.test.ts) and against a real mount (mount.test.ts). Every scenario
// works in a directory of its own; the expected values are fixed, so both runs agree or one fails.
// What only a real mount can show (kernel caches, fuse_hidden names, programs such as cp, mv and
// dd, restarts) stays in test/mount.
import fs from 'node:fs'
import { randomBytes } from 'node:crypto'
import type { Test } from 'tap'
import { errnoOf, readFile, writeFile, type Driver } from './driver.js'

const { O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_EXCL, O_TRUNC, O_APPEND, S_IFMT, S_IFDIR, S_IFREG, S_IFLNK } = fs.constants

export interface Scenario {
  name: string
  run: (t: Test, d: Driver, dir: string) => Promise<void>
}

const T1 = 1_600_000_000_000
const T2 = 1_500_000_000_000

export const scenarios: Scenario[] = [
  {
    name: 'directories: mkdir, readdir, nlink, rmdir and their errnos',
    async run (t, d, dir) {
      await d.mkdir(`${dir}/a`, 0o755)
      await d.mkdir(`${dir}/a/b`, 0o700)
      await writeFile(d, `${dir}/a/f`, 'x')
      const a = await d.stat(`${dir}/a`)
      t.equal(a.mode & S_IFMT, S_IFDIR, 'a directory')
      t.equal(a.mode & 0o7777, 0o755, 'with its mode')
      t.equal(a.nlink, 3, '2 + its subdirectories')
      t.equal((await d.stat(`${dir}/a/b`)).mode & 0o7777, 0o700, 'a subdirectory with its mode')
      t.same(await d.readdir(`${dir}/a`), ['b', 'f'], 'readdir lists both')
      t.equal(await errnoOf(d.mkdir(`${dir}/a`)), 'EEXIST', 'mkdir of an existing name')
      t.equal(await errnoOf(d.mkdir(`${dir}/a/f`)), 'EEXIST', 'mkdir over a file')
      t.equal(await errnoOf(d.mkdir(`${dir}/a/f/x`)), 'ENOTDIR', 'mkdir below a file')
      t.equal(await errnoOf(d.mkdir(`${dir}/no/x`)), 'ENOENT', 'mkdir below nothing')
      t.equal(await errnoOf(d.rmdir(`${dir}/a`)), 'ENOTEMPTY', 'rmdir of a non-empty directory')
      t.equal(await errnoOf(d.rmdir(`${dir}/a/f`)), 'ENOTDIR', 'rmdir of a file')
      t.equal(await errnoOf(d.rmdir(`${dir}/missing`)), 'ENOENT', 'rmdir of nothing')
      t.equal(await errnoOf(d.readdir(`${dir}/a/f`)), 'ENOTDIR', 'readdir of a file')
      t.equal(await errnoOf(d.readdir(`${dir}/missing`)), 'ENOENT', 'readdir of nothing')
      t.equal(await errnoOf(d.stat(`${dir}/a/f/x`)), 'ENOTDIR', 'a lookup through a file')
      t.equal(await errnoOf(d.stat(`${dir}/${'n'.repeat(256)}`)), 'ENAMETOOLONG', 'a name longer than 255 bytes')
      t.equal(await errnoOf(d.mkdir(`${dir}/${'n'.repeat(256)}`)), 'ENAMETOOLONG', 'mkdir of a name longer than 255 bytes')
      await d.rmdir(`${dir}/a/b`)
      t.equal((await d.stat(`${dir}/a`)).nlink, 2, 'one subdirectory fewer')
      await d.unlink(`${dir}/a/f`)
      await d.rmdir(`${dir}/a`)
      t.same(await d.readdir(dir), [], 'all gone')
    }
  },
  {
    name: 'files of 0, 1 and many bytes: written, closed, read back',
    async run (t, d, dir) {
      const big = randomBytes(3 * 1024 * 1024 + 17)
      await writeFile(d, `${dir}/empty`, '')
      await writeFile(d, `${dir}/one`, 'x')
      await writeFile(d, `${dir}/big`, big)
      t.equal((await d.stat(`${dir}/empty`)).size, 0, 'empty')
      t.equal((await d.stat(`${dir}/one`)).size, 1, 'one byte')
      t.equal((await d.stat(`${dir}/big`)).size, big.length, 'big')
      t.equal((await d.stat(`${dir}/big`)).mode, S_IFREG | 0o644, 'a regular file of its mode')
      t.equal((await readFile(d, `${dir}/empty`)).length, 0, 'reads nothing')
      t.equal((await readFile(d, `${dir}/one`)).toString(), 'x', 'reads its byte')
      t.ok((await readFile(d, `${dir}/big`)).equals(big), 'reads its bytes')
      const fd = await d.open(`${dir}/big`, O_RDONLY)
      t.ok((await d.read(fd, 1000, 2 * 1024 * 1024 - 500)).equals(big.subarray(2 * 1024 * 1024 - 500, 2 * 1024 * 1024 + 500)), 'a read across a piece boundary')
      t.equal((await d.read(fd, 100, big.length - 10)).length, 10, 'a read across the end stops there')
      t.equal((await d.read(fd, 100, big.length + 10)).length, 0, 'a read past the end reads nothing')
      await d.close(fd)
      t.equal(await errnoOf(d.open(`${dir}/missing`, O_RDONLY)), 'ENOENT', 'open of nothing')
      t.equal(await errnoOf(d.open(`${dir}/one`, O_WRONLY | O_CREAT | O_EXCL)), 'EEXIST', 'O_EXCL of an existing name')
      await d.mkdir(`${dir}/sub`)
      t.equal(await errnoOf(d.open(`${dir}/sub`, O_WRONLY)), 'EISDIR', 'a directory opened for writing')
      t.equal(await errnoOf(d.unlink(`${dir}/sub`)), 'EISDIR', 'unlink of a directory')
      t.equal(await errnoOf(d.unlink(`${dir}/missing`)), 'ENOENT', 'unlink of nothing')
      t.equal(await errnoOf(d.open(`${dir}/one/x`, O_WRONLY | O_CREAT)), 'ENOTDIR', 'create below a file')
    }
  },
  {
    name: 'overwrites, O_TRUNC, O_APPEND and O_RDWR',
    async run (t, d, dir) {
      await writeFile(d, `${dir}/f`, 'hello world')
      let fd = await d.open(`${dir}/f`, O_WRONLY)
      await d.write(fd, Buffer.from('HELLO'), 0)
      await d.close(fd)
      t.equal((await readFile(d, `${dir}/f`)).toString(), 'HELLO world', 'a write in place changes only its bytes')
      fd = await d.open(`${dir}/f`, O_WRONLY | O_APPEND)
      await d.write(fd, Buffer.from('!'), null)
      await d.write(fd, Buffer.from('?'), null)
      await d.close(fd)
      t.equal((await readFile(d, `${dir}/f`)).toString(), 'HELLO world!?', 'O_APPEND writes at the end')
      fd = await d.open(`${dir}/f`, O_RDWR)
      await d.write(fd, Buffer.from('J'), 0)
      t.equal((await d.read(fd, 5, 0)).toString(), 'JELLO', 'a reader through the writer sees its write')
      t.equal((await d.fstat(fd)).size, 13, 'fstat of the writer')
      await d.close(fd)
      fd = await d.open(`${dir}/f`, O_WRONLY | O_TRUNC)
      t.equal((await d.fstat(fd)).size, 0, 'O_TRUNC empties it')
      await d.write(fd, Buffer.from('new'), 0)
      await d.close(fd)
      t.equal((await readFile(d, `${dir}/f`)).toString(), 'new', 'what was written after')
      const reader = await d.open(`${dir}/f`, O_RDONLY)
      await writeFile(d, `${dir}/f`, 'other bytes')
      t.equal((await readFile(d, `${dir}/f`)).toString(), 'other bytes', 'a new version')
      await d.close(reader)
    }
  },
  {
    name: 'truncate and holes: sparse files read zeros where nothing was written',
    async run (t, d, dir) {
      await writeFile(d, `${dir}/f`, 'abcdef')
      await d.truncate(`${dir}/f`, 3)
      t.equal((await readFile(d, `${dir}/f`)).toString(), 'abc', 'shrunk')
      await d.truncate(`${dir}/f`, 8)
      t.same([...await readFile(d, `${dir}/f`)], [97, 98, 99, 0, 0, 0, 0, 0], 'grown with zeros')
      await d.truncate(`${dir}/f`, 0)
      t.equal((await d.stat(`${dir}/f`)).size, 0, 'emptied')
      t.equal(await errnoOf(d.truncate(`${dir}/missing`, 0)), 'ENOENT', 'truncate of nothing')
      await d.mkdir(`${dir}/sub`)
      t.equal(await errnoOf(d.truncate(`${dir}/sub`, 0)), 'EISDIR', 'truncate of a directory')
      await writeFile(d, `${dir}/holes`, '')
      const fd = await d.open(`${dir}/holes`, O_WRONLY)
      await d.write(fd, Buffer.from('tail'), 4 * 1024 * 1024)
      await d.ftruncate(fd, 6 * 1024 * 1024)
      t.equal((await d.fstat(fd)).size, 6 * 1024 * 1024, 'ftruncate grows it')
      await d.close(fd)
      const st = await d.stat(`${dir}/holes`)
      t.equal(st.size, 6 * 1024 * 1024, 'the size past the last write')
      t.ok(st.blocks * 512 < st.size, 'holes take no blocks', { blocks: st.blocks })
      const data = await readFile(d, `${dir}/holes`)
      t.ok(data.subarray(0, 4 * 1024 * 1024).equals(Buffer.alloc(4 * 1024 * 1024)), 'the hole before reads zeros')
      t.equal(data.subarray(4 * 1024 * 1024, 4 * 1024 * 1024 + 4).toString(), 'tail', 'the bytes written')
      t.ok(data.subarray(4 * 1024 * 1024 + 4).equals(Buffer.alloc(2 * 1024 * 1024 - 4)), 'the hole after reads zeros')
    }
  },
  {
    name: 'rename over files and directories, and its errnos',
    async run (t, d, dir) {
      await writeFile(d, `${dir}/a`, 'A')
      await writeFile(d, `${dir}/b`, 'B')
      const ino = (await d.stat(`${dir}/a`)).ino
      await d.rename(`${dir}/a`, `${dir}/b`)
      t.equal((await readFile(d, `${dir}/b`)).toString(), 'A', 'the target has the source bytes')
      t.equal((await d.stat(`${dir}/b`)).ino, ino, 'and the source inode')
      t.same(await d.readdir(dir), ['b'], 'the source name is gone')
      await d.rename(`${dir}/b`, `${dir}/b`)
      t.same(await d.readdir(dir), ['b'], 'a rename onto itself does nothing')
      await d.mkdir(`${dir}/d1`)
      await d.mkdir(`${dir}/d2`)
      await writeFile(d, `${dir}/d1/x`, 'x')
      await d.mkdir(`${dir}/full`)
      await writeFile(d, `${dir}/full/y`, 'y')
      t.equal(await errnoOf(d.rename(`${dir}/d1`, `${dir}/full`)), 'ENOTEMPTY', 'a directory over a non-empty one')
      t.equal(await errnoOf(d.rename(`${dir}/b`, `${dir}/d2`)), 'EISDIR', 'a file over a directory')
      t.equal(await errnoOf(d.rename(`${dir}/d1`, `${dir}/b`)), 'ENOTDIR', 'a directory over a file')
      t.equal(await errnoOf(d.rename(`${dir}/d1`, `${dir}/d1/x2`)), 'EINVAL', 'a directory into itself')
      t.equal(await errnoOf(d.rename(`${dir}/missing`, `${dir}/z`)), 'ENOENT', 'a rename of nothing')
      t.equal(await errnoOf(d.rename(`${dir}/b`, `${dir}/no/z`)), 'ENOENT', 'a rename into nothing')
      await d.rename(`${dir}/d1`, `${dir}/d2`)
      t.same(await d.readdir(`${dir}/d2`), ['x'], 'a directory over an empty one')
      t.equal((await readFile(d, `${dir}/d2/x`)).toString(), 'x', 'with what it holds')
      t.same(await d.readdir(dir), ['b', 'd2', 'full'], 'the names left')
      t.equal((await d.stat(dir)).nlink, 4, 'the parent counts its subdirectories')
    }
  },
  {
    name: 'an open file unlinked or renamed over stays readable and writable until closed',
    async run (t, d, dir) {
      await d.mkdir(`${dir}/sub`)
      await writeFile(d, `${dir}/sub/f`, 'first')
      const fd = await d.open(`${dir}/sub/f`, O_RDWR)
      await d.unlink(`${dir}/sub/f`)
      t.same(await d.readdir(`${dir}/sub`), [], 'the name is gone')
      t.equal(await errnoOf(d.stat(`${dir}/sub/f`)), 'ENOENT', 'and looks up as nothing')
      t.equal((await d.read(fd, 5, 0)).toString(), 'first', 'the open file still reads')
      await d.write(fd, Buffer.from(' and more'), 5)
      t.equal((await d.read(fd, 100, 0)).toString(), 'first and more', 'and writes')
      const st = await d.fstat(fd)
      t.equal(st.size, 14, 'fstat sees it')
      // The one difference between the runs, and not the core's to hide: the core answers 1 (the
      // kernel must not see a named inode without links, and libfuse still names it, hidden); the
      // kernel shows 0, as a local disk does (test/mount/owners.test.ts compares it with one).
      t.equal(st.nlink, d.name === 'mount' ? 0 : 1, 'no name left: the kernel shows 0 links, the core 1')
      t.equal(await errnoOf(d.rmdir(`${dir}/sub`)), 'EBUSY', 'its directory is busy until it is closed')
      await d.close(fd)
      await d.rmdir(`${dir}/sub`)
      await writeFile(d, `${dir}/old`, 'old bytes')
      await writeFile(d, `${dir}/new`, 'new bytes')
      const old = await d.open(`${dir}/old`, O_RDONLY)
      await d.rename(`${dir}/new`, `${dir}/old`)
      t.equal((await readFile(d, `${dir}/old`)).toString(), 'new bytes', 'the name has the new file')
      t.equal((await d.read(old, 100, 0)).toString(), 'old bytes', 'the open one keeps the old bytes')
      await d.close(old)
      t.same(await d.readdir(dir), ['old'], 'nothing else is left')
    }
  },
  {
    name: 'hard links: one inode, nlink, a change seen through every name',
    async run (t, d, dir) {
      await writeFile(d, `${dir}/a`, 'hello')
      await d.link(`${dir}/a`, `${dir}/b`)
      await d.mkdir(`${dir}/d`)
      await d.link(`${dir}/b`, `${dir}/d/c`)
      const [a, b, c] = [await d.stat(`${dir}/a`), await d.stat(`${dir}/b`), await d.stat(`${dir}/d/c`)]
      t.same([a.nlink, b.nlink, c.nlink], [3, 3, 3], 'three links each')
      t.ok(a.ino === b.ino && b.ino === c.ino, 'one inode')
      const fd = await d.open(`${dir}/d/c`, O_WRONLY | O_APPEND)
      await d.write(fd, Buffer.from(' world'), null)
      await d.close(fd)
      t.equal((await readFile(d, `${dir}/a`)).toString(), 'hello world', 'a write through one name is seen through another')
      await d.chmod(`${dir}/b`, 0o600)
      t.equal((await d.stat(`${dir}/a`)).mode & 0o7777, 0o600, 'so is a chmod')
      await d.unlink(`${dir}/a`)
      t.equal((await d.stat(`${dir}/b`)).nlink, 2, 'one name fewer')
      t.equal((await readFile(d, `${dir}/d/c`)).toString(), 'hello world', 'the bytes stay')
      await d.rename(`${dir}/b`, `${dir}/d/c`)
      t.same(await d.readdir(dir), ['b', 'd'], 'a rename between two names of one file does nothing')
      t.equal(await errnoOf(d.link(`${dir}/d`, `${dir}/y`)), 'EPERM', 'a directory cannot be linked')
      t.equal(await errnoOf(d.link(`${dir}/b`, `${dir}/d/c`)), 'EEXIST', 'a link over a name')
      t.equal(await errnoOf(d.link(`${dir}/missing`, `${dir}/z`)), 'ENOENT', 'a link of nothing')
      t.equal(await errnoOf(d.link(`${dir}/b`, `${dir}/no/z`)), 'ENOENT', 'a link into nothing')
      await d.unlink(`${dir}/d/c`)
      t.equal((await d.stat(`${dir}/b`)).nlink, 1, 'the last name')
    }
  },
  {
    name: 'symlinks: readlink, lstat, hard links to them, errnos',
    async run (t, d, dir) {
      await d.symlink('some/where/else', `${dir}/l`)
      t.equal(await d.readlink(`${dir}/l`), 'some/where/else', 'readlink gives the target')
      const st = await d.stat(`${dir}/l`)
      t.equal(st.mode & S_IFMT, S_IFLNK, 'lstat sees a symlink')
      t.equal(st.size, 'some/where/else'.length, 'of its target\'s length')
      await writeFile(d, `${dir}/f`, 'x')
      t.equal(await errnoOf(d.readlink(`${dir}/f`)), 'EINVAL', 'readlink of a file')
      t.equal(await errnoOf(d.readlink(`${dir}/missing`)), 'ENOENT', 'readlink of nothing')
      t.equal(await errnoOf(d.symlink('x', `${dir}/f`)), 'EEXIST', 'a symlink over a name')
      await d.link(`${dir}/l`, `${dir}/l2`)
      t.equal(await d.readlink(`${dir}/l2`), 'some/where/else', 'a hard link of a symlink reads the same')
      t.equal((await d.stat(`${dir}/l`)).nlink, 2, 'two names')
      t.equal((await d.stat(`${dir}/l2`)).mode & S_IFMT, S_IFLNK, 'still a symlink')
      await d.rename(`${dir}/l`, `${dir}/l3`)
      t.equal(await d.readlink(`${dir}/l3`), 'some/where/else', 'a renamed symlink')
      t.same(await d.readdir(dir), ['f', 'l2', 'l3'], 'names')
    }
  },
  {
    name: 'chmod, chown and utimens, also of a file open for writing',
    async run (t, d, dir) {
      await writeFile(d, `${dir}/f`, 'x')
      await d.chmod(`${dir}/f`, 0o640)
      t.equal((await d.stat(`${dir}/f`)).mode, S_IFREG | 0o640, 'chmod keeps the type')
      await d.chown(`${dir}/f`, 1234, 5678)
      let st = await d.stat(`${dir}/f`)
      t.same([st.uid, st.gid], [1234, 5678], 'chown')
      await d.chown(`${dir}/f`, -1, 42)
      st = await d.stat(`${dir}/f`)
      t.same([st.uid, st.gid], [1234, 42], 'chown of -1 leaves the uid')
      await d.utimes(`${dir}/f`, T2, T1)
      st = await d.stat(`${dir}/f`)
      t.same([st.atimeMs, st.mtimeMs], [T2, T1], 'utimens sets both times')
      t.ok(st.ctimeMs > T1, 'and ctime is now')
      await d.mkdir(`${dir}/d`)
      await d.utimes(`${dir}/d`, T1, T2)
      t.equal((await d.stat(`${dir}/d`)).mtimeMs, T2, 'of a directory')
      await d.symlink('t', `${dir}/l`)
      await d.utimes(`${dir}/l`, T1, T2)
      t.equal((await d.stat(`${dir}/l`)).mtimeMs, T2, 'of a symlink')
      // As cp -p and tar do: write, set the times, close.
      const fd = await d.open(`${dir}/g`, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
      await d.write(fd, Buffer.from('data'), 0)
      await d.utimes(`${dir}/g`, T2, T1)
      t.equal((await d.fstat(fd)).mtimeMs, T1, 'set while open')
      await d.chmod(`${dir}/g`, 0o600)
      await d.close(fd)
      st = await d.stat(`${dir}/g`)
      t.equal(st.mtimeMs, T1, 'the time set stays after the close')
      t.equal(st.mode & 0o7777, 0o600, 'so does the mode')
      const before = Date.now()
      const w = await d.open(`${dir}/g`, O_WRONLY)
      await d.write(w, Buffer.from('more'), 4)
      t.ok((await d.fstat(w)).mtimeMs >= before - 1000, 'a write stamps mtime')
      await d.close(w)
      st = await d.stat(`${dir}/g`)
      t.ok(st.mtimeMs >= before - 1000 && st.ctimeMs >= st.mtimeMs, 'and keeps it after the close')
      t.equal(await errnoOf(d.chmod(`${dir}/missing`, 0o600)), 'ENOENT', 'chmod of nothing')
      t.equal(await errnoOf(d.utimes(`${dir}/missing`, T1, T1)), 'ENOENT', 'utimens of nothing')
    }
  },
  {
    name: 'a setgid directory gives its group to new entries and its setgid to new directories',
    async run (t, d, dir) {
      await d.mkdir(`${dir}/g`)
      await d.chown(`${dir}/g`, -1, 5678)
      await d.chmod(`${dir}/g`, 0o2775)
      await writeFile(d, `${dir}/g/f`, 'x')
      await d.mkdir(`${dir}/g/sub`)
      t.equal((await d.stat(`${dir}/g/f`)).gid, 5678, 'a file takes the group')
      const sub = await d.stat(`${dir}/g/sub`)
      t.equal(sub.gid, 5678, 'a directory takes the group')
      t.equal(sub.mode & 0o2000, 0o2000, 'and the setgid bit')
    }
  },
  {
    name: 'readdir after many changes lists exactly the names there',
    async run (t, d, dir) {
      const names: string[] = []
      for (let i = 0; i < 40; i++) {
        const name = `n${String(i).padStart(2, '0')}`
        if (i % 3 === 0) await d.mkdir(`${dir}/${name}`)
        else await writeFile(d, `${dir}/${name}`, name)
        names.push(name)
      }
      for (let i = 0; i < 40; i += 4) {
        if (i % 3 === 0) await d.rmdir(`${dir}/${names[i]}`)
        else await d.unlink(`${dir}/${names[i]}`)
      }
      for (let i = 1; i < 40; i += 8) await d.rename(`${dir}/${names[i]}`, `${dir}/r${names[i]}`)
      const expected = names.filter((_, i) => i % 4 !== 0).map(n => (Number(n.slice(1)) - 1) % 8 === 0 ? `r${n}` : n).sort()
      t.same(await d.readdir(dir), expected, 'the names')
      t.equal((await d.stat(dir)).nlink, 2 + names.filter((_, i) => i % 3 === 0 && i % 4 !== 0).length, 'the subdirectories')
    }
  },
  {
    // Moved from test/mount/shell.test.ts, which keeps mv's own refusal.
    name: 'failures change nothing: link of a directory, rmdir of a non-empty one, a directory into itself',
    async run (t, d, dir) {
      await d.mkdir(`${dir}/err`)
      await writeFile(d, `${dir}/err/a`, 'a')
      await d.mkdir(`${dir}/err/d`)
      await d.mkdir(`${dir}/err/d/sub`)
      await writeFile(d, `${dir}/err/d/b`, 'b')
      t.equal(await errnoOf(d.link(`${dir}/err/d`, `${dir}/err/hard`)), 'EPERM', 'link(2) of a directory: EPERM')
      t.equal(await errnoOf(d.rmdir(`${dir}/err/d`)), 'ENOTEMPTY', 'rmdir of a non-empty directory: ENOTEMPTY')
      t.equal(await errnoOf(d.rename(`${dir}/err/d`, `${dir}/err/d/sub/inner`)), 'EINVAL', 'rename(2) of a directory into itself: EINVAL')
      t.equal(await errnoOf(d.unlink(`${dir}/err/d`)), 'EISDIR', 'unlink(2) of a directory: EISDIR')
      t.equal(await errnoOf(d.mkdir(`${dir}/err/a`)), 'EEXIST', 'mkdir over a file: EEXIST')
      t.equal(await errnoOf(d.open(`${dir}/err/a/x`, O_RDONLY)), 'ENOTDIR', 'a file used as a directory: ENOTDIR')
      t.same([await d.readdir(`${dir}/err`), await d.readdir(`${dir}/err/d`), await d.readdir(`${dir}/err/d/sub`)], [['a', 'd'], ['b', 'sub'], []], 'the names are as they were')
      t.equal((await readFile(d, `${dir}/err/a`)).toString() + (await readFile(d, `${dir}/err/d/b`)).toString(), 'ab', 'and the bytes')
    }
  },
  {
    name: 'fsync of a file being written, and of one closed',
    async run (t, d, dir) {
      const fd = await d.open(`${dir}/f`, O_WRONLY | O_CREAT, 0o644)
      await d.write(fd, Buffer.from('durable'), 0)
      await d.fsync(fd)
      t.equal((await d.fstat(fd)).size, 7, 'the size after fsync')
      await d.close(fd)
      const r = await d.open(`${dir}/f`, O_RDONLY)
      await d.fsync(r)
      t.equal((await d.read(r, 10, 0)).toString(), 'durable', 'the bytes')
      await d.close(r)
    }
  }
]

// Shell life: a user works in the mount with the everyday tools, and everything behaves as on a
// local disk. Where it can, each step runs the same commands on a native directory too and compares.
import t from 'tap'
import type { Test } from 'tap'
import fs from 'node:fs'
import { join } from 'node:path'
import { assertSameTree, diffTrees, makeTree, prng, randomBytesSeeded, sh, startVolume, treeSum, type Volume } from '../helpers/volume.js'

const GiB = 1024 ** 3

/** Runs `script` in `native` and in `mounted` (as cwd); asserts equal exit codes and output, then equal trees. */
async function sameInBoth (t: Test, script: string, native: string, mounted: string, msg: string): Promise<void> {
  const a = await sh(t, script, { cwd: native, allowFail: true })
  const b = await sh(t, script, { cwd: mounted, allowFail: true })
  t.same({ code: b.code, stdout: b.stdout, stderr: b.stderr }, { code: a.code, stdout: a.stdout, stderr: a.stderr }, `${msg}: same exit and output as on a local disk`)
  await assertSameTree(t, native, mounted, `${msg}: same tree as on a local disk`)
}

/** The disk holds sparse files sparsely: contents and staging use far less than the 5 GiB files' sizes. */
async function assertDiskSparse (t: Test, vol: Volume, when: string): Promise<void> {
  const du = await sh(t, 'du -sk --total content staging | tail -n 1 | cut -f1', { cwd: vol.disk })
  const kib = Number(du.stdout.trim())
  t.ok(kib < 256 * 1024, `${when}, the disk uses ${(kib / 1024).toFixed(0)} MiB for contents (less than 256 MiB)`)
}

t.test('shell life in a mounted volume', async t => {
  const vol: Volume = await startVolume(t)
  const { mnt, scratch } = vol
  const rand = prng(20240611)
  const src = join(scratch, 'src')
  const files = makeTree(src, rand, 2500)
  t.comment(`source tree: ${files} files`)

  await t.test('the mount reads ahead 8 MiB for sequential readers (not FUSE\'s 128 KiB)', async t => {
    // Tests run as root (scripts/test.sh), so the node could set it through sysfs.
    const line = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find(l => l.split(' ')[4] === mnt)
    t.ok(line, 'the mount is in /proc/self/mountinfo')
    const dev = line?.split(' ')[2]
    t.equal(fs.readFileSync(`/sys/class/bdi/${dev}/read_ahead_kb`, 'utf8').trim(), '8192', `read_ahead_kb of ${dev}`)
  })

  await t.test('cp -r of a tree of thousands of files arrives intact', async t => {
    await sh(t, `cp -r "${src}" tree`, { cwd: mnt })
    await assertSameTree(t, src, join(mnt, 'tree'), 'copied tree')
    const count = await sh(t, 'find tree -type f | wc -l', { cwd: mnt })
    t.equal(Number(count.stdout.trim()), files, 'find counts every file')
  })

  await t.test('ls -la and find show names, types, sizes and modes', async t => {
    const ls = await sh(t, 'ls -la tree', { cwd: mnt })
    t.match(ls.stdout, /^total \d+/, 'ls -la prints a total')
    t.match(ls.stdout, /^d[rwx-]{9} .* \.\n/m, 'lists .')
    t.match(ls.stdout, /^d[rwx-]{9} .* \.\.\n/m, 'lists ..')
    t.match(ls.stdout, /^-[rwx-]{9} +1 \S+ +\S+ +0 .* empty\n/m, 'empty file of 0 bytes')
    t.match(ls.stdout, /^-[rwx-]{9} +1 \S+ +\S+ +1 .* one-byte\n/m, 'one-byte file of 1 byte')
    t.match(ls.stdout, /^lrwxrwxrwx .* link-to-file -> dir0\/sub 0\/file-1\.txt\n/m, 'symlink and its target')
    t.match(ls.stdout, /^d[rwx-]{9} .* empty dir\n/m, 'empty directory')
    t.match(ls.stdout, /naïve café\.txt\n/, 'non-ASCII name')
    const big = await sh(t, 'ls -l tree/big/five-mib', { cwd: mnt })
    t.match(big.stdout, / 5242880 /, 'size of a 5 MiB file')
    const found = await sh(t, 'find tree -name "file-1*.txt" -path "*dir3*" | sort', { cwd: mnt })
    const native = await sh(t, 'find src -name "file-1*.txt" -path "*dir3*" | sed "s/^src/tree/" | sort', { cwd: scratch })
    t.ok(found.stdout.split('\n').length > 10, 'find -name -path matches files')
    t.equal(found.stdout, native.stdout, 'find in the mount lists what find lists natively')
    const types = await sh(t, 'find tree -maxdepth 1 -type l | sort', { cwd: mnt })
    t.equal(types.stdout, 'tree/dangling\ntree/link-to-file\n', 'find -type l')
  })

  await t.test('tar out of the mount and back into another directory of it', async t => {
    const tarball = join(scratch, 'tree.tar')
    await sh(t, `tar -C "${mnt}" -cf "${tarball}" tree`)
    await sh(t, `mkdir untar && tar -C untar -xpf "${tarball}"`, { cwd: mnt })
    await assertSameTree(t, src, join(mnt, 'untar', 'tree'), 'tree after tar round trip')
    // tar -x restores each file's mtime (utimensat with the atime left alone, UTIME_OMIT).
    const mtimes = async (dir: string): Promise<string[]> => {
      const r = await sh(t, 'find . -type f -printf "%P\\t%T@\\n" | sort', { cwd: dir })
      return r.stdout.split('\n').filter(l => l !== '').map(l => l.replace(/\.\d+$/, ''))
    }
    const want = await mtimes(join(mnt, 'tree'))
    const got = await mtimes(join(mnt, 'untar', 'tree'))
    t.equal(got.length, want.length, 'as many files')
    const wrong = got.filter((line, i) => line !== want[i])
    t.same(wrong.slice(0, 5), [], `tar -x restores file mtimes (${wrong.length} of ${files} wrong)`)
    // And tar of the mount reads the same bytes as tar of the source.
    await sh(t, `mkdir "${scratch}/x" && tar -C "${scratch}/x" -xf "${tarball}"`)
    await assertSameTree(t, src, join(scratch, 'x', 'tree'), 'tarball extracted natively')
  })

  await t.test('rm -r removes a whole tree', async t => {
    await sh(t, 'rm -r untar', { cwd: mnt })
    const ls = await sh(t, 'ls -A', { cwd: mnt })
    t.equal(ls.stdout, 'tree\n', 'only the first copy is left')
    const inDir7 = Number((await sh(t, 'find src/dir7 -type f | wc -l', { cwd: scratch })).stdout.trim())
    const rmdir = await sh(t, 'rm -r tree/dir7 && test ! -e tree/dir7 && find tree -type f | wc -l', { cwd: mnt })
    t.equal(Number(rmdir.stdout.trim()), files - inDir7, `the ${inDir7} files of the removed directory are gone, the others stay`)
  })

  await t.test('mv renames files and directories like a local disk', async t => {
    const native = join(scratch, 'mv-native')
    const mounted = join(mnt, 'mv')
    fs.mkdirSync(native)
    await sh(t, 'mkdir mv', { cwd: mnt })
    const setup = `
      mkdir -p a/b/c empty1 empty2 full
      printf one > a/one; printf two > a/b/two; printf three > a/b/c/three
      printf keep > full/keep; printf old > target; printf new > source
      dd if=/dev/zero of=a/zeros bs=1k count=300 status=none`
    await sameInBoth(t, setup, native, mounted, 'setup')
    await sameInBoth(t, 'mv source target && cat target && test ! -e source', native, mounted, 'mv over an existing file replaces it')
    await sameInBoth(t, 'mv a/one a/b/c/one-moved && cat a/b/c/one-moved', native, mounted, 'mv a file into another directory')
    await sameInBoth(t, 'mv a renamed && cat renamed/b/two renamed/b/c/three && cmp renamed/zeros <(head -c 307200 /dev/zero)', native, mounted, 'mv a directory with contents')
    await sameInBoth(t, 'mv -T empty1 empty2 && test ! -e empty1 && test -d empty2', native, mounted, 'mv -T a directory over an empty directory')
    await sameInBoth(t, 'mv renamed/b empty2/ && ls empty2 empty2/b', native, mounted, 'mv a directory into a directory')
    await sameInBoth(t, 'mv -T empty2 full', native, mounted, 'mv -T a directory over a non-empty directory fails')
    await sameInBoth(t, 'mv -T full/keep empty2', native, mounted, 'mv -T a file over a directory fails')
    await sameInBoth(t, 'mv -T empty2 target', native, mounted, 'mv -T a directory over a file fails')
    await sameInBoth(t, 'mv nothing-here somewhere', native, mounted, 'mv of a missing file fails')
    await sameInBoth(t, 'mv target Target && mv Target target2 && cat target2', native, mounted, 'renames in a row')
  })

  await t.test('dd writes at offsets with conv=notrunc and reads back', async t => {
    const native = join(scratch, 'dd-native')
    fs.mkdirSync(native)
    await sh(t, 'mkdir dd', { cwd: mnt })
    const noise = join(scratch, 'noise')
    fs.writeFileSync(noise, randomBytesSeeded(rand, 512 * 1024))
    const script = `
      dd if="${noise}" of=f bs=64k count=8 status=none
      dd if="${noise}" of=f bs=1 skip=7 seek=4095 count=3 conv=notrunc status=none
      dd if="${noise}" of=f bs=1000 skip=3 seek=131 count=40 conv=notrunc status=none
      dd if="${noise}" of=f bs=4096 seek=200 count=2 conv=notrunc status=none
      dd if=/dev/zero of=f bs=1 seek=0 count=1 conv=notrunc status=none
      stat -c %s f
      dd if=f bs=1000 skip=131 count=40 status=none | sha256sum
      dd if=f bs=4096 skip=150 count=10 status=none | sha256sum
      sha256sum f`
    await sameInBoth(t, script, native, join(mnt, 'dd'), 'dd at offsets (incl. past the end, leaving a hole)')
    const size = await sh(t, 'stat -c %s dd/f', { cwd: mnt })
    t.equal(size.stdout.trim(), String(202 * 4096), 'size after a write past the end')
    // Overwrite in the middle of a file whose contents are sealed (copy-on-write), then append.
    const more = `
      dd if="${noise}" of=f bs=100 skip=9 seek=5000 count=3 conv=notrunc status=none
      printf tail >> f
      sha256sum f; stat -c %s f`
    await sameInBoth(t, more, native, join(mnt, 'dd'), 'dd into and after an existing file')
  })

  await t.test('truncate grows and shrinks', async t => {
    const native = join(scratch, 'trunc-native')
    fs.mkdirSync(native)
    await sh(t, 'mkdir trunc', { cwd: mnt })
    const script = `
      head -c 100000 /dev/zero | tr '\\0' 'a' > f
      truncate -s 250000 f; stat -c %s f; sha256sum f
      truncate -s 3 f; stat -c %s f; cat f; echo
      truncate -s 0 f; stat -c %s f
      truncate -s 1M g; stat -c %s g; sha256sum g
      truncate -s +10 g; stat -c %s g
      truncate -s -1000 g; stat -c %s g; sha256sum g`
    await sameInBoth(t, script, native, join(mnt, 'trunc'), 'truncate')
  })

  await t.test('ln -s and readlink', async t => {
    await sh(t, 'mkdir links && cd links && printf hello > file && ln -s file rel && ln -s /etc/hostname abs && ln -s missing dangling && mkdir d && ln -s ../file d/up', { cwd: mnt })
    const r = await sh(t, 'cd links && readlink rel abs dangling d/up && cat rel d/up && echo && test -L dangling && ! test -e dangling', { cwd: mnt })
    t.equal(r.stdout, 'file\n/etc/hostname\nmissing\n../file\nhellohello\n', 'targets and reads through links')
    const st = await sh(t, 'stat -c "%F %s" links/rel', { cwd: mnt })
    t.equal(st.stdout, 'symbolic link 4\n', 'a symlink is a symlink of its target length')
  })

  await t.test('touch -d sets the time stat shows; chmod sets the mode', async t => {
    await sh(t, 'mkdir meta && printf x > meta/f && mkdir meta/d', { cwd: mnt })
    await sh(t, 'touch -d "2001-02-03 04:05:06 UTC" meta/f meta/d', { cwd: mnt })
    const times = await sh(t, 'stat -c %Y meta/f meta/d', { cwd: mnt })
    t.equal(times.stdout, '981173106\n981173106\n', 'mtime of a file and of a directory')
    await sh(t, 'touch -d "@1600000000" meta/f', { cwd: mnt })
    t.equal((await sh(t, 'stat -c %Y meta/f', { cwd: mnt })).stdout, '1600000000\n', 'touch -d @epoch')
    // touch -m changes the mtime only (utimensat with atime UTIME_OMIT).
    await sh(t, 'touch -m -d "@1700000000" meta/f', { cwd: mnt })
    t.equal((await sh(t, 'stat -c %Y meta/f', { cwd: mnt })).stdout, '1700000000\n', 'touch -m -d sets the mtime')
    // cp -p sets atime and mtime to different values in one utimensat call.
    const native = join(scratch, 'times')
    await sh(t, `mkdir "${native}" && printf data > "${native}/f" && touch -a -d @1000000000 "${native}/f" && touch -m -d @1200000000 "${native}/f"`)
    await sh(t, `cp -p "${native}/f" meta/copied`, { cwd: mnt })
    t.equal((await sh(t, 'stat -c %Y meta/copied', { cwd: mnt })).stdout, '1200000000\n', 'cp -p keeps the mtime of a file whose atime differs')
    await sh(t, 'chmod 640 meta/f && chmod 711 meta/d', { cwd: mnt })
    t.equal((await sh(t, 'stat -c %a meta/f meta/d', { cwd: mnt })).stdout, '640\n711\n', 'chmod on a file and a directory')
    await sh(t, 'chmod u+x,g-r meta/f', { cwd: mnt })
    t.equal((await sh(t, 'stat -c %a meta/f', { cwd: mnt })).stdout, '700\n', 'symbolic chmod')
    t.equal((await sh(t, 'cat meta/f', { cwd: mnt })).stdout, 'x', 'contents unchanged by chmod')
  })

  await t.test('df shows a size', async t => {
    const r = await sh(t, `df -B1 --output=size,avail "${mnt}" | tail -n 1`)
    const [size, avail] = r.stdout.trim().split(/\s+/).map(Number)
    t.ok(size > 0, `df size ${size} > 0`)
    t.ok(avail > 0 && avail <= size, `df avail ${avail} within size`)
  })

  await t.test('git init, add and commit inside the mount', async t => {
    await sh(t, `mkdir repo && cp -r "${src}/dir1" repo/ && cp "${src}/.gitignore" "${src}/one-byte" "${src}/empty" repo/`, { cwd: mnt })
    const git = 'git -c user.name=Tester -c user.email=tester@example.invalid -c init.defaultBranch=main -c core.fsmonitor=false'
    await sh(t, `${git} init -q && ${git} add -A && ${git} commit -q -m first`, { cwd: join(mnt, 'repo') })
    const log = await sh(t, `${git} log --format=%s`, { cwd: join(mnt, 'repo') })
    t.equal(log.stdout, 'first\n', 'git log shows the commit')
    const status = await sh(t, `${git} status --porcelain`, { cwd: join(mnt, 'repo') })
    t.equal(status.stdout, '', 'git status is clean after the commit')
    await sh(t, `printf changed >> one-byte && ${git} commit -q -am second && ${git} fsck --strict --no-progress`, { cwd: join(mnt, 'repo') })
    const log2 = await sh(t, `${git} log --format=%s && ${git} status --porcelain`, { cwd: join(mnt, 'repo') })
    t.equal(log2.stdout, 'second\nfirst\n', 'second commit, still clean')
    const ls = await sh(t, 'ls -A repo', { cwd: mnt })
    t.match(ls.stdout, /^\.git$/m, '.git is an ordinary name in the mount')
  })

  await t.test('mv refuses to move a directory into itself', async t => {
    // The errnos of link, rmdir, rename, unlink and mkdir that fail are in test/conformance.
    await sh(t, 'mkdir err && mkdir -p err/d/sub', { cwd: mnt })
    const mv = await sh(t, 'mv err/d err/d/sub/inner', { cwd: mnt, allowFail: true })
    t.not(mv.code, 0, 'mv of a directory into itself fails')
    const after = await sh(t, 'find err | sort', { cwd: mnt })
    t.equal(after.stdout, 'err\nerr/d\nerr/d/sub\n', 'nothing changed')
  })

  await t.test('a file reads back right after each write that closed', async t => {
    // Each append closes the file and its bytes get sealed into a content in the background; a
    // reader that opens the file meanwhile must still find it.
    const r = await sh(t, `
      mkdir raw
      for i in $(seq 1 1000); do
        printf x >> raw/f
        n=$(cat raw/f | wc -c) || { echo "read $i failed"; exit 1; }
        [ "$n" = "$i" ] || { echo "read $i returned $n bytes"; exit 1; }
      done
      echo done`, { cwd: mnt, allowFail: true })
    t.equal(r.stdout.trim(), 'done', '1000 appends, each read back at once', { stderr: r.stderr.slice(0, 2000) })
  })

  await t.test('everything is still there after a clean restart', async t => {
    const before = await treeSum(mnt)
    const times = (await sh(t, 'stat -c "%n %Y %a" meta/f meta/d links/rel', { cwd: mnt })).stdout
    await vol.restart()
    const after = await treeSum(mnt)
    t.same(diffTrees(before, after), [], `same tree after restart (${before.length} entries)`)
    t.equal((await sh(t, 'stat -c "%n %Y %a" meta/f meta/d links/rel', { cwd: mnt })).stdout, times, 'times and modes kept')
    const git = await sh(t, 'git status --porcelain && git log --format=%s', { cwd: join(mnt, 'repo') })
    t.equal(git.stdout, 'second\nfirst\n', 'the git repository inside the mount is intact')
  })

  await t.test('a file over 4 GiB written through one open (sparse)', async t => {
    const tail = join(scratch, 'tail-one-open')
    fs.writeFileSync(tail, randomBytesSeeded(rand, 8192))
    const blocks = 5 * GiB / 4096
    // One open file: truncate and dd (by path) join the same write, so nothing is copied.
    await sh(t, `exec 3<>huge1; truncate -s 5G huge1; dd if="${tail}" of=huge1 bs=4096 seek=${blocks - 3} conv=notrunc status=none; exec 3>&-`, { cwd: mnt })
    const r = await sh(t, `stat -c %s huge1; dd if=huge1 bs=4096 skip=${blocks - 3} count=2 status=none | cmp - "${tail}" && echo tail-ok; dd if=huge1 bs=4096 skip=${blocks - 1} count=1 status=none | tr -d '\\0' | wc -c; dd if=huge1 bs=1M skip=4095 count=1 status=none | tr -d '\\0' | wc -c`, { cwd: mnt })
    t.equal(r.stdout, `${5 * GiB}\ntail-ok\n0\n0\n`, 'size, the bytes written near the end, zeros elsewhere')
    await assertDiskSparse(t, vol, 'after writing a sparse 5 GiB file')
  })

  await t.test('a file over 4 GiB made with truncate -s 5G, then written near its end with dd', async t => {
    const tail = join(scratch, 'tail')
    fs.writeFileSync(tail, randomBytesSeeded(rand, 8192))
    const blocks = 5 * GiB / 4096
    await sh(t, 'truncate -s 5G huge2', { cwd: mnt })
    t.equal((await sh(t, 'stat -c %s huge2', { cwd: mnt })).stdout, `${5 * GiB}\n`, 'truncate -s 5G')
    const dd = await sh(t, `dd if="${tail}" of=huge2 bs=4096 seek=${blocks - 3} conv=notrunc status=none`, { cwd: mnt, allowFail: true })
    t.equal(dd.code, 0, 'dd conv=notrunc near the end of a 5 GiB file succeeds', { stderr: dd.stderr })
    const r = await sh(t, `stat -c %s huge2; dd if=huge2 bs=4096 skip=${blocks - 3} count=2 status=none | cmp - "${tail}" && echo tail-ok; dd if=huge2 bs=1M skip=100 count=1 status=none | tr -d '\\0' | wc -c`, { cwd: mnt, allowFail: true })
    t.equal(r.stdout, `${5 * GiB}\ntail-ok\n0\n`, 'size, the bytes written near the end, zeros elsewhere', { stderr: r.stderr })
    await assertDiskSparse(t, vol, 'after writing 8 KiB into a sparse 5 GiB file')
  })

  await vol.stop()
})

// Hard links on the mount, as on a local disk: ln, link counts, one inode under every name, a change
// through one name seen through the others at once, the data kept until the last name goes (an
// open descriptor too), rename between names of one file, the errors link(2) gives, cp -a keeping
// links, and hard links to symlinks (cp -al, rsync --link-dest); then the same after a clean
// restart and after kill -9.
import t from 'tap'
import { sameAsNative, sh, startVolume, tmpDir } from '../helpers/volume.js'

const LINKS = String.raw`
printf hello > a
ln a b
mkdir d && ln b d/c
mkfifo p && ln p q
stat -c '%n %h %s %F' a b d/c p q
[ "$(stat -c %i a)" = "$(stat -c %i b)" ] && [ "$(stat -c %i a)" = "$(stat -c %i d/c)" ] && echo one inode
[ "$(stat -c %i a)" != "$(stat -c %i p)" ] && echo the fifo is another
printf ' world' >> d/c
cat a; echo; cat b; echo
chmod 600 b && chown 1234:5678 d/c && stat -c '%n %a %u %g' a b d/c
printf XY | dd of=b bs=1 seek=1 conv=notrunc 2>/dev/null
cat d/c; echo
rm a
stat -c '%n %h' b d/c
{ mv b d/c || echo mv refused; } 2>&1 | sed 's/^mv: //'
python3 -c "import os; os.rename('b', 'd/c')" && echo renamed
ls -A . d
ln d/c e && rm d/c b
stat -c '%n %h %s' e
python3 - <<'EOF'
import errno, os
for src, dst in [('d', 'y'), ('e', 'e'), ('missing', 'z'), ('e', 'nodir/z'), ('e', 'd/new')]:
    try:
        os.link(src, dst)
        print(src, dst, 'linked')
    except OSError as err:
        print(src, dst, errno.errorcode[err.errno])
EOF
exec 3>>e
ln e f && rm e
printf ' and more' >&3
exec 3>&-
cat f; echo
stat -c '%n %h' f d/new
find . -samefile f | sort
mkdir tree && printf one > tree/x && ln tree/x tree/y && cp -a tree copy && stat -c '%n %h' copy/x copy/y
[ "$(stat -c %i copy/x)" = "$(stat -c %i copy/y)" ] && echo cp -a kept the link
ln -s f sl && ln sl sl2 && mkdir ds && ln sl2 ds/sl3
stat -c '%n %h %F %s %b' sl sl2 ds/sl3
[ "$(stat -c %i sl)" = "$(stat -c %i ds/sl3)" ] && [ "$(stat -c %i sl)" != "$(stat -c %i f)" ] && echo one symlink inode
readlink sl2 ds/sl3; cat sl2; echo
chown -h 4321:8765 sl2 && stat -c '%n %u %g' sl ds/sl3
rm sl && stat -c '%n %h' sl2 ds/sl3
mv sl2 ds/moved && stat -c '%n %h' ds/moved && readlink ds/moved
mkdir stree && ln -s ../f stree/l && printf z > stree/z && cp -al stree scopy && stat -c '%n %h %F' scopy/l stree/l scopy/z
cat scopy/l; echo
find . -samefile ds/sl3 | sort
`

// Times to the millisecond on the mount: the steps are 20 ms apart so each is later than the last.
const TIMES = String.raw`
python3 - <<'EOF'
import os, time
open('t', 'w').close()
os.mkdir('td')
before = os.stat('t').st_ctime_ns, os.stat('td').st_mtime_ns
time.sleep(0.02)
os.link('t', 'td/t2')
after = os.stat('t').st_ctime_ns, os.stat('td').st_mtime_ns
print('link: file ctime later', after[0] > before[0], 'directory mtime later', after[1] > before[1])
time.sleep(0.02)
os.unlink('td/t2')
print('unlink: ctime of the name left later', os.stat('t').st_ctime_ns > after[0])
EOF
`

t.test('hard links as on a local disk', async t => {
  const vol = await startVolume(t)
  const native = await tmpDir(t)
  const out = (await sameAsNative(t, native, vol.mnt, LINKS, 'ln, stat, writes, rm, rename, link errors, cp -a')).stdout
  t.match(out, /^a 3 5 regular file$/m, 'three names, counted')
  t.match(out, /^one inode$/m, 'one inode number under every name')
  t.match(out, /^hello world\nhello world$/m, 'an append through one name is read through the others')
  t.match(out, /^a 600 1234 5678$/m, 'chmod and chown through other names')
  t.match(out, /^hXYlo world$/m, 'a write in the middle through one name, read through another')
  t.match(out, /^e e EEXIST$/m, 'link onto an existing name: EEXIST')
  t.match(out, /^d y EPERM$/m, 'a directory: EPERM')
  t.match(out, /^hXYlo world and more$/m, 'a write through a descriptor whose name was removed reaches the other name')
  t.match(out, /^sl 3 symbolic link 1 0\nsl2 3 symbolic link 1 0\nds\/sl3 3 symbolic link 1 0\none symlink inode$/m, 'a symlink hard-linked: three names of one symlink')
  t.match(out, /^f\nf\nhXYlo world and more\nsl 4321 8765\nds\/sl3 4321 8765\nsl2 2\nds\/sl3 2$/m, 'read, chown -h and rm through its names')
  t.match(out, /^scopy\/l 2 symbolic link\nstree\/l 2 symbolic link\nscopy\/z 2 regular file$/m, 'cp -al links symlinks too')
  const times = (await sameAsNative(t, native, vol.mnt, TIMES, 'times of link and unlink')).stdout
  t.equal(times, 'link: file ctime later True directory mtime later True\nunlink: ctime of the name left later True\n', 'link and unlink change the times as POSIX says')
})

const SHOW = String.raw`
stat -c '%n %h %s' keep keep2 sub/keep3
[ "$(stat -c %i keep)" = "$(stat -c %i sub/keep3)" ] && echo one inode
stat -c '%n %h %F' sym sub/sym2 && readlink sub/sym2
[ "$(stat -c %i sym)" = "$(stat -c %i sub/sym2)" ] && echo one symlink inode
`

t.test('hard links survive a restart and a kill -9', async t => {
  const vol = await startVolume(t)
  await sh(t, 'printf kept > keep && ln keep keep2 && mkdir sub && ln keep2 sub/keep3 && ln -s ../keep sym && ln sym sub/sym2', { cwd: vol.mnt })
  const before = (await sh(t, SHOW, { cwd: vol.mnt })).stdout
  t.equal(before, 'keep 3 4\nkeep2 3 4\nsub/keep3 3 4\none inode\nsym 2 symbolic link\nsub/sym2 2 symbolic link\n../keep\none symlink inode\n', 'three names of one file, two of one symlink')

  await vol.restart()
  t.equal((await sh(t, SHOW, { cwd: vol.mnt })).stdout, before, 'the same after a clean restart (from the snapshot)')
  await sh(t, 'printf " and written" >> keep2', { cwd: vol.mnt })
  t.equal((await sh(t, 'cat sub/keep3', { cwd: vol.mnt })).stdout, 'kept and written', 'still one file: a write through one name is read through another')

  // The link and the write are in the journal only when the node dies.
  await sh(t, 'ln keep sub/keep4 && printf "!" >> sub/keep4 && ln -s keep2 sym3 && ln sym3 sub/sym4 && ln sym sym5', { cwd: vol.mnt })
  await vol.kill9()
  await vol.restart()
  const after = await sh(t, 'stat -c "%n %h %s" keep sub/keep4 && cat keep2 && [ "$(stat -c %i keep)" = "$(stat -c %i sub/keep4)" ] && echo one inode', { cwd: vol.mnt })
  t.equal(after.stdout, 'keep 4 17\nsub/keep4 4 17\nkept and written!one inode\n', 'after kill -9: four names of one file, with every byte')
  const symlinks = await sh(t, 'stat -c "%n %h %F" sym sub/sym2 sym5 sym3 sub/sym4 && readlink sym5 sub/sym4 && [ "$(stat -c %i sym)" = "$(stat -c %i sym5)" ] && [ "$(stat -c %i sym3)" = "$(stat -c %i sub/sym4)" ] && echo one inode each', { cwd: vol.mnt })
  t.equal(symlinks.stdout, 'sym 3 symbolic link\nsub/sym2 3 symbolic link\nsym5 3 symbolic link\nsym3 2 symbolic link\nsub/sym4 2 symbolic link\n../keep\nkeep2\none inode each\n', 'after kill -9: symlinks linked before and after the last snapshot')

  await sh(t, 'rm keep keep2 sub/keep3', { cwd: vol.mnt })
  await vol.restart()
  t.equal((await sh(t, 'stat -c "%n %h" sub/keep4 && cat sub/keep4', { cwd: vol.mnt })).stdout, 'sub/keep4 1\nkept and written!', 'the last name keeps the bytes')
})

// Attributes as a local disk keeps them: each step runs the same programs in a native directory
// (the machine's own filesystem) and in the mount, and compares what they print. Names over 255
// bytes, directories' link counts (and find(1), which relies on them), ctime on chown, atime apart
// from mtime, times before 1970; then all of it again after a restart.
import t from 'tap'
import type { Test } from 'tap'
import { join } from 'node:path'
import { run, sh, startVolume, tmpDir, type Volume } from '../helpers/volume.js'

/** Runs `script` in `native` and in `mounted` (as cwd); asserts equal exit codes and output, and returns the mount's output. */
async function sameInBoth (t: Test, script: string, native: string, mounted: string, msg: string): Promise<string> {
  const a = await sh(t, script, { cwd: native, allowFail: true })
  const b = await sh(t, script, { cwd: mounted, allowFail: true })
  t.same({ code: b.code, stdout: b.stdout, stderr: b.stderr }, { code: a.code, stdout: a.stdout, stderr: a.stderr }, `${msg}: same exit and output as on a local disk`)
  return b.stdout
}

/** Each call on each path, printed as `call path: errno name` (or `ok`); none of them changes anything. */
const LONG_NAMES = `
python3 - <<'EOF'
import errno, os
os.mkdir('d')
open('f', 'w').close()
long = 'x' * 256
paths = {'long': long, 'wide': '\\u00e9' * 128, 'd/long': 'd/' + long, 'long/f': long + '/f', 'f/long': 'f/' + long}
calls = {
    'stat': lambda p: os.stat(p),
    'lstat': lambda p: os.lstat(p),
    'open': lambda p: os.open(p, os.O_RDONLY),
    'open O_CREAT': lambda p: os.open(p, os.O_WRONLY | os.O_CREAT, 0o644),
    'unlink': lambda p: os.unlink(p),
    'rmdir': lambda p: os.rmdir(p),
    'mkdir': lambda p: os.mkdir(p),
    'chmod': lambda p: os.chmod(p, 0o600),
    'chown': lambda p: os.chown(p, -1, -1),
    'truncate': lambda p: os.truncate(p, 0),
    'utime': lambda p: os.utime(p, (1, 2)),
    'readlink': lambda p: os.readlink(p),
    'listdir': lambda p: os.listdir(p),
    'symlink': lambda p: os.symlink('f', p),
    'rename from': lambda p: os.rename(p, 'g'),
    'rename to': lambda p: os.rename('f', p),
}
for call, fn in calls.items():
    for label, p in paths.items():
        try:
            fn(p)
            print(call, label, 'ok')
        except OSError as e:
            print(call, label, errno.errorcode[e.errno])
try:
    os.stat('y' * 255)
except OSError as e:
    print('stat 255', errno.errorcode[e.errno])
print(sorted(os.listdir('.')))
EOF`

/** Link counts of directories as subdirectories come, move and go (files and symlinks do not count). */
const LINK_COUNTS = `
mkdir a; stat -c '%h %n' . a
mkdir a/1 a/2 a/3; stat -c '%h %n' . a a/1
touch a/f; ln -s 1 a/l; stat -c '%h %n' a a/f; stat -c '%h %n' a/l
mkdir b; mv a/3 b/; stat -c '%h %n' a b
mv a/f b/f; stat -c '%h %n' a b
mkdir a/x; mv -T b/3 a/x; stat -c '%h %n' a b a/x
rmdir a/2; stat -c '%h %n' a
mv a b/a; stat -c '%h %n' . b b/a
mkdir -p b/a/1/deep/deeper; stat -c '%h %n' b/a b/a/1 b/a/1/deep b/a/1/deep/deeper
rm -r b/a/1; stat -c '%h %n' b/a`

/** find over a tree whose directories are leaves (2 links) at several depths, with and without stat. */
const FIND = `
mkdir -p t/a/b/c t/a/d t/e/f/g t/h t/i/j/k/l/m
touch t/a/b/c/1 t/a/d/2 t/e/f/g/3 t/h/4 t/a/5 t/i/j/k/l/m/6 t/i/j/7
ln -s a t/link; ln -s missing t/a/dangling
find t | sort
find t -type f | sort
find t -mindepth 3 -type d | sort
find t -name 6
find t -printf '%n %y %p\\n' | sort -k 3`

/** ctime after each kind of chown that changes nothing: later than before, on a local disk. */
const CHOWN = `
python3 - <<'EOF'
import os, time
open('f', 'w').close()
st = os.stat('f')
def changed(label, call):
    before = os.stat('f').st_ctime_ns
    time.sleep(0.05)  # so that a changed ctime is a later one, at any clock granularity
    call()
    print(label, os.stat('f').st_ctime_ns > before)
changed('chown to the owner and group it has', lambda: os.chown('f', st.st_uid, st.st_gid))
changed('chown to the owner it has, group left', lambda: os.chown('f', st.st_uid, -1))
changed('chown to the group it has, owner left', lambda: os.chown('f', -1, st.st_gid))
EOF`

/** Access times set with every tool that sets them, apart from the modification times. */
const ATIMES = `
touch f
touch -d '2001-02-03 04:05:06 UTC' f; stat -c '%X %Y' f
touch -a -d '1999-01-01 00:00:00 UTC' f; stat -c '%X %Y' f
touch -m -d '2005-05-05 05:05:05 UTC' f; stat -c '%X %Y' f
touch -a f; [ "$(stat -c %X f)" -gt 1115269505 ] && echo 'touch -a: atime now'; stat -c %Y f
touch -d '2001-02-03 04:05:06 UTC' f
touch -m f; [ "$(stat -c %Y f)" -gt 981173106 ] && echo 'touch -m: mtime now'; stat -c %X f
python3 -c "import os; os.utime('f', ns=(1234567890123456789, 1300000000456000001)); st = os.stat('f'); print(st.st_atime_ns, st.st_mtime_ns)"
python3 -c "import os; os.utime('f', (1111111111, 1222222222)); st = os.stat('f'); print(st.st_atime, st.st_mtime)"
touch -a -d '1990-01-01 UTC' g; touch -m -d '1991-01-01 UTC' g; touch -r g h; stat -c '%X %Y' h
cp -a g g-copy; stat -c '%X %Y' g-copy
mkdir d; touch -a -d '1998-01-01 UTC' d; touch -m -d '1997-01-01 UTC' d; stat -c '%X %Y' d
touch d/new; stat -c %X d
ln -s f l; touch -h -a -d '1996-01-01 UTC' l; touch -h -m -d '1995-01-01 UTC' l; stat -c '%X %Y' l
: > n; [ "$(stat -c %X n)" = "$(stat -c %Y n)" ] && [ "$(stat -c %Y n)" = "$(stat -c %Z n)" ] && echo 'new file: atime = mtime = ctime'
printf x > src; touch -d '2020-01-02 03:04:05 UTC' src; cp -p src cp-p; stat -c %Y cp-p
[ "$(stat -c %Z cp-p)" -gt 1700000000 ] && echo 'cp -p (futimens before close): ctime now, not the mtime it set'`

/**
 * Times to the nanosecond, as programs that copy them set them (cp -p, touch -r, tar, rsync -a),
 * and what becomes of them when the node stamps a time itself.
 */
const NANOSECONDS = `
printf x > src; touch -d '2011-02-03 04:05:06.123456789 UTC' src; stat -c '%x %y' src
touch -r src touch-r; cp -p src cp-p; stat -c '%n %x %y' cp-p touch-r
cp -p -u src cp-p; echo "cp -u again: $?"; [ cp-p -nt src ] || [ src -nt cp-p ] || echo 'cp -p: neither is newer'
mkdir -p t/d; printf y > t/d/f; ln -s f t/d/l; touch -h -d '2012-01-01 00:00:00.000000001 UTC' t/d/l t/d/f t/d t
tar --format=posix -cf t.tar t; mkdir x; tar xf t.tar -C x; stat -c '%n %y' x/t x/t/d x/t/d/f x/t/d/l
rsync -a t/ r/; stat -c '%n %y' r/d/f r/d/l
python3 -c "import os; os.utime('src', ns=(-1000000001, 999999)); st = os.lstat('src'); print(st.st_atime_ns, st.st_mtime_ns)"
python3 -c "import os; os.utime('src', ns=(1, 2000000000999999999)); st = os.lstat('src'); print(st.st_atime_ns, st.st_mtime_ns)"
touch -d '2011-02-03 04:05:06.123456789 UTC' w; printf more >> w; [ "$(stat -c %y w)" != '2011-02-03 04:05:06.123456789 +0000' ] && echo 'a write stamps mtime anew'
touch x/t; [ "$(stat -c %y x/t)" != '2012-01-01 00:00:00.000000001 +0000' ] && echo 'touch stamps mtime anew'`

/** Times before 1970, set by touch and utimensat(2), as stat shows them. */
const BEFORE_1970 = `
touch a b c
touch -d '1969-12-31 23:59:59 UTC' a
touch -d '1960-01-01 00:00:00 UTC' b
python3 -c "import os; os.utime('c', ns=(-1000000000, -1500000000))"
stat -c '%n %X %Y %x %y' a b c`

/** An entry of the volume's git repository, as JSON. */
async function entryAt (t: Test, vol: Volume, path: string): Promise<Record<string, unknown>> {
  const r = await run('git', ['--git-dir', join(vol.disk, 'meta'), 'show', `main:${path}`])
  t.equal(r.code, 0, `git show main:${path}`, { stderr: r.stderr })
  return JSON.parse(r.stdout) as Record<string, unknown>
}

/** [atime, mtime] of an entry: an entry holds its atime only where it differs from its mtime. */
const times = (e: Record<string, unknown>): unknown[] => [e.atime ?? e.mtime, e.mtime]

t.test('attributes in a mounted volume, compared with a local disk', async t => {
  const vol: Volume = await startVolume(t)
  const native = await tmpDir(t)
  /** A new directory of each, for one step. */
  const dirs = async (name: string): Promise<[string, string]> => {
    await sh(t, `mkdir "${native}/${name}" "${vol.mnt}/${name}"`)
    return [join(native, name), join(vol.mnt, name)]
  }

  await t.test('a name over 255 bytes: every call fails with ENAMETOOLONG, as on a local disk', async t => {
    const out = await sameInBoth(t, LONG_NAMES, ...await dirs('names'), 'calls on names over 255 bytes')
    t.match(out, /^stat long ENAMETOOLONG$/m, 'stat of a long name')
    t.match(out, /^unlink wide ENAMETOOLONG$/m, 'unlink of a name of 128 two-byte characters')
    t.match(out, /^rename from d\/long ENAMETOOLONG$/m, 'rename of a long name in a directory')
    t.match(out, /^stat 255 ENOENT$/m, 'a name of 255 bytes is an ordinary missing name')
  })

  await t.test('a directory has 2 + its subdirectories links, as on a local disk', async t => {
    const out = await sameInBoth(t, LINK_COUNTS, ...await dirs('links'), 'link counts')
    t.match(out, /^5 a\n/m, 'three subdirectories: 5 links')
  })

  await t.test('find lists every entry of nested directories, with their link counts', async t => {
    const out = await sameInBoth(t, FIND, ...await dirs('find'), 'find')
    t.match(out, /^t\/i\/j\/k\/l\/m\/6$/m, 'find reaches the deepest file')
    t.match(out, /^2 d t\/a\/b\/c$/m, 'a leaf directory has 2 links')
  })

  await t.test('chown changes ctime even when the owner stays', async t => {
    const [n, m] = await dirs('chown')
    const out = await sameInBoth(t, CHOWN, n, m, 'ctime after chown')
    t.notMatch(out, /False/, 'ctime changed by every chown')
  })

  await t.test('atime is kept apart from mtime: touch -a/-m, utimensat, touch -r, cp -a', async t => {
    const out = await sameInBoth(t, ATIMES, ...await dirs('atime'), 'access times')
    t.match(out, /^915148800 981173106$/m, 'touch -a -d sets the atime alone')
    t.match(out, /^1234567890123456789 1300000000456000001$/m, 'utimensat sets both, to the nanosecond')
    t.match(out, /^631152000 662688000$/m, 'touch -r and cp -a copy both')
    t.match(out, /^cp -p \(futimens before close\): ctime now/m, 'cp -p leaves ctime at now')
  })

  await t.test('times to the nanosecond: touch -d, touch -r, cp -p, tar (pax), rsync -a, utimensat', async t => {
    const out = await sameInBoth(t, NANOSECONDS, ...await dirs('ns'), 'nanosecond times')
    t.match(out, /^cp-p 2011-02-03 04:05:06.123456789 \+0000 2011-02-03 04:05:06.123456789 \+0000$/m, 'cp -p keeps both times exactly')
    t.match(out, /^cp -u again: 0\ncp -p: neither is newer$/m, 'cp -u sees the copy as up to date')
    t.match(out, /^x\/t\/d\/l 2012-01-01 00:00:00.000000001 \+0000$/m, 'tar sets a symlink\'s time to the nanosecond')
    t.match(out, /^-1000000001 999999$/m, 'a time 1 ns before 1969-12-31 23:59:59')
    t.match(out, /^a write stamps mtime anew\ntouch stamps mtime anew$/m, 'stamps replace a set time whole')
  })

  await t.test('reading a file leaves its atime (the mount behaves as noatime)', async t => {
    const r = await sh(t, `
      printf data > read; touch -a -d '2000-01-01 UTC' read; touch -m -d '2010-01-01 UTC' read
      cat read > /dev/null; head -c 1 read > /dev/null; stat -c '%X %Y' read`, { cwd: vol.mnt })
    t.equal(r.stdout.trim().split('\n').pop(), '946684800 1262304000', 'atime as set, after reads')
  })

  await t.test('times before 1970: kept by the volume and shown by stat', async t => {
    const [n, m] = await dirs('old')
    const native = await sh(t, BEFORE_1970, { cwd: n })
    t.equal(native.stdout, 'a -1 -1 1969-12-31 23:59:59.000000000 +0000 1969-12-31 23:59:59.000000000 +0000\n' +
      'b -315619200 -315619200 1960-01-01 00:00:00.000000000 +0000 1960-01-01 00:00:00.000000000 +0000\n' +
      'c -1 -2 1969-12-31 23:59:59.000000000 +0000 1969-12-31 23:59:58.500000000 +0000\n', 'natively')
    const mounted = await sh(t, BEFORE_1970, { cwd: m })
    t.equal(mounted.stdout, native.stdout, 'stat shows them as on a local disk')
    // What the volume keeps is read from its repository, where a stop commits it at the latest.
    await vol.stop()
    t.same(times(await entryAt(t, vol, 'old/a')), [-1000, -1000], 'touch -d 1969-12-31 23:59:59 is stored')
    t.same(times(await entryAt(t, vol, 'old/b')), [-315619200000, -315619200000], 'touch -d 1960-01-01 is stored')
    t.same(times(await entryAt(t, vol, 'old/c')), [-1000, -1500], 'utimensat with negative times (atime, mtime) is stored')
    await vol.restart()
  })

  await t.test('after restarts (from the snapshot, then from git): the same link counts and times', async t => {
    const look = 'find links find atime ns -printf "%n %y %A@ %T@ %p\\n" | sort -k 5'
    const before = (await sh(t, look, { cwd: vol.mnt })).stdout
    t.match(before, /^4 d \S+ \S+ find\/t\/a$/m, 'a directory with 2 subdirectories')
    await vol.stop()
    t.same(times(await entryAt(t, vol, 'atime/f')), [1111111111000, 1222222222000], 'a file\'s atime is stored')
    const copied = await entryAt(t, vol, 'atime/cp-p')
    t.same([copied.mtime, (copied.ctime as number) > 1700000000000], [1577934245000, true], 'cp -p: the mtime it set and a ctime of now are stored')
    const marker = await entryAt(t, vol, 'atime/d/.swarmfs-dir')
    t.equal(marker.atime, 883612800000, 'a directory\'s atime is stored in its marker')
    const links = (await entryAt(t, vol, 'atime/.swarmfs-dir')).links as Record<string, number[]>
    t.same([links.l?.[4], links.l?.[0]], [820454400000, 788918400000], 'a symlink\'s atime is stored with its other times')
    const fine = await entryAt(t, vol, 'ns/cp-p')
    t.same([fine.atime, fine.mtime, fine.mtimeNs, fine.atimeNs], [undefined, 1296705906123, 456789, undefined], 'nanoseconds past the millisecond are stored (atime = mtime, so neither atime field)')
    const tarred = ((await entryAt(t, vol, 'ns/x/t/d/.swarmfs-dir')).links as Record<string, number[]>).l
    // [mtime, ctime, uid, gid, atime, mtimeNs, atimeNs, ino]: tar set the atime to now.
    t.same([tarred?.length, tarred?.[0], tarred?.[5]], [8, 1325376000000, 1], 'a symlink\'s nanoseconds are stored in its directory\'s marker')

    await vol.restart()
    t.equal((await sh(t, look, { cwd: vol.mnt })).stdout, before, 'after a restart (index from the snapshot)')
    await vol.stop()
    await sh(t, 'rm state/index-snapshot.jsonl', { cwd: vol.disk })
    await vol.restart()
    t.equal((await sh(t, look, { cwd: vol.mnt })).stdout, before, 'after a restart without the snapshot (index from git)')
  })

  await vol.stop()
})

// fallocate(2) on the mount, as on a local disk: the fallocate tool's modes (reserve and grow,
// reserve keeping the size, punch a hole, zero a range) give the same sizes, bytes and times as
// natively, posix_fallocate works on an O_APPEND descriptor, and what they did survives a restart.
// Collapsing and inserting ranges are refused with EOPNOTSUPP and change nothing.
import t from 'tap'
import { sh, startVolume, tmpDir } from '../helpers/volume.js'

const SCRIPT = String.raw`
set -e
head -c 300000 /dev/zero | tr '\0' 'a' > f
fallocate -l 1000000 f; stat -c '%s' f
fallocate -n -o 2000000 -l 4096 f; stat -c '%s' f
fallocate -p -o 1000 -l 5000 f; stat -c '%s' f; od -An -c -j 990 -N 20 f
fallocate -z -o 100 -l 50 f; od -An -c -j 95 -N 60 f; stat -c '%s' f
fallocate -z -o 1000000 -l 100 f; stat -c '%s' f
python3 - <<'PY'
import os, time
st = os.stat('f'); time.sleep(0.05)
os.system('fallocate -n -o 0 -l 4096 f')
s2 = os.stat('f')
print('keeping the size changes mtime, ctime:', s2.st_mtime_ns != st.st_mtime_ns, s2.st_ctime_ns != st.st_ctime_ns)
fd = os.open('g', os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o644)
os.write(fd, b'x')
os.posix_fallocate(fd, 0, 10000)
print('posix_fallocate on O_APPEND:', os.fstat(fd).st_size)
os.close(fd)
PY
sha256sum f g
`

t.test('fallocate as on a local disk', async t => {
  const vol = await startVolume(t)
  const native = await tmpDir(t)
  const a = await sh(t, SCRIPT, { cwd: native, allowFail: true })
  const b = await sh(t, SCRIPT, { cwd: vol.mnt, allowFail: true })
  t.same({ code: b.code, stdout: b.stdout, stderr: b.stderr }, { code: a.code, stdout: a.stdout, stderr: a.stderr }, 'sizes, bytes, times and errors as on a local disk')
  t.match(b.stdout, /^1000100$/m, 'a zeroed range past the end grows the file')

  const collapse = await sh(t, 'sha256sum f; if fallocate -c -o 0 -l 4096 f; then echo "exit 0"; else echo "exit $?"; fi; sha256sum f', { cwd: vol.mnt, allowFail: true })
  const [before, exit, after] = collapse.stdout.trim().split('\n')
  t.equal(exit, 'exit 1', 'collapsing a range fails')
  t.match(collapse.stderr, /Operation not supported/, 'with EOPNOTSUPP')
  t.equal(after, before, 'and changes nothing')

  await vol.restart()
  const again = await sh(t, 'sha256sum f g', { cwd: vol.mnt })
  t.equal(again.stdout, a.stdout.split('\n').slice(-3).join('\n'), 'the same bytes after a restart')
})

// The blocks stat shows (what du and cp --sparse go by) are those the bytes take on the disk, holes
// left out, through every state a file passes: grown by truncate, written in the middle (a copy of
// the content first), open for writing, sealed, punched.
const BLOCKS = String.raw`
truncate -s 10M sparse; stat -c 'grown: %s %b' sparse
dd if=/dev/urandom of=sparse bs=4096 count=1 seek=256 conv=notrunc status=none; stat -c 'written in the middle: %s %b' sparse
exec 3<>held; head -c 100000 /dev/urandom >&3; stat -c 'open: %s %b' held; exec 3>&-
stat -c 'closed: %s %b' held
head -c 1000000 /dev/urandom > full; stat -c 'written: %s %b' full
fallocate -p -o 0 -l 524288 full; stat -c 'punched: %s %b' full
du -k sparse full held
`

t.test('blocks as on a local disk: holes take none', async t => {
  const vol = await startVolume(t)
  const native = await tmpDir(t)
  const a = await sh(t, BLOCKS, { cwd: native })
  t.equal((await sh(t, BLOCKS, { cwd: vol.mnt })).stdout, a.stdout, 'the same blocks in every state')
  t.match(a.stdout, /^grown: 10485760 0$/m, 'a file grown by truncate takes no block')
  await vol.restart()
  t.equal((await sh(t, 'du -k sparse full held', { cwd: vol.mnt })).stdout, a.stdout.split('\n').slice(-4).join('\n'), 'the same after a restart')
})

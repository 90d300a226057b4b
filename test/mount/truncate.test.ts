// truncate(2), ftruncate(2) and open(O_TRUNC) in a mounted volume behave as on a local disk: the same
// Python scripts run in a native directory (on the disk the volume lives on) and in the mount, and
// print the same lines; what they leave survives a restart.
import t from 'tap'
import type { Test } from 'tap'
import fs from 'node:fs'
import { join } from 'node:path'
import { sh, startVolume, type Volume } from '../helpers/volume.js'

/** Runs `script` (Python, given the directory as its argument) natively and in the mount; asserts the same exit and output. */
async function sameInBoth (t: Test, vol: Volume, name: string, script: string, msg: string): Promise<string> {
  const file = join(vol.scratch, `${name}.py`)
  fs.writeFileSync(file, script)
  const native = join(vol.scratch, `${name}-native`)
  fs.mkdirSync(native)
  await sh(t, `mkdir ${name}`, { cwd: vol.mnt })
  const a = await sh(t, `python3 "${file}" "${native}"`, { allowFail: true })
  const b = await sh(t, `python3 "${file}" "${join(vol.mnt, name)}"`, { allowFail: true })
  t.equal(a.code, 0, `${msg}: the script runs natively`, { stderr: a.stderr })
  t.same({ code: b.code, stdout: b.stdout, stderr: b.stderr }, { code: a.code, stdout: a.stdout, stderr: a.stderr }, `${msg}: same as on a local disk`)
  return a.stdout
}

t.test('truncate and O_TRUNC in a mounted volume', async t => {
  const vol = await startVolume(t)
  const { mnt } = vol

  await t.test('truncate(2) right after close(2) of a written file', async t => {
    // The kernel sends RELEASE after close(2) has returned, so the truncate often reaches the
    // node while the write session is still open, and its ftruncate runs beside the release.
    const script = `
import os, sys, errno
d = sys.argv[1]
os.makedirs(d)
failed, wrong = {}, 0
for i in range(400):
    p = os.path.join(d, 'f%d' % (i % 20))
    fd = os.open(p, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
    os.write(fd, b'12')
    os.close(fd)
    try:
        os.truncate(p, 5 if i % 2 == 0 else 1)
    except OSError as e:
        failed[errno.errorcode[e.errno]] = failed.get(errno.errorcode[e.errno], 0) + 1
        continue
    with open(p, 'rb') as f:
        if f.read() != (b'12\\0\\0\\0' if i % 2 == 0 else b'1'):
            wrong += 1
for k in range(20):
    with open(os.path.join(d, 'f%d' % k), 'rb') as f:
        if f.read() != (b'12\\0\\0\\0' if k % 2 == 0 else b'1'):
            wrong += 1
print('failed', failed, 'wrong', wrong)
`
    fs.writeFileSync(join(vol.scratch, 'race.py'), script)
    const r = await sh(t, `python3 "${join(vol.scratch, 'race.py')}" race`, { cwd: mnt })
    t.equal(r.stdout, 'failed {} wrong 0\n', '400 truncates after close: none fails, each reads back right, and so do the files at the end')
  })

  await t.test('sizes beyond the largest file the disk holds: EFBIG, and nothing changes', async t => {
    const out = await sameInBoth(t, vol, 'big', `
import os, sys, errno
p = os.path.join(sys.argv[1], 'f')
def attempt(what, fn):
    try:
        print(what, 'ok', fn())
    except OSError as e:
        print(what, errno.errorcode[e.errno])
fd = os.open(p, os.O_CREAT | os.O_RDWR | os.O_TRUNC, 0o644)
os.write(fd, b'hello')
for n in (2 ** 60, 2 ** 53, 2 ** 53 - 1, 2 ** 44):
    attempt('ftruncate %d' % n, lambda: os.ftruncate(fd, n))
    print('size', os.fstat(fd).st_size)
attempt('truncate', lambda: os.truncate(p, 2 ** 60))
for off in (2 ** 60, 2 ** 44):
    attempt('pwrite at %d' % off, lambda: os.pwrite(fd, b'x', off))
    print('size', os.fstat(fd).st_size)
os.close(fd)
print('closed', os.stat(p).st_size, open(p, 'rb').read())
`, 'ftruncate, truncate and pwrite at 2^60 and 16 TiB')
    t.match(out, /^ftruncate 1152921504606846976 EFBIG$/m, 'natively EFBIG')
  })

  await t.test('open(O_TRUNC) changes mtime and ctime, of an empty file too', async t => {
    await sameInBoth(t, vol, 'times', `
import os, sys, time
d = sys.argv[1]
for name, data in (('empty', b''), ('full', b'hello')):
    for flags in (os.O_WRONLY, os.O_RDWR, os.O_RDONLY):
        p = os.path.join(d, name + str(flags))
        with open(p, 'wb') as f:
            f.write(data)
        os.utime(p, (1000000000, 1000000000))
        before = os.stat(p)
        # Lets the clock move past the ctime the utime set, at the mount's millisecond too.
        time.sleep(0.01)
        fd = os.open(p, flags | os.O_TRUNC)
        read = os.read(fd, 10) if flags != os.O_WRONLY else b''
        os.close(fd)
        after = os.stat(p)
        print(name, flags, 'read', read, 'size', after.st_size, 'mtime changed', after.st_mtime_ns > before.st_mtime_ns, 'ctime changed', after.st_ctime_ns > before.st_ctime_ns)
`, 'O_WRONLY, O_RDWR and O_RDONLY with O_TRUNC')
    const r = await sh(t, 'printf x > shell && touch -d @1000000000 shell && : > shell && stat -c "%s %Y" shell', { cwd: mnt })
    t.not(r.stdout, '0 1000000000\n', ': > file changes its mtime')
  })

  await t.test('open(O_TRUNC) by a caller without CAP_FSETID clears setuid, and setgid with group-exec; with it, both stay', async t => {
    // Root keeps the bits (CAP_FSETID); without it the kernel clears them on write(2) and
    // truncate(2), but with atomic_o_trunc open(O_TRUNC) never reaches it as a truncate. (Setgid
    // without group-exec stays for a caller in the file's group, as root is here.)
    const modes = ['6777', '6767', '4777', '2777', '2767', '6766', '0777']
    const make = `
import os, sys
for m in sys.argv[2:]:
    p = os.path.join(sys.argv[1], m)
    with open(p, 'wb') as f:
        f.write(b'hello')
    os.chmod(p, int(m, 8))
`
    fs.writeFileSync(join(vol.scratch, 'suid-make.py'), make)
    const native = join(vol.scratch, 'suid-native')
    fs.mkdirSync(native)
    await sh(t, 'mkdir suid', { cwd: mnt })
    for (const dir of [native, join(mnt, 'suid')]) await sh(t, `python3 "${join(vol.scratch, 'suid-make.py')}" "${dir}" ${modes.join(' ')}`)
    const trunc = `
import os, sys
for m in sys.argv[2:]:
    p = os.path.join(sys.argv[1], m)
    os.close(os.open(p, os.O_WRONLY | os.O_TRUNC))
    print(m, oct(os.stat(p).st_mode & 0o7777), os.stat(p).st_size)
`
    fs.writeFileSync(join(vol.scratch, 'suid-trunc.py'), trunc)
    const run = async (dir: string): Promise<string> => (await sh(t, `setpriv --bounding-set=-fsetid python3 "${join(vol.scratch, 'suid-trunc.py')}" "${dir}" ${modes.join(' ')}`)).stdout
    const a = await run(native)
    const b = await run(join(mnt, 'suid'))
    t.match(a, /^6777 0o777 0$/m, 'natively 6777 becomes 0777')
    t.equal(b, a, 'the same modes as on a local disk')

    // Root with CAP_FSETID (as the test runs) keeps both, as on a local disk.
    const nativeRoot = join(vol.scratch, 'suid-native-root')
    fs.mkdirSync(nativeRoot)
    await sh(t, 'mkdir suid-root', { cwd: mnt })
    for (const dir of [nativeRoot, join(mnt, 'suid-root')]) await sh(t, `python3 "${join(vol.scratch, 'suid-make.py')}" "${dir}" ${modes.join(' ')}`)
    const asRoot = async (dir: string): Promise<string> => (await sh(t, `python3 "${join(vol.scratch, 'suid-trunc.py')}" "${dir}" ${modes.join(' ')}`)).stdout
    const c = await asRoot(nativeRoot)
    const d = await asRoot(join(mnt, 'suid-root'))
    t.match(c, /^6777 0o6777 0$/m, 'natively root keeps 6777')
    t.equal(d, c, 'root keeps the same bits as on a local disk')
  })

  await t.test('what they left survives a restart, and every write was sealed', async t => {
    const listing = 'find race big times suid suid-root -type f -printf "%p %s %m\\n" | sort && sha256sum race/* && cat big/f'
    const before = (await sh(t, listing, { cwd: mnt })).stdout
    await vol.stop()
    t.notMatch(vol.output.stderr, /could not seal/, 'no seal failed')
    await vol.restart()
    const after = (await sh(t, listing, { cwd: mnt })).stdout
    t.equal(after, before, 'sizes, modes and bytes after a restart')
    t.match(after, /^big\/f 5 644$/m, 'the size the failed size changes left alone')
    t.match(after, /^hello$/m, 'and its bytes')
    await vol.stop()
    t.notMatch(vol.output.stderr, /could not seal/, 'no seal failed after the restart')
  })
})

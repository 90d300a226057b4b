// What a local disk does for the users and open files of a shell, the mount does too: other users
// reach it, what a user creates is theirs (setgid directories included), a file unlinked or renamed
// over while open stays usable through its descriptors and leaves nothing behind in the tree, and a
// name that is not UTF-8 is refused rather than turned into another name.
// Each script runs in a native directory and in the mount, by real processes (sh, python3,
// setpriv, rm), and their outputs must be the same.
import t from 'tap'
import fs from 'node:fs'
import { dirname, join } from 'node:path'
import { run, sameAsNative, sh, startVolume, tmpDir } from '../helpers/volume.js'

/** Runs a program as uid/gid 65534 (nobody), with no supplementary groups. */
const AS_NOBODY = 'setpriv --reuid=65534 --regid=65534 --clear-groups'

t.test('users, open files and names as on a local disk', async t => {
  const vol = await startVolume(t)
  const native = await tmpDir(t)
  // The temporary directories are 0700; another user must be able to get to both.
  for (const dir of [dirname(vol.mnt), native]) fs.chmodSync(dir, 0o755)

  await t.test('another user reaches the mount', async t => {
    const r = await run('sh', ['-c', `${AS_NOBODY} ls -a "${vol.mnt}" && ${AS_NOBODY} stat -c %F "${vol.mnt}"`])
    t.equal(r.code, 0, 'ls and stat as uid 65534 work', { stderr: r.stderr })
    t.match(r.stdout, /directory/)
  })

  await t.test('what a user creates is theirs', async t => {
    const r = await sameAsNative(t, native, vol.mnt, `
      mkdir shared && chmod 1777 shared
      ${AS_NOBODY} sh -c 'cd shared && echo one > mine && mkdir dir && ln -s mine link && touch dir/inner'
      ${AS_NOBODY} sh -c 'cd shared && echo two >> mine && chmod 600 mine && cat mine && rm dir/inner && rmdir dir && rm link'
      stat -c '%u:%g %a %F %n' shared/*
      ${AS_NOBODY} sh -c 'echo intruder > shared/rootfile' 2>/dev/null || echo 'nobody may not write where only root may'
      touch shared/rootfile && ${AS_NOBODY} rm -f shared/rootfile 2>/dev/null || echo 'the sticky directory keeps root file from nobody'
    `, 'files, directories and links created by uid 65534')
    t.match(r.stdout, /^65534:65534 600 regular file shared\/mine$/m, 'the file belongs to its creator')
  })

  await t.test('a setgid directory gives its group, and its setgid to new directories', async t => {
    const r = await sameAsNative(t, native, vol.mnt, `
      mkdir sg && chgrp 4242 sg && chmod 2777 sg
      touch sg/by-root && mkdir sg/dir-by-root
      ${AS_NOBODY} sh -c 'touch sg/by-nobody && mkdir sg/dir-by-nobody'
      stat -c '%u:%g %a %n' sg/*
    `, 'entries created in a setgid directory')
    t.match(r.stdout, /^65534:4242 2755 sg\/dir-by-nobody$/m, 'a new directory takes the group and setgid')
    t.match(r.stdout, /^0:4242 644 sg\/by-root$/m, 'a new file takes the group')
  })

  await t.test('a file unlinked or renamed over while open', async t => {
    const script = String.raw`
import os, subprocess
fd = os.open('victim', os.O_CREAT | os.O_RDWR, 0o644)
os.write(fd, b'abc')
os.unlink('victim')
print('listed after unlink:', os.listdir('.'))
print('nlink, size:', os.fstat(fd).st_nlink, os.fstat(fd).st_size)
os.write(fd, b'def')
print('read back:', os.pread(fd, 100, 0))
os.ftruncate(fd, 4)
os.fchmod(fd, 0o600)
st = os.fstat(fd)
print('after ftruncate and fchmod:', st.st_size, oct(st.st_mode & 0o777), os.pread(fd, 100, 0))
os.close(fd)
print('listed after close:', os.listdir('.'))

with open('old', 'w') as f: f.write('old bytes')
with open('new', 'w') as f: f.write('new bytes')
reader = open('old')
os.rename('new', 'old')
print('renamed over:', sorted(os.listdir('.')), reader.read(), open('old').read())
reader.close()

os.makedirs('top/mid')
fd = os.open('top/mid/f', os.O_CREAT | os.O_RDWR, 0o644)
os.write(fd, b'kept')
os.unlink('top/mid/f')
os.rename('top/mid', 'top/moved')
os.rename('top', 'top2')
os.write(fd, b' after the moves')
print('deleted, then its directories renamed:', os.pread(fd, 100, 0), os.fstat(fd).st_size)
os.close(fd)
print('listed at the end:', sorted(os.listdir('.')), os.listdir('top2/moved'))
`
    await sameAsNative(t, native, vol.mnt, `mkdir open && cd open && python3 -c '${script.replaceAll("'", "'\\''")}'`, 'unlink and rename of open files and of their directories')

    // Unlike a local disk, the directory of a deleted file that is still open stays until the file
    // is closed (libfuse 2 reaches such a file only through it): rm -r says so and loses nothing.
    const busy = String.raw`
import os, subprocess
os.makedirs('tree/sub')
with open('tree/sub/f', 'w') as f: f.write('x' * 5000)
held = open('tree/sub/f')
os.unlink('tree/sub/f')
r = subprocess.run(['rm', '-rf', 'tree'], capture_output=True, text=True)
print('rm -rf:', r.returncode, 'Device or resource busy' in r.stderr, os.listdir('tree/sub'))
print('still read:', len(held.read()), os.fstat(held.fileno()).st_nlink)
held.close()
r = subprocess.run(['rm', '-rf', 'tree'], capture_output=True, text=True)
print('rm -rf after close:', r.returncode, os.path.exists('tree'))
`
    const r = await run('python3', ['-c', busy], { cwd: join(vol.mnt, 'open') })
    t.equal(r.stdout, 'rm -rf: 1 True []\nstill read: 5000 0\nrm -rf after close: 0 False\n', 'rm -rf of a directory holding a deleted open file: EBUSY until it is closed', { stderr: r.stderr })
  })

  await t.test('a name that is not UTF-8 is refused, never made into another name', async t => {
    const script = String.raw`
import os
os.mkdir('names'); os.chdir('names')
for name in [b'\xff', b'lat\xe9', b'\xed\xa0\x80', b'\xc0\xaf']:
    for what, op in [('create', lambda n: open(n, 'w').close()), ('mkdir', os.mkdir), ('symlink to', lambda n: os.symlink(n, b'link')), ('rename to', lambda n: os.rename(b'ok-\xc3\xa9', n))]:
        if what == 'rename to': open(b'ok-\xc3\xa9', 'w').close()
        try:
            op(name)
            print(what, name, 'made')
        except OSError as e:
            print(what, name, os.strerror(e.errno))
    try:
        os.stat(name)
        print('stat', name, 'found')
    except OSError as e:
        print('stat', name, os.strerror(e.errno))
print(sorted(os.listdir(b'.')))
`
    const r = await run('python3', ['-c', script], { cwd: vol.mnt })
    t.equal(r.code, 0, 'the script runs', { stderr: r.stderr })
    const lines = r.stdout.trim().split('\n')
    const made = lines.filter(l => l.endsWith(' made'))
    t.same(made, [], 'nothing with a name that is not UTF-8 is made')
    t.equal(lines.filter(l => l.endsWith('Invalid or incomplete multibyte or wide character')).length, 16, 'each attempt fails with EILSEQ')
    t.equal(lines.filter(l => l.startsWith('stat ') && l.endsWith('No such file or directory')).length, 4, 'a lookup of such a name finds nothing (ENOENT)')
    t.equal(lines.at(-1), "[b'ok-\\xc3\\xa9']", 'only the UTF-8 name is listed')
  })
})

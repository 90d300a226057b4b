// Durability: a change the filesystem acknowledged (the writing process's close returned, or its
// fsync) survives the node being killed with SIGKILL, and the metadata repository stays a sound git
// repository. A write still open when the node dies must not keep the node from starting again.
import t from 'tap'
import type { Test } from 'tap'
import fs from 'node:fs'
import { join } from 'node:path'
import { assertSameTree, isMounted, prng, randomBytesSeeded, run, sh, startHelperProcess, startVolume, type Volume } from '../helpers/volume.js'
import { clearStaleMount } from '../../lib/fuse/mount.js'
import { silentLogger } from '../../lib/core/log.js'

const MiB = 1024 * 1024

/** git fsck of the metadata repository passes, HEAD is the branch main and names a commit. */
async function assertMetaRepoSound (t: Test, vol: Volume): Promise<string> {
  const gitdir = join(vol.disk, 'meta')
  const fsck = await run('git', ['--git-dir', gitdir, 'fsck', '--no-progress'])
  t.equal(fsck.code, 0, 'git fsck of the metadata repository passes', { stderr: fsck.stderr, stdout: fsck.stdout })
  const ref = await run('git', ['--git-dir', gitdir, 'symbolic-ref', 'HEAD'])
  t.equal(ref.stdout.trim(), 'refs/heads/main', 'HEAD is the branch main')
  const head = await run('git', ['--git-dir', gitdir, 'rev-parse', '--verify', 'HEAD^{commit}'])
  t.equal(head.code, 0, 'HEAD names a commit', { stderr: head.stderr })
  t.match(head.stdout.trim(), /^[0-9a-f]{40}$/, 'a commit id')
  return head.stdout.trim()
}

/** Runs a script in a native directory and in the mount; both must succeed. */
async function inBoth (t: Test, script: string, native: string, mounted: string): Promise<void> {
  await sh(t, script, { cwd: native })
  await sh(t, script, { cwd: mounted })
}

t.test('acknowledged writes survive SIGKILL of the node', async t => {
  const vol = await startVolume(t)
  const rand = prng(7)
  const src = join(vol.scratch, 'src')
  fs.mkdirSync(src)
  const sizes: Record<string, number> = {
    empty: 0, one: 1, 'page-less-one': 4095, page: 4096, 'odd-64k': 65537, 'one-mib': MiB, 'three-mib-and-5': 3 * MiB + 5, 'six-mib': 6 * MiB
  }
  for (const [name, size] of Object.entries(sizes)) fs.writeFileSync(join(src, name), randomBytesSeeded(rand, size))
  fs.writeFileSync(join(src, 'v1'), randomBytesSeeded(rand, 2 * MiB + 17))
  fs.writeFileSync(join(src, 'v2'), randomBytesSeeded(rand, MiB + 3))
  fs.writeFileSync(join(src, 'large'), randomBytesSeeded(rand, 40 * MiB))
  const native = join(vol.scratch, 'native')
  const mounted = join(vol.mnt, 'data')
  fs.mkdirSync(native)
  await sh(t, 'mkdir data', { cwd: vol.mnt })

  await t.test('files of many sizes, one written with fsync, renames, deletes, attributes', async t => {
    await inBoth(t, `
      mkdir -p files/deep/er
      for f in empty one page-less-one page odd-64k one-mib three-mib-and-5 six-mib; do cp "${src}/$f" files/; done
      dd if="${src}/six-mib" of=files/synced bs=1M conv=fsync status=none
      cp "${src}/v1" files/overwritten; cp "${src}/v2" files/overwritten
      cp "${src}/v1" files/appended; head -c 1000 "${src}/v2" >> files/appended
      dd if="${src}/v2" of=files/patched bs=4096 count=300 status=none
      dd if="${src}/v1" of=files/patched bs=1000 skip=5 seek=77 count=3 conv=notrunc status=none
      cp "${src}/page" files/deep/er/moved-before; mv files/deep/er/moved-before files/deep/moved
      cp "${src}/odd-64k" files/gone; rm files/gone
      mkdir files/dir-gone; rmdir files/dir-gone
      ln -s ../files/one files/deep/link
      chmod 600 files/page; chmod 700 files/deep
      touch -d @1234567890.123456789 files/one
      touch -d @1300000000.987654321 "${src}/v2"; cp -p "${src}/v2" files/time-kept
      truncate -s 100 files/three-mib-and-5`, native, mounted)
    await vol.kill9()
    await vol.restart()
    await assertSameTree(t, native, mounted, 'every acknowledged change is there after SIGKILL')
    t.equal((await sh(t, 'stat -c %.9Y data/files/one', { cwd: vol.mnt })).stdout, '1234567890.123456789\n', 'mtime kept to the nanosecond')
    t.equal((await sh(t, 'stat -c %.9Y data/files/time-kept', { cwd: vol.mnt })).stdout, '1300000000.987654321\n', 'an mtime cp -p set before close, kept to the nanosecond')
    await assertMetaRepoSound(t, vol)
  })

  await t.test('killed again right after the restart, nothing is lost or doubled', async t => {
    await vol.kill9()
    await vol.restart()
    await assertSameTree(t, native, mounted, 'same tree after a second SIGKILL')
  })

  await t.test('a large file killed while it is being sealed', async t => {
    // Killed right after the copy returns: the node is most likely still hashing it.
    await inBoth(t, `cp "${src}/large" large && dd if="${src}/v2" of=large bs=1M seek=10 count=1 conv=notrunc status=none`, native, mounted)
    await vol.kill9()
    await vol.restart()
    await assertSameTree(t, native, mounted, 'the large file is intact after SIGKILL during its seal')
    await vol.stop()
    await assertMetaRepoSound(t, vol)
    const staging = fs.readdirSync(join(vol.disk, 'staging'))
    t.same(staging, [], 'no staging files are left after a clean stop')
    await vol.restart()
    await assertSameTree(t, native, mounted, 'and after a clean stop and start')
  })

  await vol.stop()
})

t.test('SIGKILL in the middle of a burst of changes, again and again', async t => {
  // The node commits changes in batches while files keep coming; each kill lands somewhere in that
  // work (a commit being written, the ref moving, the journal growing). After every kill the
  // repository must pass git fsck and the node must start, with every acknowledged file there.
  const vol = await startVolume(t)
  const ack = join(vol.scratch, 'acknowledged')
  fs.writeFileSync(ack, '')
  const rounds = 12
  for (let r = 1; r <= rounds; r++) {
    const writer = await startHelperProcess(t, `
      i=0
      while :; do
        i=$((i+1))
        d=r${r}/d$((i % 120))
        mkdir -p "$d" 2>/dev/null || exit 0
        # tee reports a failed close(2), which a shell redirection ignores: a file counts as
        # acknowledged only once its close returned, not when the node was killed before answering it.
        printf x | tee "$d/f$i" >/dev/null 2>&1 || exit 0
        echo "$d/f$i" >> "${ack}"
        [ $i = 400 ] && echo go
      done`, 'go', vol.mnt)
    await vol.kill9()
    await writer.kill()
    const fsck = await run('git', ['--git-dir', join(vol.disk, 'meta'), 'fsck', '--no-progress'])
    if (fsck.code !== 0) {
      t.equal(fsck.code, 0, `git fsck passes after SIGKILL ${r} of ${rounds}`, { stderr: fsck.stderr.split('\n').slice(0, 6).join('\n') })
      break
    }
    await vol.restart()
  }
  if (t.passing()) {
    t.pass(`git fsck passed after each of ${rounds} kills, and the node started each time`)
    const missing = await sh(t, `while read -r f; do [ "$(cat "$f" 2>/dev/null)" = x ] || echo "$f"; done < "${ack}"`, { cwd: vol.mnt })
    const total = fs.readFileSync(ack, 'utf8').split('\n').filter(l => l !== '').length
    t.equal(missing.stdout, '', `every one of the ${total} acknowledged files is there`)
    await vol.stop()
  }
})

t.test('a mount left by a killed node is cleared while the kernel still holds its root\'s attributes', async t => {
  const vol = await startVolume(t)
  // The kernel keeps the root's attributes for attrTimeout (1 s), and a stat within it is answered
  // without the filesystem (a readdir drops the cached atime, hence the stat after the ls). A node
  // started within that second must still see that the mount is dead.
  await sh(t, 'ls >/dev/null && stat . >/dev/null', { cwd: vol.mnt })
  await vol.kill9()
  await clearStaleMount(vol.mnt, silentLogger)
  t.notOk(isMounted(vol.mnt), 'the stale mount is gone')
  await vol.restart()
  t.equal((await sh(t, 'ls -A', { cwd: vol.mnt })).stdout, '', 'the node runs on it again')
})

t.test('a write left open when the node is killed does not break the restart', async t => {
  const vol = await startVolume(t)
  await sh(t, 'printf "old contents" > existing && mkdir dir && printf kept > dir/kept', { cwd: vol.mnt })
  // Processes that keep files open for writing, with some bytes written but never closed.
  const created = await startHelperProcess(t, 'exec 3>held-new; printf partial >&3; echo ready; exec sleep 600', 'ready', vol.mnt)
  const appended = await startHelperProcess(t, 'exec 3>>existing; printf " and more" >&3; echo ready; exec sleep 600', 'ready', vol.mnt)
  await vol.kill9()
  await vol.restart()
  t.pass('the node starts again while the writers still hold their files')
  const ls = await sh(t, 'ls -A . dir && cat dir/kept', { cwd: vol.mnt })
  t.equal(ls.stdout, '.:\ndir\nexisting\nheld-new\n\ndir:\nkept\nkept', 'the tree is there, the created file too')
  const held = (await sh(t, 'cat held-new', { cwd: vol.mnt })).stdout
  t.ok(held === '' || held === 'partial', `an unclosed new file holds nothing or what was written (${JSON.stringify(held)})`)
  const existing = (await sh(t, 'cat existing', { cwd: vol.mnt })).stdout
  t.ok(existing === 'old contents' || existing === 'old contents and more', `an unclosed append leaves the old or the new bytes (${JSON.stringify(existing)})`)
  await created.kill()
  await appended.kill()
  await sh(t, 'printf again > held-new && printf " more" >> existing', { cwd: vol.mnt })
  t.equal((await sh(t, 'cat held-new', { cwd: vol.mnt })).stdout, 'again', 'the file can be written again')
  t.equal((await sh(t, 'cat existing', { cwd: vol.mnt })).stdout, existing + ' more', 'the other one too')
  await vol.stop()
  await assertMetaRepoSound(t, vol)
  t.same(fs.readdirSync(join(vol.disk, 'staging')), [], 'no staging files are left after a clean stop')
})

t.test('inode numbers are the same after a clean restart, so git finds no file changed', async t => {
  const vol = await startVolume(t)
  await sh(t, `
    mkdir -p d/e && printf one > d/one && printf two > d/e/two && ln d/one d/e/one-link
    ln -s one d/sym && mkfifo d/fifo
    git init -q repo && for i in 1 2 3 4 5 6 7 8; do echo $i > repo/f$i; done
    git -C repo add . && git -C repo -c user.email=t@t -c user.name=t commit -qm first`, { cwd: vol.mnt })
  const LIST = "find . -path ./repo/.git -prune -o -printf '%i %p\\n' | sort -k2"
  const before = (await sh(t, LIST, { cwd: vol.mnt })).stdout
  await vol.restart()
  t.equal((await sh(t, LIST, { cwd: vol.mnt })).stdout, before, 'every name shows the number it had')
  // git keeps each file's inode number in its index: a changed one makes every file look modified,
  // and git status then reads them all again (over the network, for contents held elsewhere).
  t.equal((await sh(t, 'git diff-files --name-only', { cwd: join(vol.mnt, 'repo') })).stdout, '', 'git sees no file changed')
  await sh(t, 'printf new > d/new && mkdir d/newdir && ln -s new d/newsym', { cwd: vol.mnt })
  const MADE = 'stat -c %i d/new d/newdir d/newsym'
  const made = (await sh(t, MADE, { cwd: vol.mnt })).stdout
  const all = (await sh(t, "find . \\( -type d -o -links 1 \\) -printf '%i\\n' | sort | uniq -d", { cwd: vol.mnt })).stdout
  t.equal(all, '', 'nodes made after the restart have numbers of their own')
  // Committed before the kill, so the restart reads the changed directories from git, not the journal.
  const committedEntry = async (): Promise<string> => (await run('git', ['--git-dir', join(vol.disk, 'meta'), 'rev-parse', 'HEAD:d/e/two'])).stdout
  const entryBefore = await committedEntry()
  await sh(t, 'printf changed > d/e/two', { cwd: vol.mnt })
  for (let i = 0; i < 100 && await committedEntry() === entryBefore; i++) await new Promise(resolve => setTimeout(resolve, 100))
  t.not(await committedEntry(), entryBefore, 'the change is committed')
  await vol.kill9()
  await vol.restart()
  const afterCrash = (await sh(t, LIST, { cwd: vol.mnt })).stdout.split('\n')
  t.same(before.split('\n').filter(line => !afterCrash.includes(line)), [], 'after a kill -9, the names made before the last clean stop keep their numbers, a changed file too')
  t.equal((await sh(t, MADE, { cwd: vol.mnt })).stdout, made, '... and those made after it')
  const twice = (await sh(t, "find . \\( -type d -o -links 1 \\) -printf '%i\\n' | sort | uniq -d", { cwd: vol.mnt })).stdout
  t.equal(twice, '', 'and no two nodes share one')
})

// A git working tree on the volume, used from two nodes: a repository made and committed on A is a
// clean working tree on B (git status shows nothing, git fsck passes); a commit made on B is A's
// HEAD once it arrives, and A's working tree is clean too. Every name shows the same inode number
// on both nodes, so git on one node trusts the index the other wrote and reads no file again (for
// B, whose copies are remote, that would mean fetching every file).
import t from 'tap'
import { Cluster, SETTLE_MS } from '../helpers/cluster.js'
import { until } from '../helpers/netns.js'
import { sh } from '../helpers/volume.js'

const GIT = 'git -c user.email=t@t -c user.name=t -c gc.auto=0'

t.test('a git repository on the volume is worked on from two nodes', async t => {
  const c = await Cluster.create(t, 2)
  const [h1, h2] = c.net.hosts
  const { node: a, invite } = await c.init('A', h1)
  const b = await c.join('B', h2, invite)
  await sh(t, `
    git init -q repo && cd repo
    mkdir -p src/lib docs
    for i in $(seq 1 20); do seq 1 $((i * 500)) > src/lib/f$i.txt; done
    head -c 300000 /dev/urandom > docs/blob.bin
    printf '#!/bin/sh\\necho hi\\n' > run.sh && chmod +x run.sh && ln -s src/lib/f1.txt link && ln src/lib/f2.txt hard
    ${GIT} add -A && ${GIT} commit -qm 'first on A'`, { cwd: a.mnt })
  const headOn = async (mnt: string): Promise<string> => (await sh(t, 'git rev-parse HEAD 2>/dev/null || true', { cwd: `${mnt}/repo` })).stdout.trim()
  const headA = await headOn(a.mnt)
  t.match(headA, /^[0-9a-f]{40}$/, 'A committed')
  await until('B has A\'s commit', async () => await headOn(b.mnt) === headA, SETTLE_MS)

  const INODES = "find . -path ./.git -prune -o -printf '%i %p\\n' | sort -k2"
  const inodesA = (await sh(t, INODES, { cwd: `${a.mnt}/repo` })).stdout
  t.equal((await sh(t, INODES, { cwd: `${b.mnt}/repo` })).stdout, inodesA, 'every name shows on B the inode number it shows on A')
  t.equal((await sh(t, 'find . \\( -type d -o -links 1 \\) -printf \'%i\\n\' | sort | uniq -d', { cwd: `${b.mnt}/repo` })).stdout, '', 'no two nodes share one')
  t.equal((await sh(t, 'stat -c %i hard src/lib/f2.txt | uniq | wc -l', { cwd: `${b.mnt}/repo` })).stdout, '1\n', 'the two names of a hard-linked file share one')
  // Compares the index A wrote with what B shows, without refreshing it: a name whose inode
  // number differed would be listed.
  t.equal((await sh(t, 'git diff-files --name-only', { cwd: `${b.mnt}/repo` })).stdout, '', 'git on B finds no file changed by its stat data')
  const statusB = await sh(t, 'git status --porcelain', { cwd: `${b.mnt}/repo` })
  t.equal(statusB.stdout, '', 'the working tree is clean on B')
  const fsckB = await sh(t, 'git fsck --no-progress 2>&1', { cwd: `${b.mnt}/repo` })
  t.equal(fsckB.code, 0, 'git fsck passes on B', { out: fsckB.stdout })
  t.equal((await sh(t, 'git log --format=%s', { cwd: `${b.mnt}/repo` })).stdout, 'first on A\n', 'B sees A\'s history')

  await sh(t, `
    seq 1 7 >> src/lib/f3.txt && rm docs/blob.bin && printf new > docs/new.txt && git mv run.sh bin.sh
    ${GIT} add -A && ${GIT} commit -qm 'second on B'`, { cwd: `${b.mnt}/repo` })
  const headB = await headOn(b.mnt)
  await until('A has B\'s commit', async () => await headOn(a.mnt) === headB, SETTLE_MS)
  t.equal((await sh(t, 'git log --format=%s', { cwd: `${a.mnt}/repo` })).stdout, 'second on B\nfirst on A\n', 'A sees B\'s commit on top of its own')
  t.equal((await sh(t, 'git diff-files --name-only', { cwd: `${a.mnt}/repo` })).stdout, '', 'git on A finds no file changed by its stat data in the index B wrote')
  t.equal((await sh(t, 'git status --porcelain', { cwd: `${a.mnt}/repo` })).stdout, '', 'the working tree is clean on A')
  t.equal((await sh(t, INODES, { cwd: `${a.mnt}/repo` })).stdout, (await sh(t, INODES, { cwd: `${b.mnt}/repo` })).stdout, 'names made on B show the same numbers on A')
  t.equal((await sh(t, 'tail -n 1 src/lib/f3.txt && cat docs/new.txt && ls', { cwd: `${a.mnt}/repo` })).stdout, '7\nnewbin.sh\ndocs\nhard\nlink\nsrc\n', 'A\'s files are B\'s')
  const fsckA = await sh(t, 'git fsck --no-progress 2>&1', { cwd: `${a.mnt}/repo` })
  t.equal(fsckA.code, 0, 'git fsck passes on A', { out: fsckA.stdout })
})

// Random operations: the same generated script of shell commands (create, write at offsets,
// append, truncate, rename, unlink, mkdir, rmdir, chmod, symlink, copy, read) runs in a native
// directory and in the mount. Every command must end the same way (exit code and messages) and the
// two trees must hold the same bytes: after the run, after a clean restart, and after the node is
// killed with SIGKILL and started again. SWARMFS_SEED=<n> replays a run.
import t from 'tap'
import type { Test } from 'tap'
import fs from 'node:fs'
import { join } from 'node:path'
import { assertSameTree, prng, randomBytesSeeded, sh, startVolume } from '../helpers/volume.js'

const seed = process.env.SWARMFS_SEED !== undefined ? Number(process.env.SWARMFS_SEED) : Math.floor(Math.random() * 2 ** 31)
const KiB = 1024
const MiB = 1024 * KiB

/**
 * Generates `count` operations. A rough model of the tree steers most of them to paths that exist
 * (or to new names in directories that exist), so most succeed; the rest use random paths in the
 * same small namespace and collide (EEXIST, ENOTDIR, EISDIR, ENOTEMPTY, ENOENT). The model is only
 * a guide: what each op really did is whatever both runs agree on.
 */
function generateOps (rand: () => number, count: number, model: Map<string, 'f' | 'd' | 'l'>): string[] {
  const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)]
  const int = (n: number): number => Math.floor(rand() * n)
  const fileNames = ['f', 'g', 'h', 'k']
  const dirNames = ['d', 'e', 'm']
  const parentOf = (p: string): string => p.includes('/') ? p.slice(0, p.lastIndexOf('/')) : ''
  const isDir = (p: string): boolean => p === '' || model.get(p) === 'd'
  const below = (p: string, root: string): boolean => p === root || p.startsWith(root + '/')
  const ofType = (type: 'f' | 'd' | 'l'): string[] => [...model].filter(([, k]) => k === type).map(([p]) => p)
  const randomPath = (): string => Array.from({ length: 1 + int(3) }, () => pick([...fileNames, ...dirNames])).join('/')
  const join = (dir: string, name: string): string => dir === '' ? name : `${dir}/${name}`
  const dirsForNew = (): string[] => ['', ...ofType('d').filter(d => d.split('/').length < 3)]
  const newFile = (): string => rand() < 0.15 ? randomPath() : join(pick(dirsForNew()), pick(fileNames))
  const newDir = (): string => rand() < 0.15 ? randomPath() : join(pick(dirsForNew()), pick(dirNames))
  const file = (): string => { const fs = ofType('f'); return fs.length > 0 && rand() < 0.85 ? pick(fs) : newFile() }
  const dir = (): string => { const ds = ofType('d'); return ds.length > 0 && rand() < 0.85 ? pick(ds) : newDir() }
  const any = (): string => rand() < 0.7 ? file() : dir()
  const word = (): string => Array.from({ length: 1 + int(40) }, () => pick(['q', 'w', 'e', 'r', 't', '1', '2', '_'])).join('')
  const offset = (): number => pick([0, 1, 4095, 4096, 65536, 131071, MiB - 7, MiB, 2 * MiB + 3, int(3 * MiB)])

  const touchFile = (p: string): void => { if (!model.has(p) && isDir(parentOf(p))) model.set(p, 'f') }
  const removeTree = (p: string): void => { for (const k of [...model.keys()]) if (below(k, p)) model.delete(k) }
  const rename = (a: string, b: string): void => {
    const ta = model.get(a)
    const tb = model.get(b)
    if (ta === undefined || !isDir(parentOf(b)) || below(b, a)) return
    if (tb !== undefined) {
      if ((ta === 'd') !== (tb === 'd')) return
      if (tb === 'd' && [...model.keys()].some(k => k !== b && below(k, b))) return
      removeTree(b)
    }
    for (const [k, v] of [...model]) {
      if (below(k, a)) {
        model.delete(k)
        model.set(b + k.slice(a.length), v)
      }
    }
  }

  const weighted: Array<[number, () => string]> = [
    [6, () => { const p = newFile(); touchFile(p); return `printf '%s' ${word()} > ${p}` }],
    [12, () => {
      const p = rand() < 0.6 ? file() : newFile()
      touchFile(p)
      return `dd if="$DATA" of=${p} bs=64K iflag=skip_bytes,count_bytes oflag=seek_bytes skip=${int(MiB)} count=${pick([1, 100, 4096, 70000, int(300 * KiB)])} seek=${offset()} conv=notrunc status=none`
    }],
    [4, () => `printf '%s' ${word()} >> ${file()}`],
    [5, () => { const p = file(); touchFile(p); return `truncate -s ${pick([0, 1, 5000, MiB + 1, int(2 * MiB)])} ${p}` }],
    [8, () => {
      const [a, b] = rand() < 0.6 ? [file(), rand() < 0.5 ? file() : newFile()] : [dir(), rand() < 0.5 ? newDir() : any()]
      rename(a, b)
      return `mv -T ${a} ${b}`
    }],
    [4, () => { const p = file(); if (model.get(p) === 'f') model.delete(p); return `rm ${p}` }],
    [6, () => { const p = newDir(); if (!model.has(p) && isDir(parentOf(p))) model.set(p, 'd'); return `mkdir ${p}` }],
    [3, () => {
      const p = dir()
      if (model.get(p) === 'd' && ![...model.keys()].some(k => k !== p && below(k, p))) model.delete(p)
      return `rmdir ${p}`
    }],
    [1, () => { const p = dir(); removeTree(p); return `rm -r ${p}` }],
    [2, () => `chmod ${pick(['600', '640', '644', '700', '755'])} ${any()}`],
    [2, () => { const p = newFile(); if (!model.has(p) && isDir(parentOf(p))) model.set(p, 'l'); return `ln -s ${pick(['f', 'd/g', 'e', 'nowhere'])} ${p}` }],
    [3, () => { const a = file(); const b = rand() < 0.5 ? file() : newFile(); if (model.get(a) === 'f') touchFile(b); return `cp ${a} ${b}` }],
    [3, () => `sha256sum ${file()}`],
    [1, () => 'find . -type f -printf "%p %s %m\\n" | sort']
  ]
  const total = weighted.reduce((sum, [w]) => sum + w, 0)
  const ops: string[] = []
  for (let i = 0; i < count; i++) {
    let r = rand() * total
    for (const [w, make] of weighted) {
      r -= w
      if (r < 0) {
        ops.push(make())
        break
      }
    }
  }
  return ops
}

/** A bash script that runs each op, recording its number, exit code and output (stdout and stderr). */
function scriptOf (ops: string[], first: number): string {
  const lines = [
    'RES="$1"',
    'DATA="$2"',
    'run () {',
    '  local out rc',
    '  out=$(eval "$2" 2>&1 </dev/null); rc=$?',
    '  printf "### %s rc=%s\\n%s\\n" "$1" "$rc" "$out" >> "$RES"',
    '}'
  ]
  ops.forEach((op, i) => lines.push(`run ${first + i} '${op.replace(/'/g, "'\\''")}'`))
  return lines.join('\n') + '\n'
}

function firstDifference (a: string, b: string, ops: string[], first: number): string | null {
  if (a === b) return null
  const ba = a.split('### ')
  const bb = b.split('### ')
  for (let i = 0; i < Math.max(ba.length, bb.length); i++) {
    if (ba[i] !== bb[i]) {
      const n = Number((ba[i] ?? bb[i] ?? '').split(' ')[0])
      return `op ${n}: ${ops[n - first] ?? '?'}\n  local disk: ${JSON.stringify(ba[i])}\n  mount:      ${JSON.stringify(bb[i])}`
    }
  }
  return 'results differ'
}

t.test(`random operations behave as on a local disk (seed ${seed})`, async t => {
  t.comment(`seed ${seed} (replay with SWARMFS_SEED=${seed})`)
  const rand = prng(seed)
  const vol = await startVolume(t)
  const native = join(vol.scratch, 'native')
  const mounted = join(vol.mnt, 'work')
  const data = join(vol.scratch, 'data')
  fs.mkdirSync(native)
  fs.writeFileSync(data, randomBytesSeeded(rand, 2 * MiB))
  await sh(t, 'mkdir work', { cwd: vol.mnt })

  let next = 0
  const model = new Map<string, 'f' | 'd' | 'l'>()
  const round = async (t: Test, label: string, count: number): Promise<void> => {
    const ops = generateOps(rand, count, model)
    const first = next
    next += count
    const script = join(vol.scratch, `ops-${first}.sh`)
    fs.writeFileSync(script, scriptOf(ops, first))
    const resNative = join(vol.scratch, `results-native-${first}`)
    const resMount = join(vol.scratch, `results-mount-${first}`)
    await sh(t, `bash "${script}" "${resNative}" "${data}"`, { cwd: native })
    await sh(t, `bash "${script}" "${resMount}" "${data}"`, { cwd: mounted })
    const a = fs.readFileSync(resNative, 'utf8')
    const b = fs.readFileSync(resMount, 'utf8')
    const failed = (a.match(/ rc=[1-9]/g) ?? []).length
    t.comment(`${label}: ops ${first}..${first + count - 1}, ${failed} of them failed (on both sides, as they should)`)
    t.equal(firstDifference(a, b, ops, first), null, `${label}: every op ends as on a local disk (seed ${seed})`)
    await assertSameTree(t, native, mounted, `${label}: same tree as on a local disk (seed ${seed})`)
  }

  await t.test('first round', t => round(t, 'first round', 500))

  await t.test('after a clean stop and start', async t => {
    await vol.restart()
    await assertSameTree(t, native, mounted, `after restart: same tree (seed ${seed})`)
  })

  await t.test('second round, then SIGKILL and start', async t => {
    await round(t, 'second round', 250)
    // Every op above returned (its close(2) too): all of it must survive a crash now.
    await vol.kill9()
    await vol.restart()
    await assertSameTree(t, native, mounted, `after SIGKILL and restart: same tree (seed ${seed})`)
  })

  await t.test('third round on the restarted node', t => round(t, 'third round', 150))

  await vol.stop()
})

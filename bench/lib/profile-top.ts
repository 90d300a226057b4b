// Summarizes a V8 .cpuprofile (from `node --cpu-prof`): the functions with the most self time.
// node dist/bench/lib/profile-top.js <file.cpuprofile> [top=25]
import fs from 'node:fs'

interface CallFrame { functionName: string, url: string, lineNumber: number }
interface ProfileNode { id: number, callFrame: CallFrame, hitCount?: number, children?: number[] }
interface Profile { nodes: ProfileNode[], samples: number[], timeDeltas: number[], startTime: number, endTime: number }

export function topSelf (profile: Profile, top: number): string {
  const byId = new Map(profile.nodes.map(n => [n.id, n]))
  const selfUs = new Map<number, number>()
  for (let i = 0; i < profile.samples.length; i++) {
    // timeDeltas[i] is the time before sample i; attribute the time after it, as DevTools does.
    const dt = profile.timeDeltas[i + 1] ?? 0
    selfUs.set(profile.samples[i], (selfUs.get(profile.samples[i]) ?? 0) + dt)
  }
  const agg = new Map<string, number>()
  let total = 0
  let idle = 0
  for (const [id, us] of selfUs) {
    const cf = byId.get(id)!.callFrame
    total += us
    if (cf.functionName === '(idle)') { idle += us; continue }
    const where = cf.url === '' ? '' : ` ${cf.url.replace(/^file:\/\//, '').replace(/^.*\/(node_modules|dist)\//, '$1/')}:${cf.lineNumber + 1}`
    const key = `${cf.functionName === '' ? '(anonymous)' : cf.functionName}${where}`
    agg.set(key, (agg.get(key) ?? 0) + us)
  }
  const busy = total - idle
  const lines = [`profile: ${(total / 1e6).toFixed(2)} s sampled, ${(idle / 1e6).toFixed(2)} s idle, ${(busy / 1e6).toFixed(2)} s busy`,
    '   self ms   % busy  function']
  for (const [key, us] of [...agg].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    lines.push(`${(us / 1000).toFixed(1).padStart(10)}  ${(100 * us / busy).toFixed(1).padStart(6)}%  ${key}`)
  }
  return lines.join('\n')
}

if (process.argv[1]?.endsWith('profile-top.js')) {
  const file = process.argv[2]
  const top = Number(process.argv[3] ?? 25)
  process.stdout.write(topSelf(JSON.parse(fs.readFileSync(file, 'utf8')) as Profile, top) + '\n')
}

// One row per measurement: swarmfs's value, a baseline measured in the same run, their ratio.
export interface Row {
  measurement: string
  unit: string
  /** Whether a higher value is better (a rate) or a lower one (a time, a size). */
  better: 'higher' | 'lower'
  value: number | null
  baseline: string
  baselineValue: number | null
  /** For rates: the least acceptable ratio; for times: the greatest. */
  target?: number
  /** Every repetition, for the notes. */
  samples?: { value: number[], baseline: number[] }
}

export function ratioOf (row: Row): number | null {
  if (row.value === null || row.baselineValue === null || row.baselineValue === 0) return null
  return row.value / row.baselineValue
}

function fmt (n: number | null): string {
  if (n === null || !Number.isFinite(n)) return '—'
  const a = Math.abs(n)
  if (a >= 1000) return Math.round(n).toLocaleString('en-US')
  if (a >= 100) return n.toFixed(0)
  if (a >= 10) return n.toFixed(1)
  return n.toFixed(2)
}

export function formatTable (rows: Row[]): string {
  const header = ['#', 'measurement', 'unit', 'swarmfs', 'baseline', 'baseline value', 'ratio', 'target', '']
  const lines = rows.map((r, i) => {
    const ratio = ratioOf(r)
    let target = ''
    let verdict = ''
    if (r.target !== undefined) {
      target = `${r.better === 'higher' ? '>=' : '<='} ${r.target}x`
      if (ratio !== null) verdict = (r.better === 'higher' ? ratio >= r.target : ratio <= r.target) ? 'ok' : 'MISSED'
    }
    return [String(i + 1), r.measurement, `${r.unit} (${r.better === 'higher' ? '↑' : '↓'})`, fmt(r.value), r.baseline, fmt(r.baselineValue), ratio === null ? '—' : ratio.toFixed(2) + 'x', target, verdict]
  })
  const widths = header.map((h, c) => Math.max(h.length, ...lines.map(l => l[c].length)))
  const numeric = new Set([0, 3, 5, 6])
  const row = (cells: string[]): string => '| ' + cells.map((s, c) => numeric.has(c) ? s.padStart(widths[c]) : s.padEnd(widths[c])).join(' | ') + ' |'
  return [row(header), '|' + widths.map(w => '-'.repeat(w + 2)).join('|') + '|', ...lines.map(row)].join('\n')
}

export function median (xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const m = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2
}

export const MB = 1e6
export const MiB = 1024 * 1024

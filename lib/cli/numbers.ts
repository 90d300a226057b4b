// The one parser of the CLI's numeric flags. Number() takes '' as 0, '1e9' and '0x10' as numbers and
// '1e10' seconds overflows a timer (setTimeout fires at once past 2^31-1 ms): here a value is plain
// decimal digits within the flag's range, or one line says what was wrong and what is accepted.
import { UserError } from '../core/errors.js'

export interface NumberRule {
  /** The flag as the user typed it, e.g. "--wait". */
  flag: string
  min: number
  max: number
  /** Whether a fraction (1.5) is accepted. */
  fraction?: boolean
  /** What is accepted, said to the user: "a whole number of seconds from 1 to 86400 (a day)". */
  accepts: string
}

/** `shown`: the whole value as typed, when `text` is the number in it (2 of 2G). */
export function parseNumberFlag (text: string, rule: NumberRule, shown = text): number {
  const refuse = (why: string): never => { throw new UserError(`invalid ${rule.flag} "${shown}": ${why}; give ${rule.accepts}`) }
  if (text.trim() === '') refuse(shown.trim() === '' ? 'it is empty' : 'no number before the unit')
  const digits = rule.fraction === true ? /^\d+(\.\d+)?$/ : /^\d+$/
  if (!digits.test(text)) {
    if (/^\s*-/.test(text)) refuse('it is negative')
    if (/^\s*[+-]?(\d+\.?\d*|\.\d+)e[+-]?\d+\s*$/i.test(text)) refuse('exponent forms are not taken')
    if (rule.fraction !== true && /^\d+\.\d+$/.test(text)) refuse('it is not a whole number')
    refuse('it is not a plain decimal number')
  }
  const n = Number(text)
  if (n < rule.min || n > rule.max) refuse(n < rule.min ? 'too small' : 'too large')
  return n
}

/** host:port of --peer, the port through the same parser. */
export function parsePeerFlag (hp: string): { host: string, port: number } {
  const at = hp.lastIndexOf(':')
  if (at <= 0) throw new UserError(`invalid --peer "${hp}": use host:port, e.g. 192.168.1.20:7421`)
  const port = parseNumberFlag(hp.slice(at + 1), { flag: `port of --peer ${hp}`, min: 1, max: 65535, accepts: 'a port from 1 to 65535, as in host:port' })
  return { host: hp.slice(0, at), port }
}

const SCALE: Record<string, number> = { '': 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 }

/**
 * A size flag (--reserve): "1048576" bytes, "500M", "2G", "1.5T" (powers of 1024), or "10%" of the
 * disk. Bytes stop at 2^53 (8 PiB), where a count is no longer exact: no disk is that large.
 */
export function parseSizeFlag (text: string, flag: string): number | { percent: number } {
  const m = /^(.*?)([kmgt]i?b?|%)?$/i.exec(text) ?? ['', text, undefined]
  const unit = (m[2] ?? '').toLowerCase()
  if (unit === '%') return { percent: parseNumberFlag(m[1], { flag, min: 0, max: 100, fraction: true, accepts: 'a percentage from 0 to 100%, or a size such as 2G' }, text) }
  const scale = SCALE[unit.charAt(0)] ?? 1
  const max = Math.floor(Number.MAX_SAFE_INTEGER / scale)
  const n = parseNumberFlag(m[1], { flag, min: 0, max, fraction: true, accepts: 'bytes, or a number with K, M, G, T (at most 8191T) or %, e.g. 2G' }, text)
  return Math.floor(n * scale)
}

// The one parser of the CLI's numeric flags. Number() takes '' as 0, '1e9' and '0x10' as numbers and
// '1e10' seconds overflows a timer (setTimeout fires at once past 2^31-1 ms): here a value is plain
// decimal digits within the flag's range, or one line says what was wrong and what is accepted.
import { UserError } from '../errors/index.js'

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

export function parseNumberFlag (text: string, rule: NumberRule): number {
  const refuse = (why: string): never => { throw new UserError(`invalid ${rule.flag} "${text}": ${why}; give ${rule.accepts}`) }
  if (text.trim() === '') refuse('it is empty')
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

// Structured logs: one JSON object per line on stderr. Quiet by default (warnings and errors);
// --verbose lowers the level to debug.

export type Level = 'debug' | 'info' | 'warn' | 'error'
const rank: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 }

export interface Logger {
  debug (msg: string, fields?: Record<string, unknown>): void
  info (msg: string, fields?: Record<string, unknown>): void
  warn (msg: string, fields?: Record<string, unknown>): void
  error (msg: string, fields?: Record<string, unknown>): void
  child (fields: Record<string, unknown>): Logger
}

let threshold: number = rank.warn

export function setLogLevel (level: Level): void {
  threshold = rank[level]
}

export function createLogger (base: Record<string, unknown> = {}, write: (line: string) => void = line => process.stderr.write(line)): Logger {
  const emit = (level: Level, msg: string, fields?: Record<string, unknown>): void => {
    if (rank[level] < threshold) return
    const record: Record<string, unknown> = { time: new Date().toISOString(), level, msg, ...base }
    if (fields) {
      for (const [k, v] of Object.entries(fields)) record[k] = v instanceof Error ? { message: v.message, code: (v as { code?: unknown }).code } : v
    }
    write(JSON.stringify(record) + '\n')
  }
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: fields => createLogger({ ...base, ...fields }, write)
  }
}

export const silentLogger: Logger = {
  debug () {}, info () {}, warn () {}, error () {}, child () { return silentLogger }
}

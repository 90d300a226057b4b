// Settings of the whole volume, kept in the root directory's marker so that every node reads the
// same ones from the same commit. Two nodes may change them at once: the change with the later
// `at` wins, as a pure function of the two, so every merge picks the same settings.

export interface VolumeSettings {
  /** How many complete copies of each content the volume aims for. */
  copies: number
  /** How long a node may be gone before its copies stop counting (ms). */
  graceMs: number
  /** When they were set (ms since the epoch); 0 only for the defaults, which is what absence means. */
  at: number
}

export const MIN_COPIES = 1
export const MAX_COPIES = 16

export const DEFAULT_VOLUME_SETTINGS: Readonly<VolumeSettings> = Object.freeze({ copies: 2, graceMs: 600_000, at: 0 })

export function isValidCopies (v: unknown): v is number {
  return Number.isSafeInteger(v) && (v as number) >= MIN_COPIES && (v as number) <= MAX_COPIES
}

export function isValidGraceMs (v: unknown): v is number {
  return Number.isSafeInteger(v) && (v as number) >= 0
}

/**
 * Settings as a marker holds them, or null when anything about them is wrong (they may come from a
 * peer). `at` must be positive: an explicit setting is then always newer than none at all.
 */
export function parseVolumeSettings (raw: unknown): VolumeSettings | null {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return null
  const { copies, graceMs, at } = raw as Record<string, unknown>
  if (!isValidCopies(copies) || !isValidGraceMs(graceMs)) return null
  if (!Number.isSafeInteger(at) || (at as number) < 1) return null
  return { copies, graceMs, at: at as number }
}

/** A total order: by `at`, then (a tie of two nodes' clocks) by the larger copies, then graceMs. */
export function compareSettings (a: VolumeSettings, b: VolumeSettings): number {
  return a.at - b.at || a.copies - b.copies || a.graceMs - b.graceMs
}

/** The settings that win a merge; null (absent) counts as the defaults. The same whichever comes first. */
export function newerSettings (a: VolumeSettings | null, b: VolumeSettings | null): VolumeSettings | null {
  return compareSettings(a ?? DEFAULT_VOLUME_SETTINGS, b ?? DEFAULT_VOLUME_SETTINGS) >= 0 ? a : b
}

/** What is in force: the settings, or the defaults where there are none. */
export function effectiveSettings (s: VolumeSettings | null): VolumeSettings {
  return { ...(s ?? DEFAULT_VOLUME_SETTINGS) }
}

import t from 'tap'
import { DirNode } from '../../lib/meta/nodes.js'
import { decodeMarker, decodeMarkerVolume, encodeDirMarker, withMarkerVolume } from '../../lib/meta/entry-codec.js'
import {
  DEFAULT_VOLUME_SETTINGS, effectiveSettings, newerSettings, parseVolumeSettings, type VolumeSettings
} from '../../lib/meta/volume-settings.js'

const T0 = Date.UTC(2024, 4, 1, 12, 0, 0)
const s = (copies: number, graceMs: number, at: number): VolumeSettings => ({ copies, graceMs, at })
const attrs = { perm: 0o755, uid: 0, gid: 0, mtime: T0, ctime: T0, atime: T0 }

t.test('defaults', async t => {
  t.same(DEFAULT_VOLUME_SETTINGS, { copies: 2, graceMs: 600_000, at: 0 })
  t.ok(Object.isFrozen(DEFAULT_VOLUME_SETTINGS))
  t.same(effectiveSettings(null), DEFAULT_VOLUME_SETTINGS, 'absent means the defaults')
  const mine = effectiveSettings(null)
  mine.copies = 5
  t.equal(DEFAULT_VOLUME_SETTINGS.copies, 2, 'callers get a copy')
  t.same(effectiveSettings(s(3, 0, T0)), s(3, 0, T0))
})

t.test('parse accepts valid settings and keeps only their three fields', async t => {
  t.same(parseVolumeSettings({ copies: 3, graceMs: 1000, at: T0 }), s(3, 1000, T0))
  t.same(parseVolumeSettings({ copies: 1, graceMs: 0, at: 1 }), s(1, 0, 1), 'the lower bounds')
  t.same(parseVolumeSettings({ copies: 16, graceMs: Number.MAX_SAFE_INTEGER, at: Number.MAX_SAFE_INTEGER }),
    s(16, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER), 'the upper bounds')
  t.same(parseVolumeSettings({ copies: 3, graceMs: 1000, at: T0, extra: 'x' }), s(3, 1000, T0))
})

t.test('parse refuses anything malformed', async t => {
  const bad: unknown[] = [
    undefined, null, 3, 'copies', [3, 1000, T0], [],
    {},
    { graceMs: 1000, at: T0 },
    { copies: 3, at: T0 },
    { copies: 3, graceMs: 1000 },
    { copies: 0, graceMs: 1000, at: T0 },
    { copies: 17, graceMs: 1000, at: T0 },
    { copies: 2.5, graceMs: 1000, at: T0 },
    { copies: '3', graceMs: 1000, at: T0 },
    { copies: Number.NaN, graceMs: 1000, at: T0 },
    { copies: 3, graceMs: -1, at: T0 },
    { copies: 3, graceMs: 0.5, at: T0 },
    { copies: 3, graceMs: Infinity, at: T0 },
    { copies: 3, graceMs: 2 ** 53, at: T0 },
    { copies: 3, graceMs: null, at: T0 },
    { copies: 3, graceMs: 1000, at: 0 },
    { copies: 3, graceMs: 1000, at: -5 },
    { copies: 3, graceMs: 1000, at: T0 + 0.5 },
    { copies: 3, graceMs: 1000, at: String(T0) },
    { copies: 3, graceMs: 1000, at: 2 ** 53 }
  ]
  for (const raw of bad) t.equal(parseVolumeSettings(raw), null, JSON.stringify(raw) ?? String(raw))
})

t.test('newer: the later at wins, ties go to more copies, then the longer grace', async t => {
  const cases: Array<[VolumeSettings | null, VolumeSettings | null, VolumeSettings | null]> = [
    [s(1, 0, T0 + 1), s(16, 9999, T0), s(1, 0, T0 + 1)],
    [s(2, 5, T0), s(3, 1, T0), s(3, 1, T0)],
    [s(3, 5, T0), s(3, 7, T0), s(3, 7, T0)],
    [s(1, 0, 1), null, s(1, 0, 1)],
    [null, null, null]
  ]
  for (const [a, b, want] of cases) {
    t.same(newerSettings(a, b), want, `${JSON.stringify(a)} vs ${JSON.stringify(b)}`)
    t.same(newerSettings(b, a), want, 'the same the other way round')
  }
  const same = s(4, 4, T0)
  t.same(newerSettings(same, { ...same }), same, 'equal settings: either, they are the same')
})

t.test('the root marker carries the settings; no other marker does', async t => {
  const root = new DirNode({ ...attrs })
  root.isRoot = true
  t.notOk('volume' in JSON.parse(encodeDirMarker(root)), 'none set: none written')
  t.equal(decodeMarkerVolume(encodeDirMarker(root)), null)
  root.volume = s(3, 1234, T0)
  const text = encodeDirMarker(root)
  t.same(JSON.parse(text).volume, { copies: 3, graceMs: 1234, at: T0 })
  t.same(decodeMarkerVolume(text), s(3, 1234, T0))
  t.same(decodeMarker(text, attrs), { attrs, ino: null, links: new Map(), volume: s(3, 1234, T0) })

  const sub = new DirNode({ ...attrs })
  sub.volume = s(3, 1234, T0)
  t.notOk('volume' in JSON.parse(encodeDirMarker(sub)), 'only the root writes them')
})

t.test('markers with malformed settings read as none', async t => {
  const marker = (volume: unknown): string => JSON.stringify({ v: 1, ...attrs, volume }) + '\n'
  t.equal(decodeMarkerVolume(marker({ copies: 99, graceMs: 0, at: T0 })), null)
  t.equal(decodeMarkerVolume(marker('3')), null)
  t.equal(decodeMarkerVolume('not json'), null)
  t.equal(decodeMarkerVolume('[1,2]'), null)
  t.same(decodeMarker(marker({ copies: 0 }), attrs).attrs, attrs, 'the rest of the marker still reads')
})

t.test('settings written into a marker: deterministic, the rest kept', async t => {
  const text = JSON.stringify({ v: 1, ...attrs, links: { l: [1, 2, 3, 4] } }) + '\n'
  const out = withMarkerVolume(text, { at: T0, graceMs: 5, copies: 4 })
  t.equal(out, JSON.stringify({ v: 1, ...attrs, links: { l: [1, 2, 3, 4] }, volume: { copies: 4, graceMs: 5, at: T0 } }) + '\n')
  t.equal(withMarkerVolume(out ?? '', s(5, 6, T0 + 1)),
    JSON.stringify({ v: 1, ...attrs, links: { l: [1, 2, 3, 4] }, volume: { copies: 5, graceMs: 6, at: T0 + 1 } }) + '\n',
    'replaced in place')
  t.equal(withMarkerVolume('garbage', s(5, 6, T0)), null)
  t.equal(withMarkerVolume('null', s(5, 6, T0)), null)
})

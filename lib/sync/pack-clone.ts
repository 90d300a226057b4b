// A joining node's first copy of a peer's history, as git's smart HTTP protocol (v0) carries it,
// stored by git itself: the pack streams from the peer's upload-pack into `git index-pack --stdin`,
// which writes and indexes it on the disk as it comes. isomorphic-git's fetch holds the whole pack
// in memory and indexes it in JavaScript: 745 MB at 100,000 files, and a million ran out of a 4 GB
// heap. Later fetches are small and stay isomorphic-git's (peer-client.ts). git is already the
// peers' upload-pack (http/peer-server.ts runs `git http-backend`).
import { spawn } from 'node:child_process'
import type { Readable } from 'node:stream'
import { SwarmError } from '../core/errors.js'
import { PeerError } from './peer-error.js'

const OID = /^[0-9a-f]{40}$/
const FLUSH = '0000'

/** pkt-lines of `body`: each line's text, null for a flush. Throws on a malformed length. */
export function pktLines (body: Buffer): Array<string | null> {
  const lines: Array<string | null> = []
  let at = 0
  while (at < body.length) {
    const len = pktLength(body, at)
    if (len === 0) {
      lines.push(null)
      at += 4
      continue
    }
    if (at + len > body.length) throw new PeerError('SWARMFS_PEER_BAD_RESPONSE', 'a pkt-line runs past the end of the answer')
    lines.push(body.subarray(at + 4, at + len).toString('utf8'))
    at += len
  }
  return lines
}

function pktLength (buf: Buffer, at: number): number {
  const hex = buf.subarray(at, at + 4).toString('latin1')
  const len = /^[0-9a-f]{4}$/.test(hex) ? parseInt(hex, 16) : NaN
  if (Number.isNaN(len) || (len > 0 && len < 4)) throw new PeerError('SWARMFS_PEER_BAD_RESPONSE', `a malformed pkt-line length "${hex}"`)
  return len
}

function pkt (text: string): string {
  return (text.length + 4).toString(16).padStart(4, '0') + text
}

/**
 * The oid the peer's `info/refs?service=git-upload-pack` advertises for `ref` (null when it has
 * none: an empty repository advertises only capabilities), and whether it offers side-band-64k.
 */
export function advertisedRef (body: Buffer, ref: string): { oid: string | null, sideBand: boolean } {
  let oid: string | null = null
  let sideBand = false
  let first = true
  for (const line of pktLines(body)) {
    if (line === null || line.startsWith('# service=')) continue
    const [refPart, caps] = line.replace(/\n$/, '').split('\0')
    if (first && caps !== undefined) sideBand = caps.split(' ').includes('side-band-64k')
    first = false
    const [id, name] = refPart.split(' ')
    if (name === ref && OID.test(id)) oid = id
  }
  return { oid, sideBand }
}

/** The upload-pack request of a whole history: one want, no haves. */
export function wantRequest (oid: string): Buffer {
  return Buffer.from(pkt(`want ${oid} side-band-64k ofs-delta no-progress agent=swarmfs\n`) + FLUSH + pkt('done\n'))
}

/**
 * Stores the pack of an upload-pack answer (`NAK`, then the pack on side band 1) in `gitdir` with
 * `git index-pack --stdin`, which checks every object's hash as it indexes. Resolves once git has
 * written the pack and its index (synced); a band 3 message, a malformed answer or git's failure
 * rejects, and git leaves no pack behind.
 */
export async function indexPackFrom (gitdir: string, answer: Readable): Promise<void> {
  const git = spawn('git', [
    '--git-dir', gitdir,
    '-c', 'core.fsync=objects,derived-metadata', '-c', 'core.fsyncMethod=fsync',
    'index-pack', '--stdin'
  ], { stdio: ['pipe', 'ignore', 'pipe'] })
  let stderr = ''
  git.stderr.setEncoding('utf8').on('data', (d: string) => { stderr = (stderr + d).slice(-2000) })
  let spawnError: Error | null = null
  let exitCode: number | null | undefined
  const exited = new Promise<void>(resolve => {
    git.once('error', err => { spawnError = err; resolve() })
    git.once('close', code => { exitCode = code; resolve() })
  })
  // A git that stopped early is reported by its exit below, not by the pipe.
  git.stdin.on('error', () => {})
  let failure: Error | null = null
  try {
    let buf: Buffer = Buffer.alloc(0)
    let sawNak = false
    let ended = false
    for await (const chunk of answer) {
      buf = buf.length === 0 ? chunk as Buffer : Buffer.concat([buf, chunk as Buffer])
      let at = 0
      while (!ended && buf.length - at >= 4) {
        const len = pktLength(buf, at)
        if (len === 0) {
          ended = true
          at += 4
          break
        }
        if (buf.length - at < len) break
        const payload = buf.subarray(at + 4, at + len)
        at += len
        if (!sawNak) {
          if (payload.toString('latin1') !== 'NAK\n') throw new PeerError('SWARMFS_PEER_BAD_RESPONSE', `upload-pack answered "${payload.toString('utf8').slice(0, 200)}" where NAK was due`)
          sawNak = true
          continue
        }
        const band = payload[0]
        if (band === 1) {
          if (!git.stdin.write(payload.subarray(1))) await Promise.race([new Promise(resolve => git.stdin.once('drain', resolve)), exited])
          if (exitCode !== undefined || spawnError !== null) break
        } else if (band === 3) {
          throw new PeerError('SWARMFS_PEER_BAD_RESPONSE', `the peer's upload-pack failed: ${payload.subarray(1).toString('utf8').slice(0, 200)}`)
        } else if (band !== 2) {
          throw new PeerError('SWARMFS_PEER_BAD_RESPONSE', `upload-pack sent side band ${band}`)
        }
      }
      buf = buf.subarray(at)
      if (ended || exitCode !== undefined || spawnError !== null) break
    }
    if (!ended && exitCode === undefined && spawnError === null) throw new PeerError('SWARMFS_PEER_BAD_RESPONSE', 'the pack from the peer ended early')
  } catch (err) {
    failure = err as Error
    git.kill('SIGTERM')
  } finally {
    git.stdin.end()
  }
  await exited
  if (failure !== null) throw failure
  if (spawnError !== null) throw new SwarmError('SWARMFS_INTERNAL', `cannot run git index-pack (is git installed?): ${(spawnError as Error).message}`)
  if (exitCode !== 0) throw new PeerError('SWARMFS_PEER_BAD_RESPONSE', `git index-pack refused the pack from the peer (exit ${exitCode ?? 'by a signal'}): ${stderr.trim()}`)
}

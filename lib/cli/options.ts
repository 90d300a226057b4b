// What several commands share: the --disk, network and --reserve options, the numeric flags' rules,
// the log level. Each refuses a bad value with a UserError (one line) before anything is written.
import fs from 'node:fs'
import os from 'node:os'
import { dirname, join } from 'node:path'
import { Command, Option } from 'commander'
import { UserError } from '../core/errors.js'
import { createLogger, setLogLevel, type Logger } from '../core/log.js'
import { readConfig, writeConfig } from '../node/disk.js'
import { formatBytes } from '../replicate/plan.js'
import { parseSizeFlag, type NumberRule } from './numbers.js'

/** The numeric flags, each with its range (see numbers.ts). */
export const COPIES: NumberRule = { flag: '--copies', min: 1, max: 16, accepts: 'a whole number of disks from 1 to 16' }
/** The grace period is kept in ms; 24 days keeps it below 2^31-1 ms, the longest a timer can wait, should one ever wait for it. */
const GRACE_MAX_S = 24 * 86400
export const GRACE: NumberRule = { flag: '--grace-period', min: 0, max: GRACE_MAX_S, fraction: true, accepts: `a number of seconds from 0 to ${GRACE_MAX_S} (24 days)` }
export const WAIT: NumberRule = { flag: '--wait', min: 1, max: 86400, accepts: 'a whole number of seconds from 1 to 86400 (a day)' }

const defaultDisk = process.env.SWARMFS_DISK ?? join(os.homedir(), '.local', 'share', 'swarmfs', 'disk')

export function diskOption (): Option {
  return new Option('--disk <dir>', 'the disk directory of this node (env SWARMFS_DISK)').default(defaultDisk)
}

export function setup (opts: { verbose?: boolean }): Logger {
  setLogLevel(opts.verbose === true ? 'debug' : 'warn')
  return createLogger()
}

export interface NetworkOptions { peer?: string[], address?: string, interface?: string }

export function networkOptions (cmd: Command): Command {
  return cmd
    .option('--peer <host:port>', 'a peer to sync with besides those mDNS finds (repeatable)', (v: string, prev: string[] = []) => [...prev, v])
    .option('--address <ipv4>', 'listen and announce on this address only')
    .option('--interface <name>', 'listen and announce on this network interface only')
}

/** The IPv4 addresses of this machine (of its network namespace). */
export function ourAddresses (): string[] {
  return Object.values(os.networkInterfaces()).flatMap(list => (list ?? []).filter(a => a.family === 'IPv4').map(a => a.address))
}

/** The address --address or --interface choose; a UserError when the interface has no IPv4 address. */
export function chosenAddress (opts: NetworkOptions): string | undefined {
  if (opts.address !== undefined) {
    const ours = ourAddresses()
    if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(opts.address) || opts.address.split('.').some(o => Number(o) > 255)) {
      throw new UserError(`invalid --address "${opts.address}": give an IPv4 address of this machine (${ours.join(', ')})`)
    }
    if (!ours.includes(opts.address)) throw new UserError(`--address ${opts.address} is not an address of this machine; choose one of: ${ours.join(', ')}`)
    return opts.address
  }
  if (opts.interface === undefined) return undefined
  const found = os.networkInterfaces()[opts.interface]?.find(a => a.family === 'IPv4')
  if (found === undefined) {
    throw new UserError(`interface "${opts.interface}" has no IPv4 address here; choose one of: ${Object.keys(os.networkInterfaces()).join(', ')}`)
  }
  return found.address
}

/** --reserve, kept in node.json for every later start. */
export function reserveOption (cmd: Command): Command {
  return cmd.option('--reserve <size>', 'space of the disk kept free: no copies are taken below it (e.g. 10G, 5%; default 5%, at most 1G)')
}

/**
 * A reserve the disk cannot keep (its whole size, or more) would leave the node no room for any
 * copy or read: refused before anything is written. The disk may not exist yet: the filesystem
 * it will be on is asked.
 */
export function checkReserve (reserve: string, disk: string): void {
  const size = parseSizeFlag(reserve, '--reserve')
  let dir = disk
  while (!fs.existsSync(dir) && dirname(dir) !== dir) dir = dirname(dir)
  const st = fs.statfsSync(dir)
  const total = st.blocks * st.bsize
  const bytes = typeof size === 'number' ? size : Math.floor(total * size.percent / 100)
  if (bytes >= total) throw new UserError(`--reserve ${reserve} is not less than the disk's size (${formatBytes(total)}): the node could keep no copy and cache no read; give less`)
}

export function saveReserve (disk: string, reserve: string | undefined): void {
  if (reserve === undefined) return
  checkReserve(reserve, disk)
  const config = readConfig(disk)
  config.reserve = parseSizeFlag(reserve, '--reserve')
  writeConfig(disk, config)
}

// The swarmfs command line. Every failure a user can fix prints one line and exits non-zero.
import fs from 'node:fs'
import os from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { Command, CommanderError, Option } from 'commander'
import { UserError } from '../core/errors.js'
import { createLogger, setLogLevel, type Logger } from '../core/log.js'
import { checkFreshDisk, createConfig, inviteFor, lockDisk, lockHolder, parseInvite, readConfig, retiredMessage, writeConfig } from '../node/disk.js'
import { findPeer, joinVolume } from '../node/join.js'
import { SwarmNode } from '../node/node.js'
import { checkMountPoint } from '../fuse/mount.js'
import { callLocalNode } from './local-node.js'
import { parseNumberFlag, parsePeerFlag, parseSizeFlag, type NumberRule } from './numbers.js'
import { formatBytes } from '../replicate/plan.js'
import type { ReplicationStatus } from '../replicate/replicator.js'
import type { ScrubStatus } from '../replicate/scrub.js'
import { statusOf, formatStatus, progressBar, progressLine } from './status.js'

/** The numeric flags, each with its range (see numbers.ts). */
const COPIES: NumberRule = { flag: '--copies', min: 1, max: 16, accepts: 'a whole number of disks from 1 to 16' }
/** The grace period is kept in ms; 24 days keeps it below 2^31-1 ms, the longest a timer can wait, should one ever wait for it. */
const GRACE_MAX_S = 24 * 86400
const GRACE: NumberRule = { flag: '--grace-period', min: 0, max: GRACE_MAX_S, fraction: true, accepts: `a number of seconds from 0 to ${GRACE_MAX_S} (24 days)` }
const WAIT: NumberRule = { flag: '--wait', min: 1, max: 86400, accepts: 'a whole number of seconds from 1 to 86400 (a day)' }

const defaultDisk = process.env.SWARMFS_DISK ?? join(os.homedir(), '.local', 'share', 'swarmfs', 'disk')

function diskOption (): Option {
  return new Option('--disk <dir>', 'the disk directory of this node (env SWARMFS_DISK)').default(defaultDisk)
}

function setup (opts: { verbose?: boolean }): Logger {
  setLogLevel(opts.verbose === true ? 'debug' : 'warn')
  return createLogger()
}

interface NetworkOptions { peer?: string[], address?: string, interface?: string }

function networkOptions (cmd: Command): Command {
  return cmd
    .option('--peer <host:port>', 'a peer to sync with besides those mDNS finds (repeatable)', (v: string, prev: string[] = []) => [...prev, v])
    .option('--address <ipv4>', 'listen and announce on this address only')
    .option('--interface <name>', 'listen and announce on this network interface only')
}

/** The IPv4 addresses of this machine (of its network namespace). */
function ourAddresses (): string[] {
  return Object.values(os.networkInterfaces()).flatMap(list => (list ?? []).filter(a => a.family === 'IPv4').map(a => a.address))
}

/** The address --address or --interface choose; a UserError when the interface has no IPv4 address. */
function chosenAddress (opts: NetworkOptions): string | undefined {
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
function reserveOption (cmd: Command): Command {
  return cmd.option('--reserve <size>', 'space of the disk kept free: no copies are taken below it (e.g. 10G, 5%; default 5%, at most 1G)')
}

/**
 * A reserve the disk cannot keep (its whole size, or more) would leave the node no room for any
 * copy or read: refused before anything is written. The disk may not exist yet: the filesystem
 * it will be on is asked.
 */
function checkReserve (reserve: string, disk: string): void {
  const size = parseSizeFlag(reserve, '--reserve')
  let dir = disk
  while (!fs.existsSync(dir) && dirname(dir) !== dir) dir = dirname(dir)
  const st = fs.statfsSync(dir)
  const total = st.blocks * st.bsize
  const bytes = typeof size === 'number' ? size : Math.floor(total * size.percent / 100)
  if (bytes >= total) throw new UserError(`--reserve ${reserve} is not less than the disk's size (${formatBytes(total)}): the node could keep no copy and cache no read; give less`)
}

function saveReserve (disk: string, reserve: string | undefined): void {
  if (reserve === undefined) return
  checkReserve(reserve, disk)
  const config = readConfig(disk)
  config.reserve = parseSizeFlag(reserve, '--reserve')
  writeConfig(disk, config)
}

/**
 * What refuses a start, asked before anything is written or started: a disk that is not one, a
 * retired disk, a node already running on it, an address, a peer or a reserve that cannot be, a
 * mount point that cannot be one.
 */
function checkStart (disk: string, mountPoint: string | null | undefined, net: { peers?: string[], address?: string }, reserve?: string): void {
  const config = readConfig(disk)
  if (config.retired === true) throw new UserError(retiredMessage(disk, config.volumeName))
  const holder = lockHolder(disk)
  if (holder !== null && holder !== process.pid) throw new UserError(`${disk} is in use by a running node (pid ${holder}); stop it first`)
  if (net.address === undefined && config.address !== undefined && !ourAddresses().includes(config.address)) {
    throw new UserError(`${config.address}, the address this disk was given with --address, is not an address of this machine now; start it with --address <one of ${ourAddresses().join(', ')}>`)
  }
  for (const p of net.peers ?? []) parsePeerFlag(p)
  if (reserve !== undefined) checkReserve(reserve, disk)
  const mountAt = mountPoint === undefined ? config.mountPoint : mountPoint
  if (mountAt !== null) checkMountPoint(mountAt, disk)
}

/** Runs a node in the foreground until SIGINT or SIGTERM (or the node asks: a retired disk), then stops it cleanly. */
async function runNode (disk: string, mountPoint: string | null | undefined, log: Logger, net: { peers?: string[], address?: string } = {}): Promise<void> {
  checkStart(disk, mountPoint, net)
  const config = readConfig(disk)
  const node = await SwarmNode.start({
    disk,
    mountPoint,
    log,
    peers: [...new Set([...(config.peers ?? []), ...(net.peers ?? [])])],
    address: net.address ?? config.address
  })
  const mounted = mountPoint === undefined ? node.config.mountPoint : mountPoint
  const where = mounted === null ? 'no mount' : `mounted at ${mounted}`
  process.stdout.write(`swarmfs: volume "${node.config.volumeName}" running (${where}); Ctrl-C stops it\n`)
  await new Promise<void>(done => {
    let signals = 0
    const onSignal = (sig: NodeJS.Signals): void => {
      if (++signals > 1) {
        process.stderr.write(`swarmfs: ${sig} again, exiting without a clean stop\n`)
        process.exit(130)
      }
      process.stderr.write(`swarmfs: stopping (finishing writes${mounted !== null ? ', unmounting' : ''})...\n`)
      node.stop().then(done, err => {
        process.stderr.write(`swarmfs: stop failed: ${(err as Error).message}\n`)
        process.exit(1)
      })
    }
    process.on('SIGINT', onSignal)
    process.on('SIGTERM', onSignal)
    node.onStopRequested = why => {
      signals++
      if (why === 'unmounted') process.stderr.write(`swarmfs: ${mounted ?? 'the mount'} was unmounted; stopping (finishing writes)...\n`)
      node.stop().then(done, err => {
        process.stderr.write(`swarmfs: stop failed: ${(err as Error).message}\n`)
        process.exit(1)
      })
    }
  })
}

/** The version in package.json (dist/lib/cli/main.js is three levels below it). */
function packageVersion (): string {
  try {
    return (JSON.parse(fs.readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version
  } catch {
    return 'unknown'
  }
}

export function buildProgram (): Command {
  const program = new Command()
  program
    .name('swarmfs')
    .description('A distributed filesystem: a FUSE mount whose metadata is a git repository and whose contents are torrents')
    .version(packageVersion(), '-V, --version', 'print the version of swarmfs')
    .showSuggestionAfterError(true)
    // Set before the commands are added, which inherit them: a wrong flag to a command, too, is a
    // CommanderError that main() turns into exit 2, told in one line as every other error.
    .configureOutput({ outputError: (text, write) => write(`swarmfs: ${text.trim().replace(/^error: /, '').replace(/\s*\n\s*/g, ' ').replace(/\.$/, '')}; see "swarmfs --help"\n`) })
    .exitOverride()

  reserveOption(networkOptions(program.command('init')))
    .description('create a new volume on a disk directory, print its invite, and run the node')
    .argument('<name>', 'volume name (letters, digits, . _ -)')
    .addOption(diskOption())
    .option('--mount <dir>', 'where to mount the volume (empty directory; created if missing)')
    .option('--no-start', 'only create the volume; start it later with "swarmfs start"')
    .option('-v, --verbose', 'log details to stderr')
    .action(async (name: string, opts: NetworkOptions & { disk: string, mount?: string, start: boolean, verbose?: boolean, reserve?: string }) => {
      const log = setup(opts)
      const address = chosenAddress(opts)
      for (const p of opts.peer ?? []) parsePeerFlag(p)
      if (opts.reserve !== undefined) checkReserve(opts.reserve, resolve(opts.disk))
      const disk = resolve(opts.disk)
      if (opts.mount !== undefined) checkMountPoint(opts.mount, disk)
      const config = createConfig(disk, name, opts.mount ?? null)
      try {
        await SwarmNode.initVolume(disk, log)
      } catch (err) {
        fs.rmSync(disk, { recursive: true, force: true })
        throw err
      }
      saveReserve(disk, opts.reserve)
      // Kept for later starts, as join keeps them.
      if ((opts.peer ?? []).length > 0 || address !== undefined) writeConfig(disk, { ...readConfig(disk), peers: opts.peer, address })
      process.stdout.write(`swarmfs: created volume "${name}" on ${disk}\ninvite: ${inviteFor(config)}\n`)
      if (opts.start) await runNode(disk, undefined, log)
    })

  reserveOption(networkOptions(program.command('join')))
    .description('make a disk directory a node of an existing volume: find a peer, copy the metadata, and run the node')
    .argument('<invite>', 'the invite printed by "swarmfs init" (swarmfs://<volume>/<key>)')
    .addOption(diskOption())
    .option('--mount <dir>', 'where to mount the volume; without it the node stores and serves only')
    .option('--wait <seconds>', 'how long to look for a peer', '30')
    .option('--no-start', 'only join; start later with "swarmfs start"')
    .option('-v, --verbose', 'log details to stderr')
    .action(async (invite: string, opts: NetworkOptions & { disk: string, mount?: string, wait: string, start: boolean, verbose?: boolean, reserve?: string }) => {
      const log = setup(opts)
      const disk = resolve(opts.disk)
      const parsed = parseInvite(invite)
      const waitS = parseNumberFlag(opts.wait, WAIT)
      if (opts.reserve !== undefined) checkReserve(opts.reserve, resolve(opts.disk))
      checkFreshDisk(disk, parsed.volumeKey)
      const peers = opts.peer ?? []
      for (const p of peers) parsePeerFlag(p)
      const address = chosenAddress(opts)
      if (opts.mount !== undefined) checkMountPoint(opts.mount, disk)
      const base = { invite: parsed, peers, address, waitMs: waitS * 1000, log }
      // Progress for a person at a terminal; a script gets only the outcome (or the one-line error).
      if (process.stderr.isTTY) process.stderr.write(`swarmfs: looking for a peer of volume "${parsed.volumeName}" (up to ${waitS} s)...\n`)
      const peer = await findPeer(base)
      await joinVolume({ ...base, disk, mountPoint: opts.mount !== undefined ? resolve(opts.mount) : null }, peer)
      saveReserve(disk, opts.reserve)
      process.stdout.write(`swarmfs: joined volume "${parsed.volumeName}" on ${disk} (metadata from ${peer.host}:${peer.port})\n`)
      if (opts.start) await runNode(disk, undefined, log)
    })

  reserveOption(networkOptions(program.command('start')))
    .description('run the node of a disk directory in the foreground, mounting its volume')
    .addOption(diskOption())
    .option('--mount <dir>', 'mount here instead of the mount point given at init')
    .option('--no-mount', 'run without a mount')
    .option('-v, --verbose', 'log details to stderr')
    .action(async (opts: NetworkOptions & { disk: string, mount?: string | false, verbose?: boolean, reserve?: string }) => {
      const log = setup(opts)
      const disk = resolve(opts.disk)
      const mountPoint = opts.mount === false ? null : typeof opts.mount === 'string' ? resolve(opts.mount) : undefined
      const net = { peers: opts.peer, address: chosenAddress(opts) }
      // Everything that can refuse the start is asked before --reserve is written to node.json.
      checkStart(disk, mountPoint, net, opts.reserve)
      // The disk is taken before the write, so no other start can come between the check and it.
      const unlock = lockDisk(disk)
      try {
        saveReserve(disk, opts.reserve)
        await runNode(disk, mountPoint, log, net)
      } finally {
        unlock()
      }
    })

  program.command('invite')
    .description('print the invite of the volume of a disk (what "swarmfs join" takes; it holds the volume key)')
    .addOption(diskOption())
    .action((opts: { disk: string }) => {
      process.stdout.write(`${inviteFor(readConfig(resolve(opts.disk)))}\n`)
    })

  program.command('status')
    .description('show the volume, the node and its disk')
    .addOption(diskOption())
    .option('--json', 'print JSON')
    .option('-v, --verbose', 'log details to stderr')
    .action(async (opts: { disk: string, json?: boolean, verbose?: boolean }) => {
      setup(opts)
      const disk = resolve(opts.disk)
      readConfig(disk)
      const status = await statusOf(disk)
      process.stdout.write(opts.json === true ? JSON.stringify(status, null, 2) + '\n' : formatStatus(status))
    })

  program.command('volume')
    .description('show or change the settings of the volume (every node agrees on them): its copy target and grace period')
    .addOption(diskOption())
    .option('--copies <n>', 'keep every file on this many disks (1 to 16)')
    .option('--grace-period <seconds>', 'how long a node may be gone before its files are copied elsewhere')
    .option('--json', 'print JSON')
    .option('-v, --verbose', 'log details to stderr')
    .action(async (opts: { disk: string, copies?: string, gracePeriod?: string, json?: boolean, verbose?: boolean }) => {
      setup(opts)
      const disk = resolve(opts.disk)
      const change: { copies?: number, graceMs?: number } = {}
      if (opts.copies !== undefined) change.copies = parseNumberFlag(opts.copies, COPIES)
      if (opts.gracePeriod !== undefined) change.graceMs = Math.round(parseNumberFlag(opts.gracePeriod, GRACE) * 1000)
      const settings = await callLocalNode(disk, 'POST', '/volume', change) as { copies: number, graceMs: number }
      process.stdout.write(opts.json === true
        ? JSON.stringify(settings) + '\n'
        : `copies: ${settings.copies}\ngrace period: ${settings.graceMs / 1000} s\n`)
      if (change.graceMs === 0) process.stderr.write('swarmfs: note: with a grace period of 0 s, the files of a node that is only restarting are copied to other disks at once (and the extra copies dropped when it is back)\n')
      // A target more disks than there are is kept (disks may join later), but said.
      if (change.copies !== undefined) {
        const r = await callLocalNode(disk, 'GET', '/replication') as ReplicationStatus
        const disks = r.nodes.filter(n => n.up && !n.retiring).length
        if (disks < settings.copies) process.stderr.write(`swarmfs: note: ${disks} ${disks === 1 ? 'disk is' : 'disks are'} running; files stay under the target of ${settings.copies} until ${settings.copies - disks} more join (swarmfs join <invite> --disk <dir>)\n`)
      }
    })

  program.command('retire')
    .description('drain a disk: copy each of its files to other disks until the volume holds the target number elsewhere, then stop its node')
    .addOption(diskOption())
    .option('-v, --verbose', 'log details to stderr')
    .action(async (opts: { disk: string, verbose?: boolean }) => {
      setup(opts)
      const disk = resolve(opts.disk)
      await retire(disk)
    })

  program.command('scrub')
    .description('check every file this disk holds against its hashes; a damaged copy is set aside and fetched again from other disks')
    .addOption(diskOption())
    .option('--json', 'print the result as JSON')
    .option('-v, --verbose', 'log details to stderr')
    .action(async (opts: { disk: string, json?: boolean, verbose?: boolean }) => {
      setup(opts)
      await scrub(resolve(opts.disk), opts.json === true)
    })

  return program
}

type ScrubReport = ScrubStatus & { damagedPaths: string[], skippedPaths: string[] }

/** Starts a scrub on the node of a disk (or follows the one under way) and prints what it found. */
async function scrub (disk: string, json: boolean): Promise<void> {
  const progress = progressLine()
  let status = await callLocalNode(disk, 'POST', '/scrub') as ScrubReport
  while (status.running) {
    progress.show(`swarmfs: scrubbing: ${status.checked} of ${status.contents} contents checked, ${formatBytes(status.bytesChecked)} of ${formatBytes(status.bytes)} ${progressBar(status.bytes === 0 ? 1 : status.bytesChecked / status.bytes)}`)
    await new Promise(resolve => setTimeout(resolve, 500))
    try {
      status = await callLocalNode(disk, 'GET', '/scrub', undefined, 5000) as ScrubReport
    } catch (err) {
      if (lockHolder(disk) === null) throw new UserError(`the node of ${disk} stopped during the scrub; start it again and run "swarmfs scrub --disk ${disk}" again`)
      throw err
    }
  }
  progress.end()
  if (status.error !== null) throw new UserError(`the scrub of ${disk} stopped after ${status.checked} of ${status.contents} contents: ${status.error}; run "swarmfs scrub --disk ${disk}" again`)
  if (json) {
    process.stdout.write(JSON.stringify({ contents: status.contents, bytes: status.bytes, partial: status.partial, damaged: status.damagedPaths, skipped: status.skippedPaths }) + '\n')
    return
  }
  const partly = status.partial > 0 ? `, ${status.partial} of them partly: pieces kept from reads` : ''
  const what = `${status.contents} ${status.contents === 1 ? 'content' : 'contents'} (${formatBytes(status.bytes)}${partly})`
  if (status.damagedPaths.length === 0) {
    process.stdout.write(`swarmfs: scrubbed ${what}: every copy on this disk is intact\n`)
  } else {
    process.stdout.write(`swarmfs: scrubbed ${what}: ${status.damaged.length} damaged on this disk; their bad pieces are set aside and fetched again from the other disks that hold them (pieces kept from reads: when next read; with no other holder, those parts read as EIO). Files:\n`)
    for (const p of status.damagedPaths) process.stdout.write(`  ${p}\n`)
  }
  if (status.skippedPaths.length === 0) return
  process.stdout.write(`swarmfs: ${status.skipped.length} partly held ${status.skipped.length === 1 ? 'content was' : 'contents were'} in use by a read or a copy and not checked; run "swarmfs scrub --disk ${disk}" again later. Files:\n`)
  for (const p of status.skippedPaths) process.stdout.write(`  ${p}\n`)
}

/** Asks the node of a disk to retire and follows it until every file has its copies elsewhere and the node stopped. */
async function retire (disk: string): Promise<void> {
  const progress = progressLine()
  let status = await callLocalNode(disk, 'POST', '/retire') as ReplicationStatus
  const startBytes = Math.max(1, status.retireRemainingBytes ?? 0)
  for (;;) {
    const left = status.retireRemainingBytes ?? 0
    progress.show(`swarmfs: retiring: ${status.retireRemaining ?? '?'} files (${formatBytes(left)}) still need copies elsewhere ${progressBar(1 - left / startBytes)}`)
    if (lockHolder(disk) === null) break
    await new Promise(resolve => setTimeout(resolve, 1000))
    try {
      status = await callLocalNode(disk, 'GET', '/replication', undefined, 5000) as ReplicationStatus
    } catch (err) {
      // Once drained, the node marks the disk retired and stops itself: a retired disk or a
      // refused connection then is the end, not an error.
      if (lockHolder(disk) === null || readConfig(disk).retired === true) break
      throw err
    }
  }
  progress.end()
  const config = readConfig(disk)
  if (config.retired !== true) throw new UserError(`the node of ${disk} stopped before it was drained; start it again and run "swarmfs retire --disk ${disk}" again`)
  const stopBy = Date.now() + RETIRED_STOP_WAIT_MS
  while (lockHolder(disk) !== null && Date.now() < stopBy) await new Promise(resolve => setTimeout(resolve, 200))
  const node = lockHolder(disk) === null ? 'its node has stopped' : 'its node is stopping'
  process.stdout.write(`swarmfs: retired ${disk}: every file it held has ${status.copies} copies on other disks; ${node}\n`)
}

/** How long `retire` waits for the node of a drained disk to finish stopping. */
const RETIRED_STOP_WAIT_MS = 60_000

export async function main (argv: string[]): Promise<number> {
  const program = buildProgram()
  try {
    await program.parseAsync(argv)
    return 0
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2
    if (err instanceof UserError) {
      process.stderr.write(`swarmfs: ${err.message}\n`)
      return 1
    }
    const e = err as { code?: string, message?: string }
    const verbose = argv.includes('--verbose') || argv.includes('-v')
    process.stderr.write(`swarmfs: ${e.message ?? String(err)}${e.code !== undefined ? ` (${e.code})` : ''}${verbose ? '' : '; run again with --verbose for details'}\n`)
    if (verbose) console.error(err)
    return 1
  }
}

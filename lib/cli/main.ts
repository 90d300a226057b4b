// The swarmfs command line. Every failure a user can fix prints one line and exits non-zero.
import fs from 'node:fs'
import os from 'node:os'
import { join, resolve } from 'node:path'
import { Command, CommanderError, Option } from 'commander'
import { UserError } from '../errors/index.js'
import { createLogger, setLogLevel, type Logger } from '../log/index.js'
import { checkFreshDisk, createConfig, inviteFor, parseInvite, readConfig } from '../node/disk.js'
import { findPeer, joinVolume } from '../node/join.js'
import { parseHostPort, SwarmNode } from '../node/node.js'
import { statusOf, formatStatus } from './status.js'

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

/** The address --address or --interface choose; a UserError when the interface has no IPv4 address. */
function chosenAddress (opts: NetworkOptions): string | undefined {
  if (opts.address !== undefined) {
    if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(opts.address)) throw new UserError(`invalid --address "${opts.address}": give an IPv4 address of this machine`)
    return opts.address
  }
  if (opts.interface === undefined) return undefined
  const found = os.networkInterfaces()[opts.interface]?.find(a => a.family === 'IPv4')
  if (found === undefined) {
    throw new UserError(`interface "${opts.interface}" has no IPv4 address here; choose one of: ${Object.keys(os.networkInterfaces()).join(', ')}`)
  }
  return found.address
}

/** Runs a node in the foreground until SIGINT or SIGTERM, then stops it cleanly. */
async function runNode (disk: string, mountPoint: string | null | undefined, log: Logger, net: { peers?: string[], address?: string } = {}): Promise<void> {
  const config = readConfig(disk)
  for (const p of net.peers ?? []) parseHostPort(p)
  const node = await SwarmNode.start({
    disk,
    mountPoint,
    log,
    peers: [...new Set([...(config.peers ?? []), ...(net.peers ?? [])])],
    address: net.address ?? config.address
  })
  const where = mountPoint === null ? 'no mount' : `mounted at ${mountPoint ?? node.config.mountPoint ?? '(none)'}`
  process.stdout.write(`swarmfs: volume "${node.config.volumeName}" running (${where}); Ctrl-C stops it\n`)
  await new Promise<void>(done => {
    let signals = 0
    const onSignal = (sig: NodeJS.Signals): void => {
      if (++signals > 1) {
        process.stderr.write(`swarmfs: ${sig} again, exiting without a clean stop\n`)
        process.exit(130)
      }
      process.stderr.write('swarmfs: stopping (finishing writes, unmounting)...\n')
      node.stop().then(done, err => {
        process.stderr.write(`swarmfs: stop failed: ${(err as Error).message}\n`)
        process.exit(1)
      })
    }
    process.on('SIGINT', onSignal)
    process.on('SIGTERM', onSignal)
  })
}

export function buildProgram (): Command {
  const program = new Command()
  program
    .name('swarmfs')
    .description('A distributed filesystem: a FUSE mount whose metadata is a git repository and whose contents are torrents')
    .showSuggestionAfterError(true)

  networkOptions(program.command('init'))
    .description('create a new volume on a disk directory, print its invite, and run the node')
    .argument('<name>', 'volume name (letters, digits, . _ -)')
    .addOption(diskOption())
    .option('--mount <dir>', 'where to mount the volume (empty directory; created if missing)')
    .option('--no-start', 'only create the volume; start it later with "swarmfs start"')
    .option('-v, --verbose', 'log details to stderr')
    .action(async (name: string, opts: NetworkOptions & { disk: string, mount?: string, start: boolean, verbose?: boolean }) => {
      const log = setup(opts)
      const address = chosenAddress(opts)
      for (const p of opts.peer ?? []) parseHostPort(p)
      const disk = resolve(opts.disk)
      const config = createConfig(disk, name, opts.mount ?? null)
      try {
        await SwarmNode.initVolume(disk, log)
      } catch (err) {
        fs.rmSync(disk, { recursive: true, force: true })
        throw err
      }
      process.stdout.write(`swarmfs: created volume "${name}" on ${disk}\ninvite: ${inviteFor(config)}\n`)
      if (opts.start) await runNode(disk, undefined, log, { peers: opts.peer, address })
    })

  networkOptions(program.command('join'))
    .description('make a disk directory a node of an existing volume: find a peer, copy the metadata, and run the node')
    .argument('<invite>', 'the invite printed by "swarmfs init" (swarmfs://<volume>/<key>)')
    .addOption(diskOption())
    .option('--mount <dir>', 'where to mount the volume; without it the node stores and serves only')
    .option('--wait <seconds>', 'how long to look for a peer', '30')
    .option('--no-start', 'only join; start later with "swarmfs start"')
    .option('-v, --verbose', 'log details to stderr')
    .action(async (invite: string, opts: NetworkOptions & { disk: string, mount?: string, wait: string, start: boolean, verbose?: boolean }) => {
      const log = setup(opts)
      const disk = resolve(opts.disk)
      const parsed = parseInvite(invite)
      checkFreshDisk(disk, parsed.volumeKey)
      const waitS = Number(opts.wait)
      if (!Number.isFinite(waitS) || waitS <= 0) throw new UserError(`invalid --wait "${opts.wait}": give a number of seconds`)
      const peers = opts.peer ?? []
      for (const p of peers) parseHostPort(p)
      const address = chosenAddress(opts)
      const base = { invite: parsed, peers, address, waitMs: waitS * 1000, log }
      // Progress for a person at a terminal; a script gets only the outcome (or the one-line error).
      if (process.stderr.isTTY) process.stderr.write(`swarmfs: looking for a peer of volume "${parsed.volumeName}" (up to ${waitS} s)...\n`)
      const peer = await findPeer(base)
      await joinVolume({ ...base, disk, mountPoint: opts.mount !== undefined ? resolve(opts.mount) : null }, peer)
      process.stdout.write(`swarmfs: joined volume "${parsed.volumeName}" on ${disk} (metadata from ${peer.host}:${peer.port})\n`)
      if (opts.start) await runNode(disk, undefined, log)
    })

  networkOptions(program.command('start'))
    .description('run the node of a disk directory in the foreground, mounting its volume')
    .addOption(diskOption())
    .option('--mount <dir>', 'mount here instead of the mount point given at init')
    .option('--no-mount', 'run without a mount')
    .option('-v, --verbose', 'log details to stderr')
    .action(async (opts: NetworkOptions & { disk: string, mount?: string | false, verbose?: boolean }) => {
      const log = setup(opts)
      const mountPoint = opts.mount === false ? null : typeof opts.mount === 'string' ? resolve(opts.mount) : undefined
      await runNode(resolve(opts.disk), mountPoint, log, { peers: opts.peer, address: chosenAddress(opts) })
    })

  program.command('status')
    .description('show the volume, the node and its disk')
    .addOption(diskOption())
    .option('--json', 'print JSON')
    .action(async (opts: { disk: string, json?: boolean }) => {
      const disk = resolve(opts.disk)
      readConfig(disk)
      const status = await statusOf(disk)
      process.stdout.write(opts.json === true ? JSON.stringify(status, null, 2) + '\n' : formatStatus(status))
    })

  return program
}

export async function main (argv: string[]): Promise<number> {
  const program = buildProgram()
  program.exitOverride()
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
    process.stderr.write(`swarmfs: ${e.message ?? String(err)}${e.code !== undefined ? ` (${e.code})` : ''}; run again with --verbose for details\n`)
    if (process.argv.includes('--verbose') || process.argv.includes('-v')) console.error(err)
    return 1
  }
}

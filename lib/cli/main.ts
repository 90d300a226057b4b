// The swarmfs command line. Every failure a user can fix prints one line and exits non-zero.
import fs from 'node:fs'
import os from 'node:os'
import { join, resolve } from 'node:path'
import { Command, CommanderError, Option } from 'commander'
import { UserError } from '../errors/index.js'
import { createLogger, setLogLevel, type Logger } from '../log/index.js'
import { createConfig, inviteFor, readConfig } from '../node/disk.js'
import { SwarmNode } from '../node/node.js'
import { statusOf, formatStatus } from './status.js'

const defaultDisk = process.env.SWARMFS_DISK ?? join(os.homedir(), '.local', 'share', 'swarmfs', 'disk')

function diskOption (): Option {
  return new Option('--disk <dir>', 'the disk directory of this node (env SWARMFS_DISK)').default(defaultDisk)
}

function setup (opts: { verbose?: boolean }): Logger {
  setLogLevel(opts.verbose === true ? 'debug' : 'warn')
  return createLogger()
}

/** Runs a node in the foreground until SIGINT or SIGTERM, then stops it cleanly. */
async function runNode (disk: string, mountPoint: string | null | undefined, log: Logger): Promise<void> {
  const node = await SwarmNode.start({ disk, mountPoint, log })
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

  program.command('init')
    .description('create a new volume on a disk directory, print its invite, and run the node')
    .argument('<name>', 'volume name (letters, digits, . _ -)')
    .addOption(diskOption())
    .option('--mount <dir>', 'where to mount the volume (empty directory; created if missing)')
    .option('--no-start', 'only create the volume; start it later with "swarmfs start"')
    .option('-v, --verbose', 'log details to stderr')
    .action(async (name: string, opts: { disk: string, mount?: string, start: boolean, verbose?: boolean }) => {
      const log = setup(opts)
      const disk = resolve(opts.disk)
      const config = createConfig(disk, name, opts.mount ?? null)
      try {
        await SwarmNode.initVolume(disk, log)
      } catch (err) {
        fs.rmSync(disk, { recursive: true, force: true })
        throw err
      }
      process.stdout.write(`swarmfs: created volume "${name}" on ${disk}\ninvite: ${inviteFor(config)}\n`)
      if (opts.start) await runNode(disk, undefined, log)
    })

  program.command('start')
    .description('run the node of a disk directory in the foreground, mounting its volume')
    .addOption(diskOption())
    .option('--mount <dir>', 'mount here instead of the mount point given at init')
    .option('--no-mount', 'run without a mount')
    .option('-v, --verbose', 'log details to stderr')
    .action(async (opts: { disk: string, mount?: string | false, verbose?: boolean }) => {
      const log = setup(opts)
      const mountPoint = opts.mount === false ? null : typeof opts.mount === 'string' ? resolve(opts.mount) : undefined
      await runNode(resolve(opts.disk), mountPoint, log)
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

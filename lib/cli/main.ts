// The swarmfs command line: one file per command (commands/); here the program they are added to,
// and the one place where a failure becomes one line on stderr and an exit code.
import fs from 'node:fs'
import { Command, CommanderError } from 'commander'
import { UserError } from '../core/errors.js'
import { addInitCommand } from './commands/init.js'
import { addJoinCommand } from './commands/join.js'
import { addStartCommand } from './commands/start.js'
import { addInviteCommand } from './commands/invite.js'
import { addStatusCommand } from './commands/status.js'
import { addVolumeCommand } from './commands/volume.js'
import { addRetireCommand } from './commands/retire.js'
import { addScrubCommand } from './commands/scrub.js'

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

  addInitCommand(program)
  addJoinCommand(program)
  addStartCommand(program)
  addInviteCommand(program)
  addStatusCommand(program)
  addVolumeCommand(program)
  addRetireCommand(program)
  addScrubCommand(program)
  return program
}

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

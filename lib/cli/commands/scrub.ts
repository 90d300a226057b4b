// swarmfs scrub: every file this disk holds checked against its hashes; what is damaged is named.
import { resolve } from 'node:path'
import type { Command } from 'commander'
import { UserError } from '../../core/errors.js'
import { lockHolder } from '../../node/disk.js'
import { formatBytes } from '../../replicate/plan.js'
import type { ScrubStatus } from '../../replicate/scrub.js'
import { callLocalNode } from '../local-node.js'
import { diskOption, setup } from '../options.js'
import { progressBar, progressLine } from '../status.js'

export function addScrubCommand (program: Command): void {
  program.command('scrub')
    .description('check every file this disk holds against its hashes; a damaged copy is set aside and fetched again from other disks')
    .addOption(diskOption())
    .option('--json', 'print the result as JSON')
    .option('-v, --verbose', 'log details to stderr')
    .action(async (opts: { disk: string, json?: boolean, verbose?: boolean }) => {
      setup(opts)
      await scrub(resolve(opts.disk), opts.json === true)
    })
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

// swarmfs join: a disk directory becomes a node of an existing volume (a peer found, the metadata
// copied), then the node runs.
import { resolve } from 'node:path'
import type { Command } from 'commander'
import { checkFreshDisk, parseInvite } from '../../node/disk.js'
import { findPeer, joinVolume } from '../../node/join.js'
import { checkMountPoint } from '../../fuse/mount.js'
import { parseNumberFlag, parsePeerFlag } from '../numbers.js'
import { checkReserve, chosenAddress, diskOption, networkOptions, reserveOption, saveReserve, setup, WAIT, type NetworkOptions } from '../options.js'
import { runNode } from '../run-node.js'

export function addJoinCommand (program: Command): void {
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
}

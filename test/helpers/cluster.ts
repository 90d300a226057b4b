// A cluster of real swarmfs nodes for tests: each a real `swarmfs` process (init, join, start) in
// a network namespace "host" of a private test network, with a real FUSE mount (or none: a
// storage node). Teardown stops every node with SIGTERM (clean unmount), then removes the
// network, mounts and disks, also when the test failed.
import type { Test } from 'tap'
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import type { ChildProcess } from 'node:child_process'
import { createNetwork, outputOf, stopProcess, waitForLine, type NetHost, type Network } from './netns.js'
import { CLI, isMounted, run, unmountAndRemove, type RunResult } from './volume.js'

/** A node printing its "running" line (a join includes looking for a peer and copying the metadata). */
export const START_MS = 90_000
/** A node exiting after SIGTERM (it finishes writes, commits and unmounts first). */
export const STOP_MS = 60_000
/** Nodes agreeing after a change: bounds a hang only. */
export const SETTLE_MS = 60_000
/** How long heads must stay unchanged to count as settled: above the syncer's 5 s poll period. */
export const QUIET_MS = 7_000
export const POLL_MS = 300

// ---------------------------------------------------------------------------------------------
// A cluster of real nodes

export interface SNode {
  label: string
  host: NetHost
  disk: string
  mnt: string
  child: ChildProcess | null
  /** It runs with a mount at `mnt` (false: a storage node). */
  mounted: boolean
  /** Every process this node ran (init/join, then start after a stop), for failure output. */
  history: ChildProcess[]
}

export interface NodeJson { nodeId: string, volumeName: string, volumeKey: string, httpPort: number }

export class Cluster {
  readonly nodes: SNode[] = []
  private constructor (readonly t: Test, readonly net: Network, readonly base: string) {}

  /**
   * A network of `hosts` hosts and a temporary directory for disks and mounts. The teardown is
   * registered after the network's, so it runs first (tap runs teardowns last-in first-out): nodes
   * are stopped with SIGTERM (clean unmount) before the network cleanup would SIGKILL them.
   */
  static async create (t: Test, hosts: number): Promise<Cluster> {
    const net = await createNetwork(t, { hosts })
    const base = await fsp.realpath(await fsp.mkdtemp(join(os.tmpdir(), 'swarmfs-sync-')))
    const c = new Cluster(t, net, base)
    t.teardown(async () => await c.destroy())
    return c
  }

  private async destroy (): Promise<void> {
    await Promise.all(this.nodes.map(async n => {
      if (n.child === null || outputOf(n.child).exit !== null) return
      const r = await stopProcess(n.child, STOP_MS)
      if (r.killed) this.t.comment(`teardown: ${n.label} ignored SIGTERM for ${STOP_MS} ms and was killed`)
    }))
    for (const n of this.nodes) {
      if (isMounted(n.mnt)) {
        this.t.comment(`teardown: ${n.label}'s mount was still there; unmounting it lazily`)
        await run('fusermount', ['-uz', n.mnt], { timeoutMs: 30_000 })
      }
    }
    await this.net.cleanup()
    await unmountAndRemove(this.t, this.base, this.nodes.map(n => n.mnt))
  }

  private newNode (label: string, host: NetHost, disk?: string): SNode {
    const dir = join(this.base, label)
    fs.mkdirSync(join(dir, 'mnt'), { recursive: true })
    const node: SNode = { label, host, disk: disk ?? join(dir, 'disk'), mnt: join(dir, 'mnt'), child: null, mounted: true, history: [] }
    this.nodes.push(node)
    return node
  }

  private async run (node: SNode, args: string[]): Promise<ChildProcess> {
    const child = this.net.spawn(node.host, process.execPath, [CLI, ...args, ...(process.env.SYNC_DEBUG_DIR !== undefined ? ['--verbose'] : [])])
    node.child = child
    node.history.push(child)
    await waitForLine(child, /running/, START_MS)
    if (node.mounted && !isMounted(node.mnt)) throw new Error(`${node.label} said it runs but ${node.mnt} is not mounted:\n${outputOf(child).stderr}`)
    return child
  }

  /** `swarmfs init` on a new disk (`disk`: an empty directory the test made); resolves with the node and its invite once it is mounted. */
  async init (label: string, host: NetHost, volume = 'media', disk?: string): Promise<{ node: SNode, invite: string }> {
    const node = this.newNode(label, host, disk)
    const child = await this.run(node, ['init', volume, '--disk', node.disk, '--mount', node.mnt])
    const invite = /invite: (\S+)/.exec(outputOf(child).stdout)?.[1]
    if (invite === undefined) throw new Error(`init printed no invite:\n${outputOf(child).stdout}`)
    return { node, invite }
  }

  /** `swarmfs join` on a new disk; resolves once it is mounted. */
  async join (label: string, host: NetHost, invite: string, extra: string[] = [], disk?: string): Promise<SNode> {
    const node = this.newNode(label, host, disk)
    await this.run(node, ['join', invite, '--disk', node.disk, '--mount', node.mnt, ...extra])
    return node
  }

  /** `swarmfs join --disk` without a mount (a storage node); resolves once it runs. */
  async joinStorage (label: string, host: NetHost, invite: string, extra: string[] = []): Promise<SNode> {
    const node = this.newNode(label, host)
    node.mounted = false
    await this.run(node, ['join', invite, '--disk', node.disk, ...extra])
    return node
  }

  /** A swarmfs command (status, volume, retire...) for a node's disk, run inside its host. */
  async cli (node: SNode, args: string[], timeoutMs = 60_000): Promise<RunResult> {
    return await this.net.exec(node.host, process.execPath, [CLI, ...args, '--disk', node.disk], { timeoutMs })
  }

  /** A inits the volume on host 1, B and C join it from hosts 2 and 3. */
  async threeNodes (): Promise<{ a: SNode, b: SNode, cc: SNode, invite: string }> {
    const [h1, h2, h3] = this.net.hosts
    const { node: a, invite } = await this.init('A', h1)
    const b = await this.join('B', h2, invite)
    const cc = await this.join('C', h3, invite)
    return { a, b, cc, invite }
  }

  /** `swarmfs start` of a stopped node. */
  async start (node: SNode): Promise<void> {
    await this.run(node, ['start', '--disk', node.disk])
  }

  /** SIGTERM: the node must exit 0 by itself, with its mount gone. */
  async stop (t: Test, node: SNode): Promise<void> {
    if (node.child === null) throw new Error(`${node.label} is not running`)
    const r = await stopProcess(node.child, STOP_MS)
    t.equal(r.killed, false, `${node.label} exits after SIGTERM`)
    t.equal(r.code, 0, `${node.label} exits 0 after SIGTERM`, { signal: r.signal, stderr: outputOf(node.child).stderr.slice(-3000) })
    if (node.mounted) t.notOk(isMounted(node.mnt), `${node.label} unmounted`)
    node.child = null
  }

  config (node: SNode): NodeJson {
    return JSON.parse(fs.readFileSync(join(node.disk, 'node.json'), 'utf8')) as NodeJson
  }

  /** What `swarmfs status --json` prints, run inside the node's host. */
  async status (node: SNode): Promise<StatusJson> {
    const r = await this.net.exec(node.host, process.execPath, [CLI, 'status', '--disk', node.disk, '--json'], { timeoutMs: 30_000 })
    if (r.code !== 0) throw new Error(`status of ${node.label} failed (${r.code ?? r.signal}): ${r.stderr}`)
    return JSON.parse(r.stdout) as StatusJson
  }

  /**
   * Heads a node refused from an honest peer. None should ever be: every peer here is a real node.
   * (Once seen: a pack index read while a fetch was writing it poisoned isomorphic-git's pack
   * cache, so every later head was refused; syncs now run one at a time.)
   */
  refusals (): string[] {
    return this.nodes.flatMap(n => n.history.flatMap(ch => outputOf(ch).stderr.split('\n'))
      .filter(l => /refused head from peer/.test(l)).slice(0, 3).map(l => `${n.label}: ${l.slice(0, 400)}`))
  }

  /** The last lines the node logged (for failure output). */
  logs (): Record<string, string> {
    return Object.fromEntries(this.nodes.map(n => {
      const all = n.history.map(c => outputOf(c).stderr).join('--- restarted\n').split('\n')
      const warnings = all.filter(l => /"level":"(warn|error)"/.test(l))
      return [n.label, [...warnings.slice(0, 5), `... (${warnings.length} warnings in all; last lines:)`, ...all.slice(-8)].join('\n')]
    }))
  }
}

export interface StatusJson {
  nodeId: string
  head: string | null
  running: boolean
  live: {
    head: string | null
    inSync: boolean
    peers: Array<{ nodeId: string, host: string, httpPort: number, head: string | null, lastSeen: number | null, lastError: string | null }>
  } | null
}


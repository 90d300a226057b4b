// The CLI talking to the node that runs a disk (same machine): its API with the volume key from the
// disk's node.json, on the address the node listens on.
import { UserError } from '../errors/index.js'
import { lockHolder, readConfig, retiredMessage, type NodeConfig } from '../node/disk.js'
import { peerJson, PeerError } from '../sync/peer-client.js'

/** Where the node of a disk answers: its --address when it was given one, loopback otherwise. */
export function localHost (config: NodeConfig): string {
  return config.address ?? '127.0.0.1'
}

/** A request to the running node of `disk`; a UserError saying what to do when there is none. */
export async function callLocalNode (disk: string, method: 'GET' | 'POST', path: string, body?: unknown, timeoutMs = 10_000): Promise<unknown> {
  const config = readConfig(disk)
  if (config.retired === true) throw new UserError(retiredMessage(disk, config.volumeName))
  if (lockHolder(disk) === null || config.httpPort === 0) {
    throw new UserError(`the node of ${disk} is not running; start it first with "swarmfs start --disk ${disk}"`)
  }
  try {
    return await peerJson({ host: localHost(config), port: config.httpPort, key: config.volumeKey, timeoutMs }, method, path, body)
  } catch (err) {
    if (err instanceof PeerError && err.code === 'SWARMFS_PEER_BAD_RESPONSE' && typeof err.data.body === 'string' && err.data.body !== '') {
      throw new UserError(err.data.body)
    }
    throw new UserError(`the node of ${disk} did not answer (${(err as Error).message}); is it still starting?`)
  }
}

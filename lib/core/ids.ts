// The shapes of the ids that cross the network: a git object id and a node id. Anything a peer
// sends as one is checked against these before it names a file, a ref or a peer.

const OBJECT_ID = /^[0-9a-f]{40}$/
const NODE_ID = /^[0-9a-f]{16}$/

/** A git object id: 40 lowercase hex characters (SHA-1). */
export function isObjectId (value: unknown): value is string {
  return typeof value === 'string' && OBJECT_ID.test(value)
}

/** A node id (and a hard-linked file's linkId, drawn the same way): 16 lowercase hex characters. */
export function isNodeId (value: unknown): value is string {
  return typeof value === 'string' && NODE_ID.test(value)
}

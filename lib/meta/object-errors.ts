// What reading a git object can fail with, told apart by class and code: a caller fetches again
// for a missing object, refuses a bad one, and never inflates a too large one past its bound.
import { SwarmError } from '../core/errors.js'

/** An object the reader needs is not in the store: the fetch was incomplete. Fetch again, then retry. */
export class MissingObjectError extends SwarmError {
  constructor (readonly oid: string) {
    super('SWARMFS_MISSING_OBJECT', `git object ${oid} is missing`, { oid })
  }
}

/** An object exists but is not what its reference claims (wrong type, unparsable, corrupt). */
export class BadObjectError extends SwarmError {
  constructor (readonly oid: string, why: string, code: 'SWARMFS_BAD_OBJECT' | 'SWARMFS_OBJECT_TOO_LARGE' = 'SWARMFS_BAD_OBJECT') {
    super(code, `git object ${oid}: ${why}`, { oid })
  }
}

/** An object larger than its reader accepts; it was not inflated past that. A BadObjectError too. */
export class ObjectTooLargeError extends BadObjectError {
  constructor (oid: string, readonly maxBytes: number) {
    super(oid, `larger than ${maxBytes} bytes`, 'SWARMFS_OBJECT_TOO_LARGE')
  }
}

declare module 'bencode' {
  const bencode: {
    encode (data: unknown): Uint8Array
    decode (data: Uint8Array, start?: number, end?: number, encoding?: string): any
  }
  export default bencode
}

declare module 'fuse-native' {
  type Cb = (err: number, ...args: any[]) => void
  export interface Stat {
    mode: number; uid: number; gid: number; size: number; nlink?: number; ino?: number
    blksize?: number; blocks?: number; atime: Date | number; mtime: Date | number; ctime: Date | number
    /** Nanoseconds past each time's millisecond, 0 to 999999. */
    atimeNs?: number; mtimeNs?: number; ctimeNs?: number
  }
  export interface FuseOptions {
    force?: boolean; mkdir?: boolean; debug?: boolean; timeout?: number | false | Record<string, number>
    allowOther?: boolean; defaultPermissions?: boolean; maxRead?: number; fsname?: string; subtype?: string
    kernelCache?: boolean; autoCache?: boolean; entryTimeout?: number; attrTimeout?: number; acAttrTimeout?: number
  }
  export default class Fuse {
    constructor (mnt: string, ops: Record<string, (...args: any[]) => void>, opts?: FuseOptions)
    mount (cb: (err: Error | null) => void): void
    unmount (cb: (err: Error | null) => void): void
    static unmount (mnt: string, cb: (err: Error | null) => void): void
    /** The process whose request is being handled; only during a handler's synchronous part. */
    static caller (): { uid: number, gid: number, pid: number } | null
    /** A utimens time from its two 32-bit halves: signed milliseconds, or UTIME_NOW / UTIME_OMIT. */
    static getTimeArg (low: number, high: number): number
    static [errno: string]: any
  }
  export type { Cb }
}

/** bittorrent-protocol (through webtorrent 2.8.5): what test/unit/wire-reassembly.test.ts drives. */
declare module 'bittorrent-protocol' {
  import { EventEmitter } from 'node:events'
  class Wire extends EventEmitter {
    write (chunk: Uint8Array): boolean
    handshake (infoHash: string, peerId: string): void
    unchoke (): void
    have (index: number): void
    _message (id: number, numbers: number[], data: Uint8Array | null): void
  }
  export default Wire
}

/** posix_fadvise(2) on libuv's thread pool; rejects with an Error whose errno is the call's. A length of 0 means to the end of the file. */
export function fadvise (fd: number, offset: number, length: number, advice: number): Promise<void>
/**
 * fallocate(2) with FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE on libuv's thread pool: the range
 * then reads as zeros and takes no space; the file keeps its length. Rejects with an Error whose
 * code names the errno (EOPNOTSUPP on a filesystem without holes).
 */
export function punchHole (fd: number, offset: number, length: number): Promise<void>
/** fallocate(2) with any mode (FALLOC_FL_*) on libuv's thread pool; rejects as punchHole does. */
export function fallocate (fd: number, mode: number, offset: number, length: number): Promise<void>
/**
 * pread(2) that never waits for the disk (preadv2 with RWF_NOWAIT), on the calling thread: the
 * bytes read into `buffer` at `offset` from the page cache (fewer than asked when only some are
 * cached), 0 at the end of the file, or -1 when nothing could be read without waiting (then read
 * the usual way; also always -1 on a filesystem that cannot). A miss starts the kernel's readahead,
 * and bytes that arrive before it looks again are read: a miss is not always -1. Throws with the
 * errno's code otherwise.
 */
export function readCached (fd: number, buffer: Uint8Array, offset: number, length: number, position: number): number
export const FALLOC_FL_KEEP_SIZE: number
export const FALLOC_FL_PUNCH_HOLE: number
export const FALLOC_FL_ZERO_RANGE: number
export const POSIX_FADV_NORMAL: number
export const POSIX_FADV_SEQUENTIAL: number
export const POSIX_FADV_RANDOM: number
export const POSIX_FADV_WILLNEED: number
export const POSIX_FADV_DONTNEED: number
export const POSIX_FADV_NOREUSE: number

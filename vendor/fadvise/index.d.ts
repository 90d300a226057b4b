/** posix_fadvise(2) on libuv's thread pool; rejects with an Error whose errno is the call's. A length of 0 means to the end of the file. */
export function fadvise (fd: number, offset: number, length: number, advice: number): Promise<void>
export const POSIX_FADV_NORMAL: number
export const POSIX_FADV_SEQUENTIAL: number
export const POSIX_FADV_RANDOM: number
export const POSIX_FADV_WILLNEED: number
export const POSIX_FADV_DONTNEED: number
export const POSIX_FADV_NOREUSE: number

// The sockets of BitTorrent wires, tuned for a LAN.
import type net from 'node:net'
import { servingBuffers } from './serving-buffers.js'

/** Bytes a BitTorrent socket buffers before telling the wire to wait (one turn's blocks). */
const SOCKET_HIGH_WATER = 4 << 20
/**
 * The most one write hands to a TLS socket's handle. Node's TLSWrap encrypts a write into one
 * output buffer as large as the write and keeps that buffer (and the one before it) for the life
 * of the socket: with a corked turn of up to 4 MiB, each open wire of a holder kept megabytes
 * (measured: 64 idle TLS sockets that had written 4 MiB turns held 274 MiB, 1 MiB turns 118 MiB;
 * plain sockets 30 MiB). Slices of 128 KiB (one block) cost no throughput (one TLS connection on
 * loopback: 1,038-1,060 MB/s whole, 1,116 sliced).
 */
const MAX_HANDLE_WRITE = 128 << 10

const tunedSockets = new WeakSet<net.Socket>()

/**
 * TCP_NODELAY (small messages must not wait for Nagle and delayed ACKs), and the writes of one
 * event-loop turn coalesced into one writev: webtorrent writes every message (a 128 KiB block, a
 * 17-byte request) separately, and on a LAN each write syscall carries the cost of the whole
 * network path (on a veth, the receiver's TCP processing runs inside the sender's write).
 */
export function tuneSocket (socket: net.Socket): void {
  if (tunedSockets.has(socket)) return
  tunedSockets.add(socket)
  socket.setNoDelay(true)
  // A corked socket buffers a turn's writes: with the default 16 KiB high-water mark the first
  // block would already say "full" and the wire would hand over one block per turn.
  const state = (socket as unknown as { _writableState?: { highWaterMark: number } })._writableState
  if (state !== undefined && state.highWaterMark < SOCKET_HIGH_WATER) state.highWaterMark = SOCKET_HIGH_WATER
  const write = socket.write
  let corked = false
  socket.write = function (this: net.Socket, ...args: Parameters<net.Socket['write']>): boolean {
    if (!corked && !this.destroyed) {
      corked = true
      this.cork()
      setImmediate(() => {
        corked = false
        if (!this.destroyed) this.uncork()
      })
    }
    const chunk = args[0]
    if (servingBuffers.isLent(chunk)) {
      // Node calls a write's callback once the bytes are handed to the kernel (or with an error,
      // and then the block is simply not reused).
      const last = args[args.length - 1]
      const callback = typeof last === 'function' ? last as (err?: Error | null) => void : undefined
      const written = (err?: Error | null): void => {
        if (err == null) servingBuffers.written(chunk)
        callback?.(err)
      }
      if (callback !== undefined) args[args.length - 1] = written as never
      else (args as unknown[]).push(written)
    }
    return write.apply(this, args)
  } as net.Socket['write']
  boundHandleWrites(socket as unknown as StreamWrites)
}

type WriteDone = (err?: Error | null) => void
interface Chunk { chunk: Buffer | string, encoding: BufferEncoding | 'buffer' }
/** Node's writev reads `allBuffers` off the array it is given. */
type Chunks = Chunk[] & { allBuffers?: boolean }
/** net.Socket's own hooks into its handle (Node's stream internals). */
interface StreamWrites {
  _write: (chunk: Buffer, encoding: BufferEncoding, done: WriteDone) => void
  _writev: (chunks: Chunks, done: WriteDone) => void
}

/** Hands the handle at most MAX_HANDLE_WRITE bytes per write, one slice after the other. */
function boundHandleWrites (socket: StreamWrites): void {
  const writev = socket._writev.bind(socket)
  const writeOne = socket._write.bind(socket)
  const feed = (buffers: Buffer[], done: WriteDone): void => {
    let index = 0
    let offset = 0
    const next = (err?: Error | null): void => {
      if (err != null) return done(err)
      if (index === buffers.length) return done()
      const slice: Chunks = []
      slice.allBuffers = true
      let bytes = 0
      while (index < buffers.length && bytes < MAX_HANDLE_WRITE) {
        const buffer = buffers[index]
        const take = Math.min(buffer.length - offset, MAX_HANDLE_WRITE - bytes)
        slice.push({ chunk: buffer.subarray(offset, offset + take), encoding: 'buffer' })
        bytes += take
        offset += take
        if (offset === buffer.length) {
          index++
          offset = 0
        }
      }
      writev(slice, next)
    }
    next()
  }
  socket._writev = (chunks, done) => {
    if (chunks.every(c => Buffer.isBuffer(c.chunk))) feed(chunks.map(c => c.chunk as Buffer), done)
    else writev(chunks, done)
  }
  socket._write = (chunk, encoding, done) => {
    if (!Buffer.isBuffer(chunk) || chunk.length <= MAX_HANDLE_WRITE) writeOne(chunk, encoding, done)
    else feed([chunk], done)
  }
}

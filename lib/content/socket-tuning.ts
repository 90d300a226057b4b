// The sockets of BitTorrent wires, tuned for a LAN.
import type net from 'node:net'
import { servingBuffers } from './serving-buffers.js'

/** Bytes a BitTorrent socket buffers before telling the wire to wait (one turn's blocks). */
const SOCKET_HIGH_WATER = 4 << 20

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
}

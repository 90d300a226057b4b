// A BitTorrent message that arrives in many chunks is put together once. bittorrent-protocol's
// Wire#_write concatenates everything it holds each time a chunk arrives while a message is
// incomplete: a 128 KiB block in 16 KiB chunks (what a TLS socket hands over: one record each) is
// copied 4.5 times over, 1.5 times in the 64 KiB reads of a plain socket. Measured on a 100 MiB
// remote read with TLS wires: uint8-util's concat took 164 ms of the reader's main thread, 61 ms
// with plain wires. Here a message is sliced from the first chunk when it fits, or joined from
// exactly the chunks it spans, once. (Message stream encryption, never used by swarmfs, keeps the
// original path.)
import type { Wire } from 'webtorrent'
import { wireInternals, type WireInternals } from './webtorrent-internals.js'

export function reassembleMessagesOnce (wire: Wire): void {
  const w = wireInternals(wire)
  if (w === null) return
  const original = w._write
  w._write = function (this: WireInternals, data: Uint8Array, cb: (err: Error | null) => void): void {
    if (this._encryptionMethod === 2 || this._cryptoSyncPattern !== null) {
      original.call(this, data, cb)
      return
    }
    this._buffer.push(data)
    this._bufferSize += data.length
    while (this._bufferSize >= this._parserSize && this._cryptoSyncPattern === null) {
      const size = this._parserSize
      if (size === 0) {
        this._parser(new Uint8Array())
        continue
      }
      const first = this._buffer[0]
      let message: Uint8Array
      if (first.length >= size) {
        message = first.subarray(0, size)
        if (first.length === size) this._buffer.shift()
        else this._buffer[0] = first.subarray(size)
      } else {
        let spans = 0
        let joinedSize = 0
        while (joinedSize < size) joinedSize += this._buffer[spans++].length
        const joined = Buffer.concat(this._buffer.slice(0, spans), joinedSize)
        message = joined.subarray(0, size)
        if (joinedSize > size) this._buffer.splice(0, spans, joined.subarray(size))
        else this._buffer.splice(0, spans)
      }
      this._bufferSize -= size
      this._parser(message)
    }
    cb(null)
  }
}

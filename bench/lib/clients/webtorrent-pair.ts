// A second baseline of the content benchmark: the dependency alone. Two plain webtorrent clients
// (the version and options swarmfs ships: no DHT, trackers, LSD, uTP, PEX, UPnP or NAT-PMP; the
// vendored 128 KiB blocks), one seeding a file in one namespace host, one downloading it into
// memory-free storage in another: no FUSE, no swarmfs service around them.
// node webtorrent-pair.js seed <file> <address> <torrent-out>   writes the .torrent, prints {"port":N}; runs until SIGTERM
// node webtorrent-pair.js fetch <torrent> <host> <port> <dir>    prints {"ms":N} (add → done), then exits
import fs from 'node:fs'
import WebTorrent from 'webtorrent'

const OPTIONS = { dht: false, tracker: false, lsd: false, utPex: false, natUpnp: false, natPmp: false, webSeeds: false, utp: false }
const [mode, ...args] = process.argv.slice(2)

if (mode === 'seed') {
  const [file, address, torrentOut] = args
  const client = new WebTorrent({ ...OPTIONS, torrentPort: 0 } as never)
  client.on('error', (err: Error) => { process.stderr.write(`${err.message}\n`); process.exit(1) })
  client.seed(file, { announce: [], private: true }, torrent => {
    fs.writeFileSync(torrentOut, torrent.torrentFile)
    process.stdout.write(JSON.stringify({ port: (client.address() as { port: number }).port, address }) + '\n')
  })
  process.on('SIGTERM', () => client.destroy(() => process.exit(0)))
} else if (mode === 'fetch') {
  const [torrentPath, host, port, dir] = args
  const client = new WebTorrent({ ...OPTIONS, torrentPort: 0 } as never)
  client.on('error', (err: Error) => { process.stderr.write(`${err.message}\n`); process.exit(1) })
  const t0 = performance.now()
  const torrent = client.add(fs.readFileSync(torrentPath), { path: dir, storeCacheSlots: 0 } as never)
  torrent.on('infoHash', () => torrent.addPeer(`${host}:${port}`))
  torrent.on('done', () => {
    const ms = performance.now() - t0
    client.destroy(() => {
      process.stdout.write(JSON.stringify({ ms }) + '\n')
      process.exit(0)
    })
  })
} else {
  process.stderr.write('usage: webtorrent-pair.js seed <file> <address> <torrent-out> | fetch <torrent> <host> <port> <dir>\n')
  process.exit(2)
}

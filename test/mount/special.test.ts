// FIFOs, sockets and device nodes on the mount, as on a local disk: made by the usual tools
// (mkfifo, mknod, a program binding a socket), shown by stat and ls with their type and device
// number, working as the kernel makes them work (a FIFO carries bytes between two processes, a
// socket accepts a connection), kept across a restart, removed by rm.
import t from 'tap'
import { sameAsNative, sh, startVolume, tmpDir } from '../helpers/volume.js'

const MAKE = String.raw`
mkdir special && cd special
mkfifo -m 640 fifo
mknod chr c 1 7
mknod blk b 8 3
python3 - <<'EOF'
import os, socket, threading
s = socket.socket(socket.AF_UNIX)
s.bind('sock')
s.listen(1)
def serve():
    c, _ = s.accept()
    c.sendall(c.recv(100).upper())
    c.close()
threading.Thread(target=serve).start()
c = socket.socket(socket.AF_UNIX)
c.connect('sock')
c.sendall(b'through the socket')
print(c.recv(100).decode())
EOF
(cat fifo > from-fifo &) ; echo 'through the fifo' > fifo; wait
sleep 0.2; cat from-fifo
`

const SHOW = String.raw`
cd special
stat -c '%n %F %a %t:%T %s' fifo chr blk sock
ls -l fifo chr blk sock | cut -c1-10
`

t.test('FIFOs, sockets and devices', async t => {
  const vol = await startVolume(t)
  const native = await tmpDir(t)

  const made = (await sameAsNative(t, native, vol.mnt, MAKE, 'mkfifo, mknod, a bound socket, and bytes through them')).stdout
  t.match(made, /THROUGH THE SOCKET/, 'the socket on the mount accepts a connection')
  t.match(made, /through the fifo/, 'the FIFO on the mount carries bytes')

  const shown = (await sameAsNative(t, native, vol.mnt, SHOW, 'stat and ls')).stdout
  t.match(shown, /^chr character special file 644 1:7 0$/m, 'a character device and its number')
  t.match(shown, /^blk block special file 644 8:3 0$/m, 'a block device and its number')
  t.match(shown, /^fifo fifo 640 0:0 0$/m, 'a FIFO with its mode')
  t.match(shown, /^sock socket /m, 'a socket')

  await vol.restart()
  const again = await sh(t, SHOW, { cwd: vol.mnt })
  t.equal(again.stdout, shown, 'the same after a restart')

  const removed = (await sameAsNative(t, native, vol.mnt, 'cd special && rm fifo chr blk sock && ls -A', 'rm')).stdout
  t.equal(removed, 'from-fifo\n', 'only the regular file is left')
})

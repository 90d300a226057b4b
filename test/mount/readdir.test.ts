// What readdir(3) tells of each entry, as on a local disk: its type (d_type), so find, rm -r and
// git know a directory from a file without a stat of each name, and its inode number (d_ino), the
// one stat shows. Read with libc's readdir itself (through ctypes): Python's and the shell tools'
// own listings fall back to a stat when d_type is unknown, which would hide it.
import t from 'tap'
import { sameAsNative, startVolume, tmpDir } from '../helpers/volume.js'

const LIST = String.raw`
mkdir -p r/sub && cd r && printf x > file && ln -s file link && mkfifo fifo && ln file hard
python3 - <<'EOF'
import ctypes, os
class Dirent(ctypes.Structure):
    _fields_ = [('d_ino', ctypes.c_uint64), ('d_off', ctypes.c_int64), ('d_reclen', ctypes.c_ushort), ('d_type', ctypes.c_ubyte), ('d_name', ctypes.c_char * 256)]
libc = ctypes.CDLL(None, use_errno=True)
libc.opendir.restype = ctypes.c_void_p
libc.opendir.argtypes = [ctypes.c_char_p]
libc.readdir.restype = ctypes.POINTER(Dirent)
libc.readdir.argtypes = [ctypes.c_void_p]
libc.closedir.argtypes = [ctypes.c_void_p]
d = libc.opendir(b'.')
rows = []
while True:
    e = libc.readdir(d)
    if not e:
        break
    name = e.contents.d_name.decode()
    if name not in ('.', '..'):
        rows.append('%s type %d, d_ino is st_ino: %s' % (name, e.contents.d_type, e.contents.d_ino == os.lstat(name).st_ino))
libc.closedir(d)
print('\n'.join(sorted(rows)))
EOF
`

t.test('readdir gives each entry its type and inode number', async t => {
  const vol = await startVolume(t)
  const native = await tmpDir(t)
  const listed = (await sameAsNative(t, native, vol.mnt, LIST, 'readdir of a file, a directory, a symlink, a FIFO and a hard link')).stdout
  t.equal(listed, [
    'fifo type 1, d_ino is st_ino: True',
    'file type 8, d_ino is st_ino: True',
    'hard type 8, d_ino is st_ino: True',
    'link type 10, d_ino is st_ino: True',
    'sub type 4, d_ino is st_ino: True',
    ''
  ].join('\n'), 'DT_FIFO, DT_REG, DT_LNK and DT_DIR, and the inode numbers stat shows')
})

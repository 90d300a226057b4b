#!/bin/sh
# Installs what swarmfs needs on a Debian machine (run as root): the FUSE packages, a compiler for
# the FUSE binding, the tools the tests drive the mount with, then the npm dependencies: exactly the
# lockfile's with --ci (or CI=true in the environment, as CI services set it), else `npm install`.
# Usage: sh scripts/setup.sh [--ci]
set -eu
cd "$(dirname "$0")/.."

need=""
command -v fusermount >/dev/null 2>&1 || need="$need fuse"
ldconfig -p 2>/dev/null | grep -q 'libfuse.so.2 ' || need="$need libfuse2"
command -v ip >/dev/null 2>&1 || need="$need iproute2"
command -v unshare >/dev/null 2>&1 || need="$need util-linux"
# Every other program a test or benchmark runs (grep test/ and bench/ for spawn, execFile, run and
# sh scripts): nsenter, setpriv, fallocate and fincore come with util-linux; tc with iproute2.
for tool in nsenter setpriv fallocate fincore; do
  command -v $tool >/dev/null 2>&1 || { need="$need util-linux"; break; }
done
command -v mount >/dev/null 2>&1 || need="$need mount"
command -v bash >/dev/null 2>&1 || need="$need bash"
for tool in dd stat sha256sum truncate timeout od; do
  command -v $tool >/dev/null 2>&1 || { need="$need coreutils"; break; }
done
command -v find >/dev/null 2>&1 || need="$need findutils"
command -v cmp >/dev/null 2>&1 || need="$need diffutils"
command -v awk >/dev/null 2>&1 || need="$need mawk"
command -v tar >/dev/null 2>&1 || need="$need tar"
# test/mount/attrs.test.ts copies with rsync -a (times to the nanosecond).
command -v rsync >/dev/null 2>&1 || need="$need rsync"
command -v git >/dev/null 2>&1 || need="$need git"
command -v ffprobe >/dev/null 2>&1 || need="$need ffmpeg"
# test/cluster/media.test.ts plays videos through the mount headless with mpv and VLC (cvlc, its
# rc interface, dummy audio/video outputs: all in vlc-plugin-base).
command -v mpv >/dev/null 2>&1 || need="$need mpv"
command -v cvlc >/dev/null 2>&1 || need="$need vlc-bin vlc-plugin-base"
# test/cluster/stranger.test.ts listens on the test network's switch.
command -v tcpdump >/dev/null 2>&1 || need="$need tcpdump"
# fuse-native is built from source at install (vendor/fuse-native carries fixes): node-gyp needs these.
command -v make >/dev/null 2>&1 || need="$need make"
command -v g++ >/dev/null 2>&1 || need="$need g++"
command -v python3 >/dev/null 2>&1 || need="$need python3"
# test/power/power-cut.test.ts puts a node's disk on an ext4 image on a loop device (losetup and
# mount are util-linux and mount) and shuts it down as a power cut does (python3 fcntl.ioctl).
command -v mkfs.ext4 >/dev/null 2>&1 || need="$need e2fsprogs"
command -v losetup >/dev/null 2>&1 || need="$need mount"
if [ -n "$need" ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "swarmfs setup: missing Debian packages:$need; run: sudo apt-get install -y$need" >&2
    exit 1
  fi
  echo "swarmfs setup: installing$need" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null
fi
[ -e /dev/fuse ] || { echo "swarmfs setup: /dev/fuse is missing; load the fuse module (modprobe fuse)" >&2; exit 1; }

ci=${CI:-false}
[ "${1:-}" = --ci ] && ci=true
if [ "$ci" = true ]; then
  # The exact tree of package-lock.json, or a failure when package.json and the lock disagree.
  npm ci --no-audit --no-fund
else
  npm install --no-audit --no-fund
fi

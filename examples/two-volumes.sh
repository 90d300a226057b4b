#!/bin/sh
# Two volumes on two disk directories of one machine, each mounted, then stopped cleanly.
# Run as root inside a network namespace of its own: unshare --net sh examples/two-volumes.sh
set -eu
ip link set lo up 2>/dev/null || true
dir=$(mktemp -d)
swarmfs=$(dirname "$0")/../bin/swarmfs.js
$swarmfs init photos --disk "$dir/disk1" --mount "$dir/photos" & p1=$!
$swarmfs init music --disk "$dir/disk2" --mount "$dir/music" & p2=$!
trap 'kill -TERM $p1 $p2 2>/dev/null; wait; rm -rf "$dir"' EXIT
while ! grep -q " $dir/music " /proc/self/mounts || ! grep -q " $dir/photos " /proc/self/mounts; do sleep 0.2; done
echo hello > "$dir/photos/hello.txt"
cp "$dir/photos/hello.txt" "$dir/music/"
ls -l "$dir/photos" "$dir/music"
$swarmfs status --disk "$dir/disk1"

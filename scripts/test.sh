#!/bin/sh
# Builds, then runs the whole suite inside a network namespace of its own (only a loopback), so no
# packet of a test can reach any outside network. Given files, runs just those.
set -eu
cd "$(dirname "$0")/.."
npx tsc -p tsconfig.json
# tap's loader runs the tests without checking their types; this does (nothing is emitted).
npx tsc -p tsconfig.test.json
# Every directory of every test keeps its last tree, and each tree a commit writes from the last
# one is checked against the whole (lib/meta/tree-cache.ts): in use only directories of 10,000
# entries or more do, which few tests make. Nodes the tests start inherit both.
export SWARMFS_LARGE_TREE_ENTRIES=1 SWARMFS_CHECK_TREES=1
if [ "$#" -gt 0 ]; then
  exec unshare --net sh -c 'ip link set lo up && npx tap "$@"' tap "$@"
fi
# Three test files at a time: most of their time is spent waiting on mounts, peers and timers, not
# on the two cores. Then, alone, the tests in test/alone: they measure a process's memory, which
# the load of other tests would make their figure.
exec unshare --net sh -c 'ip link set lo up; status=0; npx tap --jobs=3 --exclude="test/alone/**" || status=1; npx tap --jobs=1 test/alone || status=1; exit $status'

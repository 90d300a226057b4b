#!/bin/sh
# Builds, then runs the whole suite inside a network namespace of its own (only a loopback), so no
# packet of a test can reach any outside network.
set -eu
cd "$(dirname "$0")/.."
npx tsc -p tsconfig.json
# tap's loader runs the tests without checking their types; this does (nothing is emitted).
npx tsc -p tsconfig.test.json
exec unshare --net sh -c 'ip link set lo up && npx tap "$@"' tap "$@"

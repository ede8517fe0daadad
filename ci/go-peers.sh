#!/usr/bin/env bash
# ci/go-peers.sh: the scale rows with Go beside them, in one run. Installs Debian's
# `golang-go` with apt-get if `go` is missing (as root), then runs
# `microthread --row spawn_1m` (every scale row: 1,000,000 tasklets blocked on channels,
# the hot-potato rings of 10, 10,000 and 1,000,000, each with report/go/scale.go's
# goroutines and the ratio). Extra arguments go to the report (`--iterations 100000` for a
# smaller run, `--json`). Takes several minutes and about 5 GB of memory.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v go >/dev/null; then
    echo "go-peers: installing golang-go" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y golang-go >/dev/null ||
        { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y golang-go >/dev/null; }
fi
grep -m1 'model name' /proc/cpuinfo || true
cargo run --release --bin microthread -- --row spawn_1m "$@"

#!/usr/bin/env bash
# ci/go-peers.sh: the report's rows with Go beside them, in one run. Installs Debian's
# `golang-go` with apt-get if `go` is missing (as root), then runs
# `microthread --row spawn_1m` (every scale row: 1,000,000 tasklets blocked on channels,
# the hot-potato rings of 10, 10,000 and 1,000,000, each with report/go/scale.go's
# goroutines and the ratio) and the one-thread rows with a Go peer (tasklet spawn, the two
# channel ping-pongs: report/go/loops.go), with their peers (`--peers`). Extra arguments go
# to the report (`--iterations 100000` for a smaller run, `--json`). Fails unless every Go
# peer and the scale rows' Go gave numbers. Takes several minutes and about 5 GB of memory
# (`--iterations 10000`: under a minute).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v go >/dev/null; then
    echo "go-peers: installing golang-go" >&2
    source ci/lib/apt.bash
    ci_apt_get install -y golang-go >/dev/null ||
        { ci_apt_get update >/dev/null && ci_apt_get install -y golang-go >/dev/null; }
fi
grep -m1 'model name' /proc/cpuinfo || true
out=$(cargo run --release --bin microthread -- --row spawn_1m --row tasklet_spawn_ns \
    --row channel_round_trip_ns --row channel_round_trip_asymmetric_ns --peers "$@")
printf '%s\n' "$out"

fail() {
    echo "go-peers: $*" >&2
    exit 1
}
if [[ $out == "{"* ]]; then
    for key in tasklet_spawn_ns channel_round_trip_ns channel_round_trip_asymmetric_ns; do
        grep -Eq "\"${key}_ratio2\": [0-9]" <<<"$out" || fail "no ratio to Go for $key"
    done
    grep -Eq '"go_spawn_1m_ns_per_goroutine": [0-9]' <<<"$out" || fail "no Go scale numbers"
else
    # A Go peer's line has its goal cell with met / not met only when it has a ratio.
    for peer in "Go go f() + WaitGroup.Wait" "Go unbuffered chan ping-pong" \
        "Go unbuffered chan, asymmetric"; do
        grep -F "$peer" <<<"$out" | grep -Eq '<= 0\.1 (not )?met' || fail "no ratio to $peer"
    done
    grep -E '^Go: 1M goroutines' <<<"$out" | grep -Eq '[0-9]' || fail "no Go scale numbers"
fi
grep -q 'Go: go1\.' <<<"$out" || fail "no Go version line"

#!/usr/bin/env bash
# ci/instruction-counts.sh: a regression guard that noise cannot fool. Counts the instructions
# per operation of the report's hot rows under callgrind and fails if one exceeds its ceiling
# in ci/instruction-ceilings.txt.
#
# Recipe (the README's): run `microthread --row ROW --runs 1 --iterations N` under callgrind for
# N and 2N iterations; (Ir(2N) - Ir(N)) / N is the cost of one operation, loop included, with
# the start-up and calibration cancelled out. callgrind counts retired instructions, so the
# result is the same on a loaded or an idle machine, Intel or AMD.
#
# Only on x86_64 (the ceilings are x86_64 counts; valgrind does not run under qemu-user here).
# Installs valgrind with apt-get if it is missing. Takes well under a minute after the
# release build exists.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ "$(uname -m)" != x86_64 ]]; then
    echo "instruction-counts: the ceilings are for x86_64; skipped on $(uname -m)"
    exit 0
fi
source ci/lib/ensure-valgrind.bash
ensure_valgrind instruction-counts

cargo build --release --bin microthread
bin="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/release/microthread"
N="${INSTRUCTION_COUNT_ITERATIONS:-100000}"

# Instructions retired by one run of ROW with ITERATIONS iterations.
collected() {
    local out
    out="$(valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        "$bin" --row "$1" --runs 1 --iterations "$2" 2>&1)"
    grep -oP 'Collected : \K[0-9]+' <<<"$out" || {
        echo "instruction-counts: callgrind gave no count for $1:" >&2
        echo "$out" >&2
        exit 1
    }
}

failed=0
printf '%-22s %8s %8s  %s\n' row count ceiling verdict
while read -r row ceiling; do
    [[ -z "$row" || "$row" == \#* ]] && continue
    one="$(collected "$row" "$N")"
    two="$(collected "$row" $((2 * N)))"
    count=$(((two - one) / N))
    verdict=ok
    if ((count > ceiling)); then
        verdict="OVER the ceiling"
        failed=1
    fi
    printf '%-22s %8d %8d  %s\n' "$row" "$count" "$ceiling" "$verdict"
done <"${INSTRUCTION_CEILINGS:-ci/instruction-ceilings.txt}"

if ((failed)); then
    echo "instruction-counts: a hot path got longer than its ceiling (ci/instruction-ceilings.txt)" >&2
    exit 1
fi
echo "instruction-counts: every row within its ceiling"

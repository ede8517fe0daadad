#!/usr/bin/env bash
# ci/examples.sh: runs every program in examples/ in release mode (`cargo run --release
# --example NAME`) and fails if any of them fails. Each example asserts its own outcome, so
# running it is a test. The loop runner that `valgrind --tool=callgrind` measures,
# callgrind_peers, is not one (it needs arguments): it lives in report/examples/, which this
# loop does not visit, and stays in the list below in case it comes back.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

not_examples=(callgrind_peers)

export CARGO_TERM_COLOR=never
cargo build --release --examples

failed=()
ran=0
for file in examples/*.rs; do
    name="$(basename "$file" .rs)"
    if [[ " ${not_examples[*]} " == *" $name "* ]]; then
        continue
    fi
    echo "== example $name"
    if cargo run --quiet --release --example "$name"; then
        ran=$((ran + 1))
    else
        echo "!! example $name failed (exit status $?)" >&2
        failed+=("$name")
    fi
done

if ((ran + ${#failed[@]} == 0)); then
    echo "ci/examples.sh: no example found in examples/" >&2
    exit 1
fi
if ((${#failed[@]} > 0)); then
    echo "ci/examples.sh: ${#failed[@]} example(s) failed: ${failed[*]}" >&2
    exit 1
fi
echo "ci/examples.sh: all $ran examples passed"

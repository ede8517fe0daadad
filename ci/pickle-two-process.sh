#!/usr/bin/env bash
# ci/pickle-two-process.sh: issue 10's two-process test. examples/pickle_resume.rs runs a
# pipeline of resumable tasklets part of the way and pickles it to a file (`save`); a second
# process restores it and finishes (`resume`). What the two print together must be exactly
# what the uninterrupted run prints (`full`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export CARGO_TERM_COLOR=never
cargo build --quiet --release --example pickle_resume
bin="${CARGO_TARGET_DIR:-target}/release/examples/pickle_resume"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT

"$bin" full >"$dir/full"
"$bin" save "$dir/world.pickle" >"$dir/split"
"$bin" resume "$dir/world.pickle" >>"$dir/split"

if [[ ! -s "$dir/full" ]] || ! grep -q '^done: total ' "$dir/full"; then
    echo "ci/pickle-two-process.sh: the uninterrupted run printed no result" >&2
    exit 1
fi
if ! diff -u "$dir/full" "$dir/split"; then
    echo "ci/pickle-two-process.sh: save + resume differs from the uninterrupted run" >&2
    exit 1
fi
saved=$(grep -c '' < <("$bin" save "$dir/again.pickle"))
echo "ci/pickle-two-process.sh: ok ($saved of $(grep -c '' "$dir/full") lines before the pickle, the rest after the restore in a second process)"

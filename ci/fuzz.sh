#!/usr/bin/env bash
# ci/fuzz.sh: fuzzes the pickle loader (fuzz/fuzz_targets/pickle_load.rs) for a bounded time
# and fails if libFuzzer finds an input that panics, aborts, hangs (10 s per input) or takes
# more than 4 GiB. The corpus is seeded with valid pickles (fuzz/src/bin/make_seeds.rs), whole
# and as bare payloads that the target seals with the right checksum, so that mutations reach
# the postcard decoder and the image's validation instead of stopping at the CRC.
#
# Needs a nightly toolchain (libFuzzer's instrumentation): skipped with a message without one.
# Installs cargo-fuzz with `cargo install` when it is missing (about 2 minutes).
# MICROTHREAD_FUZZ_SECONDS sets the time (default 60).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "ci/fuzz.sh: no nightly toolchain (cargo +nightly fails): fuzzing leg skipped"
    exit 0
fi
if ! cargo +nightly fuzz --help >/dev/null 2>&1; then
    echo "ci/fuzz.sh: installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

seconds=${MICROTHREAD_FUZZ_SECONDS:-60}
corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
(cd fuzz && cargo +nightly run --quiet --release --bin make_seeds -- "$corpus")
echo "ci/fuzz.sh: $(ls "$corpus" | wc -l) seeds; fuzzing pickle_load for ${seconds}s"
# The leak checker keeps the ASan leg's suppressions (ci/asan.sh says why each record lives
# as long as the process).
cat >"$corpus.supp" <<'SUPP'
leak:microthread::scheduler::init
leak:microthread::scheduler::adopt
leak:__cxa_thread_atexit_impl
leak:microthread::stack::arena::
SUPP
trap 'rm -rf "$corpus" "$corpus.supp"' EXIT
export LSAN_OPTIONS="suppressions=$corpus.supp:print_suppressions=0"
export ASAN_OPTIONS="handle_segv=0:use_sigaltstack=0:detect_stack_use_after_return=1"
cargo +nightly fuzz run --features asan pickle_load "$corpus" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1

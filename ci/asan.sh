#!/usr/bin/env bash
# ci/asan.sh: the whole native test suite under AddressSanitizer.
#
# Builds with the `asan` feature, which annotates every stack switch for ASan
# (src/sanitizer.rs), so that ASan follows the switches between tasklet and coroutine stacks
# and reports only real errors. Needs a nightly toolchain (-Zsanitizer); without one it says
# so and exits 0. `--target` keeps build scripts and proc macros uninstrumented.
#
# Fails on any ASan report (a test process exits non-zero), on a leak, and on ASan's warning
# that it ignored a stack unwind (the sign of a switch it was not told about).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "ci/asan.sh: no nightly toolchain (cargo +nightly fails): AddressSanitizer leg skipped"
    exit 0
fi
host=$(rustc +nightly -vV | sed -n 's/^host: //p')

# handle_segv/handle_sigbus=0: the guard-page death tests check that a fault kills the process
# by its signal, through the crate's own handler (ASan's would turn it into exit code 1).
# use_sigaltstack=0: they also check that the crate gives a foreign thread an alternate
# signal stack, which ASan would otherwise have installed already.
# The caller's own ASAN_OPTIONS come last and win.
options="handle_segv=0:handle_sigbus=0:use_sigaltstack=0:detect_leaks=1"
# Tells tests/large_frame.rs that its frames are ASan's (see there).
export MICROTHREAD_UNDER_ASAN=1
user_options=${ASAN_OPTIONS:-}
export RUSTFLAGS="-Zsanitizer=address${RUSTFLAGS:+ $RUSTFLAGS}"
# --merge-doctests=yes: rustdoc compiles the doc tests into one binary, as it does for edition
# 2024 crates, instead of one binary each (each still runs in its own process): 279 compiles
# and links under ASan were most of this leg's time. The native `cargo test` leg still
# compiles each one alone, as a user's `cargo test` does (the crate is edition 2021).
export RUSTDOCFLAGS="-Zsanitizer=address -Zunstable-options --merge-doctests=yes${RUSTDOCFLAGS:+ $RUSTDOCFLAGS}"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# LeakSanitizer: each thread's scheduler is leaked on purpose when the thread ends (src/
# scheduler/mod.rs: `init_with` leaks it, "shutdown keeps it allocated", so that late
# thread-local destructors still find it): the Scheduler, its main tasklet's record, its
# shared part and its watchdog list, a few hundred bytes per thread. And glibc's record of a
# thread-local destructor registered after the thread's thread-local destructors have run
# (tests/deadlock.rs first creates a scheduler inside a pthread-key destructor, as a late
# library might): glibc never runs nor frees it (32 bytes), which is why the crate ends such
# a scheduler through a key of its own (src/scheduler/thread/exit.rs). And the record of each
# stack arena (16 bytes), leaked on purpose: arenas are never unmapped (src/stack/arena.rs),
# and the overflow registry keeps pointing into them. Nothing else is suppressed.
cat >"$work/lsan.supp" <<'SUPP'
leak:microthread::scheduler::init
leak:microthread::scheduler::adopt
leak:RawVec<*const microthread::tasklet::Inner>>::grow_one
leak:__cxa_thread_atexit_impl
leak:microthread::stack::arena::
SUPP
export LSAN_OPTIONS="suppressions=$work/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"

# Twice: with use-after-return checks (frames with address-taken locals go on ASan's fake
# stacks, which the annotations carry across switches; the default) and without (those frames
# go on the real stacks, whose poison a dying context must not leave behind). The second run
# reuses the first one's build.
status=0
for uar in 1 0; do
    echo "ci/asan.sh: detect_stack_use_after_return=$uar"
    export ASAN_OPTIONS="$options:detect_stack_use_after_return=$uar${user_options:+:$user_options}"
    # The doc tests (about 270 binaries) run in the first pass only: what they exercise does
    # not depend on the use-after-return setting, and a second compile of them costs minutes.
    targets=()
    if [[ $uar == 0 ]]; then
        targets=(--lib --bins --tests)
    fi
    cargo +nightly test --features asan --target "$host" --no-fail-fast "${targets[@]}" 2>&1 |
        tee -a "$work/log" || status=$?
done
if grep -q "WARNING: ASan is ignoring requested __asan_handle_no_return" "$work/log"; then
    echo "ci/asan.sh: ASan ignored a stack unwind: some stack switch is not annotated" >&2
    status=1
fi
exit "$status"

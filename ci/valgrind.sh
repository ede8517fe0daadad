#!/usr/bin/env bash
# ci/valgrind.sh: runs the whole native test suite (unit, integration, property and doc tests)
# under valgrind's memcheck; exits non-zero if memcheck reports any error or a test fails.
#
# Every stack the crate maps is registered with valgrind (src/valgrind.rs), so a clean run
# reports nothing: no suppressions are needed or used. Settings, and why:
#   - cargo runs every test executable, doc tests included, through the target's runner, so
#     the runner is memcheck itself; build scripts and rustdoc's compiles are not affected.
#   - --error-exitcode=1: any memcheck error fails the test binary, and so this script.
#   - --trace-children=no (the default, stated): no test execs a child. Forked children (the
#     death tests of tests/guard_page*.rs) stay under memcheck whatever this says, since fork
#     is not exec; they die of SIGSEGV on purpose, so their exit is a signal, which the test
#     checks, never memcheck's error exit code, and an intended crash cannot fail the run.
#   - --child-silent-after-fork=yes: those children's "process terminating with signal 11"
#     reports are expected; without this they would bury the parent's output.
#   - --leak-check=no: this leg checks memory accesses; leaks are not errors here (several
#     tests leak on purpose, for example a suspended coroutine passed to mem::forget).
#   - --lib --bins --tests: the doc tests are left out (about 270 examples, each its own
#     binary with its own memcheck start-up: a third of the leg's time). They run natively
#     in `cargo test --release` and under AddressSanitizer's first pass (ci/asan.sh).
#   - MICROTHREAD_TEST_SCALE=10: stress tests run a tenth of their size (tests/threads.rs moves
#     120k messages instead of 1.2M): valgrind runs threads one at a time, 30-50x slower.
#   - MICROTHREAD_UNDER_VALGRIND=1: lets src/valgrind.rs's unit test check that the client
#     request sequence really reaches valgrind.
# Installs valgrind with apt-get if it is missing. About 2-3 minutes on the 2-core CI machine
# after `cargo test --release` has built everything.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

source ci/lib/ensure-valgrind.bash
ensure_valgrind valgrind
valgrind --version

host="$(rustc -vV | sed -n 's/^host: //p')"
runner_var="CARGO_TARGET_$(tr 'a-z-' 'A-Z_' <<<"$host")_RUNNER"
# --fair-sched=yes: valgrind runs one thread at a time, and its default lock lets a spinning
# thread take it back at once, so the time-slice tests' timer thread waited for seconds
# (their slices never fired under a busy harness); the fair lock hands it round in turn.
export "$runner_var"="valgrind --quiet --fair-sched=yes --error-exitcode=1 --trace-children=no --child-silent-after-fork=yes --leak-check=no"
export MICROTHREAD_TEST_SCALE="${MICROTHREAD_TEST_SCALE:-10}"
export MICROTHREAD_UNDER_VALGRIND=1
export CARGO_TERM_COLOR=never
# An intended crash must not leave core files behind.
ulimit -c 0

echo "+ $runner_var=\"${!runner_var}\" cargo test --release --no-fail-fast --lib --bins --tests"
start=$SECONDS
rc=0
cargo test --release --no-fail-fast --lib --bins --tests || rc=$?
echo "+ valgrind leg: exit $rc after $((SECONDS - start))s"
exit "$rc"

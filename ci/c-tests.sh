#!/usr/bin/env bash
# ci/c-tests.sh: the C API's tests. Runs the doc tests of src/ffi/ (feature `capi`, which
# `cargo test` alone leaves off), builds libmicrothread.a and libmicrothread.so, checks that
# (include/microthread.h is checked current by ci/c-header.sh --check, its own leg), compiles
# every tests/c/*.c and examples/c/*.c against the static library with warnings as errors,
# runs each (each test prints "N passed, N failed" and exits non-zero on a failure), runs the
# example once more linked against the shared library, then, with valgrind available (or
# C_TESTS_VALGRIND=1, which installs it), runs the tests again under memcheck.
# Set C_TESTS_VALGRIND=0 to skip the valgrind leg. Needs a C compiler (cc); without one it
# says so and exits 0 (set C_TESTS_REQUIRE_CC=1 to fail instead).
# C_TESTS_TARGETS="aarch64-unknown-linux-gnu riscv64gc-unknown-linux-gnu" also builds the
# static library for those targets and runs the tests and the example under qemu-user, with
# the cross toolchains ci/cross-test.sh installs (it must have run once).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export CARGO_TERM_COLOR=never
cc="${CC:-cc}"
if ! command -v "$cc" >/dev/null 2>&1; then
    echo "c-tests: no C compiler ($cc): skipped" >&2
    [[ "${C_TESTS_REQUIRE_CC:-0}" == 1 ]] && exit 1
    exit 0
fi


cargo test --release --features capi --doc -- ffi::

# `cargo rustc --crate-type` builds the C libraries without making every Rust build of the
# crate link a staticlib and a cdylib too (Cargo.toml keeps crate-type = lib).
cargo rustc --release --lib --features capi --crate-type staticlib,cdylib
target_dir="$(cargo metadata --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
lib_dir="$target_dir/release"
out="$target_dir/c-tests"
mkdir -p "$out"

cflags=(-std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror -g -O1 -Iinclude -Itests/c)
libs=(-lpthread -ldl -lm -lrt)

# The header stands alone, in C and in C++.
echo '#include "microthread.h"' | "$cc" -std=c11 -Wall -Wextra -Werror -Iinclude -fsyntax-only -xc -
if command -v c++ >/dev/null 2>&1; then
    echo '#include "microthread.h"' | c++ -Wall -Wextra -Werror -Iinclude -fsyntax-only -xc++ -
fi

programs=()
for src in tests/c/*.c examples/c/*.c; do
    name="$(basename "$src" .c)"
    "$cc" "${cflags[@]}" "$src" "$lib_dir/libmicrothread.a" "${libs[@]}" -o "$out/$name"
    programs+=("$name")
done
"$cc" "${cflags[@]}" examples/c/producer_consumer.c -L"$lib_dir" -lmicrothread "${libs[@]}" \
    -Wl,-rpath,"$lib_dir" -o "$out/producer_consumer_shared"

failed=()
run() {
    local label="$1"
    shift
    echo "== $label"
    if "$@"; then
        return 0
    fi
    echo "!! $label failed" >&2
    failed+=("$label")
}

for name in "${programs[@]}"; do
    run "$name" "$out/$name"
done
run "producer_consumer (shared library)" "$out/producer_consumer_shared"

want_valgrind="${C_TESTS_VALGRIND:-auto}"
if [[ $want_valgrind == 1 ]]; then
    source ci/lib/ensure-valgrind.bash
    ensure_valgrind valgrind
fi
if [[ $want_valgrind != 0 ]] && command -v valgrind >/dev/null 2>&1; then
    for name in "${programs[@]}"; do
        # --leak-check=no, as in ci/valgrind.sh: this leg checks memory accesses (a thread's
        # scheduler is never freed, by design, so every ended thread would count as a leak).
        run "$name under valgrind" valgrind --quiet --error-exitcode=1 --leak-check=no \
            "$out/$name"
    done
fi

for target in ${C_TESTS_TARGETS:-}; do
    arch="${target%%-*}"
    arch="${arch%gc}" # riscv64gc-unknown-linux-gnu: riscv64-linux-gnu-gcc, qemu-riscv64
    gnu="$arch-linux-gnu"
    upper="$(tr 'a-z-' 'A-Z_' <<<"$target")"
    export "CARGO_TARGET_${upper}_LINKER=$gnu-gcc"
    export "CC_${target//-/_}=$gnu-gcc"
    cargo rustc --release --target "$target" --lib --features capi --crate-type staticlib
    mkdir -p "$out/$target"
    for src in tests/c/*.c examples/c/*.c; do
        name="$(basename "$src" .c)"
        "$gnu-gcc" "${cflags[@]}" "$src" "$target_dir/$target/release/libmicrothread.a" \
            "${libs[@]}" -o "$out/$target/$name"
        run "$name on $target (qemu)" "qemu-$arch" -L "/usr/$gnu" "$out/$target/$name"
    done
done

if ((${#failed[@]})); then
    echo "c-tests: ${#failed[@]} failed: ${failed[*]}" >&2
    exit 1
fi
echo "c-tests: all passed"

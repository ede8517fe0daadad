#!/usr/bin/env bash
# ci/cross-test.sh: builds and tests microthread for aarch64 and riscv64 under qemu-user.
#
# Installs the cross toolchains, qemu-user and the Rust targets only if they are missing, then
# runs `cargo test --lib --bins --tests --benches` (unit, integration and property tests, and
# the benchmarks in criterion's smoke mode) for every target in $TARGETS, and prints one
# summary line per target. Exits non-zero if any target failed, after running all of them.
# One cargo command per target: `--benches` alone also selects the lib and bin targets (they
# are `bench = true`), so a second command ran their unit tests under qemu a second time.
# Links with the Rust toolchain's own lld (rust-lld, through the cross gcc's -fuse-ld=lld), as
# rustc already does natively on x86_64: GNU ld took 4.5 times as long (27 aarch64 test
# binaries: 142 s against 31 s). Without rust-lld in the toolchain, GNU ld links as before.
# The doc tests (about 270 API examples, each its own binary: 3 minutes per target under
# qemu) run natively only, in `cargo test` and the ASan leg: they show the API, while the
# arch-specific code (switches, stacks, signals) is what the unit and integration tests here
# exercise. MICROTHREAD_CROSS_DOC_TESTS=1 adds them.
# See /work/shared/reference/cross-arch.md for why each setting below is what it is.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

TARGETS="${TARGETS:-aarch64-unknown-linux-gnu riscv64gc-unknown-linux-gnu}"
CARGO_TIMEOUT="${CARGO_TIMEOUT:-2400}"

# --- tools -----------------------------------------------------------------------------------

apt_packages=(gcc-aarch64-linux-gnu gcc-riscv64-linux-gnu libc6-dev-arm64-cross
    libc6-dev-riscv64-cross qemu-user)
need_apt=0
for tool in aarch64-linux-gnu-gcc riscv64-linux-gnu-gcc qemu-aarch64 qemu-riscv64; do
    command -v "$tool" >/dev/null 2>&1 || need_apt=1
done
for dir in /usr/aarch64-linux-gnu/include /usr/riscv64-linux-gnu/include; do
    [[ -d $dir ]] || need_apt=1
done
if ((need_apt)); then
    echo "cross-test: installing ${apt_packages[*]}"
    source ci/lib/apt.bash
    ci_apt_get update
    ci_apt_get install -y --no-install-recommends "${apt_packages[@]}"
fi

rust_targets=(aarch64-unknown-linux-gnu riscv64gc-unknown-linux-gnu)
installed_targets="$(rustup target list --installed)"
missing_targets=()
for t in "${rust_targets[@]}"; do
    grep -qx "$t" <<<"$installed_targets" || missing_targets+=("$t")
done
if ((${#missing_targets[@]})); then
    for attempt in 1 2 3; do
        if rustup target add "${missing_targets[@]}"; then
            break
        fi
        if ((attempt == 3)); then
            echo "cross-test: rustup target add failed 3 times" >&2
            exit 1
        fi
        sleep $((attempt * 10))
    done
fi

# --- environment, identical for every cargo invocation ---------------------------------------
# cargo fingerprints the linker: setting it for only some steps would rebuild everything.

export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"
export CARGO_TARGET_RISCV64GC_UNKNOWN_LINUX_GNU_LINKER=riscv64-linux-gnu-gcc
export CARGO_TARGET_RISCV64GC_UNKNOWN_LINUX_GNU_RUNNER="qemu-riscv64 -L /usr/riscv64-linux-gnu"
host="$(rustc -vV | sed -n 's/^host: //p')"
gcc_ld="$(rustc --print sysroot)/lib/rustlib/$host/bin/gcc-ld"
if [[ -x $gcc_ld/ld.lld ]]; then
    lld_flags="-C link-arg=-fuse-ld=lld -C link-arg=-B$gcc_ld"
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS="$lld_flags"
    export CARGO_TARGET_RISCV64GC_UNKNOWN_LINUX_GNU_RUSTFLAGS="$lld_flags"
else
    echo "cross-test: no rust-lld in the toolchain ($gcc_ld/ld.lld): linking with GNU ld"
fi
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export CC_riscv64gc_unknown_linux_gnu=riscv64-linux-gnu-gcc
export RUST_BACKTRACE=1
export CARGO_TERM_COLOR=never
# Emulated property tests are 5-15x slower; keep the default case count modest.
export PROPTEST_CASES="${PROPTEST_CASES:-64}"
# A guest that dies by a signal (guard-page tests) would leave a guest core and a host core of
# qemu itself in the working directory.
ulimit -c 0

# --- tests -----------------------------------------------------------------------------------

# Runs one cargo command under the timeout, echoing it and how long it took.
run() {
    local start=$SECONDS rc=0
    echo "+ $*"
    # timeout signals its whole process group, so a hung qemu test binary goes too.
    timeout --kill-after=30 "$CARGO_TIMEOUT" "$@" || rc=$?
    echo "+ exit $rc after $((SECONDS - start))s: $*"
    return "$rc"
}

summary=()
failed=0
for t in $TARGETS; do
    echo "=== $t"
    start=$SECONDS
    status=pass
    run cargo test --target "$t" --no-fail-fast --lib --bins --tests --benches || status=fail
    if [[ ${MICROTHREAD_CROSS_DOC_TESTS:-0} == 1 ]]; then
        run cargo test --target "$t" --no-fail-fast --doc || status=fail
    fi
    seconds=$((SECONDS - start))
    [[ $status == pass ]] || failed=1
    summary+=("$(printf '%-32s %-4s %5ds' "$t" "$status" "$seconds")")
done

echo "=== summary"
printf '%s\n' "${summary[@]}"
exit "$failed"

#!/usr/bin/env bash
# ci/c-header.sh: generates include/microthread.h from the C API (src/ffi/, feature `capi`)
# with cbindgen (cbindgen.toml). `--check` regenerates it into a temporary file and fails if
# the committed header differs (CI runs that); without it the header is rewritten.
# Installs cbindgen from crates.io (`cargo install cbindgen --locked --version ...`) if it is
# missing or another version.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

check=0
case "${1:-}" in
    --check) check=1 ;;
    "") ;;
    *)
        echo "usage: $0 [--check]" >&2
        exit 2
        ;;
esac

# One version, so that the header is byte-for-byte what CI regenerates.
cbindgen_version=0.29.4
export PATH="$HOME/.cargo/bin:$PATH"
if ! cbindgen --version 2>/dev/null | grep -qx "cbindgen $cbindgen_version"; then
    echo "c-header: installing cbindgen $cbindgen_version (cargo install cbindgen --locked)"
    cargo install cbindgen --locked --version "$cbindgen_version"
fi

out=include/microthread.h
tmp="$(mktemp)"
trap 'rm -f "$tmp"' EXIT
raw="$(mktemp)"
trap 'rm -f "$tmp" "$raw"' EXIT
# Only src/ffi/ is read (given as a file, cbindgen follows its `mod`s): the crate's other
# public constants and its assembly's symbols are not C API.
cbindgen --quiet --config cbindgen.toml --output "$raw" src/ffi/mod.rs
# The doc comments are rustdoc's: drop their Rust examples (fenced blocks) and turn intra-doc
# links [`name`] and [`name`](path) into `name`.
awk '/^ *```/ { fence = !fence; next } !fence' "$raw" |
    sed -e 's/\[`\([^`]*\)`\]([^)]*)/`\1`/g' -e 's/\[`\([^`]*\)`\]/`\1`/g' \
        -e 's/\[\([^]]*\)\](super)/\1/g' -e 's/\[\([^]]*\)\](self)/\1/g' | cat -s >"$tmp"

if ((check)); then
    if ! diff -u "$out" "$tmp"; then
        echo "c-header: $out is not current: run bash ci/c-header.sh and commit it" >&2
        exit 1
    fi
    echo "c-header: $out is current"
else
    mkdir -p include
    cp "$tmp" "$out"
    echo "c-header: wrote $out"
fi

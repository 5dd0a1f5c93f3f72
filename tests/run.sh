#!/usr/bin/env bash
# Runs weft's whole test suite: unit tests of every host crate and the
# end-to-end tests in tests/e2e (real components, real SQLite, the real
# `weft` binary). Installs what it needs: the wasm32-wasip2 Rust target that
# the guest components build for.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    echo "installing the wasm32-wasip2 Rust target" >&2
    rustup target add wasm32-wasip2
fi

# Release mode: the same build as the demo, and Cranelift compiles guest
# components fast only when optimised itself.
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
cargo test --release --workspace "$@" 2>&1 | tee "$log" || status=$?

# cargo prints one summary per test binary; close with the total.
passed=$(sed -n 's/^test result: .* \([0-9][0-9]*\) passed; \([0-9][0-9]*\) failed.*/\1/p' "$log" | awk '{ s += $1 } END { print s + 0 }')
failed=$(sed -n 's/^test result: .* \([0-9][0-9]*\) passed; \([0-9][0-9]*\) failed.*/\2/p' "$log" | awk '{ s += $1 } END { print s + 0 }')
echo "weft: ${passed:-0} passed, ${failed:-0} failed"
if [ "${passed:-0}" -eq 0 ] && [ "$status" -eq 0 ]; then
    echo "no test ran" >&2
    exit 1
fi
exit "$status"

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
cargo test --release --workspace "$@"

#!/usr/bin/env bash
# Runs the polyglot (wine) pipeline end to end: installs the wasm target if needed,
# builds weft and the Python, Rust and JavaScript steps (setting up their toolchains on first use), runs the pipeline and shows the run.
# Extra arguments go to `weft run` (e.g. -p train.epochs=500, --no-cache).
# Set WEFT to use an existing weft binary.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    echo "installing the wasm32-wasip2 Rust target" >&2
    rustup target add wasm32-wasip2
fi
if [ -z "${WEFT:-}" ]; then
    cargo build --release --quiet -p weft-cli --manifest-path "$root/Cargo.toml"
    WEFT="$root/target/release/weft"
fi

cd "$here"
"$WEFT" build
"$WEFT" run "$@"
"$WEFT" runs show latest

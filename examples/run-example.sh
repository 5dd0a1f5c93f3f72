#!/usr/bin/env bash
# Runs an example pipeline end to end: installs the wasm target if needed,
# builds weft, builds the example's steps (`weft build` sets up the Python
# and JavaScript toolchains on first use), runs the pipeline and shows the
# run. Usage: run-example.sh EXAMPLE [weft run arguments…], e.g.
# `-p train.epochs=500` or `--no-cache`. Set WEFT to use an existing binary.
set -euo pipefail
examples="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$examples/.." && pwd)"
here="$examples/${1:?name the example: iris, polyglot, breast-cancer, digits or wine}"
shift

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    echo "installing the wasm32-wasip2 Rust target" >&2
    rustup target add wasm32-wasip2
fi
if [ -z "${WEFT:-}" ]; then
    # The step library weft embeds (steps/) is built inside weft's build.
    cargo fetch --quiet --manifest-path "$root/steps/Cargo.toml"
    cargo build --release --quiet -p weft-cli --manifest-path "$root/Cargo.toml"
    WEFT="$root/target/release/weft"
fi

cd "$here"
"$WEFT" build
"$WEFT" run "$@"
"$WEFT" runs show latest

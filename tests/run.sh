#!/usr/bin/env bash
# Runs weft's whole test suite: unit tests of every host crate, the
# end-to-end tests in tests/e2e (real components, real SQLite, the real
# `weft` binary) and the official mlflow client against `weft server`, on
# SQLite and on PostgreSQL. Installs what it needs: the wasm32-wasip2 Rust
# target the guest components build for, a Python venv with the mlflow
# client, Debian's PostgreSQL server, moto's S3-compatible server and
# Debian's Slurm (slurmctld, slurmd, munge: all started privately for the
# run), the x86_64-unknown-linux-musl target and musl-tools (the static
# build is made and checked), and
# Node.js, clang and wasi-libc, Chromium and playwright-core when missing (the Python and JavaScript guest toolchains are set
# up by `weft build` itself, under target/guest-toolchains).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    echo "installing the wasm32-wasip2 Rust target" >&2
    rustup target add wasm32-wasip2
fi

# Node.js and npm build the JavaScript steps (weft build sets up
# componentize-js itself; Python steps need python3 with venv).
if ! command -v npm >/dev/null 2>&1; then
    echo "installing Node.js and npm (Debian packages)" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi

# clang and wasi-libc build the C steps.
if ! [ -f /usr/include/wasm32-wasi/stdio.h ] || ! command -v clang >/dev/null 2>&1; then
    echo "installing clang and wasi-libc (Debian packages) for C steps" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang lld wasi-libc libclang-rt-14-dev-wasm32 >/dev/null
fi

# openssl makes the Ed25519 keys the bundle-signing tests sign with.
if ! command -v openssl >/dev/null 2>&1; then
    echo "installing openssl (Debian package) for the bundle-signing tests" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null
fi

# The static musl build of weft (README: "One static binary"), made while
# the mlflow suite runs and checked after it: the Rust target and musl-gcc
# (for SQLite's and ring's C parts).
musl_target=x86_64-unknown-linux-musl
if ! rustup target list --installed 2>/dev/null | grep -qx "$musl_target"; then
    echo "installing the $musl_target Rust target" >&2
    rustup target add "$musl_target"
fi
if ! command -v musl-gcc >/dev/null 2>&1; then
    echo "installing musl-tools (Debian package) for the static musl build" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq musl-tools >/dev/null
fi

# Headless Chromium and playwright-core drive the dashboard tests
# (tests/e2e/dashboard.rs runs tests/ui/dashboard.test.mjs).
if ! [ -x /usr/bin/chromium ]; then
    echo "installing Chromium (Debian package) for the dashboard tests" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
if ! [ -d tests/ui/node_modules/playwright-core ]; then
    echo "installing playwright-core in tests/ui" >&2
    (cd tests/ui && npm ci --no-audit --no-fund --silent)
fi

# The official mlflow client, for the tests of the MLflow-compatible API,
# and the full mlflow package: its `mlflow server` is the reference the
# differential tests (tests/mlflow/test_parity_*.py) compare weft with;
# onnx, onnxruntime and skl2onnx for the ONNX model server tests
# (test_serving.py); pandas and pyarrow (which mlflow brings) write the
# Parquet files of the library tests.
venv=target/pyenv
if ! "$venv/bin/python" -c "import importlib.metadata as m; assert m.version('mlflow') == '3.17.2'; assert m.version('onnxruntime') == '1.32.0'; import pytest, moto.server, schemathesis, onnx, skl2onnx, pandas, pyarrow" 2>/dev/null; then
    echo "creating $venv with mlflow, pytest, moto (an S3-compatible server), schemathesis, onnx, onnxruntime and skl2onnx" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "mlflow==3.17.2" "pytest==9.2.0" \
        "moto[server]==5.1.17" "schemathesis==4.32.5" "onnx==1.23.2" "onnxruntime==1.32.0" \
        "skl2onnx==1.20.0"
fi

# Plugins and stacks the tests install go to a fresh home, never the user's.
export WEFT_HOME="$(mktemp -d)"
unset WEFT_STACK

# A private PostgreSQL server: the store tests and the mlflow suite run on
# it as well as on SQLite.
source tests/postgres.sh
# A private S3-compatible server: the stack tests keep artifacts on it.
source tests/s3.sh
# A private single-node Slurm cluster: the orchestrator tests submit their
# steps to it as batch jobs.
source tests/slurm.sh

# A test that cannot run here says so in this file (one line: the test and
# why); it is counted as skipped, not passed. pytest reports its own skips.
export WEFT_SKIP_LOG="$(mktemp)"

# Release mode: the same build as the demo, and Cranelift compiles guest
# components fast only when optimised itself.
log="$(mktemp)"
trap 'rm -f "$log" "$WEFT_SKIP_LOG"; rm -rf "$WEFT_HOME"; stop_postgres; stop_s3; stop_slurm' EXIT
status=0
# The step library (steps/) is built by host/library's build script inside
# the build below; fetch its crates first, outside it.
cargo fetch --quiet --manifest-path steps/Cargo.toml
cargo test --release --workspace --no-fail-fast "$@" 2>&1 | tee "$log" || status=$?
# The model SDK is guest code outside the workspace; its unit tests run natively.
cargo test --release --lib --manifest-path sdk/rust-model/Cargo.toml 2>&1 | tee -a "$log" || status=$?
# So is the step library's shared code (tables, model files, metrics).
cargo test --release --lib --manifest-path steps/Cargo.toml -p ml-common 2>&1 | tee -a "$log" || status=$?

# The static musl build compiles meanwhile (the suite mostly waits on
# its servers); no other cargo command runs until it is done.
musl_log="$(mktemp)"
nice -n 10 cargo build --quiet --profile musl-check -p weft-cli --target "$musl_target" >"$musl_log" 2>&1 &
musl_pid=$!

# The mlflow client suite and the API fuzzing (schemathesis) drive the
# `weft` binary that cargo just built.
WEFT_BIN="$PWD/target/release/weft" "$venv/bin/python" -m pytest -q -rs tests/mlflow tests/fuzz 2>&1 | tee -a "$log" || status=$?

# The musl binary runs the iris bundle (tests/e2e/musl.rs, ignored in the
# run above for want of the binary).
if wait "$musl_pid"; then
    WEFT_MUSL_BIN="$PWD/target/$musl_target/musl-check/weft" \
        cargo test --release -p weft-cli --test e2e -- --ignored musl:: 2>&1 | tee -a "$log" || status=$?
else
    echo "the static musl build failed:" | tee -a "$log"
    tail -n 40 "$musl_log" | tee -a "$log"
    echo "test result: FAILED. 0 passed; 1 failed" | tee -a "$log"
    status=1
fi
rm -f "$musl_log"

# cargo prints one summary per test binary, pytest one line; close with
# the totals. A Rust test that skipped itself passed for cargo: move it.
read -r passed failed pytest_skipped < <(awk '
    /^test result:/ || /^[0-9]+ (passed|failed|skipped|errors?)/ {
        for (i = 2; i <= NF; i++) {
            word = $i; gsub(/[,;]/, "", word)
            if (word == "passed") p += $(i - 1)
            if (word == "failed") f += $(i - 1)
            # pytest: a test whose fixture broke is an error, not a pass.
            if ((word == "error" || word == "errors") && $1 !~ /^test/) f += $(i - 1)
            if (word == "skipped" && $1 !~ /^test/) s += $(i - 1)
        }
    }
    END { print p + 0, f + 0, s + 0 }' "$log")
rust_skipped=$(sort -u "$WEFT_SKIP_LOG" | wc -l)
passed=$((passed - rust_skipped))
skipped=$((pytest_skipped + rust_skipped))
if [ "$skipped" -gt 0 ]; then
    echo "skipped:"
    sort -u "$WEFT_SKIP_LOG" | sed 's/^/  /'
    grep -E '^SKIPPED' "$log" | sed 's/^/  /' || true
fi
echo "weft: ${passed} passed, ${failed} failed, ${skipped} skipped"
if [ "$passed" -le 0 ] && [ "$status" -eq 0 ]; then
    echo "no test ran" >&2
    exit 1
fi
# CI runs everything: a skip there is a missing install step.
if [ "${WEFT_REQUIRE_NO_SKIPS:-0}" = 1 ] && [ "$skipped" -gt 0 ]; then
    echo "WEFT_REQUIRE_NO_SKIPS is set and ${skipped} test(s) skipped" >&2
    [ "$status" -eq 0 ] && status=1
fi
exit "$status"

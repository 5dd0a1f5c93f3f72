#!/usr/bin/env bash
# The polyglot (wine) pipeline end to end: Python prepare, Rust train,
# JavaScript evaluate. Extra arguments go to `weft run`.
exec bash "$(dirname "$0")/../run-example.sh" polyglot "$@"

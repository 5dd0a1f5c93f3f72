#!/usr/bin/env bash
# The iris pipeline end to end (load -> split -> train -> evaluate, in Rust).
# Extra arguments go to `weft run` (e.g. -p train.epochs=500, --no-cache).
exec bash "$(dirname "$0")/../run-example.sh" iris "$@"

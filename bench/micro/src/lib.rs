//! Criterion benchmarks of weft's hot paths live in `benches/`; run them
//! with `cargo bench -p weft-bench` (or `python3 bench/all.py`, which
//! reports them in BENCHMARKS.md).

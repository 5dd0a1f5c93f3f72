#!/usr/bin/env python3
"""Benchmark: what hermetic steps cost (weft only).

    python3 bench/hermetic.py [--repeat 5] [--json OUT]

  - determinism: a chain of 100 trivial Rust steps, every step executing
    (--no-cache), with virtual time and seeded randomness (the default) and
    with the host's real clocks and randomness (`nondeterministic = true`);
    the difference per step, as a share of the per-step time;
  - verify: `weft verify` of the iris run against executing the same four
    steps (`weft run --no-cache`), both with compiled components.
"""
import argparse
import json
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
WEFT = ROOT / "target/release/weft"


def sh(*args, **kw):
    return subprocess.run([str(a) for a in args], check=True, capture_output=True, **kw)


def wall(*args, cwd):
    t = time.perf_counter()
    sh(*args, cwd=cwd)
    return time.perf_counter() - t


def chain(n, nondeterministic):
    echo = ROOT / "tests/guests/target/wasm32-wasip2/release/echo.wasm"
    lines = ['[pipeline]\nname = "chain"\n']
    for i in range(n):
        lines.append(f'[steps.s{i:03}]\ncomponent = "{echo}"\noutputs = ["out"]\nparams = {{ prefix = "{i}" }}\n')
        if i > 0:
            lines.append(f'inputs = {{ in = "s{i - 1:03}.out" }}\n')
        if nondeterministic:
            lines.append("nondeterministic = true\n")
    return "".join(lines)


def determinism(repeat, work):
    out = {}
    for label, nondet in (("virtual", False), ("real", True)):
        d = pathlib.Path(tempfile.mkdtemp(dir=work))
        (d / "weft.toml").write_text(chain(100, nondet))
        sh(WEFT, "build", cwd=d)
        sh(WEFT, "run", "--no-cache", cwd=d)  # warm: database, compiled cache
        out[label] = statistics.median(wall(WEFT, "run", "--no-cache", cwd=d) for _ in range(repeat))
        shutil.rmtree(d)
    per_step = out["virtual"] / 100
    out["cost_per_step_ms"] = (out["virtual"] - out["real"]) / 100 * 1000
    out["share_of_step"] = (out["virtual"] - out["real"]) / 100 / per_step
    return out


def verify(repeat, work):
    sh("cargo", "build", "--release", "--quiet", "--target", "wasm32-wasip2", cwd=ROOT / "examples/iris")
    d = pathlib.Path(tempfile.mkdtemp(dir=work))
    src = ROOT / "examples/iris"
    shutil.copy(src / "weft.toml", d / "weft.toml")
    shutil.copytree(src / "data", d / "data")
    shutil.copytree(src / "target/wasm32-wasip2/release", d / "target/wasm32-wasip2/release",
                    ignore=shutil.ignore_patterns("build", "deps", "incremental", ".fingerprint", "examples"))
    sh(WEFT, "run", "--no-cache", cwd=d)  # compiles, warms the database
    run = statistics.median(wall(WEFT, "run", "--no-cache", cwd=d) for _ in range(repeat))
    ver = statistics.median(wall(WEFT, "verify", "latest", cwd=d) for _ in range(repeat))
    shutil.rmtree(d)
    return {"run_s": run, "verify_s": ver, "ratio": ver / run}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", type=pathlib.Path)
    args = ap.parse_args()
    sh("cargo", "build", "--release", "--quiet", "-p", "weft-cli", cwd=ROOT)
    sh("cargo", "build", "--release", "--quiet", "--target", "wasm32-wasip2", cwd=ROOT / "tests/guests")
    with tempfile.TemporaryDirectory() as work:
        results = {"determinism": determinism(args.repeat, work), "verify": verify(args.repeat, work)}
    d, v = results["determinism"], results["verify"]
    print(f"chain-100, every step executing: virtual {d['virtual'] * 1000:.1f} ms, real {d['real'] * 1000:.1f} ms; "
          f"determinism costs {d['cost_per_step_ms']:.3f} ms per step ({d['share_of_step']:.1%} of a step)")
    print(f"iris: run --no-cache {v['run_s'] * 1000:.1f} ms, verify {v['verify_s'] * 1000:.1f} ms ({v['ratio']:.2f}x)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

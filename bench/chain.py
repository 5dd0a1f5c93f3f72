#!/usr/bin/env python3
"""Benchmark: a chain of N trivial Rust steps (tests/guests echo).

Measures, with compiled components (the compiled cache is warmed first):
  - first run: wall time and per-step overhead (every step executes),
  - fully cached rerun: wall time,
  - peak RSS of the `weft` process for each.
Run from anywhere: python3 bench/chain.py [--steps 100] [--repeat 5]
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sh(*args, **kw):
    return subprocess.run(args, check=True, **kw)


def measure(cmd, cwd):
    code = (
        "import resource,subprocess,sys,time,json;"
        "t=time.perf_counter();p=subprocess.run(sys.argv[1:],capture_output=True);w=time.perf_counter()-t;"
        "print(json.dumps({'wall':w,'rss_kib':resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,'code':p.returncode,'out':p.stdout.decode()}))"
    )
    res = subprocess.run([sys.executable, "-c", code, *cmd], cwd=cwd, check=True, capture_output=True)
    data = json.loads(res.stdout)
    if data["code"] != 0:
        raise SystemExit(f"{cmd} failed: {data}")
    return data


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    sh("cargo", "build", "--release", "--quiet", "-p", "weft-cli", cwd=ROOT)
    sh("cargo", "build", "--release", "--quiet", "--target", "wasm32-wasip2", cwd=os.path.join(ROOT, "tests/guests"))
    weft = os.path.join(ROOT, "target/release/weft")
    echo = os.path.join(ROOT, "tests/guests/target/wasm32-wasip2/release/echo.wasm")

    def write_chain(d, n):
        lines = ['[pipeline]\nname = "chain"\n']
        for i in range(n):
            lines.append(f'[steps.s{i:03}]\ncomponent = "{echo}"\noutputs = ["out"]\nparams = {{ prefix = "{i}" }}\n')
            if i > 0:
                lines.append(f'inputs = {{ in = "s{i-1:03}.out" }}\n')
        with open(os.path.join(d, "weft.toml"), "w") as f:
            f.write("".join(lines))

    # Fixed cost of a run (process start, database, engine): a 1-step chain.
    singles = []
    for rep in range(args.repeat):
        with tempfile.TemporaryDirectory() as d:
            write_chain(d, 1)
            sh(weft, "build", cwd=d, capture_output=True)
            singles.append(measure([weft, "run", "--json"], d))

    firsts, cacheds = [], []
    for rep in range(args.repeat):
        with tempfile.TemporaryDirectory() as d:
            lines = ['[pipeline]\nname = "chain"\n']
            for i in range(args.steps):
                lines.append(f'[steps.s{i:03}]\ncomponent = "{echo}"\noutputs = ["out"]\nparams = {{ prefix = "{i}" }}\n')
                if i > 0:
                    lines.append(f'inputs = {{ in = "s{i-1:03}.out" }}\n')
            with open(os.path.join(d, "weft.toml"), "w") as f:
                f.write("".join(lines))
            # Warm the compiled-component cache (all steps share echo.wasm).
            sh(weft, "build", cwd=d, capture_output=True)
            first = measure([weft, "run", "--json"], d)
            cached = measure([weft, "run", "--json"], d)
            fo, co = json.loads(first["out"]), json.loads(cached["out"])
            assert fo["executed"] == args.steps, fo
            assert co["executed"] == 0 and co["cached"] == args.steps, co
            firsts.append(first)
            cacheds.append(cached)

    def summary(runs):
        walls = [r["wall"] * 1000 for r in runs]
        rss = max(r["rss_kib"] for r in runs) / 1024
        return statistics.median(walls), min(walls), rss

    sm, smin, _ = summary(singles)
    fm, fmin, frss = summary(firsts)
    cm, cmin, crss = summary(cacheds)
    print(f"chain of {args.steps} trivial Rust steps, {args.repeat} repetitions, compiled components")
    print(f"  first run   : median {fm:8.1f} ms (min {fmin:.1f})  => {fm / args.steps:.2f} ms per step (whole process incl. start-up)")
    print(f"  1-step run  : median {sm:8.1f} ms (fixed cost: process start, database, engine)")
    print(f"  per step    : {(fm - sm) / (args.steps - 1):.2f} ms marginal (first run minus the fixed cost, per extra step)")
    print(f"  cached rerun: median {cm:8.1f} ms (min {cmin:.1f})")
    print(f"  peak RSS    : first run {frss:.1f} MiB, cached rerun {crss:.1f} MiB")


if __name__ == "__main__":
    main()

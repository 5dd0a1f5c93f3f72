#!/usr/bin/env python3
"""Benchmark: bundles of the iris pipeline (weft only).

    python3 bench/bundle.py [--repeat 5] [--json OUT]

  - size: the bundle with its data (`weft bundle --with-data`), and its
    four components;
  - writing it: `weft bundle --with-data`;
  - cold start: `weft run iris.weft` in an empty directory (checks the
    bundle, compiles its four components, runs every step);
  - warm: the same directory again, every step a cache hit;
  - from the sources, for comparison: `weft run` in the project with its
    components compiled, every step executing (`--no-cache`);
  - the `weft` binary: its size as built and stripped, and that of the
    static musl build when target/x86_64-unknown-linux-musl holds one.
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


def binaries(work):
    """{build: (bytes, stripped bytes)} of the weft executables built."""
    found = {}
    for build, path in (("glibc", ROOT / "target/release/weft"),
                        ("musl, static", ROOT / "target/x86_64-unknown-linux-musl/release/weft")):
        if path.is_file():
            stripped = work / "stripped"
            sh("strip", "-o", stripped, path)
            found[build] = (path.stat().st_size, stripped.stat().st_size)
    return found


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json")
    args = ap.parse_args()
    sh("cargo", "build", "--release", "--quiet", "-p", "weft-cli", cwd=ROOT)
    iris = ROOT / "examples/iris"
    sh("cargo", "build", "--release", "--quiet", "--target", "wasm32-wasip2", cwd=iris)

    work = pathlib.Path(tempfile.mkdtemp())
    try:
        project = work / "iris"
        shutil.copytree(iris, project, ignore=shutil.ignore_patterns(".weft", "target"))
        (project / "target").symlink_to(iris / "target")
        bundle = work / "iris.weft"
        writes, colds, warms, sources = [], [], [], []
        sh(WEFT, "run", cwd=project)  # compiles the components for the source runs
        for i in range(args.repeat):
            writes.append(wall(WEFT, "bundle", "--with-data", "-o", bundle, cwd=project))
            empty = work / f"empty-{i}"
            empty.mkdir()
            colds.append(wall(WEFT, "run", bundle, cwd=empty))
            warms.append(wall(WEFT, "run", bundle, cwd=empty))
            sources.append(wall(WEFT, "run", "--no-cache", cwd=project))
        components = sum(
            (iris / f"target/wasm32-wasip2/release/{s}.wasm").stat().st_size
            for s in ("load", "split", "train", "evaluate")
        )
        result = {
            "bundle_bytes": bundle.stat().st_size,
            "component_bytes": components,
            "write_s": statistics.median(writes),
            "cold_s": statistics.median(colds),
            "warm_s": statistics.median(warms),
            "source_s": statistics.median(sources),
        }
        result["binaries"] = binaries(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"bundle: {result['bundle_bytes'] / 1e6:.2f} MB ({result['component_bytes'] / 1e6:.2f} MB of components)")
    print(f"weft bundle --with-data: {result['write_s'] * 1000:.0f} ms")
    print(f"weft run iris.weft, empty directory (cold): {result['cold_s'] * 1000:.0f} ms")
    print(f"again (all cache hits): {result['warm_s'] * 1000:.0f} ms")
    print(f"from the sources, compiled, --no-cache: {result['source_s'] * 1000:.0f} ms")
    for build, (size, stripped) in result["binaries"].items():
        print(f"weft binary ({build}): {size / 1e6:.0f} MB, stripped {stripped / 1e6:.0f} MB")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    sys.exit(main())

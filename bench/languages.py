#!/usr/bin/env python3
"""Benchmark: the cost of a step per language (Rust, Python, JavaScript, C).

    python3 bench/languages.py [--steps 20] [--runs 5]

For each language it scaffolds the `weft new step` template, builds it, and
reports:
- first compile: Cranelift compiling the component (what `weft build`
  prints), once per component; later starts load the compiled cache;
- instantiate + call: the runtime alone running the compiled component
  (fresh instance, sandbox, call, logs), from `cargo run --example invoke`
  of weft-runtime, median of 200 calls;
- per step run: the marginal time of one more step in a run, with the
  component compiled: a pipeline of N independent copies (different params,
  so nothing is cached) minus a pipeline of 1, over N-1, run with
  --max-parallel 1 --no-cache. It includes instantiating the component,
  calling it, and recording the step run.
"""
import argparse
import json
import pathlib
import re
import statistics
import subprocess
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
WEFT = ROOT / "target" / "release" / "weft"


def sh(args, cwd):
    out = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, args))} failed:\n{out.stderr}")
    return out


def project(lang, copies, work):
    folder = pathlib.Path(tempfile.mkdtemp(dir=work))
    sh([WEFT, "init", ".", "--name", f"bench-{lang}"], folder)
    sh([WEFT, "new", "step", "s", "--lang", lang], folder)
    manifest = (folder / "weft.toml").read_text()
    block = manifest[manifest.index("[steps.s]"):]
    for i in range(1, copies):
        manifest += "\n" + block.replace("[steps.s]", f"[steps.s{i}]").replace('hello from s"', f'hello from s{i}"')
    (folder / "weft.toml").write_text(manifest)
    return folder


def timed_run(folder):
    t = time.perf_counter()
    sh([WEFT, "run", "--no-cache", "--max-parallel", "1"], folder)
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json", type=pathlib.Path)
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "weft-cli"], cwd=ROOT, check=True)
    subprocess.run(
        ["cargo", "build", "--release", "--quiet", "-p", "weft-runtime", "--example", "invoke"], cwd=ROOT, check=True
    )
    invoke = ROOT / "target" / "release" / "examples" / "invoke"
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for lang in ["rust", "python", "js", "c"]:
            one = project(lang, 1, work)
            many = project(lang, args.steps, work)
            built = sh([WEFT, "build"], one).stderr
            compiled = re.search(r"\(compiled, ([0-9.]+)(ms|s)\)", built)
            first = float(compiled.group(1)) / (1000 if compiled.group(2) == "ms" else 1) if compiled else float("nan")
            sh([WEFT, "build"], many)
            component = max((one / "steps" / "s").rglob("*.wasm"), key=lambda p: p.stat().st_size)
            size = component.stat().st_size
            call = sh([invoke, component, '{"message": "hi"}', "200"], one).stdout
            call = float(re.search(r"median ([0-9.]+) ms", call).group(1))
            timed_run(one), timed_run(many)  # warm the compiled cache and the OS
            t1 = statistics.median(timed_run(one) for _ in range(args.runs))
            tn = statistics.median(timed_run(many) for _ in range(args.runs))
            rows.append((lang, size / 1e6, first, call, (tn - t1) / (args.steps - 1) * 1000))
    print(f"per-step cost by language ({args.steps} steps, median of {args.runs} runs)")
    print(f"{'language':10} {'component':>10} {'first compile':>14} {'instantiate+call':>17} {'per step run':>13}")
    for lang, mb, first, call, per in rows:
        print(f"{lang:10} {mb:8.1f} MB {first:12.2f} s {call:14.2f} ms {per:10.2f} ms")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([
            {"language": lang, "component_mb": mb, "first_compile_s": first, "instantiate_call_ms": call, "per_step_ms": per}
            for lang, mb, first, call, per in rows
        ], indent=2))


if __name__ == "__main__":
    main()

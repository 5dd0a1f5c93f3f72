#!/usr/bin/env python3
"""Benchmark: the same pipelines on weft and on ZenML, on this machine.

    python3 bench/pipelines.py [--repeat 3] [--json OUT]

Workloads (every step trivial: prepend a prefix to its input and return it):
  - chains of 1, 10, 50 and 100 steps, each reading the previous one's output;
  - fan-out: one source step and 50 steps reading it, in parallel.
For each: the first run (everything executes), a fully cached rerun, and a
one-param change (the last step of a chain, one branch of the fan-out:
exactly one step reruns). Each run is a whole process, as a user runs it;
the per-step overhead is the marginal cost, (chain-100 - chain-50) / 50,
and the fixed cost that of the chain of 1.

weft runs Rust steps (tests/guests/echo, compiled once beforehand) with its
default stack (SQLite, local files). ZenML runs Python steps with its local
orchestrator and default SQLite store, installed on first use into
target/bench-zenml (from PyPI; ZENML_* settings keep it offline and private).
"""
import argparse
import json
import os
import pathlib
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
ZENML_VENV = ROOT / "target" / "bench-zenml"
ZENML_PYTHON = ZENML_VENV / "bin" / "python"


def sh(*args, **kw):
    return subprocess.run(args, check=True, **kw)


def timed(cmd, cwd, env=None):
    """Wall time (s) and peak RSS (MiB) of one process."""
    code = (
        "import resource,subprocess,sys,time,json;"
        "t=time.perf_counter();p=subprocess.run(sys.argv[1:],capture_output=True);w=time.perf_counter()-t;"
        "print(json.dumps({'wall':w,'rss':resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss/1024,'code':p.returncode,"
        "'out':p.stdout.decode(errors='replace'),'err':p.stderr.decode(errors='replace')[-3000:]}))"
    )
    res = subprocess.run([sys.executable, "-c", code, *cmd], cwd=cwd, env=env, check=True, capture_output=True)
    data = json.loads(res.stdout)
    if data["code"] != 0:
        raise SystemExit(f"{cmd} failed in {cwd}:\n{data['err']}")
    return data


# ----- weft -----

def weft_manifest(shape, n, changed):
    """weft.toml of a chain of n steps or a fan-out of n branches; `changed`
    alters the param of the last step (chain) or of branch 0 (fan-out)."""
    echo = ROOT / "tests/guests/target/wasm32-wasip2/release/echo.wasm"
    lines = ['[pipeline]\nname = "bench"\n']
    if shape == "chain":
        for i in range(n):
            prefix = f"{i}{'!' if changed and i == n - 1 else ''}"
            lines.append(f'[steps.s{i:03}]\ncomponent = "{echo}"\noutputs = ["out"]\nparams = {{ prefix = "{prefix}" }}\n')
            if i > 0:
                lines.append(f'inputs = {{ in = "s{i - 1:03}.out" }}\n')
    else:
        lines.append(f'[steps.source]\ncomponent = "{echo}"\noutputs = ["out"]\nparams = {{ prefix = "data" }}\n')
        for i in range(n):
            prefix = f"{i}{'!' if changed and i == 0 else ''}"
            lines.append(
                f'[steps.b{i:03}]\ncomponent = "{echo}"\ninputs = {{ in = "source.out" }}\noutputs = ["out"]\n'
                f'params = {{ prefix = "{prefix}" }}\n'
            )
    return "".join(lines)


def weft_case(shape, n, work):
    weft = str(ROOT / "target/release/weft")
    d = pathlib.Path(tempfile.mkdtemp(dir=work))
    (d / "weft.toml").write_text(weft_manifest(shape, n, False))
    sh(weft, "build", cwd=d, capture_output=True)  # compiles echo once
    out = {}
    first = timed([weft, "run", "--json"], d)
    assert json.loads(first["out"])["executed"] == (n if shape == "chain" else n + 1)
    cached = timed([weft, "run", "--json"], d)
    assert json.loads(cached["out"])["executed"] == 0
    (d / "weft.toml").write_text(weft_manifest(shape, n, True))
    change = timed([weft, "run", "--json"], d)
    assert json.loads(change["out"])["executed"] == 1, change["out"]
    for k, r in [("first", first), ("cached", cached), ("change", change)]:
        out[k] = r["wall"]
        out[k + "_rss"] = r["rss"]
    shutil.rmtree(d)
    return out


# ----- ZenML -----

ZENML_SCRIPT = r'''
import json, os, sys, time
from zenml import pipeline, step

@step
def echo(prefix: str, prev: str = "") -> str:
    return prefix + prev

shape, n, changed = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"

@pipeline(enable_cache=True, name=f"bench_{shape}_{n}")
def chain():
    x = echo(prefix="0!" if changed and n == 1 else "0", id="s000")
    for i in range(1, n):
        p = f"{i}!" if changed and i == n - 1 else str(i)
        x = echo(prefix=p, prev=x, id=f"s{i:03}")

@pipeline(enable_cache=True, name=f"bench_{shape}_{n}")
def fanout():
    src = echo(prefix="data", id="source")
    for i in range(n):
        p = f"{i}!" if changed and i == 0 else str(i)
        echo(prefix=p, prev=src, id=f"b{i:03}")

run = (chain if shape == "chain" else fanout)()
steps = run.steps
executed = sum(1 for s in steps.values() if str(s.status).lower().endswith("completed"))
cached = sum(1 for s in steps.values() if str(s.status).lower().endswith("cached"))
print(json.dumps({"executed": executed, "cached": cached}))
'''


def zenml_env(home):
    env = dict(os.environ)
    env.update({
        "ZENML_CONFIG_PATH": str(home / "config"),
        "ZENML_LOCAL_STORES_PATH": str(home / "stores"),
        "ZENML_ANALYTICS_OPT_IN": "false",
        "ZENML_ENABLE_RICH_TRACEBACK": "false",
        "ZENML_LOGGING_VERBOSITY": "ERROR",
        "ZENML_DEBUG": "false",
        "AUTO_OPEN_DASHBOARD": "false",
    })
    return env


def ensure_zenml():
    if ZENML_PYTHON.exists() and subprocess.run([str(ZENML_PYTHON), "-c", "import zenml"], capture_output=True).returncode == 0:
        return
    print("installing zenml into target/bench-zenml (PyPI)", file=sys.stderr)
    sh(sys.executable, "-m", "venv", str(ZENML_VENV))
    sh(str(ZENML_PYTHON), "-m", "pip", "install", "-q", "--disable-pip-version-check", "zenml[local]")


def zenml_version():
    return subprocess.run([str(ZENML_PYTHON), "-c", "import zenml; print(zenml.__version__)"], capture_output=True, text=True).stdout.strip()


def zenml_case(shape, n, work):
    d = pathlib.Path(tempfile.mkdtemp(dir=work))
    env = zenml_env(d)
    script = d / "pipe.py"
    script.write_text(ZENML_SCRIPT)
    subprocess.run([str(ZENML_VENV / "bin" / "zenml"), "init"], cwd=d, env=env, capture_output=True)
    out = {}
    for key, changed in [("first", "0"), ("cached", "0"), ("change", "1")]:
        r = timed([str(ZENML_PYTHON), str(script), shape, str(n), changed], d, env=env)
        counts = json.loads(r["out"].strip().splitlines()[-1])
        out[key] = r["wall"]
        out[key + "_rss"] = r["rss"]
        out[key + "_counts"] = counts
    expected_first = n if shape == "chain" else n + 1
    assert out["first_counts"]["executed"] == expected_first, out
    assert out["cached_counts"]["executed"] == 0, out
    assert out["change_counts"]["executed"] == 1, out
    shutil.rmtree(d)
    return out


def median_of(runs):
    keys = [k for k in runs[0] if not k.endswith("_counts")]
    return {k: statistics.median(r[k] for r in runs) for k in keys}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", type=pathlib.Path)
    ap.add_argument("--skip-zenml", action="store_true")
    args = ap.parse_args()

    sh("cargo", "build", "--release", "--quiet", "-p", "weft-cli", cwd=ROOT)
    sh("cargo", "build", "--release", "--quiet", "--target", "wasm32-wasip2", cwd=ROOT / "tests/guests")
    if not args.skip_zenml:
        ensure_zenml()

    cases = [("chain", 1), ("chain", 10), ("chain", 50), ("chain", 100), ("fanout", 50)]
    results = {"weft": {}, "zenml": {}, "zenml_version": None if args.skip_zenml else zenml_version()}
    with tempfile.TemporaryDirectory() as work:
        for shape, n in cases:
            name = f"{shape}-{n}"
            results["weft"][name] = median_of([weft_case(shape, n, work) for _ in range(args.repeat)])
            if not args.skip_zenml:
                # ZenML is slow: fewer repetitions of its long cases.
                reps = args.repeat if n <= 10 else max(1, args.repeat // 2)
                results["zenml"][name] = median_of([zenml_case(shape, n, work) for _ in range(reps)])
            print(f"done {name}", file=sys.stderr)

    for tool in ("weft", "zenml"):
        r = results[tool]
        if "chain-100" in r and "chain-50" in r:
            r["per_step_ms"] = (r["chain-100"]["first"] - r["chain-50"]["first"]) / 50 * 1000
    print(f"{'case':24} {'weft':>10} {'zenml':>10} {'zenml/weft':>11}")
    for shape, n in cases:
        name = f"{shape}-{n}"
        for k in ("first", "cached", "change"):
            w = results["weft"][name][k]
            z = results["zenml"].get(name, {}).get(k)
            ratio = f"{z / w:10.1f}x" if z else ""
            zs = f"{z:9.2f}s" if z else ""
            print(f"{name + ' ' + k:24} {w:9.3f}s {zs:>10} {ratio:>11}")
    w = results["weft"].get("per_step_ms")
    z = results["zenml"].get("per_step_ms")
    print(f"per-step overhead: weft {w:.2f} ms" + (f", zenml {z:.0f} ms, {z / w:.0f}x" if z else ""))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

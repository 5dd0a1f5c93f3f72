#!/usr/bin/env python3
"""Benchmark: 100 independent trivial steps on each orchestrator, and a chain on Slurm (weft only).

    bash -c 'source tests/slurm.sh; trap stop_slurm EXIT; python3 bench/orchestrators.py [--steps 100] [--repeat 3] [--json OUT]'

Needs SLURM_CONF (tests/slurm.sh starts a private single-node cluster and
sets it). For each of the `local`, `process` and `slurm` orchestrators:
the wall time of `weft run --no-cache --max-parallel STEPS` of STEPS
independent echo steps (the components compiled and cached beforehand).
For Slurm alone: the rate of plain `sbatch --wrap=true` submissions and the
wall time of STEPS such jobs from the first submission to the last job's
end; weft's overhead per step on top of Slurm is the difference of the two
wall times over STEPS. Then a chain of CHAIN echo steps, each reading the
one before, on Slurm: weft queues each step held on the job before it
(`--dependency=afterok`), against CHAIN plain `sbatch --wrap=true` jobs
chained the same way and submitted at once.
"""
import argparse
import json
import os
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


def manifest(n):
    echo = ROOT / "tests/guests/target/wasm32-wasip2/release/echo.wasm"
    lines = ['[pipeline]\nname = "wide"\n']
    for i in range(n):
        lines.append(f'[steps.s{i:03}]\ncomponent = "{echo}"\noutputs = ["out"]\nparams = {{ prefix = "{i}" }}\n')
    return "".join(lines)


def chain_manifest(n):
    echo = ROOT / "tests/guests/target/wasm32-wasip2/release/echo.wasm"
    lines = ['[pipeline]\nname = "chain"\n[inputs]\nraw = { path = "raw.txt" }\n']
    for i in range(n):
        source = "inputs.raw" if i == 0 else f"s{i - 1:03}.out"
        lines.append(f'[steps.s{i:03}]\ncomponent = "{echo}"\ninputs = {{ in = "{source}" }}\noutputs = ["out"]\n')
    return "".join(lines)


def weft_chain(n, repeat, work):
    d = pathlib.Path(tempfile.mkdtemp(dir=work))
    (d / "weft.toml").write_text(chain_manifest(n))
    (d / "raw.txt").write_text("x")
    env = dict(os.environ, WEFT_HOME=str(d / ".weft-home"))
    env.pop("WEFT_STACK", None)
    sh(WEFT, "stack", "create", "slurm", "--orchestrator", "slurm", cwd=d, env=env)
    sh(WEFT, "build", cwd=d, env=env)
    args = [WEFT, "run", "--no-cache", "--stack", "slurm"]
    sh(*args, cwd=d, env=env)  # warm
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        sh(*args, cwd=d, env=env)
        times.append(time.perf_counter() - t)
    shutil.rmtree(d)
    return statistics.median(times)


def slurm_chain_alone(n, repeat):
    walls = []
    for _ in range(repeat):
        t = time.perf_counter()
        ids = []
        for _ in range(n):
            dep = [f"--dependency=afterok:{ids[-1]}"] if ids else []
            ids.append(sh("sbatch", "--parsable", "--output=/dev/null", *dep, "--wrap=true")
                       .stdout.decode().strip().split(";")[0])
        while sh("squeue", "-h", "-j", ",".join(ids), "-t", "PD,R,CG,CF", "-o", "%i").stdout.split():
            time.sleep(0.05)
        walls.append(time.perf_counter() - t)
    return statistics.median(walls)


def weft_runs(n, repeat, work):
    out = {}
    d = pathlib.Path(tempfile.mkdtemp(dir=work))
    (d / "weft.toml").write_text(manifest(n))
    env = dict(os.environ, WEFT_HOME=str(d / ".weft-home"))
    env.pop("WEFT_STACK", None)
    for orchestrator in ("process", "slurm"):
        sh(WEFT, "stack", "create", orchestrator, "--orchestrator", orchestrator, cwd=d, env=env)
    sh(WEFT, "build", cwd=d, env=env)
    for orchestrator in ("local", "process", "slurm"):
        args = [WEFT, "run", "--no-cache", "--max-parallel", n]
        if orchestrator != "local":
            args += ["--stack", orchestrator]
        sh(*args, cwd=d, env=env)  # warm: database, compiled components
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            sh(*args, cwd=d, env=env)
            times.append(time.perf_counter() - t)
        out[orchestrator] = statistics.median(times)
    shutil.rmtree(d)
    return out


def slurm_alone(n, repeat):
    walls, rates = [], []
    for _ in range(repeat):
        t = time.perf_counter()
        ids = [sh("sbatch", "--parsable", "--output=/dev/null", "--wrap=true").stdout.decode().strip().split(";")[0]
               for _ in range(n)]
        submitted = time.perf_counter()
        while True:
            live = sh("squeue", "-h", "-j", ",".join(ids), "-t", "PD,R,CG,CF", "-o", "%i").stdout.split()
            if not live:
                break
            time.sleep(0.05)
        walls.append(time.perf_counter() - t)
        rates.append(n / (submitted - t))
    return {"wall": statistics.median(walls), "sbatch_per_s": statistics.median(rates)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--chain", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json")
    a = ap.parse_args()
    if not os.environ.get("SLURM_CONF"):
        sys.exit("SLURM_CONF is not set: run this under tests/slurm.sh (see the docstring)")
    if not WEFT.exists():
        sh("cargo", "build", "--release", "-p", "weft-cli", cwd=ROOT)
    sh("cargo", "build", "--release", "--target", "wasm32-wasip2", cwd=ROOT / "tests/guests")
    work = tempfile.mkdtemp()
    try:
        weft = weft_runs(a.steps, a.repeat, work)
        slurm = slurm_alone(a.steps, a.repeat)
        chain = weft_chain(a.chain, a.repeat, work)
        chain_alone = slurm_chain_alone(a.chain, a.repeat)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {
        "steps": a.steps,
        "weft_wall_s": weft,
        "slurm_alone_wall_s": slurm["wall"],
        "sbatch_per_s": slurm["sbatch_per_s"],
        "weft_slurm_jobs_per_s": a.steps / weft["slurm"],
        "weft_overhead_per_step_ms": (weft["slurm"] - slurm["wall"]) / a.steps * 1000,
        "chain": {
            "steps": a.chain,
            "weft_slurm_wall_s": chain,
            "slurm_alone_wall_s": chain_alone,
            "weft_overhead_per_step_ms": (chain - chain_alone) / a.chain * 1000,
        },
    }
    print(json.dumps(result, indent=2))
    if a.json:
        pathlib.Path(a.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

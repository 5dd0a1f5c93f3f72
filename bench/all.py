#!/usr/bin/env python3
"""Runs every benchmark, side by side with the peers, and writes BENCHMARKS.md.

    python3 bench/all.py            # about 30-40 minutes on 2 cores
    python3 bench/all.py --quick    # smaller workloads, to check the setup
    python3 bench/all.py --only orchestrators   # rerun some, keep the rest

Installs what it needs: the wasm32-wasip2 target, ZenML into
target/bench-zenml and MLflow into target/bench-venv (from PyPI, each in its
own virtualenv). Runs, on this machine, in one go:

  1. bench/pipelines.py   weft vs ZenML: chains of 1, 10, 50 and 100 steps,
                          a fan-out of 50; first run, cached rerun, one change
     bench/hermetic.py    weft: what determinism costs a step, `weft verify`
                          of the iris run against executing it
     bench/bundle.py      weft: size of the iris bundle, writing it, the cold
                          start of `weft run iris.weft` in an empty directory
     bench/serve.py       weft serve vs mlflow models serve on the iris model
     bench/ml.py          ml/random-forest on breast cancer: in the sandbox,
                          the same crate natively, scikit-learn
     bench/orchestrators.py  weft: 100 independent steps on the local, process
                          and Slurm orchestrators (a private single-node
                          cluster), against Slurm alone
  2. bench/tracking.py    weft server vs mlflow server, one client script
  3. bench/languages.py   per-step cost by step language
  4. memory               from 1 and 2: server RSS idle and under load,
                          peak RSS of `weft run`
  5. cargo bench -p weft-bench   criterion: cache keys, artifact hashing and
                          storing against raw blake3, instantiate + call

Raw results go to target/bench-results/*.json; the tables, with the date,
the machine and every version, to BENCHMARKS.md.
"""
import argparse
import datetime
import json
import os
import pathlib
import platform
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
OUT = ROOT / "target" / "bench-results"
COMMAND = "python3 bench/all.py"


def sh(*args, **kw):
    print("+", " ".join(str(a) for a in args), file=sys.stderr)
    return subprocess.run([str(a) for a in args], check=True, **kw)


def attempt(name, *args):
    """Runs one benchmark script; a failure is reported, not fatal."""
    try:
        sh(*args, cwd=ROOT)
        return None
    except subprocess.CalledProcessError as e:
        return f"{name} failed (exit {e.returncode}); see its output above"


def machine():
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem = int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, Linux {platform.release()}"


def version(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT).stdout.strip().splitlines()[0]
    except (OSError, IndexError):
        return "?"


def locked(crate):
    text = (ROOT / "Cargo.lock").read_text()
    marker = f'name = "{crate}"\nversion = "'
    i = text.find(marker)
    return text[i + len(marker):text.find('"', i + len(marker))] if i >= 0 else "?"


def load(name):
    path = OUT / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def criterion():
    """Mean time (ns) of each criterion benchmark, by its id."""
    results = {}
    base = ROOT / "target" / "criterion"
    for est in base.glob("**/new/estimates.json"):
        bench = est.parent.parent.relative_to(base).as_posix()
        results[bench] = json.loads(est.read_text())["mean"]["point_estimate"]
    return results


def verdict(ok):
    return "**met**" if ok else "**missed**"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", help="rerun only these benchmarks (comma-separated: pipelines, tracking, languages, "
                    "hermetic, bundle, serve, ml, orchestrators, criterion); the other sections keep the "
                    "results of the last run (target/bench-results), and the header says so")
    args = ap.parse_args()
    only = set(args.only.split(",")) if args.only else None
    OUT.mkdir(parents=True, exist_ok=True)

    installed = subprocess.run(["rustup", "target", "list", "--installed"], capture_output=True, text=True).stdout
    if "wasm32-wasip2" not in installed.split():
        sh("rustup", "target", "add", "wasm32-wasip2")
    sh("cargo", "build", "--release", "--quiet", "-p", "weft-cli", cwd=ROOT)
    sh("cargo", "build", "--release", "--quiet", "--target", "wasm32-wasip2", cwd=ROOT / "tests/guests")

    q = args.quick
    benches = [
        ("pipelines", sys.executable, "bench/pipelines.py", "--repeat", 1 if q else 3, "--json", OUT / "pipelines.json"),
        ("tracking", sys.executable, "bench/tracking.py", "--runs", 1000 if q else 10000, "--artifact-mib", 10 if q else 100,
         "--json", OUT / "tracking.json"),
        ("languages", sys.executable, "bench/languages.py", "--runs", 2 if q else 5, "--steps", 5 if q else 20,
         "--json", OUT / "languages.json"),
        ("hermetic", sys.executable, "bench/hermetic.py", "--repeat", 3 if q else 7, "--json", OUT / "hermetic.json"),
        ("bundle", sys.executable, "bench/bundle.py", "--repeat", 2 if q else 5, "--json", OUT / "bundle.json"),
        ("serve", sys.executable, "bench/serve.py", "--seconds", 2 if q else 5, "--json", OUT / "serve.json"),
        ("ml", sys.executable, "bench/ml.py", "--repeat", 3 if q else 7, "--json", OUT / "ml.json"),
        # On a private single-node Slurm cluster, started and stopped here.
        ("orchestrators", "bash", "-c",
         'source tests/slurm.sh && trap stop_slurm EXIT && "$0" bench/orchestrators.py "$@"',
         sys.executable, "--repeat", 1 if q else 3, "--json", OUT / "orchestrators.json"),
    ]
    known = {b[0] for b in benches} | {"criterion"}
    if only and not only <= known:
        sys.exit(f"--only: unknown benchmark {', '.join(sorted(only - known))} (known: {', '.join(sorted(known))})")
    problems = [p for p in [attempt(*b) for b in benches if not only or b[0] in only] if p]
    if not only or "criterion" in only:
        crit_args = ["cargo", "bench", "-p", "weft-bench", "--bench", "hot_paths", "--"]
        if q:
            crit_args += ["--warm-up-time", "1", "--measurement-time", "2"]
        try:
            sh(*crit_args, cwd=ROOT)
        except subprocess.CalledProcessError:
            problems.append("criterion benchmarks failed; see their output above")

    write(problems, q, only)


def header_after(only, now):
    """The header line of an `--only` run: when the last full run was (from
    the BENCHMARKS.md being replaced) and every section rerun since, these
    ones now."""
    base, reruns = "an earlier run", {}
    try:
        header = (ROOT / "BENCHMARKS.md").read_text().splitlines()[2]
    except (OSError, IndexError):
        header = ""
    if " on " in header:
        base = header.split(" on ", 1)[1].split(";")[0].split(". ")[0].rstrip(".")
    if "rerun since with `--only`: " in header:
        for item in header.split("rerun since with `--only`: ", 1)[1].rstrip(".").split("), "):
            name, _, when = item.partition(" (")
            reruns[name] = when.rstrip(")")
    reruns.update({name: now for name in only})
    listed = ", ".join(f"{name} ({when})" for name, when in sorted(reruns.items()))
    return f"Produced by `{COMMAND}` on {base}. Sections rerun since with `--only`: {listed}."


def write(problems, quick, only=None):
    pipes, track, langs, crit = load("pipelines"), load("tracking"), load("languages"), criterion()
    hermetic = load("hermetic")
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Benchmarks",
        "",
        (f"Produced by `{COMMAND}`{' --quick' if quick else ''} on {now}." if not only else header_after(only, now)),
        "",
        f"- Machine: {machine()}",
        f"- weft {version([str(ROOT / 'target/release/weft'), '--version']).split()[-1]} "
        f"(wasmtime {locked('wasmtime')}, {version(['rustc', '--version'])})",
        f"- ZenML {pipes.get('zenml_version') if pipes else '?'} (local orchestrator, default SQLite store), "
        f"MLflow {track.get('mlflow_version') if track else '?'} (`mlflow server`, SQLite)",
        "",
        "Every table is the same workload run on weft and on the peer, in one run, on this machine.",
        "",
    ]
    if problems:
        lines += ["**Not everything ran:** " + "; ".join(problems), ""]

    if pipes:
        lines += [
            "## Pipelines: weft vs ZenML",
            "",
            "Trivial steps (prepend a prefix to the input). Whole processes, as a user runs them; "
            "median seconds. *Change* alters one param so that exactly one step reruns.",
            "",
            "| workload | weft | ZenML | ZenML / weft |",
            "|---|---|---|---|",
        ]
        for case in ("chain-1", "chain-10", "chain-50", "chain-100", "fanout-50"):
            w, z = pipes["weft"].get(case), pipes["zenml"].get(case)
            if not w:
                continue
            for k, label in (("first", "first run"), ("cached", "cached rerun"), ("change", "one-param change")):
                zs = f"{z[k]:.2f}" if z else "—"
                ratio = f"{z[k] / w[k]:.0f}×" if z else "—"
                lines.append(f"| {case} {label} | {w[k]:.3f} | {zs} | {ratio} |")
        w, z = pipes["weft"].get("per_step_ms"), pipes["zenml"].get("per_step_ms")
        lines += ["", "| per-step overhead, (chain-100 − chain-50) / 50 | weft | ZenML | ratio |", "|---|---|---|---|"]
        if w and z:
            lines.append(f"| ms per step | {w:.2f} | {z:.0f} | {z / w:.0f}× |")
        elif w:
            lines.append(f"| ms per step | {w:.2f} | — | ZenML did not run |")
        weft_runs = pipes["weft"]
        targets = []
        if w:
            targets.append(("marginal overhead per executed step", f"{w:.2f} ms", "≤ 0.5 ms", w <= 0.5))
        if "chain-1" in weft_runs:
            fixed = weft_runs["chain-1"]["first"] * 1000
            targets.append(("fixed cost of a 1-step run (first run, fresh state)", f"{fixed:.1f} ms", "≤ 15 ms", fixed <= 15))
        if "chain-50" in weft_runs:
            cached = weft_runs["chain-50"]["cached"] * 1000
            targets.append(("fully cached 50-step rerun", f"{cached:.1f} ms", "≤ 20 ms", cached <= 20))
        if hermetic:
            d, v = hermetic["determinism"], hermetic["verify"]
            targets.append((
                "determinism (virtual time, seeded randomness) per step",
                f"{d['cost_per_step_ms']:.3f} ms, {d['share_of_step']:.1%} of a step",
                "≤ 5% of a step", d["share_of_step"] <= 0.05,
            ))
            targets.append((
                "`weft verify` of the iris run vs executing it",
                f"{v['verify_s'] * 1000:.0f} ms vs {v['run_s'] * 1000:.0f} ms ({v['ratio']:.2f}×)",
                "≤ 2×", v["ratio"] <= 2,
            ))
        if targets:
            lines += ["", "| hermetic steps: target | weft | target | |", "|---|---|---|---|"]
            for name, value, target, ok in targets:
                lines.append(f"| {name} | {value} | {target} | {verdict(ok)} |")
        peak = max((v.get("first_rss", 0) for v in pipes["weft"].values() if isinstance(v, dict)), default=0)
        zpeak = max((v.get("first_rss", 0) for v in pipes["zenml"].values() if isinstance(v, dict)), default=0)
        lines += ["", f"Peak RSS of a whole run: `weft run` {peak:.0f} MiB, ZenML {zpeak:.0f} MiB (largest case).", ""]

    if track:
        lines += [
            "## Tracking: weft server vs mlflow server",
            "",
            "One mlflow-client script against each server (SQLite both). *Raw HTTP* sends the same "
            "requests pre-serialized, without the Python client's own cost.",
            "",
            "| measure | MLflow | weft | weft / MLflow |",
            "|---|---|---|---|",
        ]
        for key, m in track["mlflow"].items():
            wv = track["weft"][key]
            lower = key.endswith("(ms)") or key.endswith("(s)") or key.endswith("(MiB)")
            ratio = m / wv if lower else wv / m
            lines.append(f"| {key} | {m:,.1f} | {wv:,.1f} | {ratio:.1f}× |")
        def ratio_of(key, lower):
            m, wv = track["mlflow"].get(key), track["weft"].get(key)
            return (m / wv if lower else wv / m) if m and wv else 0
        batch = ratio_of("log-batch, raw HTTP (metrics/s)", False)
        search = next((ratio_of(k, True) for k in track["mlflow"] if k.startswith("search_runs") and "raw" in k), 0)
        cbatch = ratio_of("log-batch (metrics/s)", False)
        csearch = next((ratio_of(k, True) for k in track["mlflow"] if k.startswith("search_runs") and "raw" not in k), 0)
        lines += [
            "",
            "| target: ≥ 20× MLflow | server (raw HTTP) | through the Python client |",
            "|---|---|---|",
            f"| log-batch | {batch:.1f}× {verdict(batch >= 20)} | {cbatch:.1f}× {verdict(cbatch >= 20)} |",
            f"| search_runs | {search:.1f}× {verdict(search >= 20)} | {csearch:.1f}× {verdict(csearch >= 20)} |",
            "",
            "Through the client, its own Python work (building each batch, parsing each page) sets a floor "
            "no server can remove; the raw column is what each server takes.",
            "",
        ]

    bundle = load("bundle")
    if bundle:
        lines += [
            "## Bundles: the iris pipeline in one file (weft)",
            "",
            "`weft bundle --with-data`, then `weft run iris.weft` in an empty directory; median of "
            "runs, whole processes.",
            "",
            "| measure | value |",
            "|---|---|",
            f"| bundle size (with its data) | {bundle['bundle_bytes'] / 1e6:.2f} MB "
            f"({bundle['component_bytes'] / 1e6:.2f} MB of components) |",
            f"| writing it | {bundle['write_s'] * 1000:.0f} ms |",
            f"| cold start: first run in an empty directory (check, compile 4 components, run) | "
            f"{bundle['cold_s'] * 1000:.0f} ms |",
            f"| second run (all cache hits) | {bundle['warm_s'] * 1000:.0f} ms |",
            f"| from the sources, compiled, every step executing | {bundle['source_s'] * 1000:.0f} ms |",
        ]
        for build, (size, stripped) in bundle.get("binaries", {}).items():
            lines.append(f"| the `weft` binary, {build} | {stripped / 1e6:.0f} MB stripped ({size / 1e6:.0f} MB as built) |")
        lines.append("")

    serve = load("serve")
    if serve:
        w, m = serve["weft"], serve["mlflow"]
        lines += [
            "## Serving the iris model: `weft serve` vs `mlflow models serve`",
            "",
            f"The same softmax regression: weft's sandboxed model server (`--instances 2`) and an MLflow "
            f"{serve['mlflow_version']} pyfunc model doing the same with numpy (`--workers 2`, "
            f"`--env-manager local`). One-row `dataframe_split` requests for {serve['seconds']:.0f} s per "
            "client count, keep-alive connections.",
            "",
            "| measure | weft serve | mlflow models serve | mlflow / weft |",
            "|---|---|---|---|",
            f"| start-up to the first prediction | {w['startup_s']:.2f} s | {m['startup_s']:.2f} s | "
            f"{m['startup_s'] / w['startup_s']:.0f}× |",
        ]
        for c in ("c1", "c16"):
            n = c[1:]
            lines += [
                f"| requests/s, {n} client(s) | {w[c]['rps']:,.0f} | {m[c]['rps']:,.0f} | "
                f"{m[c]['rps'] / w[c]['rps']:.2f}× |",
                f"| p50 / p99 latency, {n} client(s) | {w[c]['p50_ms']:.2f} / {w[c]['p99_ms']:.2f} ms | "
                f"{m[c]['p50_ms']:.2f} / {m[c]['p99_ms']:.2f} ms | |",
            ]
        lines += [
            f"| resident memory after the load | {w['rss_mib']:.0f} MiB | {m['rss_mib']:.0f} MiB | "
            f"{m['rss_mib'] / w['rss_mib']:.0f}× |",
            "",
        ]

    ml = load("ml")
    if ml:
        lines += [
            "## A random forest in the sandbox: `ml/random-forest` on breast cancer",
            "",
            f"100 trees, √features per split, on the same {ml['rows']['train']} training rows "
            f"(held-out: {ml['rows']['test']}); median seconds. The sandbox's time is the whole step "
            "(reading its table, writing its model); the native one is the same smartcore code fitting "
            "alone. smartcore is built with `std_rand` (rand's StdRng, the same stream on every target), "
            "so both grow the same forest from the same seed. scikit-learn's is its own forest "
            "(the accuracy of its last seed).",
            "",
            "| | weft sandbox (wasm32) | same crate, native | scikit-learn |",
            "|---|---|---|---|",
            f"| fit time | {ml['sandbox_s']:.3f} s | {ml['native_s']:.3f} s | {ml['sklearn_s']:.3f} s |",
            f"| held-out accuracy | {ml['sandbox_accuracy']:.3f} | {ml['native_accuracy']:.3f} | "
            f"{ml['sklearn_accuracy']:.3f} |",
            "",
        ]

    orch = load("orchestrators")
    if orch:
        n, w = orch["steps"], orch["weft_wall_s"]
        lines += [
            f"## Orchestrators: {n} independent trivial steps (weft)",
            "",
            "`weft run --no-cache` of one run, median seconds; Slurm is a private single-node cluster "
            "on this machine (`tests/slurm.sh`), each step one batch job running `weft step exec`.",
            "",
            "| orchestrator | wall time | per step |",
            "|---|---|---|",
        ]
        for name in ("local", "process", "slurm"):
            lines.append(f"| {name} | {w[name]:.2f} s | {w[name] / n * 1000:.1f} ms |")
        lines += [
            f"| Slurm alone: {n} × `sbatch --wrap=true`, submitted to last job's end | {orch['slurm_alone_wall_s']:.2f} s | "
            f"{orch['slurm_alone_wall_s'] / n * 1000:.1f} ms |",
            "",
            f"- `sbatch` submissions: {orch['sbatch_per_s']:.0f} per second; weft's Slurm runs end to end: "
            f"{orch['weft_slurm_jobs_per_s']:.1f} jobs per second.",
            f"- What weft adds on top of Slurm's own job start: {orch['weft_overhead_per_step_ms']:.0f} ms per step "
            "(the worker process: opening the stores, claiming, loading the compiled component, recording)"
            + ("; below the noise of Slurm's scheduling, which started weft's jobs sooner than the plain ones."
               if orch["weft_overhead_per_step_ms"] < 0 else "."),
        ]
        chain = orch.get("chain")
        if chain:
            c = chain["steps"]
            lines += [
                f"- A chain of {c} steps, each reading the one before, on Slurm: weft {chain['weft_slurm_wall_s']:.2f} s "
                f"end to end, against {chain['slurm_alone_wall_s']:.2f} s for {c} plain `sbatch --wrap=true` jobs "
                f"chained with `--dependency=afterok` and submitted at once: "
                f"{chain['weft_overhead_per_step_ms']:.0f} ms per step more (weft queues each step held on the job "
                "before it, and its worker completes the step's inputs and cache key when it starts).",
            ]
        lines.append("")

    if langs:
        lines += [
            "## Sandbox: per-step cost by language (weft)",
            "",
            "| language | component | first compile | instantiate + call | per step run |",
            "|---|---|---|---|---|",
        ]
        for r in langs:
            lines.append(
                f"| {r['language']} | {r['component_mb']:.1f} MB | {r['first_compile_s']:.2f} s | "
                f"{r['instantiate_call_ms']:.2f} ms | {r['per_step_ms']:.2f} ms |"
            )
        lines.append("")

    if crit:
        lines += ["## Hot paths (criterion, `cargo bench -p weft-bench`)", "", "| benchmark | mean | throughput |", "|---|---|---|"]
        for bench, ns in sorted(crit.items()):
            mib = next((int(p) for p in bench.split("/") if p.isdigit()), None) if bench.startswith("artifact") else None
            tput = f"{(mib << 20) / ns:.2f} GB/s" if mib else ""
            shown = f"{ns / 1e6:.3f} ms" if ns > 1e5 else f"{ns / 1e3:.2f} µs" if ns > 1e3 else f"{ns:.0f} ns"
            lines.append(f"| {bench} | {shown} | {tput} |")
        lines.append("")
        for mib in (1, 64):
            raw = crit.get(f"artifact/raw blake3/{mib}")
            store = crit.get(f"artifact/store a step output/{mib}")
            ingest = crit.get(f"artifact/ingest a user's file/{mib}")
            if raw and store:
                share = raw / store
                lines.append(
                    f"- {mib} MiB: storing a step's output runs at {share:.0%} of raw blake3 speed "
                    f"(target ≥ 80%: {verdict(share >= 0.8)})"
                    + (f"; ingesting a user's file (a copy is kept) at {raw / ingest:.0%}" if ingest else "")
                    + "."
                )
        lines.append("")

    (ROOT / "BENCHMARKS.md").write_text("\n".join(lines))
    print(f"wrote BENCHMARKS.md", file=sys.stderr)


if __name__ == "__main__":
    main()

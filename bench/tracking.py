#!/usr/bin/env python3
"""Benchmark: the same mlflow-client workload against `mlflow server` and
`weft server`, both on SQLite, on this machine, in one run.

    python3 bench/tracking.py [--runs 10000] [--artifact-mib 100]

Installs mlflow (the full package, for its server) into target/bench-venv on
first use. Measures: log-batch throughput (1000 metrics per call), single
log-metric calls per second, search_runs with a filter over --runs runs,
the upload and download of one --artifact-mib MiB artifact, model
registration (versions per second), and each server's memory: RSS idle
after start-up and peak RSS after the workload (the whole process tree).
With --json OUT, writes the results there too.
"""
import argparse
import concurrent.futures
import json
import os
import pathlib
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
VENV = ROOT / "target" / "bench-venv"


def ensure_mlflow():
    try:
        import mlflow  # noqa: F401
        import mlflow.server  # noqa: F401
    except ImportError:
        python = VENV / "bin" / "python"
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
            subprocess.run([str(python), "-m", "pip", "install", "-q", "mlflow"], check=True)
        os.execv(str(python), [str(python), *sys.argv])


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url, proc, timeout=120):
    import urllib.request

    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited early with {proc.returncode}")
        try:
            urllib.request.urlopen(url + "/health", timeout=1).read()
            return
        except Exception:
            time.sleep(0.05)
    raise SystemExit(f"{url} did not come up")


def start_mlflow(work):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{work}/mlflow.db", "--artifacts-destination", f"{work}/mlflow-artifacts"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_up(url, proc)
    return proc, url


def start_weft(work):
    port = free_port()
    proc = subprocess.Popen(
        [str(ROOT / "target" / "release" / "weft"), "--state-dir", f"{work}/weft", "server", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_up(url, proc)
    return proc, url


def tree_kib(pid, field):
    """Sum of a /proc status field (VmRSS, VmHWM) over a process and its
    descendants, in KiB."""
    pids, total = [pid], 0
    while pids:
        p = pids.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith(field + ":"):
                        total += int(line.split()[1])
            with open(f"/proc/{p}/task/{p}/children") as f:
                pids.extend(int(c) for c in f.read().split())
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


def workload(url, args, work):
    import mlflow
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(url)
    client = MlflowClient(url)
    results = {}
    exp = client.create_experiment(f"bench-{time.time_ns()}")

    # log-batch: 1000 metrics per call.
    run = client.create_run(exp).info.run_id
    now = int(time.time() * 1000)
    calls = args.batches
    t = time.perf_counter()
    for b in range(calls):
        client.log_batch(run, metrics=[Metric("loss", 1.0 / (i + 1), now, b * 1000 + i) for i in range(1000)])
    results["log-batch (metrics/s)"] = calls * 1000 / (time.perf_counter() - t)

    # Single log-metric calls.
    n = args.single
    t = time.perf_counter()
    for i in range(n):
        client.log_metric(run, "single", float(i), step=i)
    results["log-metric (calls/s)"] = n / (time.perf_counter() - t)

    # search_runs with a filter over many runs (created in parallel).
    def make(i):
        r = client.create_run(exp).info.run_id
        client.log_batch(r, metrics=[Metric("acc", (i % 100) / 100, now, 0)], params=[Param("model", "cnn" if i % 2 else "mlp")])
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(make, range(args.runs)))
    times = []
    for _ in range(5):
        t = time.perf_counter()
        found = client.search_runs([exp], filter_string="metrics.acc > 0.5 and params.model = 'cnn'", max_results=1000)
        times.append(time.perf_counter() - t)
    results[f"search_runs over {args.runs} runs (ms)"] = statistics.median(times) * 1000
    assert len(found) > 0

    # The same calls without the client's own cost (it builds and parses
    # every request in Python): pre-serialized JSON over one keep-alive
    # connection, responses not parsed. This is what each server takes.
    import json
    import requests

    session = requests.Session()
    api = url + "/api/2.0/mlflow"
    bodies = [
        json.dumps({"run_id": run, "metrics": [{"key": "raw", "value": 1.0 / (i + 1), "timestamp": now, "step": b * 1000 + i} for i in range(1000)]})
        for b in range(calls)
    ]
    t = time.perf_counter()
    for body in bodies:
        session.post(f"{api}/runs/log-batch", data=body, headers={"Content-Type": "application/json"}).raise_for_status()
    results["log-batch, raw HTTP (metrics/s)"] = calls * 1000 / (time.perf_counter() - t)
    search = json.dumps({"experiment_ids": [exp], "filter": "metrics.acc > 0.5 and params.model = 'cnn'", "max_results": 1000})
    times = []
    for _ in range(5):
        t = time.perf_counter()
        session.post(f"{api}/runs/search", data=search, headers={"Content-Type": "application/json"}).raise_for_status()
        times.append(time.perf_counter() - t)
    results[f"search_runs over {args.runs} runs, raw HTTP (ms)"] = statistics.median(times) * 1000

    # Artifact upload and download.
    blob = pathlib.Path(work) / "blob.bin"
    if not blob.exists():
        with open(blob, "wb") as f:
            f.write(os.urandom(args.artifact_mib << 20))
    art_run = client.create_run(exp).info.run_id
    t = time.perf_counter()
    client.log_artifact(art_run, str(blob))
    results[f"artifact upload {args.artifact_mib} MiB (s)"] = time.perf_counter() - t
    dst = tempfile.mkdtemp(dir=work)
    t = time.perf_counter()
    client.download_artifacts(art_run, "blob.bin", dst)
    results[f"artifact download {args.artifact_mib} MiB (s)"] = time.perf_counter() - t
    shutil.rmtree(dst)

    # Model registration: versions of one registered model, then an alias.
    model = f"bench-model-{time.time_ns()}"
    client.create_registered_model(model)
    n = args.versions
    t = time.perf_counter()
    for i in range(n):
        client.create_model_version(model, f"runs:/{art_run}/model", art_run)
    results["model registration (versions/s)"] = n / (time.perf_counter() - t)
    client.set_registered_model_alias(model, "champion", "1")
    assert client.get_model_version_by_alias(model, "champion").version == "1"
    return results


def main():
    ensure_mlflow()
    import mlflow

    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--single", type=int, default=500)
    ap.add_argument("--artifact-mib", type=int, default=100)
    ap.add_argument("--versions", type=int, default=100)
    ap.add_argument("--json", type=pathlib.Path)
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "weft-cli"], cwd=ROOT, check=True)

    table = {}
    with tempfile.TemporaryDirectory() as work:
        for name, start in [("mlflow", start_mlflow), ("weft", start_weft)]:
            proc, url = start(work)
            try:
                time.sleep(1)
                idle = tree_kib(proc.pid, "VmRSS") / 1024
                table[name] = workload(url, args, work)
                table[name]["server RSS idle (MiB)"] = idle
                table[name]["server peak RSS under load (MiB)"] = tree_kib(proc.pid, "VmHWM") / 1024
            finally:
                proc.terminate()
                proc.wait(timeout=30)

    print(f"mlflow {mlflow.__version__} server vs weft server, SQLite, same client script")
    print(f"{'measure':42} {'mlflow':>12} {'weft':>12} {'weft/mlflow':>12}")
    for key in table["mlflow"]:
        m, w = table["mlflow"][key], table["weft"][key]
        lower_is_better = key.endswith("(ms)") or key.endswith("(s)") or key.endswith("(MiB)")
        ratio = m / w if lower_is_better else w / m
        print(f"{key:42} {m:12.1f} {w:12.1f} {ratio:11.1f}x")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"mlflow_version": mlflow.__version__, **table}, indent=2))


if __name__ == "__main__":
    main()

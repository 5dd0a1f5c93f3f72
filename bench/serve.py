#!/usr/bin/env python3
"""Benchmark: serving the iris model, `weft serve` vs `mlflow models serve`.

    python3 bench/serve.py [--seconds 5] [--json OUT]

The same softmax-regression model (trained by the iris pipeline) is served
by weft's iris model server (a sandboxed WebAssembly component) and by an
MLflow pyfunc model that computes the same thing with numpy, each with two
workers (weft: `--instances 2`; mlflow: `--workers 2`, `--env-manager
local`). Each server answers one-row `dataframe_split` requests from 1 and
from 16 concurrent clients (Python threads with keep-alive connections)
for `--seconds`: requests/s, p50 and p99 latency. Also: start-up time to
the first prediction, and resident memory (the server and its children)
after the load.

Installs mlflow into target/bench-venv, as bench/tracking.py does.
"""
import argparse
import http.client
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from tracking import ensure_mlflow, free_port, tree_kib  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
WEFT = ROOT / "target/release/weft"
ROW = {"dataframe_split": {"columns": ["sepal_length", "sepal_width", "petal_length", "petal_width"],
                           "data": [[6.7, 3.0, 5.2, 2.3]]}}

PYFUNC = '''
import json
import mlflow.pyfunc
import numpy as np


class Softmax(mlflow.pyfunc.PythonModel):
    """The iris softmax regression, as weft's train step writes it."""

    def load_context(self, context):
        with open(context.artifacts["model"]) as f:
            m = json.load(f)
        self.features = m["features"]
        self.classes = m["classes"]
        self.mean, self.std = np.array(m["mean"]), np.array(m["std"])
        self.w, self.b = np.array(m["weights"]), np.array(m["bias"])

    def predict(self, context, model_input, params=None):
        x = (model_input[self.features].to_numpy(dtype=float) - self.mean) / self.std
        logits = x @ self.w.T + self.b
        return [self.classes[i] for i in logits.argmax(axis=1)]
'''


def sh(*args, **kw):
    return subprocess.run([str(a) for a in args], check=True, capture_output=True, **kw)


def post(conn, body):
    conn.request("POST", "/invocations", body=body, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    data = response.read()
    if response.status != 200:
        raise RuntimeError(f"HTTP {response.status}: {data[:200]!r}")
    return json.loads(data)


def first_answer(port, proc, started, log, timeout=300):
    """Seconds from `started` to the first prediction."""
    body = json.dumps(ROW)
    while time.perf_counter() - started < timeout:
        if proc.poll() is not None:
            tail = pathlib.Path(log).read_text(errors="replace")[-2000:]
            raise SystemExit(f"the server exited with {proc.returncode}:\n{tail}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            answer = post(conn, body)
            conn.close()
            return time.perf_counter() - started, answer
        except (OSError, RuntimeError, http.client.HTTPException):
            time.sleep(0.02)
    raise SystemExit("the server did not answer")


def load(port, clients, seconds):
    """(requests/s, p50 ms, p99 ms) with `clients` concurrent clients."""
    body = json.dumps(ROW)
    stop = time.perf_counter() + seconds
    latencies, errors = [], []

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine = []
        try:
            while time.perf_counter() < stop:
                t = time.perf_counter()
                post(conn, body)
                mine.append(time.perf_counter() - t)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))
        latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise SystemExit(f"requests failed: {errors[:3]}")
    latencies.sort()
    p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1e3  # noqa: E731
    return len(latencies) / elapsed, p(0.5), p(0.99)


def measure(name, command, port, seconds, log):
    started = time.perf_counter()
    # mlflow starts `uvicorn` by name: the venv's bin must be on PATH.
    env = dict(os.environ, PATH=f"{pathlib.Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        startup, answer = first_answer(port, proc, started, log)
        result = {"startup_s": startup, "prediction": answer["predictions"]}
        for clients in (1, 16):
            rps, p50, p99 = load(port, clients, seconds)
            result[f"c{clients}"] = {"rps": rps, "p50_ms": p50, "p99_ms": p99}
        result["rss_mib"] = tree_kib(proc.pid, "VmRSS") / 1024
        print(f"{name}: {json.dumps(result)}", file=sys.stderr)
        return result
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def main():
    ensure_mlflow()
    import mlflow
    import mlflow.pyfunc

    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--json")
    args = ap.parse_args()
    sh("cargo", "build", "--release", "--quiet", "-p", "weft-cli", cwd=ROOT)
    iris = ROOT / "examples/iris"
    sh("cargo", "build", "--release", "--quiet", "--target", "wasm32-wasip2", cwd=iris)
    work = pathlib.Path(tempfile.mkdtemp(prefix="weft-bench-serve-"))
    try:
        state = work / "weft"
        sh(WEFT, "--state-dir", state, "run", cwd=iris)
        sh(WEFT, "--state-dir", state, "models", "alias", "iris-softmax", "champion", "1", cwd=iris)
        model_json = work / "model.json"
        model_json.write_bytes(sh(WEFT, "--state-dir", state, "artifacts", "get", "iris/train.model", cwd=iris).stdout)

        (work / "softmax_model.py").write_text(PYFUNC)
        sys.path.insert(0, str(work))
        from softmax_model import Softmax

        saved = work / "mlflow-model"
        mlflow.pyfunc.save_model(str(saved), python_model=Softmax(), artifacts={"model": str(model_json)},
                                 code_paths=[str(work / "softmax_model.py")])

        port = free_port()
        weft = measure("weft serve", [str(WEFT), "--state-dir", str(state), "serve",
                                      "models:/iris-softmax@champion", "--port", str(port), "--instances", "2"],
                       port, args.seconds, work / "weft-serve.log")
        port = free_port()
        mlflow_result = measure("mlflow models serve", [sys.executable, "-m", "mlflow", "models", "serve", "-m",
                                                        str(saved), "-p", str(port), "--env-manager", "local",
                                                        "--workers", "2"], port, args.seconds,
                               work / "mlflow-serve.log")
        if weft["prediction"] != mlflow_result["prediction"]:
            raise SystemExit(f"the servers disagree: {weft['prediction']} vs {mlflow_result['prediction']}")
        out = {"mlflow_version": mlflow.__version__, "seconds": args.seconds, "weft": weft, "mlflow": mlflow_result}
        print(json.dumps(out, indent=2))
        if args.json:
            pathlib.Path(args.json).write_text(json.dumps(out, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

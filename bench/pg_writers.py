#!/usr/bin/env python3
"""Benchmark: concurrent writers on PostgreSQL.

16 writers, each logging 5,000 metric points (50 log-batch calls of 100)
to a run of its own, at the same time, through `weft server` on a fresh
PostgreSQL database. Prints points per second and the wall time.

Give several binaries to compare them (e.g. one built before a change):
    python3 bench/pg_writers.py --postgres postgres://... target/release/weft /tmp/weft-old
The server defaults to $WEFT_TEST_POSTGRES (tests/postgres.sh starts one).
"""
import argparse
import concurrent.futures
import os
import statistics
import sys
import tempfile
import time
import uuid

import requests

# The helper that starts a server and reads its address, shared with the tests.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import server_process  # noqa: E402


def run_once(binary, postgres, writers, points, batch):
    db = f"{postgres.rstrip('/')}/weft_bench_{uuid.uuid4().hex}"
    with tempfile.TemporaryDirectory() as state:
        env = dict(os.environ, WEFT_DB=db)
        server = server_process.start([binary, "--state-dir", state, "server", "--port", "0"], env=env)
        try:
            api = server.url + "/api/2.0/mlflow"
            s = requests.Session()
            exp = s.post(f"{api}/experiments/create", json={"name": "writers"}).json()["experiment_id"]
            runs = [s.post(f"{api}/runs/create", json={"experiment_id": exp}).json()["run"]["info"]["run_id"] for _ in range(writers)]
            now = int(time.time() * 1000)

            def write(run):
                session = requests.Session()
                for b in range(points // batch):
                    metrics = [{"key": "loss", "value": 1.0 / (i + 1), "timestamp": now, "step": b * batch + i} for i in range(batch)]
                    session.post(f"{api}/runs/log-batch", json={"run_id": run, "metrics": metrics}).raise_for_status()

            t = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(writers) as pool:
                list(pool.map(write, runs))
            wall = time.perf_counter() - t
            # Every point arrived.
            history = s.get(f"{api}/metrics/get-history", params={"run_id": runs[-1], "metric_key": "loss"}).json()
            assert len(history["metrics"]) == points, len(history["metrics"])
            return wall
        finally:
            server.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binaries", nargs="+")
    ap.add_argument("--postgres", default=os.environ.get("WEFT_TEST_POSTGRES"))
    ap.add_argument("--writers", type=int, default=16)
    ap.add_argument("--points", type=int, default=5000)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    if not args.postgres:
        sys.exit("no PostgreSQL server: pass --postgres URL or set WEFT_TEST_POSTGRES")
    walls = {b: [] for b in args.binaries}
    for _ in range(args.repeat):
        for b in args.binaries:  # interleaved, so drift hits all alike
            walls[b].append(run_once(b, args.postgres, args.writers, args.points, args.batch))
    total = args.writers * args.points
    print(f"{args.writers} writers x {args.points} points (log-batch of {args.batch}) on PostgreSQL, {args.repeat} repetitions")
    for b, w in walls.items():
        m = statistics.median(w)
        print(f"  {b}: median {m:.2f} s, {total / m:,.0f} points/s")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Benchmark: the random forest of ml/random-forest on breast cancer, inside
the sandbox, natively, and scikit-learn's on the same rows.

    python3 bench/ml.py [--repeat 5] [--json OUT]

examples/breast-cancer runs once (compiling its components); then
`weft run --no-cache` runs it again `--repeat` times and the forest step's
time (as the run records it: start to end of the step, loading its input
and writing its model included) is the sandbox's. The same train and test
rows (the split step's outputs) go to the same smartcore code built
natively (steps/ml/common/examples/forest.rs) and to scikit-learn's
RandomForestClassifier with the same hyper-parameters (100 trees, √features
per split, bootstrap). Medians; held-out accuracy of each.

scikit-learn comes from the venv bench/tracking.py makes (mlflow brings it).
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

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from tracking import ensure_mlflow  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
WEFT = ROOT / "target/release/weft"


def weft(args, cwd):
    out = subprocess.run([str(WEFT), *args], cwd=cwd, check=True, capture_output=True)
    return out.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json")
    args = ap.parse_args()
    ensure_mlflow()
    import numpy as np
    from sklearn.ensemble import RandomForestClassifier

    subprocess.run(["cargo", "build", "--release", "--quiet", "--example", "forest", "-p", "ml-common",
                    "--manifest-path", str(ROOT / "steps/Cargo.toml")], check=True)
    native_bin = ROOT / "steps/target/release/examples/forest"
    work = pathlib.Path(tempfile.mkdtemp())
    try:
        project = work / "breast-cancer"
        shutil.copytree(ROOT / "examples/breast-cancer", project, ignore=shutil.ignore_patterns(".weft"))
        weft(["run"], project)
        sandbox = []
        for _ in range(args.repeat):
            weft(["run", "--no-cache"], project)
            detail = json.loads(weft(["runs", "show", "latest", "--json"], project))
            forest = next(s for s in detail["steps"] if s["step_name"] == "forest")
            sandbox.append((forest["ended_at"] - forest["started_at"]) / 1000)
        metrics = {m["key"]: m["value"] for m in detail["metrics"] if m["step_run_id"] in
                   {s["id"] for s in detail["steps"] if s["step_name"] == "evaluate_forest"}}
        for side in ("train", "test"):
            (work / f"{side}.csv").write_bytes(weft(["artifacts", "get", f"breast-cancer/split.{side}"], project))

        native = [json.loads(subprocess.run([str(native_bin), str(work / "train.csv"), str(work / "test.csv"), "100", "1"],
                                            check=True, capture_output=True, text=True).stdout)
                  for _ in range(args.repeat)]

        def load(side):
            rows = np.loadtxt(work / f"{side}.csv", delimiter=",", skiprows=1)
            return rows[:, :-1], rows[:, -1].astype(int)

        (xt, yt), (xh, yh) = load("train"), load("test")
        sk, sk_acc = [], None
        for seed in range(args.repeat):
            clf = RandomForestClassifier(n_estimators=100, max_features="sqrt", random_state=seed, n_jobs=1)
            t = time.perf_counter()
            clf.fit(xt, yt)
            sk.append(time.perf_counter() - t)
            sk_acc = float((clf.predict(xh) == yh).mean())
        result = {
            "rows": {"train": int(len(yt)), "test": int(len(yh))},
            "sandbox_s": statistics.median(sandbox),
            "sandbox_accuracy": metrics.get("accuracy"),
            "native_s": statistics.median(r["fit_s"] for r in native),
            "native_accuracy": native[0]["accuracy"],
            "sklearn_s": statistics.median(sk),
            "sklearn_accuracy": sk_acc,
        }
        result["wasm_tax"] = result["sandbox_s"] / result["native_s"]
        print(json.dumps(result, indent=2))
        if args.json:
            pathlib.Path(args.json).write_text(json.dumps(result))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

"""A training script logs with the official mlflow client only; its runs
and traces show in the dashboard's Experiments pages (headless Chromium,
driven by tests/ui/experiments.test.mjs) beside a pipeline's experiment."""
import json
import os
import pathlib
import shutil
import subprocess
import urllib.error
import urllib.request

import mlflow
import pytest
from mlflow.entities import Dataset, DatasetInput, InputTag
from mlflow.tracking import MlflowClient

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"


def test_client_logged_runs_show_in_the_dashboard(weft_server, tmp_path, monkeypatch):
    ui = ROOT / "tests" / "ui"
    if not (pathlib.Path(CHROMIUM).exists() and (ui / "node_modules" / "playwright-core").exists() and shutil.which("node")):
        pytest.skip("Chromium, Node.js and tests/ui/node_modules are needed (tests/run.sh installs them)")
    client = MlflowClient()
    # A pipeline run, by `weft run`: its experiment, its run and step runs.
    weft = os.environ["WEFT_BIN"]
    iris = ROOT / "examples" / "iris"
    subprocess.run([weft, "-f", str(iris), "build"], check=True, capture_output=True)
    subprocess.run([weft, "-f", str(iris), "run"], check=True, capture_output=True)
    pipeline = client.get_experiment_by_name("iris").experiment_id
    old = client.create_experiment("old-trials")
    client.delete_experiment(old)

    # The training script: nothing but the mlflow client.
    mlflow.set_experiment("iris-sklearn")
    (tmp_path / "report.txt").write_text("accuracy 0.93\n")
    for name, c, acc in [("logreg-c1", 1.0, 0.93), ("logreg-c10", 10.0, 0.91)]:
        with mlflow.start_run(run_name=name) as run:
            mlflow.log_params({"C": c, "solver": "lbfgs"})
            for step in range(10):
                mlflow.log_metric("loss", 1.0 / (step + 1) + 0.1 / c, step=step)
            mlflow.log_metric("accuracy", acc)
            mlflow.set_tags({"team": "vision"})
            mlflow.log_artifact(str(tmp_path / "report.txt"))
            model_dir = tmp_path / f"model-{name}"
            model_dir.mkdir()
            (model_dir / "weights.json").write_text('{"C": %s}' % c)
            mlflow.log_artifacts(str(model_dir), artifact_path="model")
            client.log_inputs(run.info.run_id, [DatasetInput(
                Dataset(name="iris", digest="d41d8cd9", source_type="local", source='{"uri": "iris.csv"}'),
                [InputTag("mlflow.data.context", "training")])])
            if name == "logreg-c1":
                run_id = run.info.run_id
                # A traced prediction: a root span and two nested ones.
                monkeypatch.setenv("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")

                @mlflow.trace(name="predict", span_type="CHAIN")
                def predict(rows):
                    with mlflow.start_span(name="features", span_type="PARSER") as span:
                        span.set_inputs({"rows": rows})
                        with mlflow.start_span(name="scale") as inner:
                            inner.set_attribute("scaler", "standard")
                        span.set_outputs({"width": 4})
                    return [0] * rows

                predict(3)
                trace_id = mlflow.get_last_active_trace_id()
    experiment = mlflow.get_experiment_by_name("iris-sklearn").experiment_id

    # The same run through weft's native API: what the client logged.
    with urllib.request.urlopen(f"{weft_server}/api/v1/tracking/runs/{run_id}", timeout=30) as response:
        native = json.loads(response.read())
    logged = client.get_run(run_id)
    assert native["run_id"] == run_id and native["run_name"] == "logreg-c1"
    assert (native["experiment_id"], native["experiment"]) == (experiment, "iris-sklearn")
    assert native["status"] == logged.info.status == "FINISHED"
    assert native["params"] == logged.data.params == {"C": "1.0", "solver": "lbfgs"}
    assert native["tags"] == logged.data.tags and native["tags"]["team"] == "vision"
    assert {m["key"]: m["value"] for m in native["metrics"]} == logged.data.metrics
    assert native["metrics"] and {m["key"] for m in native["metrics"]} == {"loss", "accuracy"}
    assert [(d["name"], d["digest"]) for d in native["datasets"]] == [("iris", "d41d8cd9")]
    with urllib.request.urlopen(f"{weft_server}/api/v1/tracking/runs/latest", timeout=30) as response:
        assert json.loads(response.read())["run_name"] == "logreg-c10"
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"{weft_server}/api/v1/tracking/runs/{'0' * 32}", timeout=30)
    assert missing.value.code == 404

    out = subprocess.run(
        ["node", "--test", "--test-reporter=spec", "--test-concurrency=1", str(ui / "experiments.test.mjs")],
        cwd=ui,
        env={**os.environ, "WEFT_URL": weft_server, "WEFT_EXPERIMENT": experiment, "WEFT_RUN": run_id,
             "WEFT_TRACE": trace_id,
             "WEFT_PIPELINE_EXPERIMENT": pipeline,
             "WEFT_SCREENSHOTS": str(ROOT / "target" / "test-output" / "dashboard"), "CHROMIUM": CHROMIUM},
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, f"browser tests failed:\n{out.stdout[-6000:]}\n{out.stderr[-3000:]}"

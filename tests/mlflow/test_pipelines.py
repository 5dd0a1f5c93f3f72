"""A pipeline run by `weft run` seen through the mlflow client: the pipeline
is an experiment, the run a run, its steps nested runs with their params and
metrics."""
import os
import pathlib
import subprocess

import mlflow
from mlflow.tracking import MlflowClient

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_a_weft_run_is_visible_with_nested_step_runs(weft_server):
    weft = os.environ["WEFT_BIN"]
    iris = ROOT / "examples" / "iris"
    subprocess.run([weft, "-f", str(iris), "build"], check=True, capture_output=True)
    # Run while the server is up: it sees the run as soon as it ends.
    subprocess.run([weft, "-f", str(iris), "run"], check=True, capture_output=True)

    client = MlflowClient()
    experiment = client.get_experiment_by_name("iris")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.run_name"])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert [p.info.run_name for p in parents] == ["iris #1"]
    assert parents[0].info.status == "FINISHED"
    assert sorted(c.info.run_name for c in children) == ["evaluate", "load", "split", "train"]

    by_name = {c.info.run_name: c for c in children}
    assert by_name["split"].data.params == {"seed": "7", "test_fraction": "0.3"}
    assert by_name["train"].data.params["epochs"] == "300"
    assert by_name["evaluate"].data.metrics["accuracy"] >= 0.9
    assert len(by_name["train"].data.tags["weft.component_digest"]) == 64
    loss = client.get_metric_history(by_name["train"].info.run_id, "loss")
    assert len(loss) == 31 and loss[0].step == 0 and loss[-1].step == 299
    assert loss[-1].value < loss[0].value

    # Searchable like any run: the step with the best accuracy.
    best = mlflow.search_runs(
        experiment_ids=[experiment.experiment_id],
        filter_string="metrics.accuracy > 0.9 and tags.`weft.step` = 'evaluate'",
        output_format="list",
    )
    assert [b.info.run_id for b in best] == [by_name["evaluate"].info.run_id]

    # A second, fully cached run shows the same values under a new parent.
    subprocess.run([weft, "-f", str(iris), "run"], check=True, capture_output=True)
    second = client.search_runs([experiment.experiment_id], filter_string="attributes.run_name = 'iris #2'")
    assert len(second) == 1
    cached = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{second[0].info.run_id}' and tags.`weft.step` = 'evaluate'",
    )
    assert cached[0].data.tags["weft.status"] == "cached"
    assert cached[0].data.metrics["accuracy"] == by_name["evaluate"].data.metrics["accuracy"]


def test_a_model_registered_by_weft_resolves_through_mlflow(weft_server, tmp_path):
    import json

    weft = os.environ["WEFT_BIN"]
    iris = ROOT / "examples" / "iris"
    subprocess.run([weft, "-f", str(iris), "build"], check=True, capture_output=True)
    subprocess.run([weft, "-f", str(iris), "run"], check=True, capture_output=True)
    subprocess.run([weft, "models", "alias", "iris-softmax", "champion", "1"], check=True, capture_output=True)

    client = MlflowClient()
    version = client.get_model_version_by_alias("iris-softmax", "champion")
    assert version.version == "1"
    assert version.tags["weft.step"] == "train"
    # The version's run is the train step's nested run.
    assert client.get_run(version.run_id).data.tags["weft.step"] == "train"
    local = pathlib.Path(mlflow.artifacts.download_artifacts("models:/iris-softmax@champion", dst_path=str(tmp_path / "m")))
    model = json.loads((local / "train.model").read_text())
    assert model["classes"] == ["setosa", "versicolor", "virginica"]

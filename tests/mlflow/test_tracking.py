"""The official mlflow client against weft server: tracking calls."""
import math
import threading
import time

import mlflow
import pytest
import requests
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient


def test_runs_params_metrics_tags_and_search(weft_server):
    client = MlflowClient()
    exp = mlflow.set_experiment("iris-tuning")
    assert exp.name == "iris-tuning" and exp.experiment_id != "0"
    assert mlflow.set_experiment("iris-tuning").experiment_id == exp.experiment_id

    ids = {}
    for name, lr, acc, model in [("slow", 0.01, 0.81, "cnn"), ("fast", 0.5, 0.95, "cnn"), ("mlp", 0.1, 0.88, "mlp")]:
        with mlflow.start_run(run_name=name) as run:
            mlflow.log_param("lr", lr)
            mlflow.log_params({"model": model, "epochs": 10})
            for step in range(5):
                mlflow.log_metric("loss", 1.0 / (step + 1) + lr, step=step)
            mlflow.log_metrics({"acc": acc, "f1": acc - 0.05})
            mlflow.set_tag("team", "vision")
            mlflow.set_tags({"stage": "dev", "owner": name})
            ids[name] = run.info.run_id

    run = client.get_run(ids["fast"])
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "fast"
    assert run.info.end_time >= run.info.start_time > 0
    assert run.info.experiment_id == exp.experiment_id
    assert run.data.params == {"lr": "0.5", "model": "cnn", "epochs": "10"}
    assert run.data.metrics["acc"] == 0.95
    assert run.data.metrics["loss"] == pytest.approx(1.0 / 5 + 0.5), "latest = highest step"
    assert run.data.tags["team"] == "vision" and run.data.tags["owner"] == "fast"
    assert run.data.tags["mlflow.runName"] == "fast"

    history = client.get_metric_history(ids["fast"], "loss")
    assert [m.step for m in history] == [0, 1, 2, 3, 4]
    assert [m.value for m in history] == pytest.approx([1.0 / (s + 1) + 0.5 for s in range(5)])

    def names(**kw):
        return [r.info.run_name for r in mlflow.search_runs(experiment_ids=[exp.experiment_id], output_format="list", **kw)]

    assert names(filter_string="metrics.acc > 0.85", order_by=["metrics.acc DESC"]) == ["fast", "mlp"]
    assert names(filter_string="params.model = 'cnn'", order_by=["params.lr ASC"]) == ["slow", "fast"]
    assert names(filter_string="tags.owner = 'mlp'") == ["mlp"]
    assert names(filter_string="params.model LIKE 'c%' and metrics.acc < 0.9") == ["slow"]
    assert names(filter_string="attributes.run_name = 'fast'") == ["fast"]
    assert names(filter_string="tags.missing IS NULL", order_by=["attributes.run_name"]) == ["fast", "mlp", "slow"]
    assert names(order_by=["metrics.f1 ASC"]) == ["slow", "mlp", "fast"]
    assert names(filter_string="metrics.acc > 0.99") == []
    assert len(names()) == 3
    # Paging returns every run once.
    page1 = client.search_runs([exp.experiment_id], max_results=2, order_by=["attributes.run_name"])
    page2 = client.search_runs([exp.experiment_id], max_results=2, order_by=["attributes.run_name"], page_token=page1.token)
    assert [r.info.run_name for r in page1] + [r.info.run_name for r in page2] == ["fast", "mlp", "slow"]

    # Tags can be deleted; a failed run is recorded as such.
    client.delete_tag(ids["slow"], "stage")
    assert "stage" not in client.get_run(ids["slow"]).data.tags
    with pytest.raises(ZeroDivisionError):
        with mlflow.start_run(run_name="broken"):
            1 / 0
    broken = client.search_runs([exp.experiment_id], filter_string="attributes.status = 'FAILED'")
    assert [r.info.run_name for r in broken] == ["broken"]


def test_params_are_immutable_and_bad_input_is_a_4xx(weft_server):
    with mlflow.start_run() as run:
        mlflow.log_param("lr", "0.1")
        mlflow.log_param("lr", "0.1")  # same value again: fine
        with pytest.raises(MlflowException) as err:
            mlflow.log_param("lr", "0.2")
        assert err.value.error_code == "INVALID_PARAMETER_VALUE"
        run_id = run.info.run_id
    # The default run name is generated and recorded as a tag.
    assert MlflowClient().get_run(run_id).data.tags["mlflow.runName"]

    api = weft_server + "/api/2.0/mlflow"

    def post(path, **kw):
        return requests.post(f"{api}/{path}", timeout=10, **kw)

    cases = [
        (post("runs/log-metric", json={"run_id": run_id, "key": "x", "value": True, "timestamp": 1}), 400, "INVALID_PARAMETER_VALUE"),
        (post("runs/log-metric", json={"run_id": run_id, "key": "x", "value": "high", "timestamp": 1}), 400, "INVALID_PARAMETER_VALUE"),
        (post("runs/log-parameter", json={"run_id": run_id, "key": "../etc", "value": "x"}), 400, "INVALID_PARAMETER_VALUE"),
        (post("runs/log-parameter", json={"run_id": "no-such-run", "key": "a", "value": "x"}), 404, "RESOURCE_DOES_NOT_EXIST"),
        (post("runs/log-batch", data=b"{not json", headers={"Content-Type": "application/json"}), 400, "MALFORMED_REQUEST"),
        (post("runs/log-batch", json={"run_id": run_id, "metrics": [{"key": "m", "value": 1, "timestamp": 1}] * 1001}), 400, "INVALID_PARAMETER_VALUE"),
        (post("runs/log-batch", json={"run_id": run_id, "params": [{"key": "p", "value": "1"}, {"key": "p", "value": "2"}]}), 400, "INVALID_PARAMETER_VALUE"),
        (post("runs/update", json={"run_id": run_id, "status": "EXPLODED"}), 400, "INVALID_PARAMETER_VALUE"),
        (post("runs/search", json={"experiment_ids": ["0"], "filter": "metrics.acc > 'high'"}), 400, "INVALID_PARAMETER_VALUE"),
        (post("runs/search", json={"experiment_ids": ["0"], "max_results": 50001}), 400, "INVALID_PARAMETER_VALUE"),
        (post("experiments/create", json={"name": "Default"}), 400, "RESOURCE_ALREADY_EXISTS"),
        (requests.get(f"{api}/experiments/get-by-name", params={"experiment_name": "nope"}, timeout=10), 404, "RESOURCE_DOES_NOT_EXIST"),
        (requests.get(f"{api}/no/such/endpoint", timeout=10), 404, "ENDPOINT_NOT_FOUND"),
    ]
    for response, status, code in cases:
        assert response.status_code == status, (response.request.url, response.text)
        assert response.json()["error_code"] == code, response.text
    # A long value is cut to the limit, as the reference server does.
    assert post("runs/log-parameter", json={"run_id": run_id, "key": "big", "value": "v" * 6001}).ok
    assert len(MlflowClient().get_run(run_id).data.params["big"]) == 6000

    # Deleted runs refuse writes.
    client = MlflowClient()
    client.delete_run(run_id)
    with pytest.raises(MlflowException) as err:
        client.log_param(run_id, "after", "delete")
    assert err.value.error_code == "INVALID_PARAMETER_VALUE"
    client.restore_run(run_id)
    client.log_param(run_id, "after", "restore")


def test_nan_and_infinities_round_trip(weft_server):
    client = MlflowClient()
    with mlflow.start_run() as run:
        mlflow.log_metric("nan", float("nan"), step=0)
        mlflow.log_metric("inf", float("inf"), step=0)
        mlflow.log_metric("ninf", float("-inf"), step=0)
    metrics = client.get_run(run.info.run_id).data.metrics
    assert math.isnan(metrics["nan"])
    assert metrics["inf"] == 1.7976931348623157e308
    assert metrics["ninf"] == -1.7976931348623157e308
    assert math.isnan(client.get_metric_history(run.info.run_id, "nan")[0].value)


def test_concurrent_log_batch_stores_every_point_exactly_once(weft_server):
    """16 clients x 5,000 points each through log-batch, one batch retried."""
    from mlflow.entities import Metric

    client = MlflowClient()
    exp = client.create_experiment("load")
    run_ids = [client.create_run(exp).info.run_id for _ in range(16)]
    errors = []

    def worker(i):
        try:
            c = MlflowClient()
            now = int(time.time() * 1000)
            points = [Metric("m", float(i * 10_000 + s), now, s) for s in range(5000)]
            for start in range(0, 5000, 1000):
                c.log_batch(run_ids[i], metrics=points[start:start + 1000])
            # A client retrying a batch must not duplicate it.
            c.log_batch(run_ids[i], metrics=points[:1000])
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for i, run_id in enumerate(run_ids):
        history = client.get_metric_history(run_id, "m")
        assert len(history) == 5000, (i, len(history))
        assert sorted(m.step for m in history) == list(range(5000))
        assert {m.value for m in history} == {float(i * 10_000 + s) for s in range(5000)}
        assert client.get_run(run_id).data.metrics["m"] == float(i * 10_000 + 4999)


@pytest.mark.token
def test_writes_need_the_token(weft_server, monkeypatch):
    from conftest import TOKEN

    client = MlflowClient()
    # Reads work without it.
    assert client.get_experiment("0").name == "Default"
    with pytest.raises(MlflowException) as err:
        client.create_experiment("no-token")
    assert err.value.error_code == "UNAUTHENTICATED"
    r = requests.post(weft_server + "/api/2.0/mlflow/experiments/create", json={"name": "x"},
                      headers={"Authorization": "Bearer wrong-token-wrong-token"}, timeout=10)
    assert r.status_code == 403 and r.json()["error_code"] == "PERMISSION_DENIED"
    # The client sends MLFLOW_TRACKING_TOKEN as a bearer token.
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", TOKEN)
    exp = MlflowClient().create_experiment("with-token")
    with mlflow.start_run(experiment_id=exp):
        mlflow.log_metric("m", 1.0)

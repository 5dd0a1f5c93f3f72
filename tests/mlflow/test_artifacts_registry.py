"""The official mlflow client against weft server: artifacts and the model registry."""
import os
import pathlib

import mlflow
import pytest
import requests
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient


def test_log_list_and_download_artifacts(weft_server, tmp_path):
    client = MlflowClient()
    (tmp_path / "report.txt").write_text("accuracy 0.96\n")
    model = tmp_path / "model"
    (model / "weights").mkdir(parents=True)
    (model / "MLmodel").write_text("flavor: weft\n")
    (model / "weights" / "w.bin").write_bytes(bytes(range(256)) * 40)
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(tmp_path / "report.txt"))
        mlflow.log_artifacts(str(model), artifact_path="model")
        run_id = run.info.run_id

    top = {(f.path, f.is_dir, f.file_size) for f in client.list_artifacts(run_id)}
    assert top == {("report.txt", False, 14), ("model", True, None)}
    inner = {(f.path, f.is_dir) for f in client.list_artifacts(run_id, "model")}
    assert inner == {("model/MLmodel", False), ("model/weights", True)}

    out = pathlib.Path(mlflow.artifacts.download_artifacts(run_id=run_id, dst_path=str(tmp_path / "dl")))
    assert (out / "report.txt").read_text() == "accuracy 0.96\n"
    assert (out / "model" / "weights" / "w.bin").read_bytes() == bytes(range(256)) * 40

    base = weft_server + "/api/2.0/mlflow-artifacts/artifacts"
    for bad in ["../../etc/passwd", "0/%2E%2E/x", "a//b"]:
        r = requests.put(f"{base}/{bad}", data=b"x", timeout=10)
        assert r.status_code in (400, 404), (bad, r.status_code, r.text)
        assert r.json()["error_code"] in ("INVALID_PARAMETER_VALUE", "ENDPOINT_NOT_FOUND"), r.text
    r = requests.get(base, params={"path": "../x"}, timeout=10)
    assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    r = requests.get(f"{base}/0/nope/artifacts/missing.txt", timeout=10)
    assert r.status_code == 404 and r.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"


def test_registry_versions_aliases_and_models_uri(weft_server, tmp_path):
    client = MlflowClient()
    (tmp_path / "MLmodel").write_text("flavor: weft\n")
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(tmp_path / "MLmodel"), artifact_path="model")
        run_id = run.info.run_id

    created = client.create_registered_model("iris-classifier", tags={"team": "ml"}, description="softmax regression")
    assert created.name == "iris-classifier" and created.description == "softmax regression"
    with pytest.raises(MlflowException) as err:
        client.create_registered_model("iris-classifier")
    assert err.value.error_code == "RESOURCE_ALREADY_EXISTS"

    v1 = client.create_model_version("iris-classifier", f"runs:/{run_id}/model", run_id=run_id)
    v2 = client.create_model_version("iris-classifier", f"runs:/{run_id}/model", run_id=run_id, tags={"stage": "candidate"})
    assert (v1.version, v2.version) == ("1", "2")
    assert v1.status == "READY" and v1.run_id == run_id
    # The source is kept as given; the client resolves `runs:/` itself.
    assert v1.source == f"runs:/{run_id}/model"
    assert client.get_model_version("iris-classifier", "2").tags == {"stage": "candidate"}

    client.set_registered_model_alias("iris-classifier", "champion", "1")
    assert client.get_model_version_by_alias("iris-classifier", "champion").version == "1"
    client.set_registered_model_alias("iris-classifier", "champion", "2")  # moves
    model = client.get_registered_model("iris-classifier")
    assert model.aliases == {"champion": "2"}
    assert model.tags == {"team": "ml"}
    assert [v.version for v in model.latest_versions] == ["2"]

    # models:/name@alias resolves through the alias to the run's artifacts.
    local = pathlib.Path(mlflow.artifacts.download_artifacts("models:/iris-classifier@champion", dst_path=str(tmp_path / "m")))
    assert (local / "MLmodel").read_text() == "flavor: weft\n"
    assert client.get_model_version_download_uri("iris-classifier", "1") == v1.source

    client.delete_registered_model_alias("iris-classifier", "champion")
    assert client.get_registered_model("iris-classifier").aliases == {}
    with pytest.raises(MlflowException) as err:
        client.get_model_version_by_alias("iris-classifier", "champion")
    # The reference server's code for an alias no version carries.
    assert err.value.error_code == "INVALID_PARAMETER_VALUE"
    with pytest.raises(MlflowException) as err:
        client.set_registered_model_alias("iris-classifier", "latest", "1")
    assert err.value.error_code == "INVALID_PARAMETER_VALUE"

    assert [m.name for m in client.search_registered_models(filter_string="name LIKE 'iris%'")] == ["iris-classifier"]
    assert client.search_registered_models(filter_string="name = 'other'") == []
    assert sorted(v.version for v in client.search_model_versions("name='iris-classifier'")) == ["1", "2"]
    assert [v.version for v in client.search_model_versions(f"run_id='{run_id}' and name='iris-classifier'")][:1] == ["2"]

    client.set_model_version_tag("iris-classifier", "1", "validated", "yes")
    client.delete_model_version_tag("iris-classifier", "2", "stage")
    assert client.get_model_version("iris-classifier", "1").tags == {"validated": "yes"}
    assert client.get_model_version("iris-classifier", "2").tags == {}
    client.update_model_version("iris-classifier", "1", description="first")
    assert client.get_model_version("iris-classifier", "1").description == "first"
    client.delete_model_version("iris-classifier", "1")
    with pytest.raises(MlflowException):
        client.get_model_version("iris-classifier", "1")
    client.rename_registered_model("iris-classifier", "iris-prod")
    assert client.get_registered_model("iris-prod").latest_versions[0].version == "2"
    client.delete_registered_model("iris-prod")
    assert client.search_registered_models() == []


def test_logged_models_initialize_upload_finalize_and_search(weft_server, tmp_path):
    """The MLflow 3 logged-model calls behind `log_model`."""
    from mlflow.entities import LoggedModelStatus

    mlflow.set_experiment("logged-models")
    with mlflow.start_run() as run:
        model = mlflow.initialize_logged_model(
            name="classifier",
            source_run_id=run.info.run_id,
            tags={"team": "vision"},
            params={"C": "1.0"},
            model_type="sklearn",
        )
        assert model.model_id.startswith("m-")
        assert model.status == LoggedModelStatus.PENDING
        assert model.artifact_location.endswith(f"/models/{model.model_id}/artifacts")

        # Its files go through the artifact proxy under its own location.
        weights = tmp_path / "weights.bin"
        weights.write_bytes(b"\x00\x01weights")
        MlflowClient().log_model_artifact(model.model_id, str(weights))

        mlflow.log_model_params({"penalty": "l2"}, model_id=model.model_id)
        mlflow.set_logged_model_tags(model.model_id, {"stage": "candidate"})
        ready = mlflow.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
        assert ready.status == LoggedModelStatus.READY

    got = mlflow.get_logged_model(model.model_id)
    assert got.name == "classifier"
    assert got.source_run_id == run.info.run_id
    assert got.model_type == "sklearn"
    assert got.params == {"C": "1.0", "penalty": "l2"}
    # (the client adds its own context tags: mlflow.user, mlflow.source.*)
    assert {k: got.tags.get(k) for k in ("team", "stage")} == {"team": "vision", "stage": "candidate"}
    assert got.status == LoggedModelStatus.READY

    download = tmp_path / "download"
    download.mkdir()
    path = mlflow.artifacts.download_artifacts(artifact_uri=f"{got.artifact_location}/weights.bin", dst_path=str(download))
    assert pathlib.Path(path).read_bytes() == b"\x00\x01weights"

    experiment = mlflow.get_experiment_by_name("logged-models")
    found = mlflow.search_logged_models(experiment_ids=[experiment.experiment_id], output_format="list")
    assert [m.model_id for m in found] == [model.model_id]

    # A changed param is refused; an unknown model is a 404.
    with pytest.raises(MlflowException) as err:
        mlflow.log_model_params({"C": "2.0"}, model_id=model.model_id)
    assert err.value.error_code == "INVALID_PARAMETER_VALUE"
    with pytest.raises(MlflowException) as err:
        mlflow.get_logged_model("m-does-not-exist")
    assert err.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def peak_rss_mib(pid):
    status = pathlib.Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1]) / 1024


def test_a_1_gib_artifact_goes_up_and_down_in_bounded_memory(weft_server):
    """Uploads and downloads stream: the server's peak RSS stays under
    100 MB while a 1 GiB artifact passes through it both ways."""
    import hashlib

    pid = os.environ["WEFT_SERVER_PID"]
    block = bytes(range(256)) * 4096  # 1 MiB
    blocks = 1024
    url = f"{weft_server}/api/2.0/mlflow-artifacts/artifacts/0/big/artifacts/big.bin"

    def body():
        for i in range(blocks):
            yield i.to_bytes(8, "little") + block[8:]

    expected = hashlib.blake2b()
    for chunk in body():
        expected.update(chunk)
    put = requests.put(url, data=body(), timeout=600)
    assert put.ok, put.text
    got = hashlib.blake2b()
    size = 0
    with requests.get(url, stream=True, timeout=600) as resp:
        assert resp.ok, resp.text
        assert int(resp.headers["Content-Length"]) == blocks << 20
        for chunk in resp.iter_content(1 << 20):
            got.update(chunk)
            size += len(chunk)
    assert size == blocks << 20 and got.digest() == expected.digest()
    peak = peak_rss_mib(pid)
    print(f"weft server peak RSS: {peak:.0f} MiB")
    assert peak < 100, f"weft server peaked at {peak:.0f} MiB"

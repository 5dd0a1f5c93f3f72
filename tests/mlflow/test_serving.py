"""`weft serve` against its references.

A model trained outside weft (scikit-learn's logistic regression on iris,
exported to ONNX) is registered with `weft models register --file` and
served by weft's ONNX model server (`plugins/onnx-model`, tract inside the
sandbox). Its answers are checked against onnxruntime on the same bytes,
and its `/invocations` against `mlflow models serve` (the real one, the
`mlflow.onnx` flavor) on the same model and the same requests: what each
accepts, what each refuses and with which status and error code, and the
values it returns.
"""
import json
import os
import pathlib
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import requests

import server_process

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = os.environ.get("WEFT_BIN", str(ROOT / "target" / "release" / "weft"))
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


@pytest.fixture(scope="module")
def onnx_server():
    """The ONNX model server component, built once."""
    subprocess.run(
        ["cargo", "build", "--release", "--quiet", "--target", "wasm32-wasip2",
         "--manifest-path", str(ROOT / "plugins" / "Cargo.toml"), "-p", "onnx-model"],
        check=True,
    )
    wasm = ROOT / "plugins" / "target" / "wasm32-wasip2" / "release" / "onnx_model.wasm"
    assert wasm.is_file(), wasm
    return wasm


@pytest.fixture(scope="module")
def iris_onnx(tmp_path_factory):
    """A logistic regression trained by scikit-learn, as an ONNX graph:
    `features` [N, 4] -> Gemm -> Softmax -> `label` [N] (ArgMax) and
    `score` [N] (its probability). Returns (path, test rows, classifier)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    test = np.arange(len(x)) % 5 == 0
    clf = LogisticRegression(max_iter=1000).fit(x[~test], y[~test])
    weights = numpy_helper.from_array(clf.coef_.T.astype(np.float32), "weights")
    bias = numpy_helper.from_array(clf.intercept_.astype(np.float32), "bias")
    graph = helper.make_graph(
        [
            helper.make_node("Gemm", ["features", "weights", "bias"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
            helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0),
            helper.make_node("ReduceMax", ["probabilities"], ["score"], keepdims=0, axes=[1]),
        ],
        "iris",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 4])],
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
            helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N"]),
        ],
        initializer=[weights, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = tmp_path_factory.mktemp("onnx") / "iris.onnx"
    onnx.save(model, str(path))
    return path, x[test], clf


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url, proc, log):
    deadline = time.monotonic() + 120
    while True:
        try:
            if requests.get(url + "/ping", timeout=5).ok:
                return
        except (requests.ConnectionError, requests.Timeout):
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"{url} did not start: {pathlib.Path(log).read_text()[-4000:]}")
        time.sleep(0.3)


@pytest.fixture(scope="module")
def weft_serve(tmp_path_factory, onnx_server, iris_onnx):
    path, _, _ = iris_onnx
    state = tmp_path_factory.mktemp("weft-serve")
    env = {**os.environ, "WEFT_DIR": str(state / "state")}
    env.pop("WEFT_DB", None)
    registered = subprocess.run(
        [BIN, "models", "register", "--file", str(path), "--name", "iris-onnx", "--alias", "champion",
         "--served-by", str(onnx_server)],
        env=env, capture_output=True, text=True,
    )
    assert registered.returncode == 0, registered.stderr
    log = state / "serve.log"
    port = free_port()
    proc = subprocess.Popen(
        [BIN, "serve", "models:/iris-onnx@champion", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=open(log, "w"),
    )
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, proc, log)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def mlflow_serve(tmp_path_factory, iris_onnx):
    import mlflow.onnx
    import onnx

    path, _, _ = iris_onnx
    root = tmp_path_factory.mktemp("mlflow-serve")
    mlflow.onnx.save_model(onnx.load(str(path)), str(root / "model"))
    port = free_port()
    log = root / "serve.log"
    executable = pathlib.Path(sys.executable).parent / "mlflow"
    proc = subprocess.Popen(
        [str(executable), "models", "serve", "-m", str(root / "model"), "--env-manager", "local",
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=open(log, "w"), stderr=subprocess.STDOUT,
        env={**os.environ, "PATH": f"{executable.parent}:{os.environ['PATH']}"},
    )
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, proc, log)
    yield url
    proc.terminate()
    proc.wait(timeout=20)


def reference(iris_onnx):
    """onnxruntime's answer for the test rows."""
    import onnxruntime

    path, rows, _ = iris_onnx
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    label, score = session.run(["label", "score"], {"features": rows.astype(np.float32)})
    return label, score


def requests_for(rows):
    """The test rows in every form of the MLflow scoring protocol."""
    lists = rows.tolist()
    records = [dict(zip(FEATURES, r)) for r in lists]
    csv = ",".join(FEATURES) + "\n" + "\n".join(",".join(str(v) for v in r) for r in lists) + "\n"
    return {
        "dataframe_split": ("application/json", json.dumps({"dataframe_split": {"columns": FEATURES, "data": lists}})),
        "dataframe_records": ("application/json", json.dumps({"dataframe_records": records})),
        "instances": ("application/json", json.dumps({"instances": lists})),
        "inputs": ("application/json", json.dumps({"inputs": lists})),
        "csv": ("text/csv", csv),
    }


def per_row(answer):
    """(labels, scores) from either answer shape: a dict of outputs (weft,
    and mlflow for tensor inputs) or one record per row (mlflow for data
    frames)."""
    predictions = answer["predictions"]
    if isinstance(predictions, dict):
        return predictions["label"], predictions["score"]
    return [r["label"] for r in predictions], [r["score"] for r in predictions]


def post(url, media_type, body):
    return requests.post(url + "/invocations", data=body, headers={"Content-Type": media_type}, timeout=30)


def test_a_model_trained_outside_weft_is_served_from_onnx_with_the_reference_outputs(weft_serve, iris_onnx):
    label, score = reference(iris_onnx)
    _, rows, clf = iris_onnx
    # The graph is the classifier: same classes as scikit-learn's predict.
    assert label.tolist() == clf.predict(rows).tolist()
    for form, (media_type, body) in requests_for(rows).items():
        answer = post(weft_serve, media_type, body)
        assert answer.status_code == 200, (form, answer.text)
        assert answer.headers["x-weft-model-version"] == "1"
        labels, scores = per_row(answer.json())
        assert labels == label.tolist(), form
        np.testing.assert_allclose(scores, score, rtol=1e-5, err_msg=form)


MALFORMED = {
    "empty object": ("application/json", "{}"),
    "two input fields": ("application/json", json.dumps({"instances": [[1, 2, 3, 4]], "inputs": [[1, 2, 3, 4]]})),
    "unknown field": ("application/json", json.dumps({"rows": [[1, 2, 3, 4]]})),
    "not JSON": ("application/json", "{"),
    "a JSON list": ("application/json", "[[1, 2, 3, 4]]"),
    "split without data": ("application/json", json.dumps({"dataframe_split": {"columns": FEATURES}})),
    "records not a list": ("application/json", json.dumps({"dataframe_records": 3})),
    "unsupported media type": ("text/plain", "1,2,3,4"),
    "rows of the wrong width": ("application/json", json.dumps({"instances": [[1, 2]]})),
    "strings for numbers": ("application/json", json.dumps({"instances": [["a", "b", "c", "d"]]})),
    "no rows": ("application/json", json.dumps({"instances": []})),
    "ragged CSV": ("text/csv", "a,b\n1\n"),
}


def test_invocations_accept_and_refuse_what_mlflow_models_serve_does(weft_serve, mlflow_serve, iris_onnx):
    _, rows, _ = iris_onnx
    for form, (media_type, body) in requests_for(rows).items():
        ours, theirs = post(weft_serve, media_type, body), post(mlflow_serve, media_type, body)
        assert (ours.status_code, theirs.status_code) == (200, 200), (form, ours.text, theirs.text)
        our_labels, our_scores = per_row(ours.json())
        their_labels, their_scores = per_row(theirs.json())
        assert our_labels == their_labels, form
        np.testing.assert_allclose(our_scores, their_scores, rtol=1e-5, err_msg=form)
        if form in ("instances", "inputs"):
            # A tensor request: both answer a dict of outputs, in one shape.
            assert ours.json().keys() == theirs.json().keys()
            assert ours.json()["predictions"].keys() == theirs.json()["predictions"].keys()
    for case, (media_type, body) in MALFORMED.items():
        ours, theirs = post(weft_serve, media_type, body), post(mlflow_serve, media_type, body)
        assert ours.status_code == theirs.status_code, (case, ours.text, theirs.text)
        if theirs.headers.get("Content-Type", "").startswith("application/json"):
            assert ours.json()["error_code"] == theirs.json()["error_code"], (case, ours.text, theirs.text)
        assert ours.json()["message"], case
    for route in ("/ping", "/health", "/version"):
        ours, theirs = requests.get(weft_serve + route), requests.get(mlflow_serve + route)
        assert ours.status_code == theirs.status_code == 200, route


def test_models_converted_by_skl2onnx_are_served_from_weft_server_with_onnxruntime_outputs(onnx_server, tmp_path):
    """Models as the standard converter writes them (a random forest as
    `TreeEnsembleClassifier`, a logistic regression as `LinearClassifier`,
    an unnamed batch dimension), served side by side by one `weft server
    --serve-models`."""
    import onnxruntime
    from skl2onnx import to_onnx
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    test = np.arange(len(x)) % 5 == 0
    env = {**os.environ, "WEFT_DIR": str(tmp_path / "state")}
    env.pop("WEFT_DB", None)
    paths = {}
    for name, clf in [
        ("forest", RandomForestClassifier(n_estimators=25, random_state=0)),
        ("logistic", LogisticRegression(max_iter=1000)),
    ]:
        clf.fit(x[~test], y[~test])
        model = to_onnx(clf, x[:1].astype(np.float32), options={id(clf): {"zipmap": False}},
                        target_opset={"": 13, "ai.onnx.ml": 3})
        paths[name] = tmp_path / f"{name}.onnx"
        paths[name].write_bytes(model.SerializeToString())
        registered = subprocess.run(
            [BIN, "models", "register", "--file", str(paths[name]), "--name", name, "--served-by", str(onnx_server)],
            env=env, capture_output=True, text=True,
        )
        assert registered.returncode == 0, registered.stderr
    server = server_process.start([BIN, "server", "--port", "0", "--serve-models"], env=env)
    url = server.url
    try:
        rows = x[test]
        for name, path in paths.items():
            session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            label, probabilities = session.run(["label", "probabilities"],
                                               {session.get_inputs()[0].name: rows.astype(np.float32)})
            assert (label == y[test]).mean() > 0.9, name
            answer = requests.post(f"{url}/serve/models/{name}/latest/invocations",
                                   json={"instances": rows.tolist()}, timeout=120)
            assert answer.status_code == 200, (name, answer.text)
            predictions = answer.json()["predictions"]
            assert predictions["label"] == label.tolist(), name
            np.testing.assert_allclose(predictions["probabilities"], probabilities, atol=1e-5, err_msg=name)
    finally:
        server.stop()

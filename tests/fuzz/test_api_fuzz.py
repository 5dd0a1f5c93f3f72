"""API fuzzing: schemathesis against weft server's OpenAPI document, after a
real pipeline run, with a write token configured.

Every generated request (valid and invalid parameters, odd paths, odd
methods) must get an answer that is not a 5xx and that matches the
document; the server must stay up. Writes without the token are refused
with 401 and change nothing. Run by tests/run.sh (schemathesis is in the
test venv); WEFT_BIN names the binary.
"""
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import time
import urllib.request
import xml.etree.ElementTree as ET

import pytest

import server_process

ROOT = pathlib.Path(__file__).resolve().parents[2]
WEFT = os.environ.get("WEFT_BIN", str(ROOT / "target" / "release" / "weft"))
TOKEN = "fuzz-token-0123456789"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    work = tmp_path_factory.mktemp("fuzz")
    project = work / "iris"
    project.mkdir()
    for name in ("weft.toml", "data"):
        src = ROOT / "examples" / "iris" / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, project / name)
    built = ROOT / "examples" / "iris" / "target"
    if not (built / "wasm32-wasip2" / "release" / "train.wasm").exists():
        subprocess.run(["cargo", "build", "--release", "--target", "wasm32-wasip2"], cwd=ROOT / "examples" / "iris", check=True)
    (project / "target").symlink_to(built)
    env = {**os.environ, "WEFT_HOME": str(work / "home")}
    for var in ("WEFT_DB", "WEFT_ARTIFACTS", "WEFT_STACK", "WEFT_DIR"):
        env.pop(var, None)
    subprocess.run([WEFT, "run"], cwd=project, env=env, check=True, capture_output=True)
    subprocess.run([WEFT, "run", "-p", "train.epochs=50"], cwd=project, env=env, check=True, capture_output=True)
    server = server_process.start([WEFT, "server", "--port", "0", "--token", TOKEN], cwd=project, env=env)
    yield server.url
    server.stop()


def get(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.status, r.read()


def test_schemathesis_finds_no_server_error_and_no_contract_violation(server, tmp_path):
    junit = tmp_path / "junit.xml"
    st = pathlib.Path(sys.executable).parent / "schemathesis"
    result = subprocess.run(
        [
            str(st), "run", f"{server}/api/v1/openapi.json", "--url", server,
            "--max-examples", "60", "--seed", "20261126",
            # Deny by default: without the token, a request with a method
            # the API does not declare is refused (401) before routing,
            # rather than told which methods exist (405).
            "--exclude-checks", "unsupported_method",
            "--report", "junit", "--report-junit-path", str(junit),
        ],
        capture_output=True, text=True, timeout=900,
        cwd=tmp_path,  # schemathesis keeps a cache in its working directory
    )
    print(result.stdout[-6000:])
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    cases = re.search(r"(\d+) generated", result.stdout)
    assert cases and int(cases.group(1)) >= 100, result.stdout[-2000:]
    suites = ET.parse(junit).getroot()
    failures = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites.iter("testsuite"))
    assert failures == 0
    # Still up, still answering.
    assert get(f"{server}/health")[0] == 200


WRITES = [
    ("POST", "/api/2.0/mlflow/experiments/create", {"name": "intruder"}),
    ("POST", "/api/2.0/mlflow/runs/create", {"experiment_id": "0"}),
    ("POST", "/api/2.0/mlflow/runs/log-batch", {"run_id": "x", "metrics": [{"key": "k", "value": 1, "timestamp": 1, "step": 0}]}),
    ("POST", "/api/2.0/mlflow/registered-models/create", {"name": "intruder"}),
    ("DELETE", "/api/2.0/mlflow/registered-models/delete", {"name": "iris-softmax"}),
    ("PUT", "/api/2.0/mlflow-artifacts/artifacts/0/x/file.txt", None),
    ("PUT", "/api/v1/sync/blobs/" + "a" * 64, None),
    ("POST", "/api/v1/sync/runs", {"run": {}}),
]


@pytest.mark.parametrize("method,path,body", WRITES, ids=[f"{m} {p}" for m, p, _ in WRITES])
def test_writes_without_the_token_are_refused_and_change_nothing(server, method, path, body):
    before = get(f"{server}/api/2.0/mlflow/experiments/search?max_results=1000")[1]
    data = json.dumps(body).encode() if body is not None else b"payload"
    request = urllib.request.Request(f"{server}{path}", data=data, method=method, headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    assert refused.value.code == 401
    assert json.loads(refused.value.read())["error_code"] == "UNAUTHENTICATED"
    assert get(f"{server}/api/2.0/mlflow/experiments/search?max_results=1000")[1] == before
    status, models = get(f"{server}/api/v1/models")
    assert json.loads(models)["models"][0]["name"] == "iris-softmax"

"""Fixtures: a live `weft server` on a free port with its own state.

Every test runs twice: on the embedded default (SQLite) and on PostgreSQL,
in a database of its own on the server `WEFT_TEST_POSTGRES` names
(`tests/run.sh` starts one; without it the PostgreSQL half is skipped).
"""
import os
import subprocess
import pathlib
import uuid

import pytest

import server_process

ROOT = pathlib.Path(__file__).resolve().parents[2]


TOKEN = "weft-test-token-0123456789"


@pytest.fixture(params=["sqlite", "postgres"])
def weft_server(tmp_path, monkeypatch, request):
    binary = os.environ.get("WEFT_BIN", str(ROOT / "target" / "release" / "weft"))
    extra = ["--token", TOKEN] if request.node.get_closest_marker("token") else []
    args = request.node.get_closest_marker("server_args")
    extra += list(args.args) if args else []
    if request.param == "postgres":
        server = os.environ.get("WEFT_TEST_POSTGRES")
        if not server:
            pytest.skip("WEFT_TEST_POSTGRES is not set (tests/run.sh starts a server)")
        db = f"{server.rstrip('/')}/weft_py_{uuid.uuid4().hex}"
        # `weft` commands run by a test record into the same database.
        monkeypatch.setenv("WEFT_DB", db)
    else:
        monkeypatch.delenv("WEFT_DB", raising=False)
    server = server_process.start([binary, "--state-dir", str(tmp_path / "state"), "server", "--port", "0", *extra])
    url = server.url
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    # Tests that measure the server read its /proc entry.
    monkeypatch.setenv("WEFT_SERVER_PID", str(server.proc.pid))
    # `weft` commands run by a test record into the same state.
    monkeypatch.setenv("WEFT_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("WEFT_BIN", binary)
    if "--token-for-reads" in extra:
        # Every request needs it: the client sends it.
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", TOKEN)
    # Fail fast instead of retrying for minutes when something is wrong.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    import mlflow

    mlflow.set_tracking_uri(url)
    # Each test gets a fresh server: forget the previous test's experiment.
    mlflow.set_experiment(experiment_id="0")
    yield url
    server.stop()


def pytest_configure(config):
    config.addinivalue_line("markers", "token: start the server with a bearer token for writes")
    config.addinivalue_line("markers", "server_args(*args): more arguments for `weft server`")


@pytest.fixture(scope="session")
def mlflow_reference(tmp_path_factory):
    """A real `mlflow server` (the reference of the differential tests) on
    127.0.0.1, shared by the whole session: tests keep to names of their own."""
    import shutil
    import socket
    import sys
    import time

    import requests

    executable = shutil.which("mlflow", path=str(pathlib.Path(sys.executable).parent))
    import importlib.metadata

    try:
        importlib.metadata.distribution("mlflow")  # the full package, not mlflow-skinny
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("the full mlflow package (the reference server) is not installed")
    root = tmp_path_factory.mktemp("mlflow-reference")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(root / "server.log", "w")
    proc = subprocess.Popen(
        [
            executable, "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
            "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
            "--artifacts-destination", str(root / "artifacts"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "MLFLOW_TRACKING_URI": ""},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if requests.get(url + "/health", timeout=5).ok:
                break
        # Not listening yet, or listening but still starting (its first
        # answer can take seconds on a loaded machine): ask again.
        except (requests.ConnectionError, requests.Timeout):
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"mlflow server did not start: {(root / 'server.log').read_text()[-4000:]}")
        time.sleep(0.3)
    yield url
    proc.terminate()
    proc.wait(timeout=20)

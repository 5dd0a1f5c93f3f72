"""Fixtures: a live `weft server` on a free port with its own state."""
import os
import subprocess
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


TOKEN = "weft-test-token-0123456789"


@pytest.fixture()
def weft_server(tmp_path, monkeypatch, request):
    binary = os.environ.get("WEFT_BIN", str(ROOT / "target" / "release" / "weft"))
    extra = ["--token", TOKEN] if request.node.get_closest_marker("token") else []
    proc = subprocess.Popen(
        [binary, "--state-dir", str(tmp_path / "state"), "server", "--port", "0", *extra],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    line = proc.stderr.readline()
    url = next((w for w in line.split() if w.startswith("http://")), None)
    assert url, f"weft server did not start: {line!r}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    # `weft` commands run by a test record into the same state.
    monkeypatch.setenv("WEFT_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("WEFT_BIN", binary)
    # Fail fast instead of retrying for minutes when something is wrong.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    import mlflow

    mlflow.set_tracking_uri(url)
    # Each test gets a fresh server: forget the previous test's experiment.
    mlflow.set_experiment(experiment_id="0")
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def pytest_configure(config):
    config.addinivalue_line("markers", "token: start the server with a bearer token for writes")

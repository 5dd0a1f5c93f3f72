"""A state directory written by a release opens with this build, migrates
forward and shows the same runs, metrics, registry and artifacts.

tests/fixtures/release-state (SQLite) and release-state-postgres hold what a
release left (the database as SQL text, the artifact blobs) and what it
showed (expected.json), made by tests/fixtures/make_release_state.py with
that release's binary. This test restores each, lets the current
`weft server` open it (which applies every newer migration) and asks the
same questions through the official mlflow client and weft's own API."""
import json
import os
import pathlib
import shutil
import sqlite3
import uuid

import pytest

from release_state import pg_tool, snapshot, start_server

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"


class SqliteState:
    fixture = FIXTURES / "release-state"

    def __init__(self, state):
        self.state = state
        db = sqlite3.connect(state / "weft.db")
        db.executescript((self.fixture / "weft.sql").read_text())
        db.close()
        self.env = {}

    def migrations(self):
        return {row[0] for row in sqlite3.connect(self.state / "weft.db").execute("SELECT version FROM _sqlx_migrations")}


class PostgresState:
    fixture = FIXTURES / "release-state-postgres"

    def __init__(self, state):
        server = os.environ.get("WEFT_TEST_POSTGRES")
        if not server:
            pytest.skip("WEFT_TEST_POSTGRES is not set (tests/run.sh starts a server)")
        self.url = f"{server.rstrip('/')}/weft_release_{uuid.uuid4().hex}"
        pg_tool("psql", "-q", "-d", f"{server.rstrip('/')}/postgres",
                "-c", f"CREATE DATABASE {self.url.rsplit('/', 1)[1]}")
        pg_tool("psql", "-q", "-v", "ON_ERROR_STOP=1", "-d", self.url, "-f", str(self.fixture / "weft.sql"))
        self.env = {"WEFT_DB": self.url}

    def migrations(self):
        return {int(v) for v in pg_tool("psql", "-At", "-d", self.url, "-c", "SELECT version FROM _sqlx_migrations").split()}


@pytest.mark.parametrize("backend", [SqliteState, PostgresState], ids=["sqlite", "postgres"])
def test_a_state_directory_of_the_last_release_shows_the_same_after_migrating(tmp_path, backend):
    state = tmp_path / "state"
    state.mkdir()
    db = backend(state)
    shutil.copytree(backend.fixture / "artifacts", state / "artifacts")
    before = db.migrations()
    binary = os.environ.get("WEFT_BIN", str(ROOT / "target" / "release" / "weft"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEFT_") and not k.startswith("MLFLOW_")}
    proc, url = start_server(binary, state, {**env, **db.env})
    try:
        shown = snapshot(url)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    after = db.migrations()
    assert before <= after, "a migration the release had applied is gone"

    expected = json.loads((backend.fixture / "expected.json").read_text())
    # Compared part by part, so that a failure names what changed.
    assert shown["registry"] == expected["registry"]
    assert sorted(shown["experiments"]) == sorted(expected["experiments"])
    for name, experiment in expected["experiments"].items():
        assert shown["experiments"][name] == experiment, f"experiment {name!r}"
    assert len(shown["pipeline_runs"]) == len(expected["pipeline_runs"])
    for got, want in zip(shown["pipeline_runs"], expected["pipeline_runs"]):
        assert got == want, f"pipeline run #{want['run']['number']}"

    # The data behind it is what the release wrote: the client run's
    # artifact and both step outputs, with their bytes.
    client_run = expected["experiments"]["client-logged"]["runs"][0]
    assert client_run["artifacts"] == {"model/weights.txt": "weights: 1 2 3\n"}
    assert client_run["metric_history"]["loss"] == [[0, 1700000000000, 0.9], [1, 1700000000001, 0.5], [2, 1700000000002, 0.25]]
    first, cached = expected["pipeline_runs"]
    assert first["steps"]["second"]["step"]["cached_from"] is None
    assert cached["steps"]["second"]["step"]["cached_from"] == first["steps"]["second"]["step"]["id"]
    assert cached["steps"]["second"]["contents"] == first["steps"]["second"]["contents"]

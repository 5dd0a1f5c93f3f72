"""A state directory written by a release opens with this build, migrates
forward and shows the same runs, metrics, registry and artifacts.

tests/fixtures/release-state holds what a release left (the database as SQL
text, the artifact blobs) and what it showed (expected.json), both made by
tests/fixtures/make_release_state.py with that release's binary. This test
restores it, lets the current `weft server` open it (which applies every
newer migration) and asks the same questions through the official mlflow
client and weft's own API."""
import json
import os
import pathlib
import shutil
import sqlite3

from release_state import snapshot, start_server

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "release-state"


def restore(state: pathlib.Path):
    state.mkdir()
    db = sqlite3.connect(state / "weft.db")
    db.executescript((FIXTURE / "weft.sql").read_text())
    db.close()
    shutil.copytree(FIXTURE / "artifacts", state / "artifacts")


def test_a_state_directory_of_the_last_release_shows_the_same_after_migrating(tmp_path):
    state = tmp_path / "state"
    restore(state)
    before = {row[0] for row in sqlite3.connect(state / "weft.db").execute("SELECT version FROM _sqlx_migrations")}
    binary = os.environ.get("WEFT_BIN", str(ROOT / "target" / "release" / "weft"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEFT_") and not k.startswith("MLFLOW_")}
    proc, url = start_server(binary, state, env)
    try:
        shown = snapshot(url)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    after = {row[0] for row in sqlite3.connect(state / "weft.db").execute("SELECT version FROM _sqlx_migrations")}
    assert before <= after, "a migration the release had applied is gone"

    expected = json.loads((FIXTURE / "expected.json").read_text())
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

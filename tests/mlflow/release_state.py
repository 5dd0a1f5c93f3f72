"""What a state directory shows through weft server: shared by
tests/fixtures/make_release_state.py (which records it for a release) and
test_release_state.py (which checks that later releases show the same)."""
import glob
import json
import shutil
import subprocess
import urllib.request

import server_process


def pg_tool(name, *args):
    """Runs one of PostgreSQL's client programs (psql, pg_dump) and returns
    its output; the programs of Debian's server package are found too."""
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))), None)
    if not found:
        raise RuntimeError(f"{name} is not installed (Debian's postgresql-client has it)")
    return subprocess.run([found, *args], check=True, capture_output=True, text=True).stdout


def start_server(weft, state, env):
    """Starts `weft server` on `state`; (process, url)."""
    server = server_process.start([str(weft), "--state-dir", str(state), "server", "--port", "0"], env=env)
    return server.proc, server.url


def _get(url):
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def _read(url):
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read().decode()


def snapshot(url):
    """Everything the state shows: client-logged runs and the registry
    through the official mlflow client, pipeline runs through the MLflow
    API and weft's own API, with artifact contents."""
    from mlflow import MlflowClient
    from mlflow.entities import ViewType

    client = MlflowClient(url)
    shown = {"experiments": {}, "pipeline_runs": [], "registry": {}}
    for experiment in sorted(client.search_experiments(view_type=ViewType.ALL), key=lambda e: e.name):
        runs = []
        for run in sorted(client.search_runs([experiment.experiment_id], run_view_type=ViewType.ALL),
                          key=lambda r: (r.info.start_time, r.info.run_id)):
            info = run.info
            artifacts = {}
            if experiment.name == "client-logged":
                for item in client.list_artifacts(info.run_id, "model"):
                    path = client.download_artifacts(info.run_id, item.path)
                    with open(path) as f:
                        artifacts[item.path] = f.read()
            runs.append({
                "run_id": info.run_id,
                "run_name": info.run_name,
                "status": info.status,
                "start_time": info.start_time,
                "end_time": info.end_time,
                "lifecycle_stage": info.lifecycle_stage,
                "params": dict(run.data.params),
                "metrics": dict(run.data.metrics),
                "tags": dict(run.data.tags),
                "metric_history": {
                    key: [[m.step, m.timestamp, m.value] for m in client.get_metric_history(info.run_id, key)]
                    for key in sorted(run.data.metrics)
                },
                "artifacts": artifacts,
            })
        shown["experiments"][experiment.name] = {
            "lifecycle_stage": experiment.lifecycle_stage,
            "tags": dict(experiment.tags),
            "runs": runs,
        }
    for model in client.search_registered_models():
        versions = client.search_model_versions(f"name = '{model.name}'")
        shown["registry"][model.name] = {
            "description": model.description,
            "aliases": dict(model.aliases),
            "versions": [
                {"version": v.version, "source": v.source, "run_id": v.run_id, "status": v.status}
                for v in sorted(versions, key=lambda v: int(v.version))
            ],
        }
    for run in sorted(_get(f"{url}/api/v1/runs")["runs"], key=lambda r: r["number"]):
        detail = _get(f"{url}/api/v1/runs/{run['id']}")
        steps = {}
        for step in detail["steps"]:
            one = _get(f"{url}/api/v1/runs/{run['id']}/steps/{step['step_name']}")
            steps[step["step_name"]] = {
                "step": one["step"],
                "inputs": one["inputs"],
                "outputs": one["outputs"],
                "contents": {
                    o["slot"]: _read(f"{url}/api/v1/artifacts/{o['id']}/content") for o in one["outputs"]
                },
                "logs": _read(f"{url}/api/v1/runs/{run['id']}/steps/{step['step_name']}/logs"),
            }
        shown["pipeline_runs"].append({
            "run": detail["run"],
            "manifest": detail["manifest"],
            "metrics": detail["metrics"],
            "metric_summaries": _get(f"{url}/api/v1/runs/{run['id']}/metrics"),
            "steps": steps,
        })
    return shown

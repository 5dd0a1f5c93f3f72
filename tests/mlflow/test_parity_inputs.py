"""Differential tests: dataset inputs of runs, as `mlflow server` answers them."""
from mlflow.entities import Dataset, DatasetInput, InputTag

from parity import compare


def test_log_inputs(weft_server, mlflow_reference):
    def scenario(s):
        c = s.client
        eid = c.create_experiment(s.name("inputs"))
        rid = c.create_run(eid, run_name="train").info.run_id
        train = Dataset(name="iris", digest="abc123", source_type="local", source='{"uri": "data/iris.csv"}',
                        schema='{"mlflow_colspec": [{"type": "double", "name": "sepal_length"}]}',
                        profile='{"num_rows": 150}')
        test = Dataset(name="iris", digest="def456", source_type="local", source='{"uri": "data/test.csv"}')
        s.call("log two", c.log_inputs, rid, [
            DatasetInput(train, [InputTag("mlflow.data.context", "training")]),
            DatasetInput(test, [InputTag("mlflow.data.context", "testing")]),
        ])
        s.call("log again", c.log_inputs, rid, [DatasetInput(train, [InputTag("mlflow.data.context", "training")])])
        s.call("run with inputs", c.get_run, rid)
        other = c.create_run(eid, run_name="eval").info.run_id
        s.call("same dataset, other run", c.log_inputs, other, [DatasetInput(train, [])])
        s.call("other run", lambda: c.get_run(other).inputs)
        s.call("search shows inputs", lambda: [r.inputs for r in c.search_runs([eid], order_by=["attributes.run_name"])])
        s.call("no datasets", c.log_inputs, rid, [])
        s.call("unknown run", c.log_inputs, "0" * 32, [DatasetInput(train, [])])
        s.http("missing digest", "POST", "/api/2.0/mlflow/runs/log-inputs",
               json={"run_id": rid, "datasets": [{"dataset": {"name": "x", "source_type": "local", "source": "{}"}}]})
        s.http("long name", "POST", "/api/2.0/mlflow/runs/log-inputs",
               json={"run_id": rid, "datasets": [{"dataset": {"name": "n" * 501, "digest": "d", "source_type": "local", "source": "{}"}}]})

    compare(scenario, mlflow_reference, weft_server)

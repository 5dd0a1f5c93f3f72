"""Differential tests: MLflow tracing (`@mlflow.trace`, `mlflow.start_span`,
`search_traces`), as `mlflow server` answers the official client.

Two differences are accepted (and listed in the README):
- the reference takes spans over OTLP into its database and tags a trace
  `mlflow.trace.spansLocation = TRACKING_STORE`; weft keeps the client's
  `traces.json` in its artifact store (the client's other path), so the tag
  is absent. The spans read back are the same;
- tagging a trace that does not exist: the reference answers BAD_REQUEST
  with its database's integrity error; weft answers RESOURCE_DOES_NOT_EXIST.
"""
import json
import time

import mlflow
import pytest

from parity import compare

# Tags that say where spans went.
WHERE = {"mlflow.artifactLocation", "mlflow.trace.spansLocation"}
# Metadata the client computes from the serialised trace, ids included.
SIZES = {"mlflow.trace.sizeBytes", "mlflow.trace.sizeStats"}


def summary(trace):
    """What a user reads from a trace, without ids and times."""
    info = trace.info
    names = {span.span_id: span.name for span in trace.data.spans}
    metadata = {k: v for k, v in info.trace_metadata.items() if k not in SIZES}
    run = metadata.pop("mlflow.sourceRun", None)
    return {
        "state": str(info.state),
        "tags": {k: v for k, v in info.tags.items() if k not in WHERE},
        "metadata": metadata,
        "in a run": run is not None,
        "request_preview": info.request_preview,
        "response_preview": info.response_preview,
        "has duration": info.execution_duration is not None,
        "spans": sorted(
            [
                span.name,
                names.get(span.parent_id),
                span.span_type,
                json.dumps(span.inputs, sort_keys=True),
                json.dumps(span.outputs, sort_keys=True),
                str(span.status.status_code),
                {k: v for k, v in span.attributes.items() if k != "mlflow.traceRequestId"},
                [e.name for e in span.events],
                span.end_time_ns >= span.start_time_ns,
            ]
            for span in trace.data.spans
        ),
    }


@pytest.fixture(autouse=True)
def synchronous_tracing(monkeypatch):
    # Each trace is exported when its root span ends, before the next call.
    monkeypatch.setenv("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")


def test_traces(weft_server, mlflow_reference):
    def scenario(s):
        c = s.client
        mlflow.set_tracking_uri(s.url)
        eid = c.create_experiment(s.name("traces"))
        mlflow.set_experiment(experiment_id=eid)

        @mlflow.trace(name="predict", span_type="CHAIN")
        def predict(x):
            with mlflow.start_span(name="retrieve", span_type="RETRIEVER") as span:
                span.set_inputs({"query": x})
                span.set_attribute("top_k", 3)
                span.add_event(mlflow.entities.SpanEvent("cache miss"))
                span.set_outputs(["doc1", "doc2"])
            return x * 2

        @mlflow.trace
        def fails():
            raise ValueError("boom")

        predict(2)
        time.sleep(0.01)
        with pytest.raises(ValueError):
            fails()
        time.sleep(0.01)
        with mlflow.start_run(run_name="traced") as run:
            predict(5)
        run_id = run.info.run_id

        traces = c.search_traces(locations=[eid])
        s.note("newest first", [summary(t) for t in traces])
        ids = [t.info.trace_id for t in traces]
        s.note("get", summary(c.get_trace(ids[0])))
        for label, text in [
            ("errors", "trace.status = 'ERROR'"),
            ("by name", "trace.name = 'predict'"),
            ("name in", "trace.name IN ('fails', 'other')"),
            ("status in", "trace.status IN ('ERROR', 'IN_PROGRESS')"),
            ("by run", f"trace.run_id = '{run_id}'"),
            ("by tag", "tags.`mlflow.traceName` = 'fails'"),
            ("by metadata", "metadata.`mlflow.sourceRun` = 'nope'"),
            ("since", "trace.timestamp_ms > 0 AND trace.status != 'ERROR'"),
            ("like", "trace.name LIKE 'pre%'"),
        ]:
            s.call(label, lambda: [
                [t.info.tags.get("mlflow.traceName"), ids.index(t.info.trace_id)]
                for t in c.search_traces(locations=[eid], filter_string=text)
            ])
        for label, order in [("oldest first", ["timestamp_ms ASC"]), ("by name", ["name ASC", "timestamp_ms DESC"])]:
            found = c.search_traces(locations=[eid], order_by=order)
            s.note(label, [ids.index(t.info.trace_id) for t in found])
        page = c.search_traces(locations=[eid], max_results=2)
        rest = c.search_traces(locations=[eid], max_results=2, page_token=page.token)
        s.note("pages", [[ids.index(t.info.trace_id) for t in page], [ids.index(t.info.trace_id) for t in rest]])
        s.call("unknown attribute", c.search_traces, locations=[eid], filter_string="trace.bogus = 'x'")
        s.call("bad filter", c.search_traces, locations=[eid], filter_string="trace.name = ")

        s.call("tag", c.set_trace_tag, ids[1], "team", "ml")
        s.note("tagged", c.get_trace(ids[1]).info.tags.get("team"))
        s.call("untag", c.delete_trace_tag, ids[1], "team")
        s.note("untagged", "team" in c.get_trace(ids[1]).info.tags)
        s.call("untag again", c.delete_trace_tag, ids[1], "team")
        s.call("tag unknown trace", c.set_trace_tag, "tr-" + "0" * 32, "team", "ml")
        s.call("get unknown trace", lambda: c.get_trace("tr-" + "0" * 32).info.trace_id)

        s.call("delete one", c.delete_traces, eid, trace_ids=[ids[0]])
        s.note("left", [ids.index(t.info.trace_id) for t in c.search_traces(locations=[eid])])
        s.call("delete oldest", c.delete_traces, eid, max_timestamp_millis=int(time.time() * 1000), max_traces=1)
        s.note("left after", [ids.index(t.info.trace_id) for t in c.search_traces(locations=[eid])])
        s.call("delete neither", c.delete_traces, eid)

        c.delete_experiment(eid)
        mlflow.set_experiment(experiment_id="0")

    def unknown_trace_is_not_found(ref, ours):
        return ref == ("tag unknown trace", "error", "BAD_REQUEST") and ours == (
            "tag unknown trace", "error", "RESOURCE_DOES_NOT_EXIST")

    compare(scenario, mlflow_reference, weft_server, accepted=[unknown_trace_is_not_found])


def test_trace_endpoints_refuse_bad_requests(weft_server, mlflow_reference):
    def scenario(s):
        c = s.client
        eid = c.create_experiment(s.name("trace-http"))
        info = {
            "trace_id": "tr-" + "1" * 32,
            "trace_location": {"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": eid}},
            "request_time": "2026-01-31T12:00:00.250Z",
            "execution_duration": "1.500s",
            "state": "OK",
            "trace_metadata": {"k": "v"},
            "tags": {"mlflow.traceName": "raw"},
        }
        s.http("start", "POST", "/api/3.0/mlflow/traces", json={"trace": {"trace_info": info}})
        s.http("read", "GET", f"/api/3.0/mlflow/traces/{info['trace_id']}")
        s.http("search", "POST", "/api/3.0/mlflow/traces/search",
               json={"locations": [{"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": eid}}]})
        s.http("unknown experiment", "POST", "/api/3.0/mlflow/traces", json={"trace": {"trace_info": {
            **info, "trace_id": "tr-" + "2" * 32,
            "trace_location": {"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": "987654"}}}}})
        c.delete_experiment(eid)
        s.http("deleted experiment", "POST", "/api/3.0/mlflow/traces", json={"trace": {"trace_info": {
            **info, "trace_id": "tr-" + "3" * 32}}})

    compare(scenario, mlflow_reference, weft_server)

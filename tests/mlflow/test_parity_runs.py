"""Differential tests: runs, params, tags and metrics, as `mlflow server`
answers them."""
import time

from mlflow.entities import Metric, Param, RunTag

from parity import compare


def test_run_names_and_users(weft_server, mlflow_reference):
    def scenario(s):
        c = s.client
        eid = c.create_experiment(s.name("names"))
        generated = s.call("generated name", c.create_run, eid)
        s.call("named", c.create_run, eid, run_name="my run")
        s.call("name and equal tag", c.create_run, eid, run_name="same", tags={"mlflow.runName": "same"})
        s.call("name and different tag", c.create_run, eid, run_name="one", tags={"mlflow.runName": "other"})
        s.call("tag only", c.create_run, eid, tags={"mlflow.runName": "from tag"})
        s.call("user tag", c.create_run, eid, tags={"mlflow.user": "alice"})
        run = s.call("explicit start time", c.create_run, eid, start_time=1_700_000_000_000)
        rid = run.info.run_id
        s.call("rename by tag", c.set_tag, rid, "mlflow.runName", "renamed")
        s.call("get renamed", c.get_run, rid)
        s.call("rename by update", c.update_run, rid, name="updated")
        s.call("get updated", c.get_run, rid)
        s.call("finish", c.set_terminated, rid, status="KILLED", end_time=1_700_000_100_000)
        s.call("get finished", c.get_run, rid)
        s.call("delete run", c.delete_run, rid)
        s.call("get deleted run", c.get_run, rid)
        s.call("tag a deleted run", c.set_tag, rid, "k", "v")
        s.call("restore run", c.restore_run, rid)
        s.call("unknown run", c.get_run, "0" * 32)
        s.note("generated name shape", generated.info.run_name.count("-"))

    compare(scenario, mlflow_reference, weft_server)


def test_param_and_tag_rules(weft_server, mlflow_reference):
    def scenario(s):
        c = s.client
        eid = c.create_experiment(s.name("rules"))
        rid = c.create_run(eid, run_name="rules").info.run_id
        for key in ["ok_key", "a/b", "a.b-c d:e", "x" * 250, "x" * 251, "../up", "./here", "/abs", "a/../b",
                    "bad\\key", "semi;colon", "", "ünïcode", "tab\tkey"]:
            s.call(f"param {key[:20]!r}", c.log_param, rid, key, "1")
            s.call(f"tag {key[:20]!r}", c.set_tag, rid, key, "1")
            s.call(f"metric {key[:20]!r}", c.log_metric, rid, key, 1.0, timestamp=1, step=0)
        s.call("long param value", c.log_param, rid, "long", "v" * 7000)
        s.call("long tag value", c.set_tag, rid, "long", "t" * 9000)
        s.call("param changed", c.log_param, rid, "ok_key", "2")
        s.call("param same", c.log_param, rid, "ok_key", "1")
        run = s.call("after", c.get_run, rid)
        if run is not None:
            s.note("param lengths", {k: len(v) for k, v in run.data.params.items()})
            s.note("tag lengths", {k: len(v) for k, v in run.data.tags.items()})

    compare(scenario, mlflow_reference, weft_server)


def test_log_batch_limits_and_duplicates(weft_server, mlflow_reference):
    def scenario(s):
        c = s.client
        eid = c.create_experiment(s.name("batch"))
        rid = c.create_run(eid, run_name="batch").info.run_id
        t = 1_700_000_000_000
        s.call("metrics 1000", c.log_batch, rid, metrics=[Metric("m", float(i), t, i) for i in range(1000)])
        s.call("metrics 1001", c.log_batch, rid, metrics=[Metric("n", float(i), t, i) for i in range(1001)])
        s.call("params 100", c.log_batch, rid, params=[Param(f"p{i}", "v") for i in range(100)])
        s.call("params 101", c.log_batch, rid, params=[Param(f"q{i}", "v") for i in range(101)])
        s.call("tags 100", c.log_batch, rid, tags=[RunTag(f"t{i}", "v") for i in range(100)])
        s.call("tags 101", c.log_batch, rid, tags=[RunTag(f"u{i}", "v") for i in range(101)])
        s.call("duplicate params same value", c.log_batch, rid, params=[Param("d", "1"), Param("d", "1")])
        s.call("duplicate params different value", c.log_batch, rid, params=[Param("e", "1"), Param("e", "2")])
        s.call("duplicate tags", c.log_batch, rid, tags=[RunTag("dt", "1"), RunTag("dt", "2")])
        s.call("duplicate metrics", c.log_batch, rid, metrics=[Metric("dm", 1.0, t, 0), Metric("dm", 1.0, t, 0)])
        s.call("too many in total", c.log_batch, rid, metrics=[Metric("o", 1.0, t, i) for i in range(900)],
               params=[Param(f"r{i}", "v") for i in range(100)], tags=[RunTag(f"s{i}", "v") for i in range(100)])
        s.call("long value in batch", c.log_batch, rid, params=[Param("lv", "x" * 7000)], tags=[RunTag("lt", "y" * 9000)])
        run = c.get_run(rid)
        s.note("params", sorted((k, len(v)) for k, v in run.data.params.items()))
        s.note("tags", sorted((k, len(v)) for k, v in run.data.tags.items() if not k.startswith("mlflow.")))
        s.note("metrics", sorted(run.data.metrics.items()))
        s.call("history m", lambda: [(m.step, m.value) for m in c.get_metric_history(rid, "m")][::97])
        s.call("history dm", c.get_metric_history, rid, "dm")

    compare(scenario, mlflow_reference, weft_server)


def test_metric_history(weft_server, mlflow_reference):
    def scenario(s):
        c = s.client
        eid = c.create_experiment(s.name("history"))
        rid = c.create_run(eid, run_name="history").info.run_id
        # Out of order steps and timestamps, repeats, NaN and infinities.
        points = [(5, 10, 0.5), (1, 30, 0.1), (3, 20, 0.3), (1, 10, 0.2), (3, 20, 0.3), (2, 5, float("nan")),
                  (4, 40, float("inf")), (0, 50, float("-inf")), (1, 10, 0.15)]
        for step, ts, value in points:
            s.call(f"log {step}/{ts}", c.log_metric, rid, "loss", value, timestamp=ts, step=step)
        s.call("history", c.get_metric_history, rid, "loss")
        s.call("latest", lambda: c.get_run(rid).data.metrics)
        s.call("unknown key", c.get_metric_history, rid, "nope")
        s.call("unknown run", c.get_metric_history, "f" * 32, "loss")
        s.http("history over REST", "GET", "/api/2.0/mlflow/metrics/get-history",
               params={"run_id": rid, "metric_key": "loss"})
        s.http("history without a key", "GET", "/api/2.0/mlflow/metrics/get-history", params={"run_id": rid})
        s.http("bad value", "POST", "/api/2.0/mlflow/runs/log-metric",
               json={"run_id": rid, "key": "loss", "value": "high", "timestamp": 1, "step": 0})

    compare(scenario, mlflow_reference, weft_server)


def test_search_runs(weft_server, mlflow_reference):
    def scenario(s):
        c = s.client
        eid = c.create_experiment(s.name("search"))
        other = c.create_experiment(s.name("search-other"))
        t = 1_700_000_000_000
        rows = [("a", 0.9, "cnn", "FINISHED"), ("b", 0.7, "mlp", "FINISHED"), ("c", 0.8, "cnn", "FAILED"),
                ("d", None, "svm", "RUNNING"), ("e", 0.95, "cnn", "FINISHED")]
        for i, (name, acc, model, status) in enumerate(rows):
            run = c.create_run(eid, run_name=name, start_time=t + i * 1000, tags={"team": "x" if i % 2 else "y"})
            rid = run.info.run_id
            c.log_param(rid, "model", model)
            if acc is not None:
                c.log_metric(rid, "acc", acc, timestamp=t, step=0)
            c.log_metric(rid, "loss", 1 - i / 10, timestamp=t, step=i)
            if status != "RUNNING":
                c.set_terminated(rid, status=status, end_time=t + i * 1000 + 500)
        c.create_run(other, run_name="elsewhere", start_time=t)
        deleted = c.create_run(eid, run_name="gone", start_time=t).info.run_id
        c.delete_run(deleted)

        def names(label, **kw):
            s.call(label, lambda: [r.info.run_name for r in c.search_runs([eid], **kw)])

        names("default order")
        names("by metric", order_by=["metrics.acc DESC"])
        names("by metric asc, missing last", order_by=["metrics.acc ASC"])
        names("by param then name", order_by=["params.model", "attributes.run_name DESC"])
        names("by start", order_by=["attributes.start_time ASC"])
        names("by end", order_by=["attributes.end_time DESC"])
        names("metric filter", filter_string="metrics.acc >= 0.8")
        names("param filter", filter_string="params.model = 'cnn'", order_by=["attributes.run_name"])
        names("param in", filter_string="params.model IN ('mlp', 'svm')", order_by=["attributes.run_name"])
        names("tag filter", filter_string="tags.team = 'x'", order_by=["attributes.run_name"])
        names("status", filter_string="attributes.status = 'FINISHED'", order_by=["attributes.run_name"])
        names("status !=", filter_string="attributes.status != 'FINISHED'", order_by=["attributes.run_name"])
        names("name like", filter_string="attributes.run_name LIKE '%a%'")
        names("name ilike", filter_string="run_name ILIKE 'A'")
        names("combined", filter_string="metrics.acc > 0.75 and params.model = 'cnn' and tags.team = 'y'",
              order_by=["metrics.acc"])
        names("start time", filter_string=f"attributes.start_time > {t + 1500}", order_by=["attributes.run_name"])
        names("deleted only", run_view_type=2)
        names("all", run_view_type=3, order_by=["attributes.run_name"])
        names("unknown metric", filter_string="metrics.nope > 0")
        names("bad filter", filter_string="metrics.acc >")
        names("bad order", order_by=["metrics.acc SIDEWAYS"])
        names("unknown attribute", filter_string="attributes.colour = 'red'")
        s.call("two experiments", lambda: sorted(r.info.run_name for r in c.search_runs([eid, other], filter_string="params.model = 'cnn' or 1")))
        seen = []
        token = None
        while True:
            page = c.search_runs([eid], max_results=2, order_by=["attributes.run_name"], page_token=token)
            seen.append([r.info.run_name for r in page])
            token = page.token
            if not token:
                break
        s.note("pages", seen)
        s.call("one run's data", lambda: c.search_runs([eid], filter_string="attributes.run_name = 'e'")[0].data)

    compare(scenario, mlflow_reference, weft_server)

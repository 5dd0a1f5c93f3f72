"""Differential tests: logged models and their metrics, as `mlflow server`
answers them."""
from parity import compare


def test_logged_model_metrics(weft_server, mlflow_reference):
    def scenario(s):
        c = s.client
        eid = c.create_experiment(s.name("models"))
        rid = c.create_run(eid, run_name="train").info.run_id
        model = s.call("create", c.create_logged_model, eid, name="clf", source_run_id=rid,
                       params={"C": "1.0"}, tags={"team": "ml"}, model_type="sklearn")
        mid = model.model_id
        s.call("metric on the model", c.log_metric, rid, "acc", 0.93, timestamp=1_700_000_000_000, step=1, model_id=mid)
        s.call("metric with dataset", c.log_metric, rid, "acc", 0.91, timestamp=1_700_000_000_001, step=1,
               model_id=mid, dataset_name="iris", dataset_digest="abc")
        s.call("model", c.get_logged_model, mid)
        s.call("run", lambda: c.get_run(rid).data.metrics)
        s.call("finalize", c.finalize_logged_model, mid, "READY")
        s.call("search", lambda: [m.name for m in c.search_logged_models([eid])])
        s.call("search by metric", lambda: [m.name for m in c.search_logged_models([eid], filter_string="metrics.acc > 0.9")])
        s.call("unknown model", c.get_logged_model, "m-" + "0" * 32)

    compare(scenario, mlflow_reference, weft_server)

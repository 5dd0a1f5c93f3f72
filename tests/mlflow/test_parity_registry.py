"""Differential tests: the model registry, as `mlflow server` answers it."""
from parity import compare


def test_registered_models_search_and_order(weft_server, mlflow_reference):
    def scenario(s):
        c = s.client
        for name in ["bravo", "alpha", "charlie"]:
            s.call(f"create {name}", c.create_registered_model, s.name(name), tags={"team": name[0]},
                   description=f"the {name} model")
        s.call("create again", c.create_registered_model, s.name("alpha"))
        s.call("bad name", c.create_registered_model, "")
        mine = f"name LIKE '{s.prefix}-%'"
        s.call("default order", c.search_registered_models, filter_string=mine)
        s.call("name desc", c.search_registered_models, filter_string=mine, order_by=["name DESC"])
        s.call("by update time", c.search_registered_models, filter_string=mine, order_by=["last_updated_timestamp"])
        s.call("unknown order column", c.search_registered_models, filter_string=mine, order_by=["colour"])
        s.call("by tag", c.search_registered_models, filter_string=f"{mine} AND tags.team = 'b'")
        s.call("exact name", c.search_registered_models, filter_string=f"name = '{s.name('charlie')}'")
        s.call("ilike", c.search_registered_models, filter_string=f"name ILIKE '{s.prefix.upper()}-A%'")
        s.call("page 1", c.search_registered_models, filter_string=mine, max_results=2, order_by=["name"])
        s.call("rename", c.rename_registered_model, s.name("charlie"), s.name("delta"))
        s.call("get renamed", c.get_registered_model, s.name("delta"))
        s.call("get old name", c.get_registered_model, s.name("charlie"))
        s.call("update description", c.update_registered_model, s.name("delta"), description="new")
        s.call("set tag", c.set_registered_model_tag, s.name("delta"), "k", "v")
        s.call("delete tag", c.delete_registered_model_tag, s.name("delta"), "k")
        s.call("delete", c.delete_registered_model, s.name("delta"))
        s.call("get deleted", c.get_registered_model, s.name("delta"))
        s.call("delete missing", c.delete_registered_model, s.name("delta"))

    compare(scenario, mlflow_reference, weft_server)


def test_model_versions_sources_stages_and_aliases(weft_server, mlflow_reference):
    def scenario(s):
        c = s.client
        eid = c.create_experiment(s.name("reg"))
        run = c.create_run(eid, run_name="train")
        rid = run.info.run_id
        other = c.create_run(eid, run_name="other").info.run_id
        name = s.name("model")
        c.create_registered_model(name)
        s.call("v1 runs uri", c.create_model_version, name, f"runs:/{rid}/model", run_id=rid, tags={"k": "1"})
        s.call("v2 artifact uri", c.create_model_version, name, f"{run.info.artifact_uri}/model", run_id=rid)
        s.call("v3 other run", c.create_model_version, name, f"runs:/{other}/model", run_id=other)
        s.call("bad source", c.create_model_version, name, "file:///etc/passwd", run_id=rid)
        s.call("missing model", c.create_model_version, s.name("nope"), f"runs:/{rid}/model", run_id=rid)
        s.call("get v1", c.get_model_version, name, "1")
        s.call("get v9", c.get_model_version, name, "9")
        s.call("download uri v1", c.get_model_version_download_uri, name, "1")
        s.call("download uri v2", c.get_model_version_download_uri, name, "2")
        s.call("search by name", c.search_model_versions, f"name = '{name}'")
        s.call("search by run", c.search_model_versions, f"run_id = '{other}'")
        s.call("search run in", c.search_model_versions, f"run_id IN ('{rid}', '{other}')", order_by=["version_number DESC"])
        s.call("search source", c.search_model_versions, f"source_path = 'runs:/{rid}/model'")
        s.call("search tag", c.search_model_versions, f"name = '{name}' AND tags.k = '1'")
        s.call("order versions", c.search_model_versions, f"name = '{name}'", order_by=["version_number ASC"])
        s.call("unknown version order", c.search_model_versions, f"name = '{name}'", order_by=["colour"])
        s.call("to staging", c.transition_model_version_stage, name, "1", "Staging")
        s.call("to production", c.transition_model_version_stage, name, "2", "Production")
        s.call("v3 production, archive others", c.transition_model_version_stage, name, "3", "Production",
               archive_existing_versions=True)
        s.call("bad stage", c.transition_model_version_stage, name, "1", "Heaven")
        s.call("latest", c.get_latest_versions, name)
        s.call("latest production", c.get_latest_versions, name, stages=["Production"])
        s.call("after transitions", c.search_model_versions, f"name = '{name}'", order_by=["version_number ASC"])
        s.call("alias", c.set_registered_model_alias, name, "champion", "1")
        s.call("alias to missing version", c.set_registered_model_alias, name, "ghost", "9")
        s.call("bad alias", c.set_registered_model_alias, name, "v1", "1")
        s.call("by alias", c.get_model_version_by_alias, name, "champion")
        s.call("missing alias", c.get_model_version_by_alias, name, "nope")
        s.call("model with alias", c.get_registered_model, name)
        s.call("delete alias", c.delete_registered_model_alias, name, "champion")
        s.call("delete missing alias", c.delete_registered_model_alias, name, "champion")
        s.call("update version", c.update_model_version, name, "1", description="first")
        s.call("version tag", c.set_model_version_tag, name, "1", "stage", "ok")
        s.call("delete version tag", c.delete_model_version_tag, name, "1", "stage")
        s.call("delete version", c.delete_model_version, name, "2")
        s.call("get deleted version", c.get_model_version, name, "2")
        s.call("next version number", c.create_model_version, name, f"runs:/{rid}/model", run_id=rid)

    compare(scenario, mlflow_reference, weft_server)

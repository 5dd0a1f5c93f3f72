"""Differential tests: experiments, as `mlflow server` answers them."""
from mlflow.entities import ViewType

from parity import compare


def test_experiment_lifecycle(weft_server, mlflow_reference):
    def scenario(s):
        c = s.client
        eid = s.call("create", c.create_experiment, s.name("a"), tags={"team": "vision"})
        s.call("create again", c.create_experiment, s.name("a"))
        s.call("create empty name", c.create_experiment, "")
        s.call("get", c.get_experiment, eid)
        s.call("get by name", c.get_experiment_by_name, s.name("a"))
        s.call("get by unknown name", c.get_experiment_by_name, s.name("nope"))
        s.call("get unknown id", c.get_experiment, "987654321")
        s.call("rename", c.rename_experiment, eid, s.name("b"))
        s.call("get renamed", c.get_experiment, eid)
        s.call("old name is gone", c.get_experiment_by_name, s.name("a"))
        other = s.call("create other", c.create_experiment, s.name("c"))
        s.call("rename onto an existing name", c.rename_experiment, eid, s.name("c"))
        s.call("set tag", c.set_experiment_tag, eid, "stage", "dev")
        s.call("set tag again", c.set_experiment_tag, eid, "stage", "prod")
        s.call("get tagged", c.get_experiment, eid)
        s.call("delete tag", c.delete_experiment_tag, eid, "stage")
        s.call("delete missing tag", c.delete_experiment_tag, eid, "stage")
        s.call("get untagged", c.get_experiment, eid)
        run = s.call("run in active", c.create_run, eid)
        s.call("delete", c.delete_experiment, eid)
        s.call("get deleted", c.get_experiment, eid)
        s.call("get deleted by name", c.get_experiment_by_name, s.name("b"))
        s.call("run in deleted", c.create_run, eid)
        s.call("the runs of a deleted experiment", c.get_run, run.info.run_id)
        s.call("delete again", c.delete_experiment, eid)
        s.call("create with a deleted name", c.create_experiment, s.name("b"))
        s.call("restore", c.restore_experiment, eid)
        s.call("get restored", c.get_experiment, eid)
        s.call("restore active", c.restore_experiment, eid)
        s.call("delete other", c.delete_experiment, other)

    compare(scenario, mlflow_reference, weft_server)


def test_search_experiments(weft_server, mlflow_reference):
    def scenario(s):
        c = s.client
        ids = []
        for i, (name, team) in enumerate([("alpha", "a"), ("beta", "b"), ("gamma", "a"), ("delta", "b"), ("eps", "a")]):
            ids.append(s.call(f"create {name}", c.create_experiment, s.name(name), tags={"team": team, "n": str(i)}))
        c.delete_experiment(ids[3])
        mine = f"name LIKE '{s.prefix}-%'"

        def names(label, **kw):
            page = s.call(label, c.search_experiments, **kw)
            return page

        names("active", filter_string=mine, order_by=["name"])
        names("deleted", filter_string=mine, view_type=ViewType.DELETED_ONLY)
        names("all", filter_string=mine, view_type=ViewType.ALL, order_by=["name DESC"])
        names("by tag", filter_string=f"{mine} AND tags.team = 'a'", order_by=["name"])
        names("tag like", filter_string=f"{mine} AND tags.n LIKE '%2%'")
        names("ilike", filter_string=f"name ILIKE '{s.prefix.upper()}-%ALPHA'")
        names("name !=", filter_string=f"{mine} AND name != '{s.name('beta')}'", order_by=["name"])
        names("order by id", filter_string=mine, order_by=["experiment_id DESC"])
        names("order by creation", filter_string=mine, order_by=["creation_time"])
        names("order by last update", filter_string=mine, order_by=["last_update_time ASC"])
        names("unknown order column", filter_string=mine, order_by=["colour"])
        names("unknown filter attribute", filter_string="colour = 'red'")
        names("bad filter", filter_string="name = ")
        # Pages: every match once, in order, whatever the page size.
        seen = []
        token = None
        while True:
            page = c.search_experiments(filter_string=mine, max_results=2, order_by=["name"], page_token=token,
                                        view_type=ViewType.ALL)
            seen += [e.name for e in page]
            token = page.token
            if not token:
                break
        s.note("paged names", seen)
        names("max_results too large", max_results=100_000)
        names("max_results zero", filter_string=mine, max_results=0)
        names("bad page token", page_token="not-a-token")

    compare(scenario, mlflow_reference, weft_server)

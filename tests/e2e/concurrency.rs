//! Independent steps run at the same time, up to the parallelism limit.

use crate::harness::*;

/// Two steps napping 400 ms of real time (virtual time would pass at once).
fn two_naps() -> String {
    let h = toml_path(&guest("hostile"));
    format!(
        "[pipeline]\nname = \"naps\"\n\
         [steps.left]\ncomponent = {h}\noutputs = [\"out\"]\nparams = {{ attack = \"nap\", steps = 400 }}\nnondeterministic = true\n\
         [steps.right]\ncomponent = {h}\noutputs = [\"out\"]\nparams = {{ attack = \"nap\", steps = 401 }}\nnondeterministic = true\n"
    )
}

/// (started_at, ended_at) of a step of the latest run.
fn interval(project: &Project, step_name: &str) -> (i64, i64) {
    let detail = project.run_detail("latest");
    let s = step(&detail, step_name);
    (s["started_at"].as_i64().unwrap(), s["ended_at"].as_i64().unwrap())
}

#[test]
fn independent_steps_overlap_unless_limited_to_one() {
    let project = Project::new(&two_naps());
    run_json(
        &project.weft(&["run", "--json", "--no-cache", "--max-parallel", "2"]),
        0,
    );
    let (l, r) = (interval(&project, "left"), interval(&project, "right"));
    assert!(
        l.0 < r.1 && r.0 < l.1,
        "with 2 slots the steps overlap: left {l:?}, right {r:?}"
    );

    run_json(
        &project.weft(&["run", "--json", "--no-cache", "--max-parallel", "1"]),
        0,
    );
    let (l, r) = (interval(&project, "left"), interval(&project, "right"));
    assert!(
        l.1 <= r.0 || r.1 <= l.0,
        "with 1 slot the steps run one after the other: left {l:?}, right {r:?}"
    );
}

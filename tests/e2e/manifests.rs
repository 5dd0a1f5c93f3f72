//! Bad manifests are refused before anything runs, with an error that
//! names the problem.

use crate::harness::*;

fn good() -> String {
    format!(
        "[pipeline]\nname = \"m\"\n[inputs]\nraw = {{ path = \"raw.txt\" }}\n\
         [steps.a]\ncomponent = {e}\ninputs = {{ in = \"inputs.raw\" }}\noutputs = [\"out\"]\nparams = {{ prefix = \"x\" }}\n\
         [steps.b]\ncomponent = {e}\ninputs = {{ in = \"a.out\" }}\noutputs = [\"out\"]\nparams = {{ prefix = \"y\" }}\n",
        e = toml_path(&guest("echo"))
    )
}

fn refused(manifest: &str, args: &[&str], needles: &[&str]) {
    let project = Project::new(manifest);
    project.write("raw.txt", "data");
    let mut full = vec!["run"];
    full.extend_from_slice(args);
    let out = project.weft(&full);
    assert_eq!(
        out.status.code(),
        Some(2),
        "expected exit 2 for {needles:?}, got {:?}: {}",
        out.status.code(),
        stderr(&out)
    );
    let err = stderr(&out);
    for n in needles {
        assert!(err.contains(n), "error {err:?} does not mention {n:?}");
    }
    // Nothing ran: no run was recorded.
    let runs = project.weft(&["runs", "list", "--json"]);
    if runs.status.success() {
        let runs: serde_json::Value = serde_json::from_slice(&runs.stdout).unwrap();
        assert_eq!(runs.as_array().unwrap().len(), 0, "a run was recorded");
    }
}

#[test]
fn the_good_manifest_runs() {
    let project = Project::new(&good());
    project.write("raw.txt", "data");
    assert_eq!(run_json(&project.weft(&["run", "--json"]), 0)["executed"], 2);
    assert_eq!(stdout(&project.weft(&["artifacts", "get", "m/b.out"])), "yxdata");
}

#[test]
fn bad_manifests_name_the_problem() {
    let g = good();
    refused(
        &g.replace("\"inputs.raw\"", "\"b.out\""),
        &[],
        &["steps form a cycle: b -> a -> b"],
    );
    refused(
        &g.replace("\"a.out\"", "\"nope.out\""),
        &[],
        &["steps.b.inputs.in", "no step named 'nope'"],
    );
    refused(
        &g.replace("\"a.out\"", "\"a.missing\""),
        &[],
        &["steps.b.inputs.in", "no output 'missing'"],
    );
    refused(
        &g.replace("\"inputs.raw\"", "\"inputs.other\""),
        &[],
        &["steps.a.inputs.in", "'inputs.other' is not declared"],
    );
    refused(
        &format!("{g}[steps.a]\ncomponent = \"x.wasm\"\n"),
        &[],
        &["duplicate key", "a"],
    );
    refused(
        &format!("{g}[models]\nm = {{ output = \"b.out\", serve = \"s.wasm\" }}\n"),
        &[],
        &["models.m.serve", "unknown key"],
    );
    refused(
        &format!("{g}[models]\nm = {{ served_by = \"s.wasm\" }}\n"),
        &[],
        &["models.m", "'output' is missing"],
    );
    refused(
        &format!("{g}[models]\nm = {{ output = \"b.out\", served_by = 3 }}\n"),
        &[],
        &["models.m.served_by", "model server component"],
    );
    let missing = g.replacen(&toml_path(&guest("echo")), "\"missing.wasm\"", 1);
    refused(&missing, &[], &["steps.a.component", "missing.wasm", "does not exist"]);
    refused(
        &g.replace("raw.txt", "absent.txt"),
        &[],
        &["inputs.raw.path", "absent.txt"],
    );
    refused(
        &g,
        &["-p", "a.prefix=1", "-p", "b.nope=2"],
        &["steps.b.params.nope", "has no param 'nope'"],
    );
    refused(
        &g.replace("prefix = \"x\"", "prefix = 3"),
        &["-p", "a.prefix=abc"],
        &["steps.a.params.prefix", "but the param is an integer"],
    );
    refused(&g, &["-p", "zz.prefix=1"], &["no step named 'zz'"]);
    refused(
        &g.replace("[steps.b]", "[steps.b]\nlimits = { timeout = \"soon\" }"),
        &[],
        &["steps.b.limits.timeout", "soon"],
    );
    refused(
        "[pipeline]\nname = \"bad name!\"\n[steps.a]\ncomponent = \"a.wasm\"\n",
        &[],
        &["pipeline.name"],
    );
    refused("not toml at all [", &[], &["invalid manifest"]);
}

#[test]
fn init_writes_a_template_once() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("my project");
    let out = std::process::Command::new(weft_bin())
        .arg("init")
        .arg(&project)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let manifest = std::fs::read_to_string(project.join("weft.toml")).unwrap();
    assert!(manifest.contains("name = \"my-project\""), "{manifest}");
    assert!(std::fs::read_to_string(project.join(".gitignore"))
        .unwrap()
        .contains(".weft/"));
    // The template is valid up to having no steps yet, and says so.
    let run = std::process::Command::new(weft_bin())
        .arg("run")
        .current_dir(&project)
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(2));
    assert!(
        stderr(&run).contains("steps: the pipeline has no steps"),
        "{}",
        stderr(&run)
    );
    // A second init does not overwrite.
    let again = std::process::Command::new(weft_bin())
        .arg("init")
        .arg(&project)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert!(stderr(&again).contains("already exists"));
}

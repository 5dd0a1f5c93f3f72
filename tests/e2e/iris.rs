//! The iris example, end to end: the demo, caching, param and code changes,
//! lineage.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::harness::*;

/// A copy of examples/iris in a temporary directory whose steps can be
/// edited and rebuilt without touching the repository.
pub(crate) fn iris_copy() -> tempfile::TempDir {
    let src = repo_root().join("examples/iris");
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new("cp")
        .arg("-r")
        .args(
            ["weft.toml", "Cargo.toml", "Cargo.lock", "data", "steps", "serve"]
                .iter()
                .map(|p| src.join(p)),
        )
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    let cargo = dir.path().join("Cargo.toml");
    let text = std::fs::read_to_string(&cargo)
        .unwrap()
        .replace(
            "path = \"../../sdk/rust\"",
            &format!("path = {}", toml_path(&repo_root().join("sdk/rust"))),
        )
        .replace(
            "path = \"../../sdk/rust-model\"",
            &format!("path = {}", toml_path(&repo_root().join("sdk/rust-model"))),
        );
    std::fs::write(&cargo, text).unwrap();
    dir
}

pub(crate) fn weft_in(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(weft_bin())
        .args(args)
        .current_dir(dir)
        .env_remove("WEFT_DIR")
        .output()
        .unwrap()
}

fn accuracy(detail: &Value) -> f64 {
    // A cached step shows the metrics of the step run it was served from.
    let evaluate = step(detail, "evaluate");
    let evaluate = evaluate["cached_from"]
        .as_str()
        .or(evaluate["id"].as_str())
        .unwrap()
        .to_string();
    detail["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["key"] == "accuracy" && m["step_run_id"] == evaluate.as_str())
        .and_then(|m| m["value"].as_f64())
        .expect("evaluate logged accuracy")
}

#[test]
fn demo_runs_the_pipeline_then_everything_is_cached() {
    build_iris();
    let state = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .arg(repo_root().join("examples/iris/demo.sh"))
        .env("WEFT", weft_bin())
        .env("WEFT_DIR", state.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "demo failed:\n{}\n{}", stdout(&out), stderr(&out));
    assert!(stderr(&out).contains("4 executed, 0 cached"), "{}", stderr(&out));
    assert!(stdout(&out).contains("iris #1 — succeeded"), "{}", stdout(&out));

    let again = Command::new(weft_bin())
        .args(["run", "--json"])
        .current_dir(repo_root().join("examples/iris"))
        .env("WEFT_DIR", state.path())
        .output()
        .unwrap();
    let outcome = run_json(&again, 0);
    assert_eq!(outcome["executed"], 0);
    assert_eq!(outcome["cached"], 4);
    assert!(
        stderr(&again).contains("all cache hits, nothing executed"),
        "{}",
        stderr(&again)
    );

    let query = |args: &[&str]| -> Value {
        let out = Command::new(weft_bin())
            .args(args)
            .env("WEFT_DIR", state.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "weft {args:?}: {}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let detail = query(&["runs", "show", "latest", "--json"]);
    let runs = query(&["runs", "list", "--json"]);
    let first_id = runs.as_array().unwrap().last().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let first_detail = query(&["runs", "show", &first_id, "--json"]);
    let acc = accuracy(&first_detail);
    assert!(acc >= 0.9, "held-out accuracy {acc} < 0.9");
    assert_eq!(accuracy(&detail), acc, "the cached run shows the accuracy it reuses");
    for s in detail["steps"].as_array().unwrap() {
        assert_eq!(s["status"], "cached");
        assert!(s["cached_from"].is_string());
    }
}

#[test]
fn a_param_change_reruns_train_and_evaluate_only() {
    build_iris();
    let dir = iris_copy();
    let src = repo_root().join("examples/iris/target");
    // Reuse the components built in the repository.
    std::os::unix::fs::symlink(&src, dir.path().join("target")).unwrap();
    assert_eq!(run_json(&weft_in(dir.path(), &["run", "--json"]), 0)["executed"], 4);
    let changed = run_json(&weft_in(dir.path(), &["run", "--json", "-p", "train.epochs=200"]), 0);
    let s = statuses(&changed);
    assert_eq!(s["load"], "cached");
    assert_eq!(s["split"], "cached");
    assert_eq!(s["train"], "succeeded");
    assert_eq!(s["evaluate"], "succeeded");
    // And back: the original params are cached again.
    assert_eq!(run_json(&weft_in(dir.path(), &["run", "--json"]), 0)["executed"], 0);
    // --no-cache executes everything.
    assert_eq!(
        run_json(&weft_in(dir.path(), &["run", "--json", "--no-cache"]), 0)["executed"],
        4
    );
}

#[test]
fn a_code_change_reruns_that_step_and_its_downstream_only() {
    let dir = iris_copy();
    let build = weft_in(dir.path(), &["build"]);
    assert!(build.status.success(), "weft build failed: {}", stderr(&build));
    assert_eq!(run_json(&weft_in(dir.path(), &["run", "--json"]), 0)["executed"], 4);

    // Change the split step's code (a different shuffle): split and
    // everything downstream of it re-execute; load is reused.
    let s = edit_rebuild_run(
        dir.path(),
        "steps/split/src/lib.rs",
        "Rng::new(params.seed)",
        "Rng::new(params.seed.wrapping_add(1))",
    );
    assert_eq!(s, ["cached", "succeeded", "succeeded", "succeeded"]);

    // Change the last step's code: only it re-executes.
    let s = edit_rebuild_run(
        dir.path(),
        "steps/evaluate/src/lib.rs",
        "held-out accuracy",
        "accuracy on held-out data",
    );
    assert_eq!(s, ["cached", "cached", "cached", "succeeded"]);
}

/// Edits a step's source, rebuilds with `weft build`, runs, and returns the
/// statuses of load, split, train and evaluate.
fn edit_rebuild_run(dir: &Path, file: &str, from: &str, to: &str) -> [String; 4] {
    let path = dir.join(file);
    let code = std::fs::read_to_string(&path).unwrap();
    assert!(code.contains(from), "{file} no longer contains {from:?}");
    std::fs::write(&path, code.replace(from, to)).unwrap();
    let build = weft_in(dir, &["build"]);
    assert!(build.status.success(), "weft build failed: {}", stderr(&build));
    let s = statuses(&run_json(&weft_in(dir, &["run", "--json"]), 0));
    ["load", "split", "train", "evaluate"].map(|name| s[name].clone())
}

#[test]
fn every_artifact_traces_back_to_the_source_data() {
    build_iris();
    let dir = iris_copy();
    std::os::unix::fs::symlink(repo_root().join("examples/iris/target"), dir.path().join("target")).unwrap();
    run_json(&weft_in(dir.path(), &["run", "--json"]), 0);
    let out = weft_in(dir.path(), &["lineage", "iris/evaluate.report", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let node: Value = serde_json::from_slice(&out.stdout).unwrap();

    // report <- evaluate <- {model <- train <- train <- split <- dataset <- load <- iris.csv, test <- split ...}
    assert_eq!(node["producer"]["step_name"], "evaluate");
    assert_eq!(node["producer"]["component_digest"].as_str().unwrap().len(), 64);
    let inputs = node["inputs"].as_array().unwrap();
    let model = inputs.iter().find(|i| i[0] == "model").unwrap();
    assert_eq!(model[1]["producer"]["step_name"], "train");
    let train_input = &model[1]["inputs"][0];
    assert_eq!(train_input[1]["producer"]["step_name"], "split");
    let dataset = &train_input[1]["inputs"][0][1];
    assert_eq!(dataset["producer"]["step_name"], "load");
    let source = &dataset["inputs"][0][1];
    assert_eq!(source["artifact"]["name"], "iris/inputs.iris");
    assert!(source["producer"].is_null());
    assert!(source["artifact"]["source_uri"]
        .as_str()
        .unwrap()
        .ends_with("data/iris.csv"));
    assert_eq!(
        source["artifact"]["digest"],
        blake3::hash(&std::fs::read(repo_root().join("examples/iris/data/iris.csv")).unwrap())
            .to_hex()
            .as_str()
    );

    let text = weft_in(dir.path(), &["lineage", "iris/evaluate.report"]);
    assert!(stdout(&text).contains("source data: file://"), "{}", stdout(&text));

    // The artifact's bytes come back out unchanged.
    let report = weft_in(dir.path(), &["artifacts", "get", "iris/evaluate.report"]);
    let report: Value = serde_json::from_slice(&report.stdout).unwrap();
    assert!(report["accuracy"].as_f64().unwrap() >= 0.9);
}

#[test]
fn the_trained_model_is_registered_with_its_lineage() {
    build_iris();
    let dir = iris_copy();
    std::os::unix::fs::symlink(repo_root().join("examples/iris/target"), dir.path().join("target")).unwrap();
    let first = weft_in(dir.path(), &["run", "--json"]);
    run_json(&first, 0);
    assert!(
        stderr(&first).contains("model iris-softmax version 1 ← train.model"),
        "{}",
        stderr(&first)
    );
    // A cached rerun has the same model bytes: no new version.
    run_json(&weft_in(dir.path(), &["run", "--json"]), 0);
    // New params, new model: version 2.
    run_json(&weft_in(dir.path(), &["run", "--json", "-p", "train.epochs=100"]), 0);
    assert!(
        weft_in(dir.path(), &["models", "alias", "iris-softmax", "champion", "1"])
            .status
            .success()
    );

    let show = weft_in(dir.path(), &["models", "show", "iris-softmax", "--json"]);
    assert!(show.status.success(), "{}", stderr(&show));
    let model: Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(model["aliases"][0]["alias"], "champion");
    assert_eq!(model["aliases"][0]["version"], 1);
    let versions = model["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2);
    let v1 = versions.iter().find(|v| v["version"] == 1).unwrap();
    let tag = |key: &str| {
        v1["tags"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t[0] == key)
            .map(|t| t[1].as_str().unwrap().to_string())
            .unwrap()
    };
    assert_eq!(tag("weft.step"), "train");
    assert_eq!(tag("weft.component_digest").len(), 64);
    // The version's artifact traces back to the source data.
    let lineage = weft_in(dir.path(), &["lineage", &tag("weft.artifact_id"), "--json"]);
    let node: Value = serde_json::from_slice(&lineage.stdout).unwrap();
    assert_eq!(node["producer"]["step_name"], "train");
    assert_eq!(node["producer"]["run_id"], tag("weft.run_id").as_str());
    let list = weft_in(dir.path(), &["models", "list"]);
    assert!(stdout(&list).contains("iris-softmax"), "{}", stdout(&list));
    // Bad input is refused with the rule.
    let bad = weft_in(dir.path(), &["models", "alias", "iris-softmax", "latest", "1"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("invalid alias"));
}

//! Steps handed to workers: a stack with the `process` orchestrator runs
//! each step that is not a cache hit in a `weft step exec` process of its
//! own; `weft step exec` claims, executes and records one prepared step
//! run, and changes nothing when another worker had it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use weft_store::Store;

use crate::harness::*;
use crate::recovery::{manifest, start_until_slow_runs};

/// `weft ARGS` in examples/iris with its state in `state` and its stacks
/// in `home`.
fn iris_weft(state: &Path, home: &Path, args: &[&str]) -> Output {
    Command::new(weft_bin())
        .args(args)
        .current_dir(repo_root().join("examples/iris"))
        .env("WEFT_DIR", state)
        .env("WEFT_HOME", home)
        .env_remove("WEFT_MANIFEST")
        .env_remove("WEFT_DB")
        .env_remove("WEFT_ARTIFACTS")
        .env_remove("WEFT_STACK")
        .output()
        .unwrap()
}

async fn open(state: &Path) -> Store {
    Store::open(&format!("sqlite://{}", state.join("weft.db").display()))
        .await
        .unwrap()
}

/// step -> (status, [(output, digest)]) of the latest run.
pub(crate) async fn outcome(store: &Store) -> BTreeMap<String, (String, Vec<(String, String)>)> {
    let run = store.run("latest").await.unwrap();
    let mut steps = BTreeMap::new();
    for s in store.step_runs(&run.id).await.unwrap() {
        let mut outputs: Vec<(String, String)> = store
            .step_run_outputs(&s.id)
            .await
            .unwrap()
            .into_iter()
            .map(|l| (l.slot, l.artifact.digest))
            .collect();
        outputs.sort();
        steps.insert(s.step_name, (s.status, outputs));
    }
    steps
}

#[tokio::test]
async fn a_process_stack_runs_each_step_in_a_worker_with_the_results_of_a_local_run() {
    build_iris();
    let home = tempfile::tempdir().unwrap();
    let local = tempfile::tempdir().unwrap();
    let workers = tempfile::tempdir().unwrap();

    let out = iris_weft(local.path(), home.path(), &["run", "--json"]);
    assert_eq!(run_json(&out, 0)["executed"], 4);
    let out = iris_weft(
        workers.path(),
        home.path(),
        &["stack", "create", "workers", "--orchestrator", "process"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = iris_weft(workers.path(), home.path(), &["run", "--json", "--stack", "workers"]);
    assert_eq!(run_json(&out, 0)["executed"], 4);

    // The same statuses and the same bytes out of every step.
    let local_store = open(local.path()).await;
    let store = open(workers.path()).await;
    let expected = outcome(&local_store).await;
    assert_eq!(outcome(&store).await, expected);
    assert!(expected
        .values()
        .all(|(s, outputs)| s == "succeeded" && !outputs.is_empty()));

    // Each step ran in a worker process of its own, named on its step run
    // (a tag of its tracking run, as MLflow clients see it).
    let run = store.run("latest").await.unwrap();
    let mut workers_seen = BTreeSet::new();
    for s in store.step_runs(&run.id).await.unwrap() {
        let tracked = store.tracked_run(&s.id).await.unwrap();
        let (_, worker) = tracked
            .tags
            .iter()
            .find(|(k, _)| k == weft_pipeline::WORKER_TAG)
            .unwrap_or_else(|| panic!("{} names no worker: {:?}", s.step_name, tracked.tags));
        workers_seen.insert(worker.clone());
    }
    assert_eq!(workers_seen.len(), 4, "one worker per step: {workers_seen:?}");
    // Lineage runs through the workers' outputs as through a local run's.
    let out = iris_weft(
        workers.path(),
        home.path(),
        &["lineage", "iris/evaluate.report", "--json"],
    );
    assert_iris_lineage(&out);

    // A second run is all cache hits: no step is handed out.
    let out = iris_weft(workers.path(), home.path(), &["run", "--json", "--stack", "workers"]);
    let again = run_json(&out, 0);
    assert_eq!(
        (again["executed"].as_u64(), again["cached"].as_u64()),
        (Some(0), Some(4))
    );

    // A late or duplicate worker for a step run that ended changes nothing.
    let first = store.runs(None, None, 10, 0).await.unwrap();
    let first = first.iter().find(|r| r.number == 1).unwrap();
    let train = store
        .step_runs(&first.id)
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.step_name == "train")
        .unwrap();
    let artifacts_before = store.artifacts(None, 1000, 0).await.unwrap().len();
    let out = iris_weft(
        workers.path(),
        home.path(),
        &["step", "exec", &train.id, "--stack", "workers"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("nothing to do"), "{}", stderr(&out));
    let after = store.step_run(&train.id).await.unwrap();
    assert_eq!((after.status.as_str(), after.ended_at), ("succeeded", train.ended_at));
    assert_eq!(store.artifacts(None, 1000, 0).await.unwrap().len(), artifacts_before);

    // A step run that does not exist is an error that says so.
    let out = iris_weft(workers.path(), home.path(), &["step", "exec", "no-such-step-run"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("no step run"), "{}", stderr(&out));
}

/// Asserts that `weft lineage iris/evaluate.report --json` answered, and
/// that the report descends from every step of iris.
pub(crate) fn assert_iris_lineage(out: &std::process::Output) {
    assert!(out.status.success(), "{}", stderr(out));
    let lineage: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut producers = BTreeSet::new();
    producers_in(&lineage, &mut producers);
    assert_eq!(
        producers,
        ["evaluate", "load", "split", "train"].map(String::from).into(),
        "{lineage}"
    );
}

/// The names of the steps that produced the artifacts of a lineage tree.
fn producers_in(node: &serde_json::Value, into: &mut BTreeSet<String>) {
    if let Some(step) = node["producer"]["step_name"].as_str() {
        into.insert(step.to_string());
    }
    for input in node["inputs"].as_array().into_iter().flatten() {
        producers_in(&input[1], into);
    }
}

/// Whether process `pid` is alive.
fn alive(pid: u32) -> bool {
    Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap()
        .success()
}

/// The `weft step exec` processes the run with process id `run` started.
fn workers_of(run: u32) -> Vec<u32> {
    let out = Command::new("pgrep").args(["-P", &run.to_string()]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn process_stack(project: &Project) {
    let out = project.weft(&["stack", "create", "workers", "--orchestrator", "process"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_worker_killed_mid_step_fails_the_step_with_the_reason_and_the_run_goes_on_recording() {
    let project = Project::new(&manifest("sleep-forever"));
    project.write("raw.txt", "data");
    process_stack(&project);
    let mut child = start_until_slow_runs(&project, &["--stack", "workers"]);
    let worker = loop {
        if let Some(&pid) = workers_of(child.id()).first() {
            break pid;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let killed = Command::new("kill").args(["-9", &worker.to_string()]).status().unwrap();
    assert!(killed.success());
    let exit = child.wait().unwrap();
    assert_eq!(exit.code(), Some(1), "the run failed");

    let detail = project.run_detail("latest");
    assert_eq!(detail["run"]["status"], "failed");
    assert_eq!(step(&detail, "a")["status"], "succeeded");
    let slow = step(&detail, "slow");
    assert_eq!(slow["status"], "failed");
    let error = slow["error"].as_str().unwrap();
    assert!(error.contains("worker") && error.contains("signal"), "{error}");
    assert_eq!(step(&detail, "last")["status"], "skipped");
}

#[test]
fn ctrl_c_of_the_run_cancels_its_workers_and_records_it() {
    let project = Project::new(&manifest("loop"));
    project.write("raw.txt", "data");
    process_stack(&project);
    let mut child = start_until_slow_runs(&project, &["--stack", "workers"]);
    let run = child.id();
    let worker = loop {
        if let Some(&pid) = workers_of(run).first() {
            break pid;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let status = Command::new("kill").args(["-INT", &run.to_string()]).status().unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert_eq!(exit.code(), Some(130));
    assert!(!alive(worker), "no worker outlives the run");
    let detail = project.run_detail("latest");
    assert_eq!(detail["run"]["status"], "cancelled");
    assert_eq!(step(&detail, "slow")["status"], "cancelled");
    assert_eq!(step(&detail, "last")["status"], "cancelled");
    assert_eq!(step(&detail, "a")["status"], "succeeded");
}

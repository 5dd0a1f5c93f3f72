//! `kill -9` and Ctrl-C in the middle of a run.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::harness::*;

pub(crate) fn manifest(attack: &str) -> String {
    format!(
        "[pipeline]\nname = \"k\"\n[inputs]\nraw = {{ path = \"raw.txt\" }}\n\
         [steps.a]\ncomponent = {e}\ninputs = {{ in = \"inputs.raw\" }}\noutputs = [\"out\"]\nparams = {{ prefix = \"a\" }}\n\
         [steps.b]\ncomponent = {e}\ninputs = {{ in = \"a.out\" }}\noutputs = [\"out\"]\nparams = {{ prefix = \"b\" }}\n\
         [steps.slow]\ncomponent = {h}\ninputs = {{ in = \"b.out\" }}\noutputs = [\"out\"]\nparams = {{ attack = \"{attack}\" }}\n\
         [steps.last]\ncomponent = {e}\ninputs = {{ in = \"slow.out\" }}\noutputs = [\"out\"]\n",
        e = toml_path(&guest("echo")),
        h = toml_path(&guest("hostile"))
    )
}

/// Starts `weft run` (with `args`), waits until step `slow` is running,
/// returns the child.
pub(crate) fn start_until_slow_runs(project: &Project, args: &[&str]) -> std::process::Child {
    let mut child = project
        .command(&[&["run"], args].concat())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("slow") && line.contains("running") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(60)).expect("step 'slow' started");
    // Let it get into the guest.
    std::thread::sleep(Duration::from_millis(200));
    child
}

#[tokio::test]
async fn kill_9_mid_run_leaves_a_consistent_store_and_the_next_run_reuses_finished_steps() {
    let project = Project::new(&manifest("sleep-forever"));
    project.write("raw.txt", "data");
    let mut child = start_until_slow_runs(&project, &[]);
    let status = std::process::Command::new("kill")
        .args(["-9", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let _ = child.wait();

    // The database is sound and every recorded artifact's bytes are whole.
    let store = weft_store::Store::open(&format!("sqlite://{}", project.state().join("weft.db").display()))
        .await
        .unwrap();
    assert_eq!(store.check_integrity().await.unwrap(), Vec::<String>::new());
    let artifacts = store.artifacts(None, 1000, 0).await.unwrap();
    assert_eq!(
        artifacts.len(),
        3,
        "the input and the outputs of a and b: {artifacts:?}"
    );
    for a in &artifacts {
        let blob = project
            .state()
            .join("artifacts/blobs")
            .join(&a.digest[..2])
            .join(&a.digest);
        let bytes = std::fs::read(&blob).unwrap_or_else(|e| panic!("{} has no bytes: {e}", a.name));
        assert_eq!(blake3::hash(&bytes).to_hex().as_str(), a.digest, "{} is whole", a.name);
    }
    assert!(
        artifacts.iter().all(|a| !a.name.contains("slow")),
        "no artifact of the killed step"
    );
    // MLflow clients saw the run as soon as it started.
    let killed_id = store.run("latest").await.unwrap().id;
    assert_eq!(store.run_info(&killed_id).await.unwrap().status, "RUNNING");
    drop(store);

    // The next run (slow fixed) reuses a and b, runs the rest.
    std::fs::write(project.path().join("weft.toml"), manifest("none")).unwrap();
    let outcome = run_json(&project.weft(&["run", "--json"]), 0);
    let s = statuses(&outcome);
    assert_eq!(
        (s["a"].as_str(), s["b"].as_str(), s["slow"].as_str(), s["last"].as_str()),
        ("cached", "cached", "succeeded", "succeeded")
    );
    // The killed run is recorded as crashed, its running step too.
    let runs: serde_json::Value = serde_json::from_slice(&project.weft(&["runs", "list", "--json"]).stdout).unwrap();
    let killed = runs.as_array().unwrap().iter().find(|r| r["number"] == 1).unwrap();
    assert_eq!(killed["status"], "crashed");
    let detail = project.run_detail(killed["id"].as_str().unwrap());
    assert_eq!(step(&detail, "slow")["status"], "crashed");
    // ... and now see it failed, with its steps.
    let store = weft_store::Store::open(&format!("sqlite://{}", project.state().join("weft.db").display()))
        .await
        .unwrap();
    assert_eq!(
        store.run_info(killed["id"].as_str().unwrap()).await.unwrap().status,
        "FAILED"
    );
    let slow_id = step(&detail, "slow")["id"].as_str().unwrap().to_string();
    assert_eq!(store.run_info(&slow_id).await.unwrap().status, "FAILED");
    assert_eq!(step(&detail, "a")["status"], "succeeded");
    // Staging and sandbox leftovers of the dead process are gone.
    assert_eq!(
        std::fs::read_dir(project.state().join("artifacts/.staging"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn ctrl_c_cancels_the_run_and_records_it() {
    let project = Project::new(&manifest("loop"));
    project.write("raw.txt", "data");
    let mut child = start_until_slow_runs(&project, &[]);
    let started = Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert_eq!(exit.code(), Some(130));
    assert!(started.elapsed() < Duration::from_secs(30));
    let detail = project.run_detail("latest");
    assert_eq!(detail["run"]["status"], "cancelled");
    assert_eq!(step(&detail, "slow")["status"], "cancelled");
    assert_eq!(step(&detail, "last")["status"], "cancelled");
    assert_eq!(step(&detail, "a")["status"], "succeeded");
}

//! Injected faults: `weft run` killed at random points over many trials,
//! the server killed in the middle of log-batch calls, the artifact store's
//! disk full, the database locked by another process. After each: the
//! database passes its integrity check, every recorded artifact has all its
//! bytes, and the next run succeeds.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::harness::*;
use crate::server::start;

/// Integrity check, and every artifact row's bytes whole in the store.
async fn assert_consistent(state: &Path, artifacts: &Path) {
    let store = weft_store::Store::open(&format!("sqlite://{}", state.join("weft.db").display()))
        .await
        .unwrap();
    assert_eq!(store.check_integrity().await.unwrap(), Vec::<String>::new());
    for a in store.artifacts(None, 100_000, 0).await.unwrap() {
        let blob = artifacts.join("blobs").join(&a.digest[..2]).join(&a.digest);
        let bytes = std::fs::read(&blob).unwrap_or_else(|e| panic!("{} has no bytes: {e}", a.name));
        assert_eq!(blake3::hash(&bytes).to_hex().as_str(), a.digest, "{} is whole", a.name);
    }
}

/// A small deterministic pseudo-random sequence (xorshift), so a failing
/// trial can be replayed.
struct Rng(u64);
impl Rng {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

#[tokio::test]
async fn weft_run_killed_at_random_points_leaves_a_sound_store_every_time() {
    let e = toml_path(&guest("echo"));
    let h = toml_path(&guest("hostile"));
    // Six steps, two napping 40 ms (real time): a run takes a few hundred ms, and a
    // kill can land in any phase (start-up, staging, a guest, ingesting,
    // committing, mirroring).
    let mut manifest = String::from("[pipeline]\nname = \"kills\"\n[inputs]\nraw = { path = \"raw.txt\" }\n");
    manifest.push_str(&format!(
        "[steps.s0]\ncomponent = {e}\ninputs = {{ in = \"inputs.raw\" }}\noutputs = [\"out\"]\nparams = {{ prefix = \"0\" }}\n"
    ));
    for i in 1..6 {
        let (component, params) = if i % 3 == 0 {
            (
                &h,
                "{ attack = \"nap\", steps = 40 }\nnondeterministic = true".to_string(),
            )
        } else {
            (&e, format!("{{ prefix = \"{i}\" }}"))
        };
        manifest.push_str(&format!(
            "[steps.s{i}]\ncomponent = {component}\ninputs = {{ in = \"s{}.out\" }}\noutputs = [\"out\"]\nparams = {params}\n",
            i - 1
        ));
    }
    let project = Project::new(&manifest);
    let seed = 20261126;
    let mut rng = Rng(seed);
    let trials = 25;
    for trial in 0..trials {
        // New input content each trial, so steps execute rather than hit the cache.
        project.write("raw.txt", &format!("data {trial}"));
        let mut child = project
            .command(&["run"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let delay = Duration::from_millis(rng.next(400));
        std::thread::sleep(delay);
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        assert_consistent(&project.state(), &project.state().join("artifacts")).await;
        eprintln!("trial {trial}: killed after {delay:?}; store sound");
    }
    // The next run recovers the crashed ones and succeeds.
    let outcome = run_json(&project.weft(&["run", "--json"]), 0);
    assert_eq!(outcome["status"], "succeeded");
    let runs: serde_json::Value = serde_json::from_slice(&project.weft(&["runs", "list", "--json"]).stdout).unwrap();
    let runs = runs.as_array().unwrap();
    assert!(
        runs.iter().all(|r| r["status"] != "running"),
        "no run is left 'running': {runs:?}"
    );
    let crashed = runs.iter().filter(|r| r["status"] == "crashed").count();
    assert!(
        crashed >= 5,
        "most kills landed mid-run ({crashed} crashed of {trials})"
    );
    assert_consistent(&project.state(), &project.state().join("artifacts")).await;
}

#[tokio::test]
async fn a_server_killed_during_log_batch_keeps_every_acknowledged_batch_whole() {
    let project = Project::new("[pipeline]\nname = \"srv\"\n");
    let mut server = start(&project, &[]);
    let base = server.base.clone();
    let run: serde_json::Value = ureq::post(&format!("{base}/api/2.0/mlflow/runs/create"))
        .send_json(serde_json::json!({ "experiment_id": "0" }))
        .unwrap()
        .into_json()
        .unwrap();
    let run_id = run["run"]["info"]["run_id"].as_str().unwrap().to_string();

    // Batches of 500 metrics, as fast as the server takes them, until it dies.
    let sender = {
        let base = base.clone();
        let run_id = run_id.clone();
        std::thread::spawn(move || {
            let mut acked = 0u64;
            for b in 0.. {
                let metrics: Vec<_> = (0..500)
                    .map(|i| serde_json::json!({ "key": "loss", "value": 1.0, "timestamp": 1, "step": b * 500 + i }))
                    .collect();
                match ureq::post(&format!("{base}/api/2.0/mlflow/runs/log-batch"))
                    .send_json(serde_json::json!({ "run_id": run_id, "metrics": metrics }))
                {
                    Ok(_) => acked += 1,
                    Err(_) => return acked,
                }
            }
            acked
        })
    };
    std::thread::sleep(Duration::from_millis(700));
    server.kill(); // SIGKILL, mid-stream
    let acked = sender.join().unwrap();
    assert!(acked > 0, "some batches went through before the kill");

    assert_consistent(&project.state(), &project.state().join("artifacts")).await;
    let server = start(&project, &[]);
    let history: serde_json::Value = ureq::get(&format!(
        "{}/api/2.0/mlflow/metrics/get-history?run_id={run_id}&metric_key=loss&max_results=1000000",
        server.base
    ))
    .call()
    .unwrap()
    .into_json()
    .unwrap();
    let stored = history["metrics"].as_array().map(Vec::len).unwrap_or(0) as u64;
    assert_eq!(stored % 500, 0, "a batch is all or nothing: {stored} points");
    assert!(
        stored >= acked * 500 && stored <= (acked + 1) * 500,
        "every acknowledged batch is there ({acked} acknowledged, {stored} points)"
    );
}

#[tokio::test]
async fn a_full_artifact_disk_fails_the_step_cleanly_and_leaves_nothing_partial() {
    let project = Project::new("[pipeline]\nname = \"full\"\n");
    let disk = project.path().join("small-disk");
    std::fs::create_dir_all(&disk).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(&disk)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !mounted {
        skip("mounting a 2 MiB tmpfs needs root");
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(disk.clone());
    let h = toml_path(&guest("hostile"));
    project.write(
        "weft.toml",
        &format!(
            "[pipeline]\nname = \"full\"\n\
             [steps.small]\ncomponent = {h}\noutputs = [\"out\"]\nparams = {{ attack = \"big-output\", steps = 1000 }}\n\
             [steps.big]\ncomponent = {h}\noutputs = [\"out\"]\nparams = {{ attack = \"big-output\", steps = 4000000 }}\n"
        ),
    );
    let artifacts = format!("file://{}", disk.display());
    let out = project.weft(&["--artifacts", &artifacts, "run", "--json", "--max-parallel", "1"]);
    let outcome = run_json(&out, 1);
    let s = statuses(&outcome);
    assert_eq!(s["small"], "succeeded");
    assert_eq!(s["big"], "failed");
    let error = outcome["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "big")
        .unwrap()["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(error.contains("No space left on device"), "{error}");
    assert_consistent(&project.state(), &disk).await;
    // Nothing half-written is left in the store's staging area either.
    let staging: Vec<_> = std::fs::read_dir(disk.join(".staging")).unwrap().collect();
    assert!(staging.is_empty(), "staging holds {staging:?}");
}

#[tokio::test]
async fn a_database_locked_by_another_process_is_waited_for_then_used() {
    let e = toml_path(&guest("echo"));
    let project = Project::new(&format!(
        "[pipeline]\nname = \"locked\"\n[steps.a]\ncomponent = {e}\noutputs = [\"out\"]\n"
    ));
    run_json(&project.weft(&["run", "--json"]), 0);
    let db = project.state().join("weft.db");
    // Another process holds the write lock for 1.5 s.
    let mut holder = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import sqlite3, sys, time\n\
             c = sqlite3.connect(sys.argv[1], isolation_level=None)\n\
             c.execute('BEGIN EXCLUSIVE')\n\
             print('locked', flush=True)\n\
             time.sleep(1.5)\n\
             c.execute('COMMIT')\n",
        )
        .arg(&db)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 (tests/run.sh needs it anyway)");
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(holder.stdout.take().unwrap()), &mut line).unwrap();
    assert_eq!(line.trim(), "locked");
    let outcome = run_json(&project.weft(&["run", "--json", "--no-cache"]), 0);
    assert_eq!(outcome["status"], "succeeded", "the run waited for the lock, then ran");
    assert!(holder.wait().unwrap().success());
    assert_consistent(&project.state(), &project.state().join("artifacts")).await;
}

//! The `slurm` orchestrator on a real single-node Slurm cluster (Debian's
//! slurmctld, slurmd and munge, started by tests/slurm.sh, which exports
//! SLURM_CONF): each step that is not a cache hit is one batch job running
//! `weft step exec`; killed jobs are retried by the step's policy; Ctrl-C
//! cancels every job; one step can go to Slurm while the rest run locally.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use weft_store::Store;

use crate::harness::*;
use crate::iris::iris_copy;
use crate::workers::{assert_iris_lineage, outcome};

/// The cluster's configuration, or a skip saying why there is none.
fn cluster() -> Option<String> {
    match std::env::var("SLURM_CONF") {
        Ok(conf) => Some(conf),
        Err(_) => {
            skip("SLURM_CONF is not set (tests/run.sh starts a Slurm cluster and sets it)");
            None
        }
    }
}

/// The job logs a run wrote (`<state>/slurm/<step run>-<job>.log`):
/// (step run id, job id) pairs.
fn jobs(state: &Path) -> Vec<(String, u64)> {
    let Ok(entries) = std::fs::read_dir(state.join("slurm")) else {
        return Vec::new();
    };
    let mut jobs: Vec<(String, u64)> = entries
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|name| {
            let stem = name.strip_suffix(".log")?;
            let (step_run, job) = stem.rsplit_once('-')?;
            Some((step_run.to_string(), job.parse().ok()?))
        })
        .collect();
    jobs.sort_by_key(|(_, job)| *job);
    jobs
}

/// An iris project reusing the components built in the repository.
pub(crate) fn iris_project() -> Project {
    build_iris();
    let project = Project { dir: iris_copy() };
    std::os::unix::fs::symlink(repo_root().join("examples/iris/target"), project.path().join("target")).unwrap();
    project
}

pub(crate) fn unique() -> String {
    format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

#[tokio::test]
async fn iris_on_a_slurm_stack_with_postgres_and_s3_matches_the_local_stack() {
    let Some(_) = cluster() else { return };
    let (Ok(s3), Ok(pg)) = (std::env::var("WEFT_TEST_S3"), std::env::var("WEFT_TEST_POSTGRES")) else {
        skip("WEFT_TEST_S3 and WEFT_TEST_POSTGRES are not set (tests/run.sh starts both servers)");
        return;
    };
    let local = iris_project();
    assert_eq!(run_json(&local.weft(&["run", "--json"]), 0)["executed"], 4);

    // The team's stack: PostgreSQL, a bucket, and Slurm, which the jobs
    // reach the same way the submitting process does.
    let unique = unique();
    let bucket = format!("weft-slurm-{unique}");
    let created = ureq::put(&format!("{s3}/{bucket}")).call();
    assert!(created.is_ok(), "creating bucket {bucket}: {created:?}");
    let db = format!("{}/weft_slurm_{unique}", pg.trim_end_matches('/'));
    let hpc = iris_project();
    let out = hpc.weft(&[
        "stack",
        "create",
        "hpc",
        "--db",
        &db,
        "--artifacts",
        &format!("s3://{bucket}/iris"),
        "--orchestrator",
        "slurm",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let first = run_json(&hpc.weft(&["run", "--json", "--stack", "hpc"]), 0);
    assert_eq!(
        (first["executed"].as_u64(), first["cached"].as_u64()),
        (Some(4), Some(0))
    );

    // One job per step, and the same statuses and bytes as the local run.
    let submitted = jobs(&hpc.state());
    assert_eq!(submitted.len(), 4, "{submitted:?}");
    let local_store = Store::open(&format!("sqlite://{}", local.state().join("weft.db").display()))
        .await
        .unwrap();
    let store = Store::open(&db).await.unwrap();
    let expected = outcome(&local_store).await;
    assert!(expected
        .values()
        .all(|(s, outputs)| s == "succeeded" && !outputs.is_empty()));
    assert_eq!(outcome(&store).await, expected);
    let run = store.run("latest").await.unwrap();
    let step_runs: BTreeSet<String> = store
        .step_runs(&run.id)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    let jobbed: BTreeSet<String> = submitted.iter().map(|(s, _)| s.clone()).collect();
    assert_eq!(jobbed, step_runs, "each step run was one job");
    assert!(!hpc.state().join("weft.db").exists(), "metadata went to PostgreSQL");

    // A second run is all cache hits and submits nothing.
    let again = run_json(&hpc.weft(&["run", "--json", "--stack", "hpc"]), 0);
    assert_eq!(
        (again["executed"].as_u64(), again["cached"].as_u64()),
        (Some(0), Some(4))
    );
    assert_eq!(jobs(&hpc.state()), submitted, "no job for a cache hit");
}

/// Three independent steps of `iterations` of busy work each (more than
/// the 2 cores of CI: a run on Slurm is not bound by this machine's
/// cores), then one reading them all.
fn fan_manifest(iterations: u64) -> String {
    let mut manifest = "[pipeline]\nname = \"fan\"\n[inputs]\nraw = { path = \"raw.txt\" }\n".to_string();
    for (i, name) in ["left", "middle", "right"].iter().enumerate() {
        manifest += &format!(
            "[steps.{name}]\ncomponent = {h}\ninputs = {{ in = \"inputs.raw\" }}\noutputs = [\"out\"]\n\
             params = {{ attack = \"spin\", steps = {} }}\nresources = {{ cpus = 1 }}\n",
            iterations + i as u64,
            h = toml_path(&guest("hostile")),
        );
    }
    manifest += &format!(
        "[steps.all]\ncomponent = {e}\ninputs = {{ in = \"left.out\", b = \"middle.out\", c = \"right.out\" }}\noutputs = [\"out\"]\n",
        e = toml_path(&guest("echo")),
    );
    manifest
}

fn slurm_stack(project: &Project) {
    let out = project.weft(&["stack", "create", "hpc", "--orchestrator", "slurm"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[tokio::test]
async fn independent_steps_run_as_concurrent_jobs() {
    let Some(_) = cluster() else { return };
    let project = Project::new(&fan_manifest(600_000_000));
    project.write("raw.txt", "data");
    slurm_stack(&project);
    let ran = run_json(&project.weft(&["run", "--json", "--stack", "hpc"]), 0);
    assert_eq!(ran["executed"], 4);
    assert_eq!(jobs(&project.state()).len(), 4);

    let detail = project.run_detail("latest");
    let span = |name: &str| {
        let s = step(&detail, name);
        (s["started_at"].as_i64().unwrap(), s["ended_at"].as_i64().unwrap())
    };
    let spans = ["left", "middle", "right"].map(span);
    let last_start = spans.iter().map(|s| s.0).max().unwrap();
    let first_end = spans.iter().map(|s| s.1).min().unwrap();
    assert!(last_start < first_end, "the three ran at the same time: {spans:?}");
    let all = span("all");
    assert!(
        all.0 >= spans.iter().map(|s| s.1).max().unwrap(),
        "all {all:?} waited for its inputs"
    );
}

/// `first` busy for `iterations` (its `note` param changes its cache key,
/// not its output), then two steps reading one another's output.
fn chain_manifest(iterations: u64) -> String {
    format!(
        "[pipeline]\nname = \"chain\"\n[inputs]\nraw = {{ path = \"raw.txt\" }}\n\
         [steps.first]\ncomponent = {h}\ninputs = {{ in = \"inputs.raw\" }}\noutputs = [\"out\"]\n\
         params = {{ attack = \"spin\", steps = {iterations}, note = \"a\" }}\n\
         [steps.second]\ncomponent = {e}\ninputs = {{ in = \"first.out\" }}\noutputs = [\"out\"]\n\
         [steps.third]\ncomponent = {e}\ninputs = {{ in = \"second.out\", raw = \"inputs.raw\" }}\noutputs = [\"out\"]\n",
        h = toml_path(&guest("hostile")),
        e = toml_path(&guest("echo")),
    )
}

/// Each step run of the latest run by step name, with the artifact ids
/// of its inputs and outputs.
async fn step_links(store: &Store) -> std::collections::BTreeMap<String, (String, Vec<String>, Vec<String>)> {
    let run = store.run("latest").await.unwrap();
    let mut steps = std::collections::BTreeMap::new();
    for s in store.step_runs(&run.id).await.unwrap() {
        let ids = |links: Vec<weft_store::ArtifactLink>| {
            let mut ids: Vec<String> = links.into_iter().map(|l| l.artifact.id).collect();
            ids.sort();
            ids
        };
        let inputs = ids(store.step_run_inputs(&s.id).await.unwrap());
        let outputs = ids(store.step_run_outputs(&s.id).await.unwrap());
        steps.insert(s.step_name, (s.id, inputs, outputs));
    }
    steps
}

#[tokio::test]
async fn a_step_is_queued_held_on_the_jobs_it_reads_from_and_its_worker_completes_it() {
    let Some(_) = cluster() else { return };
    let project = Project::new(&chain_manifest(1_500_000_000));
    project.write("raw.txt", "data");
    slurm_stack(&project);

    // While `first` runs, the two steps after it already wait in Slurm's
    // queue, each held on the job before it.
    let child = project
        .command(&["run", "--json", "--stack", "hpc"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let names = "weft-first,weft-second,weft-third";
    let deadline = Instant::now() + Duration::from_secs(120);
    let held = loop {
        let out = Command::new("squeue")
            .args(["-h", "-n", names, "-o", "%j|%T|%r"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let has = |line: &str| text.lines().any(|l| l.trim() == line);
        if has("weft-first|RUNNING|None")
            && has("weft-second|PENDING|Dependency")
            && has("weft-third|PENDING|Dependency")
        {
            break text;
        }
        assert!(Instant::now() < deadline, "never saw the chain queued at once: {text}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = child.wait_with_output().unwrap();
    let ran = run_json(&out, 0);
    assert_eq!(ran["executed"], 3, "{held}\n{}", stderr(&out));
    assert!(statuses(&ran).values().all(|s| s == "succeeded"), "{ran}");
    let store = Store::open(&format!("sqlite://{}", project.state().join("weft.db").display()))
        .await
        .unwrap();
    // Lineage: each step read what the one before it wrote in this run.
    let links = step_links(&store).await;
    assert!(links["second"].1 == links["first"].2, "{links:?}");
    assert!(links["third"].1.contains(&links["second"].2[0]), "{links:?}");
    assert_eq!(links["third"].1.len(), 2, "{links:?}");

    // The workers recorded the cache keys this process computes: a run
    // on this machine is all cache hits.
    let local = run_json(&project.weft(&["run", "--json"]), 0);
    assert_eq!(
        (local["executed"].as_u64(), local["cached"].as_u64()),
        (Some(0), Some(3))
    );

    // `first` again under another key, with the same output: the held
    // steps' workers find their completed keys in the cache and serve
    // them, as new step runs of this run reading this run's outputs.
    let before = jobs(&project.state()).len();
    let again = run_json(
        &project.weft(&["run", "--json", "--stack", "hpc", "-p", "first.note=b"]),
        0,
    );
    let s = statuses(&again);
    assert_eq!(
        (s["first"].as_str(), s["second"].as_str(), s["third"].as_str()),
        ("succeeded", "cached", "cached"),
        "{again}"
    );
    let links = step_links(&store).await;
    let ran_jobs: BTreeSet<String> = jobs(&project.state())[before..]
        .iter()
        .map(|(s, _)| s.clone())
        .collect();
    for name in ["first", "second", "third"] {
        assert!(ran_jobs.contains(&links[name].0), "{name} ran in a job: {ran_jobs:?}");
    }
    assert!(links["second"].1 == links["first"].2, "{links:?}");
    assert!(links["third"].1.contains(&links["second"].2[0]), "{links:?}");
}

/// The id of step `name`'s step run in the latest run once it is running.
pub(crate) fn running_step_run(project: &Project, name: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let out = project.weft(&["runs", "show", "latest", "--json"]);
        if out.status.success() {
            let detail: Value = serde_json::from_slice(&out.stdout).unwrap();
            let found = detail["steps"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|s| s["step_name"] == name);
            if let Some(s) = found {
                if s["status"] == "running" {
                    return s["id"].as_str().unwrap().to_string();
                }
            }
        }
        assert!(Instant::now() < deadline, "step {name} never ran");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The pid of the worker (`weft step exec`) of step run `id`, once it
/// runs and is not `not`.
fn worker_of(id: &str, not: Option<u32>) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let out = Command::new("pgrep")
            .args(["-f", &format!("step exec {id}")])
            .output()
            .unwrap();
        let pids: Vec<u32> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .filter(|pid| Some(*pid) != not)
            .collect();
        if let Some(&pid) = pids.first() {
            return pid;
        }
        assert!(Instant::now() < deadline, "no worker for step run {id}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts `weft ARGS`, waits for step `doomed` to run in a job and kills
/// its worker with SIGKILL: the run, the step run's id, the killed pid.
fn run_and_kill_doomed(project: &Project, args: &[&str]) -> (std::process::Child, String, u32) {
    let child = project
        .command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let doomed = running_step_run(project, "doomed");
    let worker = worker_of(&doomed, None);
    let killed = Command::new("kill").args(["-9", &worker.to_string()]).status().unwrap();
    assert!(killed.success());
    (child, doomed, worker)
}

fn retry_manifest(iterations: u64) -> String {
    format!(
        "[pipeline]\nname = \"doom\"\n[inputs]\nraw = {{ path = \"raw.txt\" }}\n\
         [steps.a]\ncomponent = {e}\ninputs = {{ in = \"inputs.raw\" }}\noutputs = [\"out\"]\n\
         [steps.doomed]\ncomponent = {h}\ninputs = {{ in = \"a.out\" }}\noutputs = [\"out\"]\n\
         params = {{ attack = \"spin\", steps = {iterations} }}\nretry = {{ max = 1, backoff = \"100ms\" }}\n\
         [steps.last]\ncomponent = {e}\ninputs = {{ in = \"doomed.out\" }}\noutputs = [\"out\"]\n",
        h = toml_path(&guest("hostile")),
        e = toml_path(&guest("echo")),
    )
}

#[test]
fn a_killed_job_is_retried_by_policy_and_its_reason_recorded_when_retries_run_out() {
    let Some(_) = cluster() else { return };
    let project = Project::new(&retry_manifest(4_000_000_000));
    project.write("raw.txt", "data");
    slurm_stack(&project);

    // kill -9 of the worker mid-step: its job fails, the step's policy
    // (one retry) submits it again, and the second job finishes it.
    let (child, doomed, _) = run_and_kill_doomed(&project, &["run", "--json", "--stack", "hpc"]);
    let out = child.wait_with_output().unwrap();
    let outcome = run_json(&out, 0);
    assert_eq!(statuses(&outcome)["doomed"], "succeeded", "{}", stderr(&out));
    let detail = project.run_detail("latest");
    assert_eq!(step(&detail, "doomed")["attempts"], 2, "the lost attempt counts");
    let doomed_jobs = |project: &Project, id: &str| {
        jobs(&project.state())
            .into_iter()
            .filter(|(s, _)| s == id)
            .map(|(_, job)| job)
            .collect::<Vec<_>>()
    };
    assert_eq!(doomed_jobs(&project, &doomed).len(), 2, "a second job ran the step");

    // Retries run out: the first job's worker killed, the second job
    // cancelled with scancel. The step fails with the reason, and the
    // step after it is skipped.
    let (child, doomed, worker) = run_and_kill_doomed(
        &project,
        &["run", "--json", "--stack", "hpc", "-p", "doomed.steps=4000000001"],
    );
    let _second = worker_of(&doomed, Some(worker));
    let job = *doomed_jobs(&project, &doomed).last().unwrap();
    let cancelled = Command::new("scancel").arg(job.to_string()).output().unwrap();
    assert!(cancelled.status.success(), "{}", stderr(&cancelled));
    let out = child.wait_with_output().unwrap();
    let outcome = run_json(&out, 1);
    assert_eq!(statuses(&outcome)["doomed"], "failed");
    assert_eq!(statuses(&outcome)["last"], "skipped");
    assert_eq!(statuses(&outcome)["a"], "cached");
    let detail = project.run_detail("latest");
    let doomed_step = step(&detail, "doomed");
    assert_eq!(doomed_step["attempts"], 2);
    let error = doomed_step["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("Slurm job {job} ended CANCELLED")) && error.contains("lost 2 times"),
        "{error}"
    );
    // `last` was queued held on doomed's jobs: Slurm never started it.
    let last = step(&detail, "last");
    let last_id = last["id"].as_str().unwrap();
    assert!(
        jobs(&project.state()).iter().all(|(s, _)| s != last_id),
        "a job of last ran"
    );
    assert_eq!(
        last["error"].as_str(),
        Some("skipped: upstream step 'doomed' did not succeed")
    );
}

/// The Slurm jobs named `names` that are pending, running or ending:
/// (job id, name, state).
fn live_jobs(names: &str) -> Vec<(String, String, String)> {
    let out = Command::new("squeue")
        .args(["-h", "-n", names, "-t", "PD,R,CG,S,CF", "-o", "%i %j %T"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace().map(String::from);
            Some((words.next()?, words.next()?, words.next()?))
        })
        .collect()
}

#[test]
fn ctrl_c_of_the_run_cancels_every_pending_and_running_job() {
    let Some(_) = cluster() else { return };
    // `stuck` runs until cancelled; `held` waits an hour to start.
    let manifest = format!(
        "[pipeline]\nname = \"stop\"\n[inputs]\nraw = {{ path = \"raw.txt\" }}\n\
         [steps.stuck]\ncomponent = {h}\ninputs = {{ in = \"inputs.raw\" }}\noutputs = [\"out\"]\n\
         params = {{ attack = \"loop\" }}\n\
         [steps.held]\ncomponent = {h}\ninputs = {{ in = \"inputs.raw\" }}\noutputs = [\"out\"]\n\
         params = {{ attack = \"none\" }}\nresources = {{ sbatch = [\"--begin=now+3600\"] }}\n\
         [steps.after]\ncomponent = {e}\ninputs = {{ in = \"stuck.out\" }}\noutputs = [\"out\"]\n",
        h = toml_path(&guest("hostile")),
        e = toml_path(&guest("echo")),
    );
    let project = Project::new(&manifest);
    project.write("raw.txt", "data");
    slurm_stack(&project);
    let mut child = project
        .command(&["run", "--stack", "hpc"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Both jobs submitted, one running (its worker in the guest), one pending.
    let stuck = running_step_run(&project, "stuck");
    worker_of(&stuck, None);
    let deadline = Instant::now() + Duration::from_secs(60);
    let live = loop {
        let live = live_jobs("weft-stuck,weft-held");
        let states: BTreeSet<(String, String)> = live.iter().map(|(_, n, s)| (n.clone(), s.clone())).collect();
        if states.contains(&("weft-stuck".into(), "RUNNING".into()))
            && states.contains(&("weft-held".into(), "PENDING".into()))
        {
            break live;
        }
        assert!(Instant::now() < deadline, "jobs never running and pending: {live:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_millis(300));

    assert!(Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let exit = child.wait().unwrap();
    assert_eq!(exit.code(), Some(130));
    let ids: Vec<&str> = live.iter().map(|(id, _, _)| id.as_str()).collect();
    let left = live_jobs("weft-stuck,weft-held");
    assert!(
        left.iter().all(|(id, _, _)| !ids.contains(&id.as_str())),
        "jobs outlived the run: {left:?}"
    );
    assert_cancelled(&project, &["stuck", "held", "after"]);
}

#[tokio::test]
async fn a_step_operator_sends_one_step_to_slurm_and_the_rest_run_locally() {
    let Some(_) = cluster() else { return };
    let local = iris_project();
    assert_eq!(run_json(&local.weft(&["run", "--json"]), 0)["executed"], 4);

    // The default stack (SQLite, local files, local orchestrator); only
    // `train` names Slurm, with its resources.
    let mixed = iris_project();
    let manifest = std::fs::read_to_string(mixed.path().join("weft.toml")).unwrap();
    let manifest = manifest.replace(
        "retry = { max = 1, backoff = \"1s\" }\n",
        "retry = { max = 1, backoff = \"1s\" }\norchestrator = \"slurm\"\n\
         resources = { cpus = 1, memory = \"512M\", time = \"10:00\" }\n",
    );
    assert!(manifest.contains("orchestrator = \"slurm\""));
    mixed.write("weft.toml", &manifest);
    let ran = run_json(&mixed.weft(&["run", "--json"]), 0);
    assert_eq!(ran["executed"], 4);

    let open = |state: &Path| {
        let url = format!("sqlite://{}", state.join("weft.db").display());
        async move { Store::open(&url).await.unwrap() }
    };
    let store = open(&mixed.state()).await;
    assert_eq!(
        outcome(&store).await,
        outcome(&open(&local.state()).await).await,
        "the same statuses and bytes as the local run"
    );
    // Exactly one job: train's.
    let run = store.run("latest").await.unwrap();
    let step_runs = store.step_runs(&run.id).await.unwrap();
    let train = step_runs.iter().find(|s| s.step_name == "train").unwrap();
    let submitted = jobs(&mixed.state());
    assert_eq!(submitted.len(), 1, "{submitted:?}");
    assert_eq!(submitted[0].0, train.id);
    for s in &step_runs {
        let tracked = store.tracked_run(&s.id).await.unwrap();
        let worker = tracked.tags.iter().any(|(k, _)| k == weft_pipeline::WORKER_TAG);
        assert_eq!(worker, s.step_name == "train", "{} ran where it should", s.step_name);
    }
    // Lineage runs through the Slurm step as through the local ones.
    assert_iris_lineage(&mixed.weft(&["lineage", "iris/evaluate.report", "--json"]));
}

#[test]
fn a_detached_run_returns_at_once_and_finishes_on_the_cluster() {
    let Some(_) = cluster() else { return };
    let project = Project::new(&fan_manifest(600_000_000));
    project.write("raw.txt", "data");
    // Only a Slurm stack can take the run away from this process.
    let refused = project.weft(&["run", "--detach"]);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("--orchestrator slurm"),
        "{}",
        stderr(&refused)
    );
    slurm_stack(&project);

    let out = project.weft(&["run", "--detach", "--json", "--stack", "hpc"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let submitted: Value = serde_json::from_slice(&out.stdout).unwrap();
    let job = submitted["slurm_job"].as_str().unwrap().to_string();
    assert_eq!(submitted["pipeline"], "fan");
    // Back before the run could have ended: its job is still Slurm's.
    let live = Command::new("squeue")
        .args(["-h", "-j", &job, "-t", "PD,R,CF", "-o", "%i"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&live.stdout).trim(),
        job,
        "the run's job is live"
    );

    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let live = Command::new("squeue")
            .args(["-h", "-j", &job, "-t", "PD,R,CG,CF", "-o", "%i"])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&live.stdout).trim().is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "the detached run's job never ended");
        std::thread::sleep(Duration::from_millis(100));
    }
    let detail = project.run_detail("latest");
    assert_eq!(detail["run"]["status"], "succeeded", "{detail}");
    let statuses: BTreeSet<String> = detail["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(statuses, ["succeeded".to_string()].into());
    // The run's job, and one job per step that it submitted.
    let step_jobs = jobs(&project.state()).into_iter().filter(|(s, _)| s != "run").count();
    assert_eq!(step_jobs, 4);
    assert!(project.state().join(format!("slurm/run-{job}.log")).exists());
}

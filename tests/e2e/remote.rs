//! `weft run --server URL`: the run executes here and is recorded by a
//! `weft server` with its own state, bytes and lineage included.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::*;
use crate::server::{call, start, start_at};
use crate::slurm::iris_project;

fn client() -> Project {
    let e = toml_path(&guest("echo"));
    let project = Project::new(&format!(
        "[pipeline]\nname = \"remote\"\n[inputs]\nraw = {{ path = \"raw.txt\", media_type = \"text/plain\" }}\n\
         [steps.a]\ncomponent = {e}\ninputs = {{ in = \"inputs.raw\" }}\noutputs = [\"out\"]\nparams = {{ prefix = \"a\" }}\n\
         [steps.b]\ncomponent = {e}\ninputs = {{ in = \"a.out\" }}\noutputs = [{{ name = \"out\", media_type = \"text/plain\" }}]\n\
         params = {{ prefix = \"b\" }}\n"
    ));
    project.write("raw.txt", "data");
    project
}

#[test]
fn a_run_sent_to_a_server_shows_there_with_its_bytes_lineage_and_dependencies() {
    let host = Project::new("[pipeline]\nname = \"host\"\n");
    let server = start(&host, &[]);
    let get = |path: &str| call(ureq::get(&format!("{}{path}", server.base)));
    let project = client();

    // Run 1 stays here; run 2 (all cached from run 1) is sent, so the
    // server first receives run 1, which it depends on.
    let first = run_json(&project.weft(&["run", "--json"]), 0);
    let second = run_json(&project.weft(&["run", "--json", "--server", &server.base]), 0);
    assert_eq!(second["cached"], 2);

    let (status, runs) = get("/api/v1/runs?pipeline=remote");
    assert_eq!(status, 200);
    let ids: Vec<&str> = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{runs}");
    assert!(ids.contains(&first["run_id"].as_str().unwrap()));
    assert!(ids.contains(&second["run_id"].as_str().unwrap()));

    let (_, detail) = get(&format!("/api/v1/runs/{}", second["run_id"].as_str().unwrap()));
    let statuses: Vec<&str> = detail["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["cached", "cached"]);
    let (status, content) = get("/api/v1/artifacts/remote%2Fb.out/content");
    assert_eq!((status, content), (200, Value::String("badata".into())));
    let (_, lineage) = get("/api/v1/artifacts/remote%2Fb.out/lineage");
    assert_eq!(lineage["inputs"][0][1]["producer"]["step_name"], "a");
    assert_eq!(
        lineage["inputs"][0][1]["inputs"][0][1]["artifact"]["name"],
        "remote/inputs.raw"
    );

    // The MLflow view of the server has the run with its steps nested.
    let (_, experiment) = get("/api/2.0/mlflow/experiments/get-by-name?experiment_name=remote");
    let found: Value = ureq::post(&format!("{}/api/2.0/mlflow/runs/search", server.base))
        .send_json(serde_json::json!({ "experiment_ids": [experiment["experiment"]["experiment_id"]] }))
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(found["runs"].as_array().unwrap().len(), 6, "2 runs of 2 steps each");

    // A changed param runs again, and the server sees the new run too.
    let third = run_json(
        &project.weft(&["run", "--json", "--server", &server.base, "-p", "b.prefix=c"]),
        0,
    );
    assert_eq!(third["executed"], 1);
    let (_, content) = get(&format!("/api/v1/artifacts/{}/content", "remote%2Fb.out"));
    assert_eq!(content, Value::String("cadata".into()), "the newest version");
}

#[test]
fn the_server_refuses_bytes_that_do_not_match_their_digest_and_writes_without_its_token() {
    let token = "a-token-of-sixteen-chars";
    let host = Project::new("[pipeline]\nname = \"host\"\n");
    let server = start(&host, &["--token", token]);

    let claimed = blake3::hash(b"the real bytes").to_hex().to_string();
    let (status, err) = call(
        ureq::put(&format!("{}/api/v1/sync/blobs/{claimed}", server.base))
            .set("Authorization", &format!("Bearer {token}")),
    );
    // An empty body hashes to something else.
    assert_eq!(
        (status, err["error_code"].as_str()),
        (400, Some("INVALID_PARAMETER_VALUE")),
        "{err}"
    );
    let head = ureq::head(&format!("{}/api/v1/sync/blobs/{claimed}", server.base)).call();
    assert!(matches!(head, Err(ureq::Error::Status(404, _))), "nothing was stored");
    let (status, _) = call(ureq::put(&format!("{}/api/v1/sync/blobs/../../etc", server.base)));
    assert!((400..500).contains(&status));

    // Without the token the run still runs here, but is not recorded there.
    let project = client();
    let out = project.weft(&["run", "--server", &server.base]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("could not be sent"), "{}", stderr(&out));
    // The refusal itself, not a broken pipe from a blob upload it cut.
    assert!(stderr(&out).contains("HTTP 401"), "{}", stderr(&out));
    let out = project.weft(&["run", "--server", &server.base, "--token", "not-the-token-at-all"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("HTTP 403"), "{}", stderr(&out));
    let (_, runs) = call(ureq::get(&format!("{}/api/v1/runs", server.base)));
    assert_eq!(runs["runs"].as_array().unwrap().len(), 0);

    let out = project.weft(&["run", "--server", &server.base, "--token", token]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (_, runs) = call(ureq::get(&format!("{}/api/v1/runs", server.base)));
    assert_eq!(
        runs["runs"].as_array().unwrap().len(),
        3,
        "the two runs refused and queued, sent first, then this one"
    );
}

/// What a run's record says that a server must show the same: params,
/// metrics, and each step's status and output digests.
fn essentials(detail: &Value) -> Value {
    let steps: Vec<Value> = detail["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| serde_json::json!([s["step_name"], s["status"], s["cache_key"], s["component_digest"]]))
        .collect();
    serde_json::json!({
        "params": detail["params"],
        "metrics": detail["metrics"],
        "steps": steps,
        "status": detail["run"]["status"],
    })
}

#[test]
fn runs_made_while_the_server_is_away_are_queued_and_a_push_cut_by_kill_9_is_finished_by_the_next() {
    let project = iris_project();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");

    // Nobody answers: every run completes here and waits in the outbox.
    let mut runs = Vec::new();
    for epochs in [300, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130, 140] {
        let out = project.weft(&[
            "run",
            "--json",
            "--server",
            &url,
            "-p",
            &format!("train.epochs={epochs}"),
        ]);
        let run = run_json(&out, 0);
        assert!(stderr(&out).contains("queued"), "{}", stderr(&out));
        runs.push(run["run_id"].as_str().unwrap().to_string());
    }
    let outbox = project.state().join("outbox");
    assert_eq!(std::fs::read_dir(&outbox).unwrap().count(), runs.len());

    // The server comes up; a push is killed (SIGKILL) once it has sent
    // its first run, then a second push finishes the job.
    let host = Project::new("[pipeline]\nname = \"host\"\n");
    let server = start_at(&host, port, &[]);
    let listed = |server_base: &str| -> Vec<String> {
        let (_, runs) = call(ureq::get(&format!("{server_base}/api/v1/runs?pipeline=iris&limit=100")));
        runs["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect()
    };
    let mut push = project
        .command(&["push", &url])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let began = Instant::now();
    while listed(&server.base).is_empty() && began.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(2));
    }
    push.kill().unwrap();
    push.wait().unwrap();
    // Cut part way: the server has a run, and at least one still waits.
    // The kill may land after the server recorded a run and before the
    // outbox let go of it: then every run still waits, and the next push
    // sends that one again, which the server must take once.
    let waiting = std::fs::read_dir(&outbox).unwrap().count();
    assert!(
        (1..=runs.len()).contains(&waiting),
        "the push was cut part way: {waiting} of {} runs still wait",
        runs.len()
    );

    let out = project.weft(&["push", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pushed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(pushed["sent"].as_array().unwrap().len(), waiting, "{pushed}");
    assert_eq!(std::fs::read_dir(&outbox).unwrap().count(), 0);
    let again = project.weft(&["push"]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(stderr(&again).contains("nothing to push"), "{}", stderr(&again));

    // Every run once, as recorded here: params, metrics, steps.
    let mut on_server = listed(&server.base);
    on_server.sort();
    let mut expected = runs.clone();
    expected.sort();
    assert_eq!(on_server, expected, "each run exactly once");
    for id in &runs {
        let (status, there) = call(ureq::get(&format!("{}/api/v1/runs/{id}", server.base)));
        assert_eq!(status, 200);
        let here = project.run_detail(id);
        assert!(!here["metrics"].as_array().unwrap().is_empty(), "iris logs metrics");
        assert_eq!(essentials(&there), essentials(&here), "run {id}");
    }
    // Bytes and lineage: the newest model and report, back to the data.
    let (status, _) = call(ureq::get(&format!(
        "{}/api/v1/artifacts/iris%2Ftrain.model/content",
        server.base
    )));
    assert_eq!(status, 200);
    let (_, lineage) = call(ureq::get(&format!(
        "{}/api/v1/artifacts/iris%2Fevaluate.report/lineage",
        server.base
    )));
    assert_eq!(lineage["producer"]["step_name"], "evaluate", "{lineage}");
    // The MLflow view: a parent and four step runs per run, none twice.
    let (_, experiment) = call(ureq::get(&format!(
        "{}/api/2.0/mlflow/experiments/get-by-name?experiment_name=iris",
        server.base
    )));
    let found: Value = ureq::post(&format!("{}/api/2.0/mlflow/runs/search", server.base))
        .send_json(
            serde_json::json!({ "experiment_ids": [experiment["experiment"]["experiment_id"]], "max_results": 1000 }),
        )
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(found["runs"].as_array().unwrap().len(), runs.len() * 5);

    // With the server there, a run goes live again and the outbox stays empty.
    let out = project.weft(&["run", "--server", &url]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("sent to {url}")), "{}", stderr(&out));
    assert_eq!(std::fs::read_dir(&outbox).unwrap().count(), 0);
}

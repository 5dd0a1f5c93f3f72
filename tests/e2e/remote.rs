//! `weft run --server URL`: the run executes here and is recorded by a
//! `weft server` with its own state, bytes and lineage included.

use serde_json::Value;

use crate::harness::*;
use crate::server::{call, start};

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
    let (_, runs) = call(ureq::get(&format!("{}/api/v1/runs", server.base)));
    assert_eq!(runs["runs"].as_array().unwrap().len(), 0);

    let out = project.weft(&["run", "--server", &server.base, "--token", token]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (_, runs) = call(ureq::get(&format!("{}/api/v1/runs", server.base)));
    assert_eq!(
        runs["runs"].as_array().unwrap().len(),
        2,
        "the run and the one it was cached from"
    );
}

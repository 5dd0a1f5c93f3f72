//! `weft server`: the native API over real HTTP, after a real run.

use std::process::{Child, Stdio};

use serde_json::Value;

use crate::harness::*;

/// A running `weft server`, killed on drop.
pub(crate) struct Server {
    child: Child,
    pub(crate) base: String,
}

impl Server {
    /// Kills the server (SIGKILL) and waits for it.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn start(project: &Project, extra: &[&str]) -> Server {
    start_at(project, 0, extra)
}

/// A server on `port` (0: any free one).
pub(crate) fn start_at(project: &Project, port: u16, extra: &[&str]) -> Server {
    let port = port.to_string();
    let mut args = vec!["server", "--port", &port];
    args.extend_from_slice(extra);
    let mut child = project
        .command(&args)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let (base, _) = listening(&mut child);
    Server { child, base }
}

/// (status, JSON body) of a request; errors are answers too.
pub(crate) fn call(request: ureq::Request) -> (u16, Value) {
    let response = match request.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("request failed: {e}"),
    };
    let status = response.status();
    let text = response.into_string().unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn pipeline() -> Project {
    let e = toml_path(&guest("echo"));
    let project = Project::new(&format!(
        "[pipeline]\nname = \"srv\"\n[inputs]\nraw = {{ path = \"raw.txt\", media_type = \"text/plain\" }}\n\
         [steps.a]\ncomponent = {e}\ninputs = {{ in = \"inputs.raw\" }}\noutputs = [\"out\"]\nparams = {{ prefix = \"a\" }}\n\
         [steps.b]\ncomponent = {e}\ninputs = {{ in = \"a.out\" }}\noutputs = [{{ name = \"out\", media_type = \"text/plain\" }}]\n\
         params = {{ prefix = \"b\" }}\n"
    ));
    project.write("raw.txt", "data");
    run_json(&project.weft(&["run", "--json"]), 0);
    let register = project.weft(&[
        "models",
        "register",
        "srv/b.out",
        "--name",
        "srv-model",
        "--alias",
        "champion",
    ]);
    assert!(register.status.success(), "{}", stderr(&register));
    project
}

#[test]
fn the_native_api_serves_runs_metrics_artifacts_and_lineage() {
    let project = pipeline();
    let server = start(&project, &[]);
    let get = |path: &str| call(ureq::get(&format!("{}{path}", server.base)));

    assert_eq!(get("/health"), (200, serde_json::json!({"status": "ok"})));
    let (status, runs) = get("/api/v1/runs?pipeline=srv");
    assert_eq!(status, 200);
    assert_eq!(runs["runs"].as_array().unwrap().len(), 1);
    assert_eq!(runs["runs"][0]["status"], "succeeded");
    assert_eq!(get("/api/v1/runs?status=failed").1["runs"].as_array().unwrap().len(), 0);
    let (_, pipelines) = get("/api/v1/pipelines");
    assert_eq!(pipelines["pipelines"][0]["name"], "srv");
    assert_eq!(pipelines["pipelines"][0]["runs"], 1);

    let (_, run) = get("/api/v1/runs/latest");
    let steps: Vec<&str> = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step_name"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["a", "b"]);
    let (_, history) = get(&format!(
        "/api/v1/runs/{}/metrics/bytes",
        run["run"]["id"].as_str().unwrap()
    ));
    let values: Vec<f64> = history["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["value"].as_f64().unwrap())
        .collect();
    assert_eq!(values, [5.0, 6.0], "a wrote 'adata' (5 bytes), b 'badata' (6)");

    let (status, content) = get("/api/v1/artifacts/srv%2Fb.out/content");
    assert_eq!((status, content), (200, Value::String("badata".into())));
    let (_, detail) = get("/api/v1/artifacts/srv%2Fb.out");
    assert_eq!(detail["artifact"]["media_type"], "text/plain");
    assert_eq!(detail["producer"]["step_name"], "b");
    assert_eq!(detail["bytes_present"], true);
    let (_, lineage) = get("/api/v1/artifacts/srv%2Fb.out/lineage");
    assert_eq!(lineage["inputs"][0][1]["producer"]["step_name"], "a");
    assert_eq!(
        lineage["inputs"][0][1]["inputs"][0][1]["artifact"]["name"],
        "srv/inputs.raw"
    );
    assert_eq!(get("/api/v1/runs/latest/steps/b/logs").0, 200);

    // What the dashboard reads: counts, summaries, series, a step's artifacts.
    assert_eq!(runs["total"], 1);
    assert_eq!(
        (runs["runs"][0]["steps"].as_i64(), runs["runs"][0]["cached"].as_i64()),
        (Some(2), Some(0))
    );
    assert_eq!(run["manifest"]["steps"][1]["inputs"]["in"], "a.out");
    assert_eq!(
        get("/api/v1/runs/latest?metrics=none").1["metrics"],
        serde_json::json!([])
    );
    let (_, summary) = get("/api/v1/runs/latest/metrics");
    let bytes: Vec<(&str, f64)> = summary["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["key"] == "bytes")
        .map(|m| (m["step"].as_str().unwrap(), m["last"].as_f64().unwrap()))
        .collect();
    assert_eq!(bytes, [("a", 5.0), ("b", 6.0)]);
    let (_, series) = get("/api/v1/runs/latest/series/bytes?max_points=10");
    assert_eq!(series["series"][1]["step"], "b");
    assert_eq!(series["series"][1]["points"], serde_json::json!([[0.0, 6.0]]));
    let (_, step) = get("/api/v1/runs/latest/steps/b");
    assert_eq!(step["inputs"][0]["name"], "srv/a.out");
    assert_eq!(step["outputs"][0]["name"], "srv/b.out");
    let download = ureq::get(&format!(
        "{}/api/v1/artifacts/srv%2Fb.out/content?download=true",
        server.base
    ))
    .call()
    .unwrap();
    assert_eq!(
        download.header("content-disposition"),
        Some("attachment; filename=\"b.out-v1\"")
    );
    assert!(download
        .header("content-security-policy")
        .unwrap()
        .starts_with("sandbox"));
    let page = ureq::get(&format!("{}/", server.base)).call().unwrap();
    assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(page
        .header("content-security-policy")
        .unwrap()
        .contains("script-src 'self'"));
    assert!(page.into_string().unwrap().contains("/ui/app.js"));
    assert_eq!(call(ureq::get(&format!("{}/ui/../Cargo.toml", server.base))).0, 404);
    let (_, models) = get("/api/v1/models");
    assert_eq!(models["models"][0]["name"], "srv-model");
    let (_, model) = get("/api/v1/models/srv-model");
    assert_eq!(model["model"]["aliases"][0], serde_json::json!(["champion", 1]));
    let tags = model["versions"][0]["tags"].as_array().unwrap();
    assert!(tags.contains(&serde_json::json!(["weft.step", "b"])), "{tags:?}");
    assert_eq!(get("/api/v1/models/nope").0, 404);

    // Bad input: JSON errors with a 4xx status.
    let (status, err) = get("/api/v1/runs?limit=0");
    assert_eq!(
        (status, err["error_code"].as_str()),
        (400, Some("INVALID_PARAMETER_VALUE"))
    );
    let (status, err) = get("/api/v1/runs?limit=abc");
    assert_eq!(
        (status, err["error_code"].as_str()),
        (400, Some("INVALID_PARAMETER_VALUE"))
    );
    let (status, err) = get("/api/v1/runs?status=exploded");
    assert_eq!(
        (status, err["error_code"].as_str()),
        (400, Some("INVALID_PARAMETER_VALUE"))
    );
    for bad in [
        "/api/v1/runs?sort=color",
        "/api/v1/runs?order=sideways",
        "/api/v1/runs/latest?metrics=some",
        "/api/v1/runs/latest/series/bytes?max_points=1",
        "/api/v1/runs/latest/series/bytes?max_points=100000",
    ] {
        let (status, err) = get(bad);
        assert_eq!(
            (status, err["error_code"].as_str()),
            (400, Some("INVALID_PARAMETER_VALUE")),
            "{bad}"
        );
    }
    let (status, err) = get("/api/v1/runs/latest/steps/zzz");
    assert_eq!(
        (status, err["error_code"].as_str()),
        (404, Some("RESOURCE_DOES_NOT_EXIST"))
    );
    let (status, err) = get("/api/v1/runs/no-such-run");
    assert_eq!(
        (status, err["error_code"].as_str()),
        (404, Some("RESOURCE_DOES_NOT_EXIST"))
    );
    let (status, err) = get("/api/v1/artifacts/..%2F..%2Fetc%2Fpasswd/content");
    assert_eq!(
        (status, err["error_code"].as_str()),
        (404, Some("RESOURCE_DOES_NOT_EXIST"))
    );
    let (status, err) = get("/nope");
    assert_eq!((status, err["error_code"].as_str()), (404, Some("ENDPOINT_NOT_FOUND")));
    let (status, err) = call(ureq::post(&format!("{}/api/v1/runs", server.base)));
    assert_eq!((status, err["error_code"].as_str()), (405, Some("ENDPOINT_NOT_FOUND")));
}

#[test]
fn every_path_in_the_openapi_document_is_served() {
    let project = pipeline();
    // A schedule of the registered pipeline, named like the model, so that
    // `{name}` means something in every path.
    let out = project.weft(&["pipeline", "register"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = project.weft(&[
        "schedule",
        "create",
        "srv-model",
        "--pipeline",
        "srv",
        "--cron",
        "0 3 * * *",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let server = start(&project, &[]);
    let (status, doc) = call(ureq::get(&format!("{}/api/v1/openapi.json", server.base)));
    assert_eq!(status, 200);
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 9, "{:?}", paths.keys());
    for (path, operations) in paths {
        if operations.get("get").is_none() {
            continue; // writes, tested where they are used
        }
        let concrete = path
            .replace("{run}", "latest")
            .replace("{step}", "a")
            .replace("{key}", "bytes")
            .replace("{artifact}", "srv%2Fa.out")
            .replace("{name}", "srv-model");
        let (status, body) = call(ureq::get(&format!("{}{concrete}", server.base)));
        assert_eq!(status, 200, "GET {concrete}: {body}");
    }
}

#[test]
fn writes_need_the_token_and_public_binds_need_one() {
    let project = pipeline();
    let token = "a-test-token-of-some-length";
    let server = start(&project, &["--token", token]);
    let url = format!("{}/api/v1/runs", server.base);
    let (status, err) = call(ureq::post(&url));
    assert_eq!((status, err["error_code"].as_str()), (401, Some("UNAUTHENTICATED")));
    let (status, err) = call(ureq::post(&url).set("Authorization", "Bearer wrong-token-wrong-token"));
    assert_eq!((status, err["error_code"].as_str()), (403, Some("PERMISSION_DENIED")));
    // Reads need no token.
    assert_eq!(call(ureq::get(&url)).0, 200);

    let out = project.weft(&["server", "--host", "0.0.0.0", "--port", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("refusing to listen on 0.0.0.0"),
        "{}",
        stderr(&out)
    );
}

/// The MLflow view of pipeline `naps`: (run name, status, parent run id).
fn mlflow_runs(server: &Server) -> Vec<(String, String, Option<String>)> {
    let (code, body) = call(ureq::get(&format!(
        "{}/api/2.0/mlflow/experiments/get-by-name?experiment_name=naps",
        server.base
    )));
    if code != 200 {
        return Vec::new();
    }
    let id = body["experiment"]["experiment_id"].as_str().unwrap().to_string();
    let body: Value = ureq::post(&format!("{}/api/2.0/mlflow/runs/search", server.base))
        .send_json(serde_json::json!({ "experiment_ids": [id] }))
        .unwrap()
        .into_json()
        .unwrap();
    body["runs"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|r| {
            let tags = r["data"]["tags"].as_array().cloned().unwrap_or_default();
            let parent = tags
                .iter()
                .find(|t| t["key"] == "mlflow.parentRunId")
                .map(|t| t["value"].as_str().unwrap().to_string());
            (
                r["info"]["run_name"].as_str().unwrap().to_string(),
                r["info"]["status"].as_str().unwrap().to_string(),
                parent,
            )
        })
        .collect()
}

#[test]
fn a_finished_step_shows_in_the_mlflow_view_while_its_run_goes_on() {
    let h = toml_path(&guest("hostile"));
    let project = Project::new(&format!(
        "[pipeline]\nname = \"naps\"\n\
         [steps.quick]\ncomponent = {h}\noutputs = [\"out\"]\nparams = {{ attack = \"nap\", steps = 10 }}\n\
         nondeterministic = true\n\
         [steps.slow]\ncomponent = {h}\ninputs = {{ in = \"quick.out\" }}\noutputs = [\"out\"]\n\
         params = {{ attack = \"nap\", steps = 6000 }}\nnondeterministic = true\n"
    ));
    let server = start(&project, &[]);
    let mut run = project
        .command(&["run", "--json"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Within the slow step's six seconds: the run RUNNING, `quick` done.
    // (The view is written with the ledger: a step shows as soon as its
    // record is written, running or finished.)
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let seen = loop {
        let runs = mlflow_runs(&server);
        let parent = runs.iter().find(|r| r.2.is_none()).cloned();
        let quick = runs.iter().find(|r| r.0 == "quick" && r.1 == "FINISHED").cloned();
        if let (Some(parent), Some(quick)) = (parent, quick) {
            break Some((parent, quick));
        }
        if std::time::Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let (parent, quick) = seen.expect("the finished step reached the MLflow view while the run went on");
    assert_eq!(parent.1, "RUNNING");
    assert_eq!(quick.1, "FINISHED");
    assert!(run.try_wait().unwrap().is_none(), "the run was still going");
    // A step that runs a while shows as running, before it finishes.
    let runs = mlflow_runs(&server);
    assert!(
        runs.iter().filter(|r| r.0 == "slow").all(|r| r.1 == "RUNNING"),
        "slow had not finished: {runs:?}"
    );

    assert!(run.wait().unwrap().success());
    let runs = mlflow_runs(&server);
    assert!(runs.iter().any(|r| r.0 == "slow" && r.1 == "FINISHED"), "{runs:?}");
    assert!(runs.iter().any(|r| r.2.is_none() && r.1 == "FINISHED"), "{runs:?}");
}

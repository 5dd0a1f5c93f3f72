//! `weft serve`: registered models answered over HTTP by their sandboxed
//! model servers, through the MLflow scoring protocol.

use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::*;
use crate::iris::iris_copy;

/// A running `weft serve`, stopped when dropped.
struct Serve {
    child: Child,
    base: String,
    /// What it printed after its address.
    said: Arc<Mutex<Vec<String>>>,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    fn start(project: &Project, args: &[&str]) -> Serve {
        let mut all = vec!["serve", "--port", "0"];
        all.extend_from_slice(args);
        let mut child = project
            .command(&all)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let (base, said) = listening(&mut child);
        Serve { child, base, said }
    }

    /// (status, model version header, JSON body) of a POST.
    fn post(&self, path: &str, content_type: &str, body: &str) -> (u16, Option<i64>, Value) {
        post(&format!("{}{path}", self.base), content_type, body, None)
    }

    fn invoke(&self, body: &Value) -> (u16, Option<i64>, Value) {
        self.post("/invocations", "application/json", &body.to_string())
    }

    fn get(&self, path: &str) -> (u16, String) {
        match ureq::get(&format!("{}{path}", self.base)).call() {
            Ok(r) => (r.status(), r.into_string().unwrap()),
            Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap()),
            Err(e) => panic!("request failed: {e}"),
        }
    }
}

/// (status, model version header, JSON body) of a POST, with a bearer
/// token if given.
fn post(url: &str, content_type: &str, body: &str, token: Option<&str>) -> (u16, Option<i64>, Value) {
    let mut request = ureq::post(url).set("Content-Type", content_type);
    if let Some(token) = token {
        request = request.set("Authorization", &format!("Bearer {token}"));
    }
    let response = match request.send_string(body) {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("request failed: {e}"),
    };
    let status = response.status();
    let version = response.header("x-weft-model-version").and_then(|v| v.parse().ok());
    let text = response.into_string().unwrap();
    (
        status,
        version,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn artifact_json(project: &Project, key: &str) -> Value {
    let out = project.weft(&["artifacts", "get", key]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The iris test split and the evaluate step's predictions for it.
fn test_split_and_predictions(project: &Project) -> (Vec<String>, Vec<Vec<f64>>, Value) {
    let test = artifact_json(project, "iris/split.test");
    let report = artifact_json(project, "iris/evaluate.report");
    let features: Vec<String> = serde_json::from_value(test["features"].clone()).unwrap();
    let rows: Vec<Vec<f64>> = serde_json::from_value(test["rows"].clone()).unwrap();
    assert!(!rows.is_empty());
    (features, rows, report["predictions"].clone())
}

/// The same rows in every request format the MLflow scoring protocol has.
fn every_format(features: &[String], rows: &[Vec<f64>]) -> Vec<(&'static str, &'static str, String)> {
    let records: Vec<Value> = rows
        .iter()
        .map(|r| Value::Object(features.iter().cloned().zip(r.iter().map(|v| json!(v))).collect()))
        .collect();
    let columns: serde_json::Map<String, Value> = features
        .iter()
        .enumerate()
        .map(|(i, f)| (f.clone(), json!(rows.iter().map(|r| r[i]).collect::<Vec<_>>())))
        .collect();
    let mut csv = features.join(",");
    for r in rows {
        csv.push('\n');
        csv.push_str(&r.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(","));
    }
    let json_type: &'static str = "application/json";
    vec![
        (
            "dataframe_split",
            json_type,
            json!({"dataframe_split": {"columns": features, "data": rows}}).to_string(),
        ),
        (
            "dataframe_records",
            json_type,
            json!({ "dataframe_records": records }).to_string(),
        ),
        ("instances", json_type, json!({ "instances": records }).to_string()),
        ("inputs (columns)", json_type, json!({ "inputs": columns }).to_string()),
        ("inputs (rows)", json_type, json!({ "inputs": rows }).to_string()),
        ("csv", "text/csv", csv),
    ]
}

#[test]
fn iris_is_served_over_the_mlflow_protocol_and_an_alias_move_swaps_versions_under_load() {
    build_iris();
    let project = Project { dir: iris_copy() };
    std::os::unix::fs::symlink(repo_root().join("examples/iris/target"), project.path().join("target")).unwrap();
    let first = project.weft(&["run", "--json"]);
    run_json(&first, 0);
    assert!(
        stderr(&first).contains("model iris-softmax version 1"),
        "{}",
        stderr(&first)
    );
    assert!(project
        .weft(&["models", "alias", "iris-softmax", "champion", "1"])
        .status
        .success());

    let serve = Serve::start(
        &project,
        &["models:/iris-softmax@champion", "--poll", "100ms", "--instances", "2"],
    );
    assert_eq!(serve.get("/ping").0, 200);
    assert_eq!(serve.get("/version").0, 200);

    // Every format answers the evaluate step's predictions on the test split.
    let (features, rows, expected) = test_split_and_predictions(&project);
    for (format, content_type, body) in every_format(&features, &rows) {
        let (status, version, answer) = serve.post("/invocations", content_type, &body);
        assert_eq!((status, version), (200, Some(1)), "{format}: {answer}");
        assert_eq!(answer["predictions"], expected, "{format}");
    }
    // Probabilities through params, one per class, summing to 1.
    let (status, _, answer) = serve.invoke(&json!({"inputs": [rows[0]], "params": {"probabilities": true}}));
    assert_eq!(status, 200, "{answer}");
    let p: f64 = answer["predictions"][0]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_f64().unwrap())
        .sum();
    assert!((p - 1.0).abs() < 1e-9, "{answer}");
    // Bad requests are the client's: 400 (or 415) with MLflow's error shape.
    for (content_type, body, status) in [
        ("application/json", r#"{"data": [[1]]}"#.to_string(), 400),
        ("application/json", json!({"inputs": [[1.0, 2.0]]}).to_string(), 400),
        (
            "application/json",
            json!({"dataframe_split": {"columns": ["x"], "data": [[1.0]]}}).to_string(),
            400,
        ),
        ("text/plain", "1,2,3,4".to_string(), 415),
    ] {
        let (got, _, answer) = serve.post("/invocations", content_type, &body);
        assert_eq!(got, status, "{body}: {answer}");
        assert_eq!(answer["error_code"], "BAD_REQUEST", "{answer}");
        assert!(!answer["message"].as_str().unwrap().is_empty());
    }

    // A second version, then the alias moves while clients keep asking.
    run_json(&project.weft(&["run", "--json", "-p", "train.epochs=40"]), 0);
    let stop = Arc::new(AtomicBool::new(false));
    let one_row = json!({"inputs": [rows[0]]});
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let stop = stop.clone();
            let url = format!("{}/invocations", serve.base);
            let body = one_row.to_string();
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let answer = ureq::post(&url)
                        .set("Content-Type", "application/json")
                        .send_string(&body);
                    match answer {
                        Ok(r) => seen.push(Ok(r.header("x-weft-model-version").unwrap_or("").to_string())),
                        Err(e) => seen.push(Err(e.to_string())),
                    }
                }
                seen
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    assert!(project
        .weft(&["models", "alias", "iris-softmax", "champion", "2"])
        .status
        .success());
    let deadline = Instant::now() + Duration::from_secs(60);
    while serde_json::from_str::<Value>(&serve.get("/model").1).unwrap()["version"] != 2 {
        assert!(
            Instant::now() < deadline,
            "version 2 was never swapped in: {:?}",
            serve.said.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let mut answered = 0;
    for client in clients {
        let seen = client.join().unwrap();
        let versions: Vec<&str> = seen
            .iter()
            .map(|r| {
                r.as_deref()
                    .unwrap_or_else(|e| panic!("a request failed during the swap: {e}"))
            })
            .collect();
        // One client's requests follow each other: once one was answered by
        // the new version, none after it is answered by the old.
        let first_new = versions.iter().position(|v| *v == "2").unwrap_or(versions.len());
        assert!(versions[..first_new].iter().all(|v| *v == "1"), "{versions:?}");
        assert!(versions[first_new..].iter().all(|v| *v == "2"), "{versions:?}");
        answered += versions.len();
    }
    assert!(answered > 16, "only {answered} requests during the swap");
    assert!(
        serve
            .said
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("serving version 2 (was 1)")),
        "{:?}",
        serve.said.lock().unwrap()
    );
    // Version 2 answers its own evaluate step's predictions.
    let (_, rows2, expected2) = test_split_and_predictions(&project);
    let (status, version, answer) = serve.invoke(&json!({"dataframe_split": {"columns": features, "data": rows2}}));
    assert_eq!((status, version), (200, Some(2)));
    assert_eq!(answer["predictions"], expected2);
    let (_, metrics) = serve.get("/metrics");
    assert!(metrics.contains("weft_serve_swaps_total 1"), "{metrics}");
    assert!(
        metrics.contains("weft_serve_model_version{model=\"iris-softmax\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains("weft_serve_requests_total{code=\"200\"}"), "{metrics}");
    drop(serve);

    // `weft server --serve-models` answers the same on routes of its own,
    // loading each model on its first request; with --max-models 1, asking
    // for another unloads the first, which loads again when asked.
    let token = "serve-models-token-0123";
    let server = crate::server::start(&project, &["--serve-models", "--max-models", "1", "--token", token]);
    let split = json!({"dataframe_split": {"columns": features, "data": rows2}}).to_string();
    let at = |path: &str| format!("{}/serve/models/{path}", server.base);
    let (status, _, answer) = post(
        &at("iris-softmax@champion/invocations"),
        "application/json",
        &split,
        None,
    );
    assert_eq!(status, 401, "asking a model runs code: it needs the token ({answer})");
    for (path, version, predictions) in [
        ("iris-softmax@champion/invocations", 2, &expected2),
        ("iris-softmax/1/invocations", 1, &expected),
        ("iris-softmax/latest/invocations", 2, &expected2),
    ] {
        let request = if version == 1 {
            json!({"dataframe_split": {"columns": features, "data": rows}}).to_string()
        } else {
            split.clone()
        };
        let (status, got, answer) = post(&at(path), "application/json", &request, Some(token));
        assert_eq!((status, got), (200, Some(version)), "{path}: {answer}");
        assert_eq!(&answer["predictions"], predictions, "{path}");
    }
    let (status, _, answer) = post(&at("iris-softmax@champion/invocations"), "text/plain", "1", Some(token));
    assert_eq!(
        (status, answer["error_code"].as_str()),
        (415, Some("BAD_REQUEST")),
        "{answer}"
    );
    for (path, status, code) in [
        ("no-such-model@champion/invocations", 404, "RESOURCE_DOES_NOT_EXIST"),
        ("iris-softmax@no-such-alias/invocations", 404, "RESOURCE_DOES_NOT_EXIST"),
        ("iris-softmax@champion/no-such-route", 404, "ENDPOINT_NOT_FOUND"),
        ("iris-softmax/0x/invocations", 400, "INVALID_PARAMETER_VALUE"),
    ] {
        let (got, _, answer) = post(&at(path), "application/json", &split, Some(token));
        assert_eq!(
            (got, answer["error_code"].as_str()),
            (status, Some(code)),
            "{path}: {answer}"
        );
    }
    drop(server);
    // Without --serve-models there are no such routes.
    let plain = crate::server::start(&project, &[]);
    let (status, _, answer) = post(
        &format!("{}/serve/models/iris-softmax@champion/invocations", plain.base),
        "application/json",
        &split,
        None,
    );
    assert_eq!(
        (status, answer["error_code"].as_str()),
        (404, Some("ENDPOINT_NOT_FOUND")),
        "{answer}"
    );
}

#[test]
fn a_request_over_its_memory_or_time_limit_fails_alone_and_the_server_keeps_serving() {
    let project = Project::new(&format!(
        "[pipeline]\nname = \"m\"\n[steps.a]\ncomponent = {}\noutputs = [\"out\"]\nparams = {{ prefix = \"0123456789\" }}\n",
        toml_path(&guest("echo"))
    ));
    run_json(&project.weft(&["run", "--json"]), 0);
    let server = guest("hostile_model");
    let registered = project.weft(&[
        "models",
        "register",
        "m/a.out",
        "--name",
        "hostile",
        "--served-by",
        server.to_str().unwrap(),
    ]);
    assert!(registered.status.success(), "{}", stderr(&registered));
    // A version without a server cannot be served, and says how to fix it.
    assert!(project
        .weft(&["models", "register", "m/a.out", "--name", "plain"])
        .status
        .success());
    let refused = project.weft(&["serve", "models:/plain/1", "--port", "0"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        stderr(&refused).contains("names no model server"),
        "{}",
        stderr(&refused)
    );
    let refused = project.weft(&["serve", "plain", "--port", "0"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(stderr(&refused).contains("invalid model URI"), "{}", stderr(&refused));

    let serve = Serve::start(
        &project,
        &[
            "models:/hostile/1",
            "--memory",
            "128MiB",
            "--timeout",
            "1s",
            "--instances",
            "2",
        ],
    );
    let plain = json!({"inputs": [[1.0], [2.0]]});
    let (status, _, answer) = serve.invoke(&plain);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["predictions"],
        json!([11.0, 12.0]),
        "the model's 10 bytes plus the row"
    );

    let attack = |what: &str| json!({"inputs": [[1.0]], "params": {"attack": what}});
    let (status, _, answer) = serve.invoke(&attack("memory"));
    assert_eq!(
        (status, answer["error_code"].as_str()),
        (500, Some("RESOURCE_EXHAUSTED")),
        "{answer}"
    );
    assert!(answer["message"].as_str().unwrap().contains("memory"), "{answer}");
    let (status, _, answer) = serve.invoke(&attack("panic"));
    assert_eq!(
        (status, answer["error_code"].as_str()),
        (500, Some("INTERNAL_ERROR")),
        "{answer}"
    );
    // The client is told why: the panic's message, from the server's stderr.
    assert!(
        answer["message"].as_str().unwrap().contains("asked to panic"),
        "{answer}"
    );

    // While one request spins to its deadline, the other instance answers.
    let spinning = {
        let base = serve.base.clone();
        let body = attack("spin").to_string();
        std::thread::spawn(move || {
            match ureq::post(&format!("{base}/invocations"))
                .set("Content-Type", "application/json")
                .send_string(&body)
            {
                Err(ureq::Error::Status(code, r)) => (code, r.into_json::<Value>().unwrap()),
                other => panic!("the spinning request was answered: {:?}", other.map(|r| r.status())),
            }
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    let (status, _, answer) = serve.invoke(&plain);
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = spinning.join().unwrap();
    assert_eq!(
        (status, answer["error_code"].as_str()),
        (504, Some("DEADLINE_EXCEEDED")),
        "{answer}"
    );

    // Every failed instance was replaced: the server answers as before.
    for _ in 0..4 {
        let (status, _, answer) = serve.invoke(&plain);
        assert_eq!((status, &answer["predictions"]), (200, &json!([11.0, 12.0])));
    }
    let (_, metrics) = serve.get("/metrics");
    assert!(metrics.contains("weft_serve_instances_replaced_total 3"), "{metrics}");
    assert!(
        metrics.contains("weft_serve_requests_total{code=\"504\"} 1"),
        "{metrics}"
    );
    let (_, model) = serve.get("/model");
    let model: Value = serde_json::from_str(&model).unwrap();
    assert_eq!(model["server_digest"].as_str().unwrap().len(), 64);
}

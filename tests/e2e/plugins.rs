//! Stack integrations as sandboxed WASM plugins (plugins/), through the
//! `weft` binary: consent at install, hooks to alerters, the host's
//! allow-list on outbound HTTP, validator gates, tracker sinks,
//! materializers.

use serde_json::Value;

use crate::harness::*;
use crate::server::{call, start};

fn install(project: &Project, name: &str, extra: &[&str]) -> std::process::Output {
    let component = plugin(name);
    let mut args = vec!["plugin", "install", component.to_str().unwrap()];
    args.extend_from_slice(extra);
    project.weft(&args)
}

fn installed(project: &Project, name: &str, extra: &[&str]) {
    let out = install(project, name, extra);
    assert!(out.status.success(), "installing {name}: {}", stderr(&out));
}

/// A pipeline of one hostile step doing `attack`, plus `extra` TOML.
fn one_step(attack: &str, extra: &str) -> Project {
    let h = toml_path(&guest("hostile"));
    Project::new(&format!(
        "[pipeline]\nname = \"alerts\"\n{extra}\n\
         [steps.work]\ncomponent = {h}\noutputs = [\"out\"]\nparams = {{ attack = \"{attack}\" }}\non_failure = [\"webhook-alerter\"]\n"
    ))
}

fn plugin_calls(project: &Project) -> Vec<Value> {
    project.run_detail("latest")["plugin_calls"].as_array().unwrap().clone()
}

#[test]
fn installing_without_consent_is_refused_with_the_capabilities_listed() {
    let project = Project::new("[pipeline]\nname = \"p\"\n");
    let out = install(&project, "webhook-alerter", &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("asks for capabilities you did not grant"), "{err}");
    assert!(err.contains("send HTTP requests to hosts you name"), "{err}");
    assert!(err.contains("--allow"), "{err}");
    // A grant of what a plugin did not ask for is refused too.
    let out = install(&project, "schema-validator", &["--allow", "http:example.com"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("did not ask to reach example.com"),
        "{}",
        stderr(&out)
    );
    let list = project.weft(&["plugin", "list", "--json"]);
    assert_eq!(
        serde_json::from_slice::<Value>(&list.stdout).unwrap(),
        serde_json::json!([])
    );

    // With consent: installed with exactly that grant.
    installed(
        &project,
        "webhook-alerter",
        &["--allow", "http:127.0.0.1:9", "--config", "url=http://127.0.0.1:9/x"],
    );
    let info: Value = serde_json::from_slice(&project.weft(&["plugin", "info", "webhook-alerter"]).stdout).unwrap();
    assert_eq!(info["granted_http_hosts"], serde_json::json!(["127.0.0.1:9"]));
    assert_eq!(info["kind"], "alerter");
    let again = install(&project, "webhook-alerter", &["--allow", "http:127.0.0.1:9"]);
    assert!(stderr(&again).contains("installed already"), "{}", stderr(&again));
    assert!(project.weft(&["plugin", "remove", "webhook-alerter"]).status.success());
    assert_eq!(
        project.weft(&["plugin", "info", "webhook-alerter"]).status.code(),
        Some(3)
    );
}

#[test]
fn a_failing_step_fires_the_webhook_alerter_with_the_run_id_and_error() {
    let receiver = Receiver::start();
    let project = one_step("fail", "[hooks]\non_failure = [\"webhook-alerter\"]\n");
    let port = receiver.port.to_string();
    installed(
        &project,
        "webhook-alerter",
        &[
            "--allow",
            &format!("http:127.0.0.1:{port}"),
            "--config",
            &format!("url=http://127.0.0.1:{port}/hook"),
        ],
    );
    let outcome = run_json(&project.weft(&["run", "--json"]), 1);
    let run_id = outcome["run_id"].as_str().unwrap();

    let events: Vec<Value> = receiver
        .bodies()
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect();
    assert_eq!(events.len(), 2, "the step's hook and the pipeline's: {events:?}");
    let step = events
        .iter()
        .find(|e| e["event"] == "step-finished")
        .expect("a step event");
    assert_eq!(step["run"]["run_id"], run_id);
    assert_eq!(step["step"]["name"], "work");
    assert_eq!(step["step"]["status"], "failed");
    assert!(
        step["step"]["error"]
            .as_str()
            .unwrap()
            .contains("bad data: column 'x' is empty"),
        "{step}"
    );
    let run = events
        .iter()
        .find(|e| e["event"] == "run-finished")
        .expect("a run event");
    assert_eq!(run["run"]["run_id"], run_id);
    assert_eq!(run["run"]["status"], "failed");
    assert_eq!(run["steps"][0]["status"], "failed");

    let calls = plugin_calls(&project);
    assert_eq!(calls.len(), 2);
    assert!(
        calls
            .iter()
            .all(|c| c["outcome"] == "ok" && c["refused"] == serde_json::json!([])),
        "{calls:?}"
    );
}

#[test]
fn an_alerter_calling_a_host_it_was_not_granted_is_refused_recorded_and_the_run_goes_on() {
    let granted = Receiver::start();
    let other = Receiver::start();
    let project = one_step("none", "[hooks]\non_success = [\"webhook-alerter\"]\n");
    installed(
        &project,
        "webhook-alerter",
        &[
            "--allow",
            &format!("http:127.0.0.1:{}", granted.port),
            "--config",
            &format!("url=http://127.0.0.1:{}/steal", other.port),
        ],
    );
    let out = project.weft(&["run", "--json"]);
    let outcome = run_json(&out, 0);
    assert_eq!(outcome["status"], "succeeded", "the run is unaffected");
    assert!(stderr(&out).contains("is not granted"), "{}", stderr(&out));
    assert!(
        other.bodies().is_empty(),
        "nothing reached the host that was not granted"
    );
    assert!(granted.bodies().is_empty());

    let calls = plugin_calls(&project);
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["plugin"], "webhook-alerter");
    assert_eq!(calls[0]["purpose"], "on_success");
    assert_eq!(calls[0]["outcome"], "failed");
    assert!(
        calls[0]["message"].as_str().unwrap().contains("not granted"),
        "{calls:?}"
    );
    let refused = calls[0]["refused"][0].as_str().unwrap();
    assert!(
        refused.starts_with(&format!("POST http://127.0.0.1:{}/steal", other.port))
            && refused.ends_with("is not granted"),
        "{refused}"
    );
}

const SCHEMA: &str = "[[gates]]\nartifact = \"inputs.data\"\nplugin = \"schema-validator\"\n\
[gates.config]\nmin_rows = 2\ncolumns = [\n\
  { name = \"length\", type = \"number\", min = 0, max = 10 },\n\
  { name = \"kind\", type = \"string\", allowed = [\"a\", \"b\"] },\n]\n\
[[gates]]\nartifact = \"copy.out\"\nplugin = \"schema-validator\"\n\
[gates.config]\ncolumns = [{ name = \"length\", type = \"number\" }]\n";

fn gated(data: &str) -> Project {
    let e = toml_path(&guest("echo"));
    let project = Project::new(&format!(
        "[pipeline]\nname = \"gated\"\n[inputs]\ndata = {{ path = \"data.csv\", media_type = \"text/csv\" }}\n\
         [steps.copy]\ncomponent = {e}\ninputs = {{ in = \"inputs.data\" }}\n\
         outputs = [{{ name = \"out\", media_type = \"text/csv\" }}]\n{SCHEMA}"
    ));
    project.write("data.csv", data);
    installed(&project, "schema-validator", &[]);
    project
}

#[test]
fn a_schema_gate_stops_bad_data_with_a_readable_report_and_lets_good_data_through() {
    let good = gated("length,kind\n1.5,a\n2,b\n");
    let outcome = run_json(&good.weft(&["run", "--json"]), 0);
    assert_eq!(statuses(&outcome)["copy"], "succeeded");
    let calls = plugin_calls(&good);
    let outcomes: Vec<(&str, &str)> = calls
        .iter()
        .map(|c| (c["purpose"].as_str().unwrap(), c["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(outcomes, [("gate inputs.data", "passed"), ("gate copy.out", "passed")]);
    assert!(calls[0]["message"]
        .as_str()
        .unwrap()
        .contains("passed (2 rows, 2 columns)"));

    let bad = gated("length,kind\n1.5,a\n-3,c\n,b\n");
    let out = bad.weft(&["run", "--json"]);
    let outcome = run_json(&out, 1);
    assert_eq!(statuses(&outcome)["copy"], "skipped", "nothing read the bad data");
    let detail = bad.run_detail("latest");
    let error = detail["run"]["error"].as_str().unwrap();
    assert!(
        error.starts_with("gate schema-validator rejected inputs.data:"),
        "{error}"
    );
    for line in [
        "FAILED, 3 problems in 3 rows",
        "row 3, column length: -3 is below the minimum 0",
        "row 3, column kind: 'c' is not one of a, b",
        "row 4, column length: missing (nulls are not allowed)",
    ] {
        assert!(error.contains(line), "{line} missing from:\n{error}");
    }
    assert_eq!(detail["plugin_calls"][0]["outcome"], "rejected");
}

#[test]
fn mlflow_sink_forwards_a_run_to_a_second_server() {
    let target = Project::new("[pipeline]\nname = \"target\"\n");
    let server = start(&target, &[]);
    let port = server.base.rsplit(':').next().unwrap().to_string();

    let e = toml_path(&guest("echo"));
    let project = Project::new(&format!(
        "[pipeline]\nname = \"forwarded\"\n[hooks]\npublish = [\"mlflow-sink\"]\n\
         [steps.a]\ncomponent = {e}\noutputs = [\"out\"]\nparams = {{ prefix = \"hello\" }}\n"
    ));
    installed(
        &project,
        "mlflow-sink",
        &[
            "--allow",
            &format!("http:127.0.0.1:{port}"),
            "--config",
            &format!("tracking_uri={}", server.base),
        ],
    );
    let outcome = run_json(&project.weft(&["run", "--json"]), 0);
    assert_eq!(
        plugin_calls(&project)[0]["outcome"],
        "ok",
        "{:?}",
        plugin_calls(&project)
    );

    let (status, experiment) = call(ureq::get(&format!(
        "{}/api/2.0/mlflow/experiments/get-by-name?experiment_name=forwarded",
        server.base
    )));
    assert_eq!(status, 200, "{experiment}");
    let id = experiment["experiment"]["experiment_id"].as_str().unwrap();
    let response = ureq::post(&format!("{}/api/2.0/mlflow/runs/search", server.base))
        .send_json(serde_json::json!({ "experiment_ids": [id] }))
        .unwrap();
    let runs: Value = response.into_json().unwrap();
    let run = &runs["runs"][0];
    assert_eq!(run["info"]["status"], "FINISHED");
    let params = run["data"]["params"].as_array().unwrap();
    assert!(
        params.contains(&serde_json::json!({ "key": "a.prefix", "value": "hello" })),
        "{params:?}"
    );
    let metrics = run["data"]["metrics"].as_array().unwrap();
    let bytes = metrics
        .iter()
        .find(|m| m["key"] == "a.bytes")
        .expect("a.bytes forwarded");
    assert_eq!(bytes["value"], 5.0);
    let tags = run["data"]["tags"].as_array().unwrap();
    assert!(
        tags.contains(&serde_json::json!({ "key": "weft.run_id", "value": outcome["run_id"] })),
        "{tags:?}"
    );
}

#[test]
fn the_csv_json_materializer_converts_an_artifact_both_ways() {
    let e = toml_path(&guest("echo"));
    let project = Project::new(&format!(
        "[pipeline]\nname = \"conv\"\n[inputs]\ndata = {{ path = \"data.csv\", media_type = \"text/csv\" }}\n\
         [steps.a]\ncomponent = {e}\ninputs = {{ in = \"inputs.data\" }}\noutputs = [\"out\"]\n"
    ));
    project.write("data.csv", "name,score\n\"Smith, J\",3.5\nLee,4\n");
    run_json(&project.weft(&["run", "--json"]), 0);
    installed(&project, "csv-json", &[]);
    let out = project.weft(&["plugin", "convert", "conv/inputs.data", "--to", "application/json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        json,
        serde_json::json!([{ "name": "Smith, J", "score": 3.5 }, { "name": "Lee", "score": 4 }])
    );
    let out = project.weft(&["plugin", "convert", "conv/inputs.data", "--to", "image/png"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no installed materializer converts text/csv to image/png"));
}

#[test]
fn a_cached_step_is_reported_as_cached_to_its_on_success_hook_with_the_stack_config() {
    let receiver = Receiver::start();
    let e = toml_path(&guest("echo"));
    let project = Project::new(&format!(
        "[pipeline]\nname = \"hooked\"\n\
         [steps.a]\ncomponent = {e}\noutputs = [\"out\"]\nparams = {{ prefix = \"x\" }}\non_success = [\"webhook-alerter\"]\n"
    ));
    // The URL comes from the stack, not from the installed plugin.
    installed(
        &project,
        "webhook-alerter",
        &["--allow", &format!("http:127.0.0.1:{}", receiver.port)],
    );
    let url = format!("webhook-alerter.url=http://127.0.0.1:{}/hook", receiver.port);
    assert!(project
        .weft(&["stack", "create", "hooks", "--plugin-config", &url])
        .status
        .success());
    assert!(project.weft(&["stack", "use", "hooks"]).status.success());

    let first = run_json(&project.weft(&["run", "--json"]), 0);
    let second = run_json(&project.weft(&["run", "--json"]), 0);
    assert_eq!(statuses(&second)["a"], "cached");
    let events: Vec<Value> = receiver
        .bodies()
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect();
    let steps: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["run"]["run_id"].as_str().unwrap(),
                e["step"]["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            (first["run_id"].as_str().unwrap(), "succeeded"),
            (second["run_id"].as_str().unwrap(), "cached")
        ]
    );
    assert!(events[1]["step"]["cached_from"].is_string());
    assert_eq!(events[1]["step"]["params"]["prefix"], "x");
}

//! Secrets: a value stored with `weft secret set` (or given as
//! WEFT_SECRET_<NAME>) reaches the step or the stack that refers to it as
//! `${secret:NAME}`, and shows nowhere weft writes or answers: the
//! manifest, stacks.toml, the secrets file, the state directory (database,
//! artifacts, logs), any command's output, the HTTP API.

use std::io::Write as _;
use std::path::Path;
use std::process::Stdio;

use serde_json::Value;

use crate::harness::*;
use crate::server::start;

const VALUE: &str = "tok-8f3kq-VERY-secret-91";

/// `weft secret set NAME`, the value on standard input (with the newline
/// a shell adds).
fn set_secret(project: &Project, name: &str, value: &str) -> std::process::Output {
    let mut child = project
        .command(&["secret", "set", name])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{value}\n").as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    found.push(path.display().to_string());
                }
            }
        }
    }
    found
}

fn output_text(out: &std::process::Output) -> String {
    format!("{}{}", stdout(out), stderr(out))
}

#[test]
fn a_secret_reaches_the_step_that_refers_to_it_and_shows_nowhere_weft_writes() {
    let project = Project::new(&format!(
        "[pipeline]\nname = \"s\"\n\n[steps.use]\ncomponent = {}\noutputs = [\"out\"]\n\
         params = {{ attack = \"granted-env\" }}\nenv = {{ TOKEN = \"${{secret:api-token}}\" }}\n",
        toml_path(&guest("hostile"))
    ));
    let mut printed = String::new();

    // Not set yet: the step fails, saying how to set it.
    let missing = project.weft(&["run", "--json"]);
    assert_eq!(missing.status.code(), Some(1), "{}", stderr(&missing));
    let outcome: Value = serde_json::from_slice(&missing.stdout).unwrap();
    let error = outcome["steps"][0]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("secret 'api-token' is not set") && error.contains("weft secret set api-token"),
        "{outcome}"
    );

    let set = set_secret(&project, "api-token", VALUE);
    assert!(set.status.success(), "{}", stderr(&set));
    printed += &output_text(&set);
    let listed = project.weft(&["secret", "list"]);
    assert!(stdout(&listed).contains("api-token"), "{}", stdout(&listed));
    printed += &output_text(&listed);

    // The step got the value: it wrote it reversed.
    let first = project.weft(&["run", "--json"]);
    let run = run_json(&first, 0);
    printed += &output_text(&first);
    assert_eq!(run["executed"], 1);
    let out = project.weft(&["artifacts", "get", "s/use.out"]);
    let reversed: String = VALUE.chars().rev().collect();
    assert_eq!(stdout(&out), format!("{reversed} {}", VALUE.len()));

    // What it printed is masked.
    let logs = project.weft(&["logs", "latest", "use"]);
    assert!(logs.status.success(), "{}", stderr(&logs));
    assert!(stdout(&logs).contains("the token is ***"), "{}", stdout(&logs));
    printed += &output_text(&logs);

    // The cache key holds the reference, not the value: a rerun is a hit.
    let again = project.weft(&["run", "--json"]);
    assert_eq!(run_json(&again, 0)["cached"], 1);
    printed += &output_text(&again);

    // Verification re-executes it with the secret resolved again.
    let verified = project.weft(&["verify", "latest", "--json"]);
    assert!(verified.status.success(), "{}", output_text(&verified));
    printed += &output_text(&verified);

    // The HTTP API answers without it.
    let server = start(&project, &[]);
    let run_id = run["run_id"].as_str().unwrap();
    for path in [
        "/api/v1/runs".to_string(),
        format!("/api/v1/runs/{run_id}"),
        format!("/api/v1/runs/{run_id}/steps/use"),
        format!("/api/v1/runs/{run_id}/steps/use/logs"),
        "/api/2.0/mlflow/runs/search".to_string(),
    ] {
        let url = format!("{}{path}", server.base);
        let answered = if path.ends_with("search") {
            ureq::post(&url)
                .set("Content-Type", "application/json")
                .send_string(r#"{"experiment_ids": ["1", "2", "3"]}"#)
        } else {
            ureq::get(&url).call()
        };
        let response = match answered {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{path}: {e}"),
        };
        let body = response.into_string().unwrap();
        assert!(!body.contains(VALUE), "{path} answers the secret: {body}");
        printed += &body;
    }
    drop(server);

    assert!(!printed.contains(VALUE), "a command or the API printed the secret");
    let leaks = files_containing(project.path(), VALUE.as_bytes());
    assert!(leaks.is_empty(), "the secret is written in {leaks:?}");

    // From the environment, the variable wins over the store.
    let from_env = project
        .command(&["run", "--json", "--no-cache"])
        .env("WEFT_SECRET_API_TOKEN", "from-env")
        .output()
        .unwrap();
    run_json(&from_env, 0);
    let out = project.weft(&["artifacts", "get", "s/use.out"]);
    assert_eq!(stdout(&out), "vne-morf 8");
}

#[test]
fn a_stack_refers_to_its_database_password_as_a_secret_never_in_plain_text() {
    let Ok(pg) = std::env::var("WEFT_TEST_POSTGRES") else {
        skip("WEFT_TEST_POSTGRES is not set (tests/run.sh starts PostgreSQL)");
        return;
    };
    let project = Project::new(&format!(
        "[pipeline]\nname = \"p\"\n\n[steps.a]\ncomponent = {}\noutputs = [\"out\"]\nparams = {{ prefix = \"x\" }}\n",
        toml_path(&guest("echo"))
    ));
    // postgres://USER@HOST:PORT -> a database of its own, with a password
    // (the test server trusts local connections, so any password works:
    // what is checked is where it goes).
    let rest = pg.trim_start_matches("postgres://").trim_end_matches('/');
    let (user, host) = rest.split_once('@').unwrap();
    let unique = std::process::id();
    let plain = format!("postgres://{user}:{VALUE}@{host}/weft_secret_{unique}");
    let refused = project.weft(&["stack", "create", "team", "--db", &plain]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(stderr(&refused).contains("weft secret set"), "{}", stderr(&refused));
    assert!(!output_text(&refused).contains(VALUE));

    let url = format!("postgres://{user}:${{secret:pg-password}}@{host}/weft_secret_{unique}");
    let created = project.weft(&["stack", "create", "team", "--db", &url]);
    assert!(created.status.success(), "{}", stderr(&created));
    assert!(project.weft(&["stack", "use", "team"]).status.success());
    let missing = project.weft(&["run", "--json"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        stderr(&missing).contains("secret 'pg-password' is not set"),
        "{}",
        stderr(&missing)
    );

    let set = set_secret(&project, "pg-password", VALUE);
    assert!(set.status.success(), "{}", stderr(&set));
    let run = project.weft(&["run", "--json"]);
    assert_eq!(run_json(&run, 0)["executed"], 1, "the run reached PostgreSQL");
    assert!(
        !project.state().join("weft.db").exists(),
        "the metadata went to PostgreSQL"
    );
    let shown = project.weft(&["stack", "show"]);
    let listed = project.weft(&["stack", "list"]);
    for out in [&set, &run, &shown, &listed] {
        assert!(!output_text(out).contains(VALUE), "{}", output_text(out));
    }
    let leaks = files_containing(project.path(), VALUE.as_bytes());
    assert!(leaks.is_empty(), "the password is written in {leaks:?}");
    let stacks = std::fs::read_to_string(project.path().join(".weft-home/stacks.toml")).unwrap();
    assert!(stacks.contains("${secret:pg-password}"), "{stacks}");
}

#[test]
fn a_plugin_configuration_refers_to_a_secret_and_its_calls_are_recorded_masked() {
    let other = Receiver::start();
    let project = Project::new(&format!(
        "[pipeline]\nname = \"alerts\"\n[hooks]\non_success = [\"webhook-alerter\"]\n\n\
         [steps.work]\ncomponent = {}\noutputs = [\"out\"]\nparams = {{ attack = \"none\" }}\n",
        toml_path(&guest("hostile"))
    ));
    // The webhook's URL holds the secret; its host is not granted, so the
    // refusal (which names the URL) is recorded.
    let component = plugin("webhook-alerter");
    let url = format!("url=http://127.0.0.1:{}/hook/${{secret:hook-token}}", other.port);
    let install = project.weft(&[
        "plugin",
        "install",
        component.to_str().unwrap(),
        "--allow",
        "http:127.0.0.1:9",
        "--config",
        &url,
    ]);
    assert!(install.status.success(), "{}", stderr(&install));
    let set = set_secret(&project, "hook-token", VALUE);
    assert!(set.status.success(), "{}", stderr(&set));

    let out = project.weft(&["run", "--json"]);
    assert_eq!(run_json(&out, 0)["status"], "succeeded");
    let detail = project.weft(&["runs", "show", "latest", "--json"]);
    let shown: Value = serde_json::from_slice(&detail.stdout).unwrap();
    let refused = shown["plugin_calls"][0]["refused"][0].as_str().unwrap_or_default();
    assert_eq!(
        refused,
        format!(
            "POST http://127.0.0.1:{}/hook/***: 127.0.0.1:{} is not granted",
            other.port, other.port
        ),
        "the secret was resolved (no reference left) and masked: {shown}"
    );
    for printed in [&out, &detail, &install] {
        assert!(!output_text(printed).contains(VALUE), "{}", output_text(printed));
    }
    let leaks = files_containing(project.path(), VALUE.as_bytes());
    assert!(leaks.is_empty(), "the secret is written in {leaks:?}");
}

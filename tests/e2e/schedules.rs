//! Triggered and scheduled runs: `weft pipeline register`, `POST
//! /api/v1/pipelines/{name}/runs`, and cron schedules fired by `weft
//! server`, across restarts and with two servers on one database.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::*;
use crate::server::{call, start, Server};

/// A two-step pipeline (a -> b) over a data file, registered.
fn registered() -> Project {
    let e = toml_path(&guest("echo"));
    let project = Project::new(&format!(
        "[pipeline]\nname = \"trig\"\n[inputs]\nraw = {{ path = \"raw.txt\", media_type = \"text/plain\" }}\n\
         [steps.a]\ncomponent = {e}\ninputs = {{ in = \"inputs.raw\" }}\noutputs = [\"out\"]\nparams = {{ prefix = \"a\" }}\n\
         [steps.b]\ncomponent = {e}\ninputs = {{ in = \"a.out\" }}\noutputs = [{{ name = \"out\", media_type = \"text/plain\" }}]\n\
         params = {{ prefix = \"b\" }}\n"
    ));
    project.write("raw.txt", "data");
    let out = project.weft(&["pipeline", "register"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("version 1"), "{}", stderr(&out));
    project
}

fn get(server: &Server, path: &str) -> Value {
    let (status, body) = call(ureq::get(&format!("{}{path}", server.base)));
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

/// Waits until `done` holds (polling every 100 ms), or fails after `limit`.
fn wait_for<T>(limit: Duration, what: &str, mut done: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = done() {
            return value;
        }
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn finished(server: &Server, run: &str) -> Value {
    wait_for(Duration::from_secs(60), "the run to finish", || {
        let detail = get(server, &format!("/api/v1/runs/{run}"));
        (detail["run"]["status"] != "running").then_some(detail)
    })
}

#[test]
fn a_registered_pipeline_runs_through_the_api_without_its_project_files() {
    let project = registered();
    // What the run needs is pinned: the data file can go.
    std::fs::remove_file(project.path().join("raw.txt")).unwrap();
    let server = start(&project, &[]);
    let start_run = |pipeline: &str, body: &str| {
        let response = ureq::post(&format!("{}/api/v1/pipelines/{pipeline}/runs", server.base))
            .set("Content-Type", "application/json")
            .send_string(body);
        let response = match response {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{e}"),
        };
        let status = response.status();
        (
            status,
            serde_json::from_str::<Value>(&response.into_string().unwrap()).unwrap(),
        )
    };

    let (status, started) = start_run("trig", r#"{"params": {"b.prefix": "z:"}}"#);
    assert_eq!(status, 202, "{started}");
    let run = started["run_id"].as_str().unwrap().to_string();
    assert_eq!(started["number"], 1);
    let detail = finished(&server, &run);
    assert_eq!(detail["run"]["status"], "succeeded", "{detail}");
    let b = detail["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step_name"] == "b")
        .unwrap()
        .clone();
    let params: Value = serde_json::from_str(b["params"].as_str().unwrap()).unwrap();
    assert_eq!(params["prefix"], "z:", "{b}");
    let content = ureq::get(&format!("{}/api/v1/artifacts/trig%2Fb.out/content", server.base))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert_eq!(content, "z:adata");

    // The same params again: a run of its own, served from the cache.
    let (_, again) = start_run("trig", r#"{"params": {"b.prefix": "z:"}}"#);
    let detail = finished(&server, again["run_id"].as_str().unwrap());
    assert_eq!(again["number"], 2);
    for step in detail["steps"].as_array().unwrap() {
        assert_eq!(step["status"], "cached", "{step}");
    }

    // Bad requests are refused with a reason, and start nothing.
    let (status, body) = start_run("trig", r#"{"params": {"b.nope": 1}}"#);
    assert_eq!(status, 400);
    assert!(body["message"].as_str().unwrap().contains("no param 'nope'"), "{body}");
    let (status, body) = start_run("trig", r#"{"params": 3}"#);
    assert_eq!(status, 400, "{body}");
    let (status, body) = start_run("trig", r#"{"parms": {}}"#);
    assert_eq!(status, 400, "{body}");
    let (status, body) = start_run("nothing", "{}");
    assert_eq!(status, 404, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("weft pipeline register"),
        "{body}"
    );
    let (status, _) = call(ureq::post(&format!("{}/api/v1/pipelines/trig/runs", server.base)));
    assert_eq!(status, 400, "a write without a JSON content type");
    assert_eq!(
        get(&server, "/api/v1/runs?pipeline=trig")["runs"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

/// A schedule's history, oldest first.
/// A schedule's firings, oldest first, leaving out those whose run is
/// still being started: a firing is recorded before its run exists, and
/// gets the run's id (or the reason it failed) a moment later.
fn firings(server: &Server, name: &str) -> Vec<Value> {
    let mut firings: Vec<Value> = get(server, &format!("/api/v1/schedules/{name}"))["firings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["outcome"] == "skipped" || f["run_id"].is_string() || f["error"].is_string())
        .cloned()
        .collect();
    firings.reverse();
    firings
}

fn count(firings: &[Value], outcome: &str) -> usize {
    firings.iter().filter(|f| f["outcome"] == outcome).count()
}

#[test]
fn a_schedule_fires_on_time_survives_a_restart_and_catches_up_once() {
    let project = registered();
    let create = project.weft(&[
        "schedule",
        "create",
        "tick",
        "--pipeline",
        "trig",
        "--cron",
        "* * * * * *",
        "-p",
        "b.prefix=s:",
        "--missed",
        "catch-up",
    ]);
    assert!(create.status.success(), "{}", stderr(&create));
    // Mistakes are refused before anything is kept.
    for (args, says) in [
        (vec!["--cron", "61 * * * *"], "not a cron expression"),
        (vec!["--cron", "* * * * *", "--missed", "sometimes"], "skip or catch-up"),
    ] {
        let mut all = vec!["schedule", "create", "bad", "--pipeline", "trig"];
        all.extend(args);
        let out = project.weft(&all);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains(says), "{}", stderr(&out));
    }
    let out = project.weft(&["schedule", "create", "bad", "--pipeline", "nope", "--cron", "* * * * *"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));

    let mut server = start(&project, &[]);
    let seen = wait_for(Duration::from_secs(30), "three firings", || {
        let f = firings(&server, "tick");
        (f.len() >= 3).then_some(f)
    });
    for f in &seen {
        assert_eq!(f["outcome"], "fired", "{f}");
        assert!(f["run_id"].is_string(), "{f}");
        let late = f["fired_at"].as_i64().unwrap() - f["due_at"].as_i64().unwrap();
        assert!((0..2_000).contains(&late), "fired {late} ms after its due time: {f}");
    }
    let run = seen[0]["run_id"].as_str().unwrap();
    let detail = finished(&server, run);
    assert_eq!(detail["run"]["status"], "succeeded", "{detail}");
    server.kill();

    // Down for longer than the grace window: the missed due times are run
    // once, late, and the schedule goes on.
    let down_from = weft_now();
    std::thread::sleep(Duration::from_secs(7));
    let server = start(&project, &[]);
    let after = wait_for(Duration::from_secs(30), "firings after the restart", || {
        let f = firings(&server, "tick");
        let late: Vec<Value> = f
            .iter()
            .filter(|x| x["fired_at"].as_i64().unwrap() > down_from + 6_000)
            .cloned()
            .collect();
        (count(&late, "fired") >= 2).then_some(f)
    });
    assert_eq!(count(&after, "caught-up"), 1, "{after:#?}");
    let caught = after.iter().find(|f| f["outcome"] == "caught-up").unwrap();
    assert!(caught["missed"].as_i64().unwrap() >= 1, "{caught}");
    assert!(caught["run_id"].is_string(), "{caught}");
    let mut due: Vec<i64> = after.iter().map(|f| f["due_at"].as_i64().unwrap()).collect();
    let all = due.len();
    due.dedup();
    assert_eq!(due.len(), all, "a due time recorded twice");

    // Paused: nothing fires; the dashboard's list shows it.
    let out = project.weft(&["schedule", "pause", "tick"]);
    assert!(out.status.success(), "{}", stderr(&out));
    std::thread::sleep(Duration::from_millis(300));
    let before = firings(&server, "tick").len();
    std::thread::sleep(Duration::from_millis(2_500));
    assert_eq!(firings(&server, "tick").len(), before, "a paused schedule fired");
    let list = get(&server, "/api/v1/schedules");
    assert_eq!(list["schedules"][0]["paused"], true);
    assert_eq!(list["schedules"][0]["params"], json!({"b.prefix": "s:"}));
    let out = project.weft(&["schedule", "list"]);
    assert!(stdout(&out).contains("paused"), "{}", stdout(&out));
    let out = project.weft(&["schedule", "delete", "tick"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(get(&server, "/api/v1/schedules")["schedules"]
        .as_array()
        .unwrap()
        .is_empty());
}

fn weft_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn two_servers_on_one_database_never_fire_a_due_time_twice_and_skip_what_they_missed() {
    let project = registered();
    let server = start(&project, &[]);
    // Through the API this time; created while no server fires it
    // (this one's ticker sees it within a second).
    let (status, created) =
        call(ureq::post(&format!("{}/api/v1/schedules", server.base)).set("Content-Type", "application/json"));
    assert_eq!(status, 400, "an empty body names what is missing: {created}");
    let response = ureq::post(&format!("{}/api/v1/schedules", server.base))
        .set("Content-Type", "application/json")
        .send_string(r#"{"name": "pair", "pipeline": "trig", "cron": "* * * * * *", "missed": "skip"}"#)
        .unwrap();
    assert_eq!(response.status(), 201);
    drop(server);
    // Nobody fires it for a while: those due times are missed.
    std::thread::sleep(Duration::from_secs(7));
    let one = start(&project, &[]);
    let two = start(&project, &[]);
    let seen = wait_for(Duration::from_secs(30), "five firings", || {
        let f = firings(&two, "pair");
        (count(&f, "fired") >= 5).then_some(f)
    });
    drop(one);
    drop(two);
    assert_eq!(count(&seen, "skipped"), 1, "{seen:#?}");
    assert!(seen[0]["missed"].as_i64().unwrap() >= 1, "{:#?}", seen[0]);
    assert_eq!(count(&seen, "caught-up"), 0);
    let mut due: Vec<i64> = seen.iter().map(|f| f["due_at"].as_i64().unwrap()).collect();
    let all = due.len();
    due.sort_unstable();
    due.dedup();
    assert_eq!(due.len(), all, "a due time recorded twice: {seen:#?}");
    // Every run was started by one firing: as many runs as fired entries.
    let fired: Vec<&str> = seen
        .iter()
        .filter(|f| f["outcome"] == "fired")
        .map(|f| f["run_id"].as_str().unwrap())
        .collect();
    let out = project.weft(&["runs", "list", "--pipeline", "trig", "--json", "--limit", "1000"]);
    let runs: Value = serde_json::from_slice(&out.stdout).unwrap();
    let runs = runs.as_array().unwrap();
    for id in &fired {
        assert_eq!(runs.iter().filter(|r| r["id"] == *id).count(), 1);
    }
    assert!(runs.len() >= fired.len());
}

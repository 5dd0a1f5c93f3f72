//! The web dashboard in a real browser: headless Chromium (Debian's
//! `chromium`) driven by playwright-core (`tests/ui`, installed by
//! `tests/run.sh`), against a live `weft server` after real iris runs and
//! while another run is still going. The browser checks are in
//! `tests/ui/dashboard.test.mjs`; screenshots of each page go to
//! `target/test-output/dashboard/`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;
use crate::iris::{iris_copy, weft_in};
use crate::server::{call, start};

const CHROMIUM: &str = "/usr/bin/chromium";

#[test]
fn the_dashboard_shows_runs_dags_charts_lineage_and_models_in_a_browser() {
    let ui = repo_root().join("tests/ui");
    assert!(
        Path::new(CHROMIUM).exists() && ui.join("node_modules/playwright-core").exists(),
        "the dashboard tests need {CHROMIUM} and tests/ui/node_modules: run `bash tests/run.sh`, which installs both"
    );
    build_iris();
    let project = Project { dir: iris_copy() };
    // Reuse the components built in the repository.
    std::os::unix::fs::symlink(repo_root().join("examples/iris/target"), project.path().join("target")).unwrap();
    let first = run_json(&weft_in(project.path(), &["run", "--json"]), 0);
    let second = run_json(
        &weft_in(project.path(), &["run", "--json", "-p", "train.epochs=200"]),
        0,
    );
    // The second run verified: the run page shows each step's verification.
    let verified = weft_in(project.path(), &["verify", second["run_id"].as_str().unwrap()]);
    assert!(verified.status.success(), "{}", stderr(&verified));
    let alias = weft_in(project.path(), &["models", "alias", "iris-softmax", "champion", "1"]);
    assert!(alias.status.success(), "{}", stderr(&alias));
    // A registered pipeline with a schedule: the schedules page lists it.
    let registered = weft_in(project.path(), &["pipeline", "register"]);
    assert!(registered.status.success(), "{}", stderr(&registered));
    let scheduled = weft_in(
        project.path(),
        &[
            "schedule",
            "create",
            "nightly",
            "--pipeline",
            "iris",
            "--cron",
            "0 3 * * *",
            "-p",
            "train.epochs=50",
        ],
    );
    assert!(scheduled.status.success(), "{}", stderr(&scheduled));

    // A second pipeline in the same state, still running while the browser
    // looks: `slow` naps for 15 s (of real time: it is nondeterministic).
    let h = toml_path(&guest("hostile"));
    project.write(
        "naps.toml",
        &format!(
            "[pipeline]\nname = \"naps\"\n\
             [steps.quick]\ncomponent = {h}\noutputs = [\"out\"]\nparams = {{ attack = \"nap\", steps = 10 }}\n\
             nondeterministic = true\n\
             [steps.slow]\ncomponent = {h}\ninputs = {{ in = \"quick.out\" }}\noutputs = [\"out\"]\n\
             params = {{ attack = \"nap\", steps = 15000 }}\nnondeterministic = true\n"
        ),
    );
    let server = start(&project, &[]);
    let mut live = project
        .command(&["-f", "naps.toml", "run"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let live_id = wait_for_running_step(&server.base, "naps", "slow");

    let shots = repo_root().join("target/test-output/dashboard");
    let out = Command::new("node")
        .args(["--test", "--test-reporter=spec", "--test-concurrency=1"])
        .arg(ui.join("dashboard.test.mjs"))
        .current_dir(&ui)
        .env("WEFT_URL", &server.base)
        .env("WEFT_FIRST_RUN", first["run_id"].as_str().unwrap())
        .env("WEFT_SECOND_RUN", second["run_id"].as_str().unwrap())
        .env("WEFT_LIVE_RUN", &live_id)
        .env("WEFT_SCREENSHOTS", &shots)
        .env("CHROMIUM", CHROMIUM)
        .output()
        .expect("run node (tests/run.sh installs Node.js)");
    let _ = live.kill();
    let _ = live.wait();
    assert!(
        out.status.success(),
        "browser tests failed:\n{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    for page in [
        "runs",
        "run",
        "run-live",
        "run-metrics",
        "compare",
        "lineage",
        "source-data",
        "model",
    ] {
        assert!(shots.join(format!("{page}.png")).exists(), "screenshot of {page}");
    }
}

/// Waits until the newest run of `pipeline` has `step` running; its id.
fn wait_for_running_step(base: &str, pipeline: &str, step: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, runs) = call(ureq::get(&format!("{base}/api/v1/runs?pipeline={pipeline}")));
        if let Some(id) = runs["runs"][0]["id"].as_str() {
            let (_, detail) = call(ureq::get(&format!("{base}/api/v1/runs/{id}?metrics=none")));
            let running = detail["steps"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|s| s["step_name"] == step && s["status"] == "running");
            if running {
                return id.to_string();
            }
        }
        assert!(Instant::now() < deadline, "{pipeline}'s {step} never started");
        std::thread::sleep(Duration::from_millis(100));
    }
}

//! Hermetic steps: a step is a pure function of its component, params and
//! input bytes. Virtual time and seeded randomness make its outputs repeat
//! on any machine; the cache key covers everything that feeds the sandbox;
//! a cache hit is a step run of its own run; `weft verify` re-executes past
//! step runs from archived components, without the source tree; imported
//! step runs are not trusted until verified.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::harness::*;
use crate::server::{call, start};

fn probe_manifest(extra: &str) -> String {
    format!(
        "[pipeline]\nname = \"probe\"\n[inputs]\nraw = {{ path = \"in.txt\" }}\n\
         [steps.probe]\ncomponent = {p}\ninputs = {{ in = \"inputs.raw\" }}\noutputs = [\"out\"]\n\
         params = {{ sleep_seconds = 3600 }}\n\
         [steps.other-seed]\ncomponent = {p}\noutputs = [\"out\"]\nparams = {{ sleep_seconds = 1 }}\n{extra}",
        p = toml_path(&guest("probe"))
    )
}

/// The `name: value` lines of a probe's output.
fn probe_lines(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn output(project: &Project, name: &str) -> String {
    let out = project.weft(&["artifacts", "get", name]);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

#[test]
fn a_step_sees_virtual_time_and_seeded_randomness_so_its_bytes_repeat_everywhere() {
    let here = Project::new(&probe_manifest(""));
    here.write("in.txt", "the input");
    let first = run_json(&here.weft(&["run", "--json"]), 0);
    assert_eq!(first["executed"], 2, "{first}");
    let bytes = output(&here, "probe/probe.out");

    // What it saw: nothing of the host.
    let seen = probe_lines(&bytes);
    let epoch_ns = 946_684_800u128 * 1_000_000_000;
    let wall: u128 = seen["wall-clock-ns"].parse().unwrap();
    assert!((epoch_ns..epoch_ns + 1_000_000_000).contains(&wall), "{bytes}");
    let mono: Vec<u64> = seen["monotonic-ns"]
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert!(
        mono[1] >= mono[0] + 3_600_000_000_000,
        "an hour's sleep passes in virtual time, at once: {bytes}"
    );
    assert_eq!(
        seen["listing"], "alpha,beta,kappa,mu,omega,zeta",
        "directories list sorted"
    );
    assert!(seen["input"].starts_with("modified 946684800s, links 1"), "{bytes}");
    assert_eq!(seen["created-file-modified-ns"], epoch_ns.to_string());

    // Executed again, here and in another state directory: the same bytes.
    let again = run_json(&here.weft(&["run", "--json", "--no-cache"]), 0);
    assert_eq!(again["executed"], 2);
    assert_eq!(output(&here, "probe/probe.out"), bytes);
    let elsewhere = Project::new(&probe_manifest(""));
    elsewhere.write("in.txt", "the input");
    run_json(&elsewhere.weft(&["run", "--json"]), 0);
    assert_eq!(output(&elsewhere, "probe/probe.out"), bytes, "another state directory");

    // Seeds come from the cache key: another step's randomness differs.
    let other = probe_lines(&output(&here, "probe/other-seed.out"));
    assert_ne!(other["random"], seen["random"]);
    assert_ne!(other["hashmap-order"], seen["hashmap-order"]);

    // And `weft verify` re-executes it to the same bytes.
    let verified = here.weft(&["verify", "latest", "--json"]);
    assert!(verified.status.success(), "{}", stderr(&verified));
    let report: Value = serde_json::from_slice(&verified.stdout).unwrap();
    assert_eq!(report["matched"], 2, "{report}");
    let detail = here.run_detail("latest");
    assert_eq!(step(&detail, "probe")["determinism"], "virtual");
}

#[test]
fn a_nondeterministic_step_sees_real_time_and_is_never_served_from_the_cache() {
    let project = Project::new(&format!(
        "[pipeline]\nname = \"real\"\n\
         [steps.real]\ncomponent = {p}\noutputs = [\"out\"]\nnondeterministic = true\n",
        p = toml_path(&guest("probe"))
    ));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let first = run_json(&project.weft(&["run", "--json"]), 0);
    assert_eq!(first["executed"], 1);
    let seen = probe_lines(&output(&project, "real/real.out"));
    let wall: u128 = seen["wall-clock-ns"].parse().unwrap();
    let day = 86_400u128 * 1_000_000_000;
    assert!(wall + day > now && wall < now + day, "real time: {wall} vs {now}");

    let second = run_json(&project.weft(&["run", "--json"]), 0);
    assert_eq!(
        (second["executed"].as_u64(), second["cached"].as_u64()),
        (Some(1), Some(0)),
        "never a cache hit"
    );
    let again = probe_lines(&output(&project, "real/real.out"));
    assert_ne!(again["random"], seen["random"], "OS randomness");
    let detail = project.run_detail("latest");
    assert_eq!(step(&detail, "real")["determinism"], "real", "the run records it");

    let verified = project.weft(&["verify", "latest"]);
    assert!(verified.status.success(), "{}", stderr(&verified));
    assert!(stderr(&verified).contains("nondeterministic"), "{}", stderr(&verified));
}

#[test]
fn the_cache_key_covers_media_types_and_grants_and_shared_steps_keep_their_own_names_and_lineage() {
    let e = toml_path(&guest("echo"));
    let manifest = |name: &str, media_type: &str, env: &str| {
        format!(
            "[pipeline]\nname = \"{name}\"\n[inputs]\nraw = {{ path = \"raw.txt\" }}\n\
             [steps.prep]\ncomponent = {e}\ninputs = {{ in = \"inputs.raw\" }}\n\
             outputs = [{{ name = \"out\", media_type = \"{media_type}\" }}]\nparams = {{ prefix = \"p\" }}\n{env}\n\
             [steps.use]\ncomponent = {e}\ninputs = {{ in = \"prep.out\" }}\noutputs = [\"out\"]\nparams = {{ prefix = \"{name}\" }}\n"
        )
    };
    let project = Project::new(&manifest("one", "text/plain", ""));
    project.write("raw.txt", "data");
    let statuses_of = |project: &Project| statuses(&run_json(&project.weft(&["run", "--json"]), 0));
    assert_eq!(statuses_of(&project)["prep"], "succeeded");
    assert_eq!(statuses_of(&project)["prep"], "cached", "nothing changed: a hit");

    project.write("weft.toml", &manifest("one", "text/csv", ""));
    assert_eq!(statuses_of(&project)["prep"], "succeeded", "another media type: a miss");
    project.write("weft.toml", &manifest("one", "text/csv", "env = { MODE = \"fast\" }"));
    assert_eq!(statuses_of(&project)["prep"], "succeeded", "a new grant: a miss");
    project.write("weft.toml", &manifest("one", "text/csv", "env = { MODE = \"slow\" }"));
    assert_eq!(
        statuses_of(&project)["prep"],
        "succeeded",
        "another granted value: a miss"
    );
    assert_eq!(statuses_of(&project)["prep"], "cached");

    // A second pipeline sharing the identical step, in the same state: a
    // hit served from pipeline one, recorded under pipeline two's names,
    // with lineage to pipeline two's own input.
    let two = Project::new(&manifest("two", "text/csv", "env = { MODE = \"slow\" }"));
    two.write("raw.txt", "data");
    let state = project.state();
    let run_two = |args: &[&str]| {
        let mut all = vec!["--state-dir", state.to_str().unwrap()];
        all.extend_from_slice(args);
        two.weft(&all)
    };
    let outcome = run_json(&run_two(&["run", "--json"]), 0);
    let s = statuses(&outcome);
    assert_eq!((s["prep"].as_str(), s["use"].as_str()), ("cached", "succeeded"));
    let lineage: Value = serde_json::from_slice(&run_two(&["lineage", "two/use.out", "--json"]).stdout).unwrap();
    assert_eq!(lineage["artifact"]["name"], "two/use.out");
    let prep_out = &lineage["inputs"][0][1];
    assert_eq!(prep_out["artifact"]["name"], "two/prep.out");
    assert_eq!(prep_out["artifact"]["version"], 1, "its own version under its own name");
    assert_eq!(prep_out["producer"]["step_name"], "prep");
    assert_eq!(prep_out["producer"]["status"], "cached");
    assert_eq!(
        prep_out["producer"]["run_id"], outcome["run_id"],
        "produced by this run"
    );
    assert_eq!(prep_out["inputs"][0][1]["artifact"]["name"], "two/inputs.raw");
    // Pipeline one's names and lineage are untouched.
    let one: Value = serde_json::from_slice(&project.weft(&["lineage", "one/prep.out", "--json"]).stdout).unwrap();
    assert_eq!(one["inputs"][0][1]["artifact"]["name"], "one/inputs.raw");
    // The same bytes behind both.
    assert_eq!(prep_out["artifact"]["digest"], one["artifact"]["digest"]);
}

/// A copy of the built iris example that holds only its manifest, data and
/// compiled components: no sources.
fn iris_components_only() -> tempfile::TempDir {
    build_iris();
    let src = repo_root().join("examples/iris");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(src.join("weft.toml"), dir.path().join("weft.toml")).unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    std::fs::copy(src.join("data/iris.csv"), dir.path().join("data/iris.csv")).unwrap();
    let release = dir.path().join("target/wasm32-wasip2/release");
    std::fs::create_dir_all(&release).unwrap();
    // The four steps and the model server [models] names.
    for step in ["load", "split", "train", "evaluate", "iris_serve"] {
        let name = format!("{step}.wasm");
        std::fs::copy(
            src.join("target/wasm32-wasip2/release").join(&name),
            release.join(&name),
        )
        .unwrap();
    }
    dir
}

fn weft_at(dir: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(weft_bin())
        .args(args)
        .current_dir(dir)
        .env_remove("WEFT_DIR")
        .env_remove("WEFT_DB")
        .env_remove("WEFT_ARTIFACTS")
        .env_remove("WEFT_STACK")
        .env("WEFT_HOME", dir.join(".weft-home"))
        .output()
        .unwrap()
}

fn blob(state: &Path, digest: &str) -> PathBuf {
    state.join("artifacts/blobs").join(&digest[..2]).join(digest)
}

/// Flips the last byte of a stored blob (they are read-only).
fn tamper(path: &Path) -> Vec<u8> {
    let original = std::fs::read(path).unwrap();
    let mut changed = original.clone();
    *changed.last_mut().unwrap() ^= 1;
    let mut perms = std::fs::metadata(path).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(path, perms).unwrap();
    std::fs::write(path, changed).unwrap();
    original
}

fn verify_json(dir: &Path, args: &[&str]) -> (Option<i32>, Value, String) {
    let mut all = vec!["verify", "--json"];
    all.extend_from_slice(args);
    let out = weft_at(dir, &all);
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code(), report, stderr(&out))
}

#[test]
fn verify_reexecutes_iris_without_its_sources_and_reports_a_tampered_component_or_input() {
    let dir = iris_components_only();
    let first = weft_at(dir.path(), &["run", "--json"]);
    let run = run_json(&first, 0);
    assert_eq!(run["executed"], 4);
    let run_id = run["run_id"].as_str().unwrap().to_string();

    // Nothing but the state directory is left.
    std::fs::remove_dir_all(dir.path().join("target")).unwrap();
    std::fs::remove_file(dir.path().join("weft.toml")).unwrap();
    std::fs::remove_dir_all(dir.path().join("data")).unwrap();
    let state = dir.path().join(".weft");
    let in_state = |args: &[&str]| {
        let mut all = vec!["--state-dir", state.to_str().unwrap()];
        all.extend_from_slice(args);
        all.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let args = in_state(&[&run_id]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, report, err) = verify_json(dir.path(), &args);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(report["matched"], 4, "{report}");
    for step in report["steps"].as_array().unwrap() {
        for output in step["outputs"].as_array().unwrap() {
            assert_eq!(output["recorded"], output["now"], "{step}");
        }
    }

    // The verifications are recorded with the run.
    let shown = weft_at(
        dir.path(),
        &in_state(&["runs", "show", &run_id, "--json"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    let detail: Value = serde_json::from_slice(&shown.stdout).unwrap();
    let recorded = detail["verifications"]
        .as_array()
        .expect("verifications in the run detail");
    assert_eq!(recorded.len(), 4);
    assert!(recorded.iter().all(|v| v["outcome"] == "match"), "{recorded:?}");

    // A tampered archived component: a mismatch, and a non-zero exit.
    let train = step(&detail, "train");
    let component = blob(&state, train["component_digest"].as_str().unwrap());
    let original = tamper(&component);
    let args = in_state(&[&run_id, "--step", "train"]);
    let (code, report, err) = verify_json(dir.path(), &args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(report["mismatched"], 1, "{report}");
    assert!(err.contains("archived component no longer hashes"), "{err}");
    std::fs::write(&component, original).unwrap();

    // A tampered input blob (the iris data): a mismatch as well.
    let input = detail["inputs"][0]["digest"].as_str().unwrap().to_string();
    tamper(&blob(&state, &input));
    let args = in_state(&[&run_id, "--step", "load"]);
    let (code, report, err) = verify_json(dir.path(), &args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(report["steps"][0]["outcome"], "mismatch", "{report}");
    assert!(err.contains("input 'raw' no longer hashes"), "{err}");
}

#[test]
fn verify_reexecutes_the_polyglot_run_after_its_sources_are_deleted() {
    build_iris();
    let root = tempfile::tempdir().unwrap();
    let src = repo_root().join("examples/polyglot");
    let polyglot = root.path().join("polyglot");
    let status = std::process::Command::new("cp")
        .arg("-r")
        .arg(&src)
        .arg(&polyglot)
        .status()
        .unwrap();
    assert!(status.success());
    let _ = std::fs::remove_dir_all(polyglot.join(".weft"));
    let release = root.path().join("iris/target/wasm32-wasip2/release");
    std::fs::create_dir_all(&release).unwrap();
    std::fs::copy(
        repo_root().join("examples/iris/target/wasm32-wasip2/release/train.wasm"),
        release.join("train.wasm"),
    )
    .unwrap();
    let weft = |args: &[&str]| {
        std::process::Command::new(weft_bin())
            .args(args)
            .current_dir(&polyglot)
            .env("WEFT_TOOLCHAINS", repo_root().join("target/guest-toolchains"))
            .env_remove("WEFT_DIR")
            .env_remove("WEFT_DB")
            .env_remove("WEFT_STACK")
            .output()
            .unwrap()
    };
    let built = weft(&["build", "prepare", "evaluate"]);
    assert!(built.status.success(), "{}", stderr(&built));
    let run = run_json(&weft(&["run", "--json"]), 0);
    assert_eq!(run["executed"], 3, "{run}");

    // The Python and JavaScript sources, their builds and the Rust
    // component are gone.
    std::fs::remove_dir_all(polyglot.join("steps")).unwrap();
    std::fs::remove_dir_all(root.path().join("iris")).unwrap();
    let out = weft(&["verify", run["run_id"].as_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["matched"], 3, "{report}");
}

#[test]
fn a_run_imported_through_the_sync_api_serves_no_cache_hit_until_verified_here() {
    let e = toml_path(&guest("echo"));
    let manifest = format!(
        "[pipeline]\nname = \"synced\"\n[inputs]\nraw = {{ path = \"raw.txt\" }}\n\
         [steps.a]\ncomponent = {e}\ninputs = {{ in = \"inputs.raw\" }}\noutputs = [\"out\"]\nparams = {{ prefix = \"a\" }}\n\
         [steps.b]\ncomponent = {e}\ninputs = {{ in = \"a.out\" }}\noutputs = [\"out\"]\nparams = {{ prefix = \"b\" }}\n"
    );
    let project = |data: &str| {
        let p = Project::new(&manifest);
        p.write("raw.txt", data);
        p
    };
    // A run made on another machine, sent to a server.
    let elsewhere = project("data");
    let made = run_json(&elsewhere.weft(&["run", "--json"]), 0);
    let made_id = made["run_id"].as_str().unwrap().to_string();
    let in_state = |p: &Project, state: &Path, args: &[&str]| {
        let mut all = vec!["--state-dir", state.to_str().unwrap()];
        all.extend_from_slice(args);
        p.weft(&all)
    };

    // Server one: the imported step runs are recorded as imported and serve
    // nothing; the same pipeline run here executes every step.
    let host = Project::new("[pipeline]\nname = \"host\"\n");
    let server = start(&host, &[]);
    run_json(&elsewhere.weft(&["run", "--json", "--server", &server.base]), 0);
    let (status, detail) = call(ureq::get(&format!("{}/api/v1/runs/{made_id}", server.base)));
    assert_eq!(status, 200, "the run it was cached from was sent first: {detail}");
    assert!(
        detail["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["origin"] == "imported"),
        "{detail}"
    );
    let here = project("data");
    let unverified = run_json(&in_state(&here, &host.state(), &["run", "--json"]), 0);
    assert_eq!(
        (unverified["executed"].as_u64(), unverified["cached"].as_u64()),
        (Some(2), Some(0)),
        "imported step runs serve no cache hit unverified: {unverified}"
    );

    // Server two: verified here first (its components were sent with the
    // run), the imported step runs serve the cache.
    let host2 = Project::new("[pipeline]\nname = \"host2\"\n");
    let server2 = start(&host2, &[]);
    run_json(&elsewhere.weft(&["run", "--json", "--server", &server2.base]), 0);
    let verified = in_state(&here, &host2.state(), &["verify", &made_id]);
    assert!(verified.status.success(), "{}", stderr(&verified));
    assert!(stderr(&verified).contains("2 matched"), "{}", stderr(&verified));
    let served = run_json(&in_state(&here, &host2.state(), &["run", "--json"]), 0);
    assert_eq!(served["cached"], 2, "verified imported step runs serve: {served}");
    let (_, made_detail) = call(ureq::get(&format!("{}/api/v1/runs/{made_id}", server2.base)));
    let originals: Vec<&str> = made_detail["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    for s in served["steps"].as_array().unwrap() {
        assert!(originals.contains(&s["cached_from"].as_str().unwrap()), "{served}");
    }
    // The server shows the verification with the run.
    let (_, verifications) = call(ureq::get(&format!(
        "{}/api/v1/runs/{made_id}/verifications",
        server2.base
    )));
    assert_eq!(verifications.as_array().map(Vec::len), Some(2), "{verifications}");
}

//! Hostile steps: every attack fails with a clear error, is recorded, and
//! neither the host nor the other steps are affected.

use crate::harness::*;

const ATTACKS: &[&str] = &[
    "none",
    "read-host-file",
    "dotdot",
    "dotdot-relative",
    "symlink",
    "symlink-output",
    "socket",
    "env",
    "list-env",
    "write-input",
    "create-in-inputs",
    "loop",
    "sleep",
    "sleep-forever",
    "membomb",
    "panic",
    "recursion",
    "flood-stdout",
    "no-output",
    "invalid-params",
];

fn hostile_manifest() -> String {
    let mut m = String::from("[pipeline]\nname = \"hostile\"\n[inputs]\nin = { path = \"in.txt\" }\n");
    for attack in ATTACKS {
        m.push_str(&format!(
            "[steps.{attack}]\ncomponent = {}\ninputs = {{ in = \"inputs.in\" }}\noutputs = [\"out\"]\n\
             params = {{ attack = \"{attack}\", steps = 4000 }}\nlimits = {{ timeout = \"1s\", memory = \"64MiB\", max_log = \"64KiB\" }}\n",
            toml_path(&guest("hostile"))
        ));
        // A real sleep blocks in a host call, where only the watchdog
        // reaches it; under virtual time an hour passes at once.
        if *attack == "sleep" {
            m.push_str("nondeterministic = true\n");
        }
    }
    m.push_str(&format!(
        "[steps.virtual-sleep]\ncomponent = {}\noutputs = [\"out\"]\nparams = {{ attack = \"sleep\" }}\nlimits = {{ timeout = \"1s\" }}\n",
        toml_path(&guest("hostile"))
    ));
    // Downstream of an attacker: skipped, not run.
    m.push_str(&format!(
        "[steps.after]\ncomponent = {}\ninputs = {{ in = \"panic.out\" }}\noutputs = [\"out\"]\n",
        toml_path(&guest("echo"))
    ));
    m
}

#[test]
fn every_attack_fails_cleanly_and_the_rest_carries_on() {
    let project = Project::new(&hostile_manifest());
    project.write("in.txt", "the input");
    let out = project.weft(&["run", "--json", "--max-parallel", "4"]);
    let outcome = run_json(&out, 1);
    assert_eq!(outcome["status"], "failed");

    let detail = project.run_detail("latest");
    let error = |name: &str| -> String {
        let s = step(&detail, name);
        assert_eq!(s["status"], "failed", "step {name} should have failed: {s}");
        s["error"].as_str().unwrap_or_default().to_string()
    };
    let expect = |name: &str, needles: &[&str]| {
        let e = error(name);
        for needle in needles {
            assert!(
                e.contains(needle),
                "step {name}: error {e:?} does not mention {needle:?}"
            );
        }
    };
    expect("read-host-file", &["read /etc/passwd", "No such file"]);
    expect("dotdot", &["/inputs/../../../../etc/passwd", "not permitted"]);
    expect("dotdot-relative", &["/outputs/..", "not permitted"]);
    expect("symlink", &["planted symlink", "not permitted"]);
    expect("symlink-output", &["output 'out' is a symbolic link"]);
    expect("socket", &["connect to 127.0.0.1:80", "denied"]);
    expect("env", &["environment variable not found"]);
    expect("list-env", &["the environment is empty"]);
    expect("write-input", &["write /inputs/in", "not permitted"]);
    expect("create-in-inputs", &["create /inputs/new-file", "not permitted"]);
    expect("loop", &["timed out after 1.0s"]);
    expect("sleep", &["timed out after 1.0s"]);
    expect("sleep-forever", &["timed out after 1.0s"]);
    expect("membomb", &["memory limit exceeded", "the limit is 67108864 bytes"]);
    expect("panic", &["panicked: the model exploded at row 42"]);
    expect("recursion", &["call stack exhausted"]);
    expect("no-output", &["did not write its declared output 'out'"]);
    expect("invalid-params", &["invalid params: learning_rate must be positive"]);

    // The harmless step and the flooding one succeed; the flood is capped.
    assert_eq!(step(&detail, "none")["status"], "succeeded");
    assert_eq!(
        step(&detail, "virtual-sleep")["status"],
        "succeeded",
        "an hour of virtual time"
    );
    assert_eq!(step(&detail, "flood-stdout")["status"], "succeeded");
    let logs = project.weft(&["logs", "latest", "flood-stdout"]);
    let logs = stdout(&logs);
    assert!(logs.len() <= 64 * 1024 + 200, "logs not capped: {} bytes", logs.len());
    assert!(
        logs.contains("output truncated at 65536 bytes"),
        "{}",
        &logs[logs.len().saturating_sub(200)..]
    );
    // Downstream of a failed step is skipped with the reason.
    let after = step(&detail, "after");
    assert_eq!(after["status"], "skipped");
    assert!(after["error"].as_str().unwrap().contains("upstream step 'panic'"));

    // The input the attackers tried to overwrite is intact, in the store too.
    assert_eq!(
        std::fs::read_to_string(project.path().join("in.txt")).unwrap(),
        "the input"
    );
    let input = project.weft(&["artifacts", "get", "hostile/inputs.in"]);
    assert_eq!(stdout(&input), "the input");
    // Nothing leaked into an artifact.
    let list = project.weft(&["artifacts", "list", "--json"]);
    let artifacts: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let names: Vec<&str> = artifacts
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    let mut expected = vec![
        "hostile/flood-stdout.out",
        "hostile/inputs.in",
        "hostile/none.out",
        "hostile/virtual-sleep.out",
    ];
    let mut names_sorted = names.clone();
    names_sorted.sort();
    expected.sort();
    assert_eq!(names_sorted, expected);
    // No sandbox directory is left behind.
    let work = project.state().join("work");
    let leftovers: Vec<_> = walk(&work);
    assert!(leftovers.is_empty(), "sandbox leftovers: {leftovers:?}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.path().is_dir() {
                files.extend(walk(&e.path()));
            } else {
                files.push(e.path());
            }
        }
    }
    files
}

#[test]
fn retries_then_records_attempts_and_a_component_that_is_not_a_step_fails_cleanly() {
    let project = Project::new(&format!(
        "[pipeline]\nname = \"retry\"\n\
         [steps.flaky]\ncomponent = {h}\noutputs = [\"out\"]\nparams = {{ attack = \"fail\" }}\nretry = {{ max = 2, backoff = \"10ms\" }}\n\
         nondeterministic = true\n\
         [steps.pure]\ncomponent = {h}\noutputs = [\"out\"]\nparams = {{ attack = \"fail\" }}\nretry = {{ max = 2, backoff = \"10ms\" }}\n\
         [steps.panics]\ncomponent = {h}\noutputs = [\"out\"]\nparams = {{ attack = \"panic\" }}\nretry = {{ max = 2, backoff = \"10ms\" }}\n\
         nondeterministic = true\n\
         [steps.junk]\ncomponent = \"junk.wasm\"\noutputs = [\"out\"]\n\
         [steps.fine]\ncomponent = {e}\noutputs = [\"out\"]\n",
        h = toml_path(&guest("hostile")),
        e = toml_path(&guest("echo"))
    ));
    project.write("junk.wasm", "this is not wasm");
    let outcome = run_json(&project.weft(&["run", "--json"]), 1);
    let s = statuses(&outcome);
    assert_eq!(s["fine"], "succeeded");
    let detail = project.run_detail("latest");
    // A nondeterministic step's own failure may not repeat: retried.
    let flaky = step(&detail, "flaky");
    assert_eq!(flaky["attempts"], 3);
    assert_eq!(flaky["error"], "bad data: column 'x' is empty");
    // A pure step would fail the same way again, and a panic is never
    // retried blindly: one attempt each, and the logs say why.
    for name in ["pure", "panics"] {
        assert_eq!(step(&detail, name)["attempts"], 1, "{name}");
        let logs = stdout(&project.weft(&["logs", "latest", name]));
        assert!(logs.contains("not retried"), "{name}: {logs}");
    }
    let junk = step(&detail, "junk");
    assert_eq!(junk["status"], "failed");
    assert!(
        junk["error"]
            .as_str()
            .unwrap()
            .contains("not a valid WebAssembly component"),
        "{junk}"
    );
}

#[test]
fn hard_links_oversized_and_countless_outputs_open_files_full_tmp_and_network_imports_fail_cleanly() {
    let h = toml_path(&guest("hostile"));
    let http = toml_path(&guest("http_step"));
    let project = Project::new(&format!(
        "[pipeline]\nname = \"more-attacks\"\n[inputs]\nraw = {{ path = \"in.txt\" }}\n\
         [steps.hardlink]\ncomponent = {h}\ninputs = {{ in = \"inputs.raw\" }}\noutputs = [\"out\"]\nparams = {{ attack = \"hardlink\" }}\n\
         [steps.big-output]\ncomponent = {h}\noutputs = [\"out\"]\nparams = {{ attack = \"big-output\", steps = 4096 }}\n\
         limits = {{ max_output = \"1KiB\" }}\n\
         [steps.many-outputs]\ncomponent = {h}\noutputs = [\"out\"]\nparams = {{ attack = \"many-outputs\", steps = 100001 }}\n\
         [steps.resource-table]\ncomponent = {h}\ninputs = {{ in = \"inputs.raw\" }}\noutputs = [\"out\"]\nparams = {{ attack = \"resource-table\" }}\n\
         [steps.fill-tmp]\ncomponent = {h}\noutputs = [\"out\"]\nparams = {{ attack = \"fill-tmp\", steps = 16 }}\n\
         limits = {{ max_tmp = \"8MiB\" }}\n\
         [steps.http]\ncomponent = {http}\noutputs = [\"out\"]\n\
         [steps.huge]\ncomponent = \"huge.wasm\"\noutputs = [\"out\"]\n\
         [steps.fine]\ncomponent = {h}\noutputs = [\"out\"]\nparams = {{ attack = \"none\" }}\n"
    ));
    project.write("in.txt", "the input");
    // A component file over the size limit (sparse: no disk used).
    let huge = std::fs::File::create(project.path().join("huge.wasm")).unwrap();
    huge.set_len(600 << 20).unwrap();
    drop(huge);

    let outcome = run_json(&project.weft(&["run", "--json", "--max-parallel", "2"]), 1);
    let errors = errors(&outcome);
    let expect = |name: &str, needles: &[&str]| {
        let (status, error) = &errors[name];
        assert_eq!(status, "failed", "{name} should have failed: {error}");
        for needle in needles {
            assert!(error.contains(needle), "{name}: {error:?} does not mention {needle:?}");
        }
    };
    expect("hardlink", &["hard link /inputs/in -> /outputs/out", "not permitted"]);
    expect("big-output", &["outputs exceed the limit of 1024 bytes"]);
    expect("many-outputs", &["more files than the limit (100000)"]);
    expect("resource-table", &["held more than 10000 resources"]);
    expect("fill-tmp", &["/tmp limit of 8388608 bytes"]);
    expect("http", &["wasi:http"]);
    expect("huge", &["the limit is 536870912"]);
    assert_eq!(errors["fine"].0, "succeeded", "the other steps carry on");
    // The input blob is untouched.
    let input = project.weft(&["artifacts", "get", "more-attacks/inputs.raw"]);
    assert_eq!(stdout(&input), "the input");
    // Nothing partial is visible: every recorded artifact has its bytes.
    let check = project.weft(&["runs", "show", "latest", "--json"]);
    assert!(check.status.success());
}

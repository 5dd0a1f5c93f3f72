//! Steps in Python, JavaScript and C beside Rust: built by `weft build`,
//! cached like any step, failing cleanly, and scaffolded by `weft new step`.

use crate::harness::*;

#[test]
fn the_polyglot_example_runs_and_reruns_from_the_cache_in_every_language() {
    build_iris(); // its `train` component is the Rust step
    let state = tempfile::tempdir().unwrap();
    let example = repo_root().join("examples/polyglot");
    let weft = |args: &[&str]| {
        let mut all = vec![
            "-f",
            example.to_str().unwrap(),
            "--state-dir",
            state.path().to_str().unwrap(),
        ];
        all.extend_from_slice(args);
        std::process::Command::new(weft_bin())
            .args(&all)
            .env("WEFT_TOOLCHAINS", repo_root().join("target/guest-toolchains"))
            .env_remove("WEFT_DB")
            .env_remove("WEFT_DIR")
            .output()
            .unwrap()
    };
    let built = weft(&["build"]);
    assert!(built.status.success(), "{}", stderr(&built));

    let first = run_json(&weft(&["run", "--json"]), 0);
    assert_eq!(first["executed"], 3, "{first}");
    let detail: serde_json::Value =
        serde_json::from_slice(&weft(&["runs", "show", "latest", "--json"]).stdout).unwrap();
    let accuracy = detail["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["key"] == "accuracy")
        .and_then(|m| m["value"].as_f64())
        .expect("evaluate (JavaScript) logged accuracy");
    assert!(accuracy > 0.9, "held-out accuracy {accuracy}");
    let rows_train = detail["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["key"] == "rows_train")
        .and_then(|m| m["value"].as_f64());
    assert_eq!(
        rows_train,
        Some(125.0),
        "prepare (Python) split 178 rows 70/30 by class"
    );
    let report = weft(&["artifacts", "get", "wine/evaluate.report"]);
    assert!(stdout(&report).contains("Held-out accuracy"), "{}", stdout(&report));

    // Built again: unchanged sources keep their components, so every step
    // in every language is a cache hit.
    assert!(weft(&["build"]).status.success());
    let second = run_json(&weft(&["run", "--json"]), 0);
    assert_eq!(
        (second["executed"].as_u64(), second["cached"].as_u64()),
        (Some(0), Some(3)),
        "{second}"
    );
}

#[test]
fn python_and_javascript_steps_fail_cleanly_with_their_message() {
    let project = Project::new(
        "[pipeline]\nname = \"failing\"\n\
         [steps.py-raise]\npython = \"py-raise\"\noutputs = [\"out\"]\n\
         [steps.py-escape]\npython = \"py-escape\"\noutputs = [\"out\"]\n\
         [steps.js-throw]\njs = \"js-throw\"\noutputs = [\"out\"]\n\
         [steps.js-escape]\njs = \"js-escape\"\noutputs = [\"out\"]\n",
    );
    project.write(
        "py-raise/app.py",
        "import weft_step as weft\n\n@weft.step\ndef main(params):\n    raise ValueError('the data is bad')\n",
    );
    project.write(
        "py-escape/app.py",
        "import weft_step as weft\n\n@weft.step\ndef main(params):\n    \
         weft.write_output('out', open('/etc/passwd').read())\n",
    );
    project.write(
        "js-throw/app.js",
        "import * as weft from './weft-step.js';\n\
         export const run = weft.step(() => { throw new TypeError('the data is bad'); });\n",
    );
    project.write(
        "js-escape/app.js",
        "import * as weft from './weft-step.js';\n\
         import { getDirectories } from 'wasi:filesystem/preopens@0.2.12';\n\
         export const run = weft.step(() => {\n\
           const [inputs] = getDirectories().find(([, name]) => name === '/tmp');\n\
           const file = inputs.openAt({}, '../etc/passwd', {}, { read: true });\n\
           weft.writeOutput('out', file.read(100n, 0n)[0]);\n\
         });\n",
    );
    let built = project.weft(&["build"]);
    assert!(built.status.success(), "{}", stderr(&built));
    let out = run_json(&project.weft(&["run", "--json"]), 1);
    let errors: std::collections::BTreeMap<String, String> = out["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            assert_eq!(s["status"], "failed", "{s}");
            (
                s["name"].as_str().unwrap().to_string(),
                s["error"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert!(errors["py-raise"].contains("ValueError: the data is bad"), "{errors:?}");
    assert!(errors["py-escape"].contains("FileNotFoundError"), "{errors:?}");
    assert!(errors["py-escape"].contains("/etc/passwd"), "{errors:?}");
    assert!(errors["js-throw"].contains("TypeError: the data is bad"), "{errors:?}");
    assert!(
        errors["js-escape"].contains("not-permitted"),
        "WASI refuses the path: {errors:?}"
    );
    assert!(
        !errors["js-escape"].contains("root:"),
        "nothing of the host file leaked: {errors:?}"
    );
    // The traceback is in the step's logs.
    let logs = project.weft(&["logs", "latest", "py-raise"]);
    assert!(stdout(&logs).contains("Traceback"), "{}", stdout(&logs));
}

#[test]
fn new_step_templates_build_and_run_in_every_language() {
    let project = Project::new("[pipeline]\nname = \"fresh\"\n");
    for lang in ["rust", "python", "js", "c"] {
        let out = project.weft(&["new", "step", &format!("hello-{lang}"), "--lang", lang]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let again = project.weft(&["new", "step", "hello-js", "--lang", "js"]);
    assert_eq!(
        again.status.code(),
        Some(2),
        "a second step of the same name is refused"
    );
    let built = project.weft(&["build"]);
    assert!(built.status.success(), "{}", stderr(&built));
    let out = run_json(&project.weft(&["run", "--json"]), 0);
    assert_eq!(out["executed"], 4, "{out}");
    for lang in ["rust", "python", "js", "c"] {
        let got = project.weft(&["artifacts", "get", &format!("fresh/hello-{lang}.out")]);
        assert_eq!(stdout(&got), format!("HELLO FROM HELLO-{}\n", lang.to_uppercase()));
    }
}

#[test]
fn a_python_step_bundles_its_pinned_pure_python_requirements_and_refuses_native_ones() {
    let project = Project::new("[pipeline]\nname = \"pyreq\"\n[steps.tab]\npython = \"tab\"\noutputs = [\"out\"]\n");
    project.write(
        "tab/app.py",
        "import weft_step as weft\nfrom tabulate import tabulate\n\n@weft.step\ndef main(params):\n    \
         weft.write_output('out', tabulate([['iris', 150]], headers=['data', 'rows'], tablefmt='github'))\n",
    );
    project.write("tab/requirements.txt", "tabulate==0.9.0  # pure Python\n");
    let built = project.weft(&["build"]);
    assert!(built.status.success(), "{}", stderr(&built));
    let lock = std::fs::read_to_string(project.path().join("tab/build/requirements.lock")).unwrap();
    assert!(lock.starts_with("tabulate==0.9.0 sha256="), "{lock}");
    run_json(&project.weft(&["run", "--json"]), 0);
    let out = project.weft(&["artifacts", "get", "pyreq/tab.out"]);
    assert_eq!(
        stdout(&out),
        "| data   |   rows |\n|--------|--------|\n| iris   |    150 |"
    );

    // A package with native code is refused at build time, by name.
    project.write("tab/requirements.txt", "numpy==2.2.6\n");
    let refused = project.weft(&["build"]);
    assert!(!refused.status.success());
    let message = stderr(&refused);
    assert!(message.contains("numpy 2.2.6 has native extensions"), "{message}");
    assert!(message.contains("pure-Python packages only"), "{message}");
    // So is a requirement that is not pinned.
    project.write("tab/requirements.txt", "tabulate>=0.9\n");
    let refused = project.weft(&["build"]);
    assert!(
        stderr(&refused).contains("'tabulate>=0.9' is not pinned"),
        "{}",
        stderr(&refused)
    );
}

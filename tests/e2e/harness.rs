//! Shared helpers: building guests once, temporary projects, running weft.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

pub fn weft_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_weft"))
}

fn cargo_build_wasm(workspace: &Path) {
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--quiet",
            "--manifest-path",
        ])
        .arg(workspace.join("Cargo.toml"))
        .status()
        .expect("run cargo");
    assert!(
        status.success(),
        "building the guest components in {} failed (is the wasm32-wasip2 target installed?)",
        workspace.display()
    );
}

/// The test guest components (echo, hostile), built once.
pub fn guest(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let ws = repo_root().join("tests/guests");
        cargo_build_wasm(&ws);
        ws.join("target/wasm32-wasip2/release")
    });
    dir.join(format!("{name}.wasm"))
}

/// The iris example's components, built once.
pub fn build_iris() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| cargo_build_wasm(&repo_root().join("examples/iris")));
}

/// A temporary project: a directory with a weft.toml and its own state.
pub struct Project {
    pub dir: tempfile::TempDir,
}

impl Project {
    pub fn new(manifest: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("weft.toml"), manifest).expect("write manifest");
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, name: &str, contents: &str) {
        std::fs::write(self.path().join(name), contents).expect("write file");
    }

    pub fn state(&self) -> PathBuf {
        self.path().join(".weft")
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(weft_bin());
        cmd.args(args)
            .current_dir(self.path())
            .env_remove("WEFT_DIR")
            .env_remove("WEFT_MANIFEST")
            .env_remove("WEFT_DB")
            .env_remove("WEFT_ARTIFACTS")
            .env_remove("WEFT_SERVER")
            .env_remove("WEFT_SERVER_TOKEN")
            // Guest toolchains (componentize-py, componentize-js) are set
            // up once for every test, beside the build.
            .env("WEFT_TOOLCHAINS", repo_root().join("target/guest-toolchains"));
        cmd
    }

    pub fn weft(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run weft")
    }

    /// `weft runs show RUN --json`.
    pub fn run_detail(&self, run: &str) -> Value {
        let out = self.weft(&["runs", "show", run, "--json"]);
        assert!(out.status.success(), "runs show failed: {}", stderr(&out));
        serde_json::from_slice(&out.stdout).expect("runs show --json is JSON")
    }
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `weft run --json` output, asserting the exit code.
pub fn run_json(out: &Output, code: i32) -> Value {
    assert_eq!(
        out.status.code(),
        Some(code),
        "weft run exited {:?}\nstderr:\n{}",
        out.status.code(),
        stderr(out)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("run --json output is not JSON ({e}): {}", stdout(out)))
}

/// name -> status of each step of a run outcome or run detail.
pub fn statuses(value: &Value) -> std::collections::BTreeMap<String, String> {
    let steps = value["steps"].as_array().expect("steps");
    steps
        .iter()
        .map(|s| {
            let name = s
                .get("name")
                .or_else(|| s.get("step_name"))
                .and_then(Value::as_str)
                .expect("step name");
            (name.to_string(), s["status"].as_str().expect("status").to_string())
        })
        .collect()
}

/// A step of a run detail by name.
pub fn step<'a>(detail: &'a Value, name: &str) -> &'a Value {
    detail["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["step_name"] == name)
        .unwrap_or_else(|| panic!("no step {name}"))
}

/// A TOML string literal for a path.
pub fn toml_path(path: &Path) -> String {
    format!("{:?}", path.display().to_string())
}

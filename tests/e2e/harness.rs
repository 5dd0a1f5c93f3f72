//! Shared helpers: building guests once, temporary projects, running weft.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::Value;

/// Reports the calling test as skipped, with the reason: `tests/run.sh`
/// counts it as skipped, not passed (it reads `WEFT_SKIP_LOG`). The test
/// returns right after.
pub fn skip(reason: &str) {
    let test = std::thread::current().name().unwrap_or("a test").to_string();
    eprintln!("skipped: {reason}");
    if let Ok(log) = std::env::var("WEFT_SKIP_LOG") {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(log)
            .expect("the skip log");
        writeln!(file, "{test}: {reason}").expect("the skip log");
    }
}

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

/// weft's plugins (plugins/), built once; the component of `name`.
pub fn plugin(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let ws = repo_root().join("plugins");
        cargo_build_wasm(&ws);
        ws.join("target/wasm32-wasip2/release")
    });
    dir.join(format!("{}.wasm", name.replace('-', "_")))
}

/// A local HTTP server that answers 200 to everything and keeps each
/// request's body, for plugins to call.
pub struct Receiver {
    pub port: u16,
    pub bodies: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Receiver {
    pub fn start() -> Self {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a local port");
        let port = listener.local_addr().unwrap().port();
        let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = bodies.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream);
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0u8; length];
                let _ = reader.read_exact(&mut body);
                kept.lock().unwrap().push(String::from_utf8_lossy(&body).into_owned());
                let _ = reader
                    .get_mut()
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
            }
        });
        Self { port, bodies }
    }

    pub fn bodies(&self) -> Vec<String> {
        self.bodies.lock().unwrap().clone()
    }
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

    /// Writes `name` (a path below the project; folders are made).
    pub fn write(&self, name: &str, contents: &str) {
        let path = self.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("make folders");
        }
        std::fs::write(path, contents).expect("write file");
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
            .env_remove("WEFT_STACK")
            // Plugins and stacks of this project only, never the user's.
            .env("WEFT_HOME", self.path().join(".weft-home"))
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

/// name -> (status, error) of each step of a run outcome.
pub fn errors(outcome: &Value) -> std::collections::BTreeMap<String, (String, String)> {
    outcome["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| {
            (
                s["name"].as_str().expect("step name").to_string(),
                (
                    s["status"].as_str().expect("status").to_string(),
                    s["error"].as_str().unwrap_or("").to_string(),
                ),
            )
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

/// Asserts that the latest run of `project` and each of `steps` were
/// cancelled.
pub fn assert_cancelled(project: &Project, steps: &[&str]) {
    let detail = project.run_detail("latest");
    assert_eq!(detail["run"]["status"], "cancelled");
    for name in steps {
        assert_eq!(
            step(&detail, name)["status"],
            "cancelled",
            "{name}: {}",
            step(&detail, name)
        );
    }
}

/// Waits for a started `weft server` or `weft serve` (stderr piped) to
/// announce its address (`… on http://…`) and returns that address, with what it
/// prints afterwards, collected by a thread that keeps draining the pipe so
/// the server never blocks on it. A log line can come before the address
/// (sqlx warns about a slow statement on a busy machine), so every line up
/// to it is read.
pub fn listening(child: &mut Child) -> (String, Arc<Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader};
    let mut lines = BufReader::new(child.stderr.take().expect("stderr piped")).lines();
    let mut before = Vec::new();
    let base = loop {
        match lines.next() {
            Some(Ok(line)) if line.contains(" on http://") => {
                match line.split_whitespace().find(|w| w.starts_with("http://")) {
                    Some(base) => break base.to_string(),
                    None => before.push(line),
                }
            }
            Some(Ok(line)) => before.push(line),
            _ => panic!("the server stopped before listening:\n{}", before.join("\n")),
        }
    };
    let said = Arc::new(Mutex::new(Vec::new()));
    let kept = said.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            kept.lock().unwrap().push(line);
        }
    });
    (base, said)
}

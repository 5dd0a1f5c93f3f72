//! `weft build`: makes the component of each step that says how.
//!
//! - `build = "…"`: a shell command, run in the manifest's folder.
//! - `python = "dir"`: componentize-py over `dir/app.py` with weft's Python
//!   SDK, from a virtualenv weft manages under its toolchains folder.
//! - `js = "dir"`: componentize-js over `dir/app.js` (and the modules it
//!   imports) with weft's JavaScript SDK as `./weft-step.js`, from an npm
//!   project weft manages under its toolchains folder.
//!
//! The step WIT and the SDKs are compiled into weft, so a build uses exactly
//! the contract this weft runs.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::manifest::BuildSpec;
use crate::Manifest;

/// The step contract, as the guest toolchains read it.
pub const STEP_WIT: &str = include_str!("../../../wit/step/step.wit");
/// The Python SDK (one pure-Python module).
const PYTHON_SDK: &str = include_str!("../../../sdk/python/weft_step/__init__.py");
/// The JavaScript SDK (one ES module).
const JS_SDK: &str = include_str!("../../../sdk/js/weft-step.js");
/// The world JavaScript steps are built against: the step world plus the
/// WASI filesystem calls the SDK reads inputs and writes outputs with
/// (StarlingMonkey has no file API of its own). The host provides them.
const JS_WORLD: &str = "world step-js {\n    include step;\n    import wasi:filesystem/preopens@0.2.12;\n    import wasi:filesystem/types@0.2.12;\n}\n";
/// Where componentize-js's package keeps the WASI WIT it builds with.
const JS_WASI_WIT: &str = "node_modules/@bytecodealliance/jco/lib/wit/builtin/0.2.12";

/// The componentize-py release weft builds Python steps with.
pub const COMPONENTIZE_PY: &str = "componentize-py==0.25.1";
/// The componentize-js release weft builds JavaScript steps with.
pub const COMPONENTIZE_JS: &str = "@bytecodealliance/componentize-js@0.23.0";

/// A step's build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("steps.{step}: cannot start `{command}`: {source}")]
    Spawn {
        step: String,
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("steps.{step}: `{command}` failed ({status})")]
    Failed {
        step: String,
        command: String,
        status: String,
    },
    #[error("steps.{step}: `{command}` succeeded but did not produce {}", path.display())]
    NoComponent {
        step: String,
        command: String,
        path: PathBuf,
    },
    #[error("steps.{step}: {message}")]
    Source { step: String, message: String },
    #[error("setting up the {what} toolchain in {}: {message}", dir.display())]
    Toolchain {
        what: &'static str,
        dir: PathBuf,
        message: String,
    },
}

/// Builds the components of `steps` (all steps when empty). Guest
/// toolchains are kept under `toolchains` (made on first use). A command or
/// source folder shared by several steps builds once. Tool output goes to
/// this process's stdout/stderr. Returns the names of the steps built.
pub fn build_steps(manifest: &Manifest, steps: &[String], toolchains: &Path) -> Result<Vec<String>, BuildError> {
    let mut done: Vec<BuildSpec> = Vec::new();
    let mut built = Vec::new();
    for step in &manifest.steps {
        if !steps.is_empty() && !steps.contains(&step.name) {
            continue;
        }
        let Some(spec) = &step.build else { continue };
        let command = match spec {
            BuildSpec::Command(command) => {
                let mut c = Command::new("sh");
                c.arg("-c").arg(command).current_dir(&manifest.root);
                c
            }
            BuildSpec::Python(dir) => {
                check_source(&step.name, dir, "app.py")?;
                python_command(&python_toolchain(toolchains)?, dir, &step.component)
            }
            BuildSpec::Js(dir) => {
                check_source(&step.name, dir, "app.js")?;
                let toolchains = js_toolchain(toolchains)?;
                let stage = stage_js(&toolchains, &step.name, dir)?;
                js_command(&toolchains, &stage, &step.component)
            }
        };
        let shown = show(&command);
        // Python and JavaScript builds are not byte-for-byte reproducible:
        // rebuild only when the sources (or weft's SDK and toolchain) did,
        // so an unchanged step keeps its component and its cache hits.
        let fingerprint = match spec {
            BuildSpec::Command(_) => None,
            BuildSpec::Python(dir) | BuildSpec::Js(dir) => {
                Some(source_fingerprint(spec, dir).map_err(|e| BuildError::Source {
                    step: step.name.clone(),
                    message: format!("cannot read {}: {e}", dir.display()),
                })?)
            }
        };
        let stamp = step.component.with_extension("wasm.sources");
        let up_to_date = fingerprint.as_ref().is_some_and(|f| {
            step.component.is_file() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(f.as_str())
        });
        if up_to_date {
            eprintln!("{} is up to date", step.name);
        } else if !done.contains(spec) {
            eprintln!("building {}: {shown}", step.name);
            if let Some(parent) = step.component.parent() {
                std::fs::create_dir_all(parent).map_err(|e| BuildError::Source {
                    step: step.name.clone(),
                    message: format!("cannot create {}: {e}", parent.display()),
                })?;
            }
            run(&step.name, command)?;
            if let Some(fingerprint) = &fingerprint {
                std::fs::write(&stamp, fingerprint).map_err(|e| BuildError::Source {
                    step: step.name.clone(),
                    message: format!("cannot write {}: {e}", stamp.display()),
                })?;
            }
            done.push(spec.clone());
        }
        if !step.component.is_file() {
            return Err(BuildError::NoComponent {
                step: step.name.clone(),
                command: shown,
                path: step.component.clone(),
            });
        }
        built.push(step.name.clone());
    }
    Ok(built)
}

/// blake3 of everything a Python or JavaScript build reads: the toolchain
/// release, the contract, the SDK and every source file (path and bytes).
fn source_fingerprint(spec: &BuildSpec, dir: &Path) -> std::io::Result<String> {
    let mut hasher = blake3::Hasher::new();
    match spec {
        BuildSpec::Python(_) => {
            hasher.update(COMPONENTIZE_PY.as_bytes());
            hasher.update(PYTHON_SDK.as_bytes());
        }
        BuildSpec::Js(_) => {
            hasher.update(COMPONENTIZE_JS.as_bytes());
            hasher.update(JS_SDK.as_bytes());
            hasher.update(JS_WORLD.as_bytes());
        }
        BuildSpec::Command(_) => {}
    }
    hasher.update(STEP_WIT.as_bytes());
    let mut files = Vec::new();
    source_files(dir, Path::new(""), &mut files)?;
    files.sort();
    for relative in files {
        let bytes = std::fs::read(dir.join(&relative))?;
        hasher.update(relative.to_string_lossy().as_bytes());
        hasher.update(&(bytes.len() as u64).to_le_bytes());
        hasher.update(&bytes);
    }
    Ok(hasher.finalize().to_hex().to_string())
}

/// Source files below `dir` (not build output, dependencies or caches).
fn source_files(dir: &Path, prefix: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir.join(prefix))? {
        let entry = entry?;
        let name = entry.file_name();
        let kind = entry.file_type()?;
        if kind.is_dir() && !matches!(name.to_str(), Some("build" | "node_modules" | "__pycache__")) {
            source_files(dir, &prefix.join(&name), out)?;
        } else if kind.is_file() {
            out.push(prefix.join(&name));
        }
    }
    Ok(())
}

fn show(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

fn run(step: &str, mut command: Command) -> Result<(), BuildError> {
    let shown = show(&command);
    let status = command.status().map_err(|source| BuildError::Spawn {
        step: step.to_string(),
        command: shown.clone(),
        source,
    })?;
    if !status.success() {
        return Err(BuildError::Failed {
            step: step.to_string(),
            command: shown,
            status: status.to_string(),
        });
    }
    Ok(())
}

fn check_source(step: &str, dir: &Path, main: &str) -> Result<(), BuildError> {
    if !dir.join(main).is_file() {
        return Err(BuildError::Source {
            step: step.to_string(),
            message: format!("{} has no {main} (the step's entry point)", dir.display()),
        });
    }
    Ok(())
}

/// An exclusive lock on the toolchains folder, held while a toolchain is
/// checked or set up: several `weft build`s may start at once.
fn lock(toolchains: &Path, what: &'static str) -> Result<std::fs::File, BuildError> {
    let fail = |e: std::io::Error| BuildError::Toolchain {
        what,
        dir: toolchains.to_owned(),
        message: e.to_string(),
    };
    std::fs::create_dir_all(toolchains).map_err(fail)?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(toolchains.join(".lock"))
        .map_err(fail)?;
    file.lock().map_err(fail)?;
    Ok(file)
}

/// Writes `contents` to `path` unless it holds them already.
fn write_if_changed(path: &Path, contents: &str) -> std::io::Result<()> {
    if std::fs::read_to_string(path).ok().as_deref() == Some(contents) {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, contents)
}

/// The step WIT and SDK, written where the tools read them.
fn write_contract(toolchains: &Path, what: &'static str) -> Result<(), BuildError> {
    let err = |e: std::io::Error| BuildError::Toolchain {
        what,
        dir: toolchains.to_owned(),
        message: e.to_string(),
    };
    write_if_changed(&toolchains.join("wit/step.wit"), STEP_WIT).map_err(err)?;
    write_if_changed(&toolchains.join("python-sdk/weft_step/__init__.py"), PYTHON_SDK).map_err(err)?;
    Ok(())
}

/// A virtualenv with componentize-py (made once; `WEFT_PYTHON` picks the
/// interpreter, default `python3`). Returns the toolchains folder.
fn python_toolchain(toolchains: &Path) -> Result<PathBuf, BuildError> {
    let _lock = lock(toolchains, "Python")?;
    write_contract(toolchains, "Python")?;
    let venv = toolchains.join("python");
    let marker = venv.join(".weft-ready");
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(COMPONENTIZE_PY) {
        return Ok(toolchains.to_owned());
    }
    let fail = |message: String| BuildError::Toolchain {
        what: "Python",
        dir: venv.clone(),
        message,
    };
    let python = std::env::var("WEFT_PYTHON").unwrap_or_else(|_| "python3".into());
    eprintln!(
        "setting up the Python toolchain ({COMPONENTIZE_PY}) in {}",
        venv.display()
    );
    let mut create = Command::new(&python);
    create.args(["-m", "venv"]).arg(&venv);
    run("(toolchain)", create).map_err(|e| fail(format!("{e}; is {python} (3.10 or newer, with venv) installed?")))?;
    let mut install = Command::new(venv.join("bin/pip"));
    install.args(["install", "--quiet", "--disable-pip-version-check", COMPONENTIZE_PY]);
    run("(toolchain)", install).map_err(|e| fail(e.to_string()))?;
    std::fs::write(&marker, COMPONENTIZE_PY).map_err(|e| fail(e.to_string()))?;
    Ok(toolchains.to_owned())
}

fn python_command(toolchains: &Path, dir: &Path, component: &Path) -> Command {
    let mut c = Command::new(toolchains.join("python/bin/componentize-py"));
    c.arg("-d")
        .arg(toolchains.join("wit"))
        .args(["-w", "step", "componentize", "app", "-p"])
        .arg(dir)
        .arg("-p")
        .arg(toolchains.join("python-sdk"))
        .arg("-o")
        .arg(component);
    c
}

/// An npm project with componentize-js (made once), and the WIT folder of
/// the JavaScript world. Returns the toolchains folder.
fn js_toolchain(toolchains: &Path) -> Result<PathBuf, BuildError> {
    let _lock = lock(toolchains, "JavaScript")?;
    write_contract(toolchains, "JavaScript")?;
    let project = toolchains.join("js");
    let fail = |message: String| BuildError::Toolchain {
        what: "JavaScript",
        dir: project.clone(),
        message,
    };
    let marker = project.join(".weft-ready");
    if std::fs::read_to_string(&marker).ok().as_deref() != Some(COMPONENTIZE_JS) {
        eprintln!(
            "setting up the JavaScript toolchain ({COMPONENTIZE_JS}) in {}",
            project.display()
        );
        std::fs::create_dir_all(&project).map_err(|e| fail(e.to_string()))?;
        write_if_changed(
            &project.join("package.json"),
            "{ \"name\": \"weft-js-toolchain\", \"private\": true }\n",
        )
        .map_err(|e| fail(e.to_string()))?;
        let mut install = Command::new("npm");
        install
            .args([
                "install",
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                COMPONENTIZE_JS,
            ])
            .current_dir(&project);
        run("(toolchain)", install).map_err(|e| fail(format!("{e}; is Node.js (20 or newer) with npm installed?")))?;
        std::fs::write(&marker, COMPONENTIZE_JS).map_err(|e| fail(e.to_string()))?;
    }
    // The JavaScript world, beside the step contract, with the WASI
    // packages it names.
    let wit = toolchains.join("wit-js");
    let write = |name: &str, text: &str| write_if_changed(&wit.join(name), text).map_err(|e| fail(e.to_string()));
    write("step.wit", STEP_WIT)?;
    write("js.wit", JS_WORLD)?;
    for package in ["filesystem", "io", "clocks"] {
        let from = project.join(JS_WASI_WIT).join(format!("wasi-{package}"));
        copy_dir(&from, &wit.join("deps").join(package)).map_err(|e| {
            fail(format!(
                "cannot copy the WASI {package} WIT from {}: {e}",
                from.display()
            ))
        })?;
    }
    Ok(toolchains.to_owned())
}

/// Copies the step's folder (without `build/` and `node_modules/`) and the
/// SDK as `weft-step.js` into a fresh staging folder; returns it.
fn stage_js(toolchains: &Path, step: &str, dir: &Path) -> Result<PathBuf, BuildError> {
    // One staging folder per source folder: builds of other projects may
    // run at the same time.
    let key = blake3::hash(dir.to_string_lossy().as_bytes()).to_hex();
    let stage = toolchains.join("js-stage").join(&key.as_str()[..16]);
    let fail = |e: std::io::Error| BuildError::Source {
        step: step.to_string(),
        message: format!("cannot stage {} in {}: {e}", dir.display(), stage.display()),
    };
    if stage.exists() {
        std::fs::remove_dir_all(&stage).map_err(fail)?;
    }
    copy_dir(dir, &stage).map_err(fail)?;
    std::fs::write(stage.join("weft-step.js"), JS_SDK).map_err(fail)?;
    Ok(stage)
}

/// Copies a folder's regular files and subfolders (not `build/`,
/// `node_modules/` or symlinks).
fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let name = entry.file_name();
        if kind.is_dir() && name != "build" && name != "node_modules" {
            copy_dir(&entry.path(), &to.join(&name))?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), to.join(&name))?;
        }
    }
    Ok(())
}

fn js_command(toolchains: &Path, stage: &Path, component: &Path) -> Command {
    let mut c = Command::new("node");
    c.arg(toolchains.join("js/node_modules/@bytecodealliance/componentize-js/src/cli.js"))
        .arg(stage.join("app.js"))
        .arg("-w")
        .arg(toolchains.join("wit-js"))
        .args(["-n", "step-js", "-d", "http", "fetch-event", "-o"])
        .arg(component);
    c
}

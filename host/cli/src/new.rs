//! `weft new step NAME --lang rust|python|js|c`: a step that builds and runs
//! as it is, in `steps/NAME/`, added to the pipeline's weft.toml.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::context::{CliError, CliResult};
use crate::exit;

/// Languages a new step can be written in.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Python,
    Js,
    C,
}

const PYTHON_APP: &str = r#"import weft_step as weft


@weft.step
def main(params):
    """Writes the `message` param, upper-cased, as output `out`."""
    message = str(params.get("message", "hello from python"))
    weft.write_output("out", message.upper() + "\n")
    weft.log_metric("chars", len(message))
    print(f"wrote {len(message)} characters")
"#;

const JS_APP: &str = r#"// `weft build` supplies ./weft-step.js (weft's JavaScript SDK).
import * as weft from "./weft-step.js";

// Writes the `message` param, upper-cased, as output `out`.
export const run = weft.step((params) => {
  const message = String(params.message ?? "hello from javascript");
  weft.writeOutput("out", message.toUpperCase() + "\n");
  weft.logMetric("chars", message.length);
  console.log(`wrote ${message.length} characters`);
});
"#;

const C_MAIN: &str = r#"// A weft step: writes the `message` param, upper-cased, as output `out`.
// `weft build` supplies weft_step.h (and the step world's bindings).
#include <ctype.h>
#include "weft_step.h"

bool exports_step_run(step_string_t *params, step_step_error_t *err) {
    char message[256];
    weft_param_string(params, "message", message, sizeof message, "hello from c");
    size_t n = strlen(message);
    for (size_t i = 0; i < n; i++) message[i] = (char)toupper((unsigned char)message[i]);
    message[n] = '\n';
    if (!weft_write_output("out", message, n + 1)) return weft_fail(err, "cannot write output out");
    weft_log_metric("chars", (double)n);
    printf("wrote %zu characters\n", n);
    step_string_free(params);
    return true;
}
"#;

const RUST_LIB: &str = r#"//! A weft step: writes the `message` param, upper-cased, as output `out`.

wit_bindgen::generate!({ path: "wit", world: "step" });

use weft::step::tracker;

struct Step;

impl Guest for Step {
    fn run(params: String) -> Result<(), StepError> {
        let params: serde_json::Value =
            serde_json::from_str(&params).map_err(|e| StepError::InvalidParams(e.to_string()))?;
        let message = params["message"].as_str().unwrap_or("hello from rust");
        std::fs::write("/outputs/out", format!("{}\n", message.to_uppercase()))
            .map_err(|e| StepError::Failed(format!("writing /outputs/out: {e}")))?;
        tracker::log_metric("chars", message.chars().count() as f64, None);
        println!("wrote {} characters", message.chars().count());
        Ok(())
    }
}

export!(Step);
"#;

fn rust_cargo_toml(name: &str) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2021"

[lib]
crate-type = ["cdylib"]

[dependencies]
wit-bindgen = {{ version = "0.57", default-features = false, features = ["macros", "realloc"] }}
serde_json = "1"

[profile.release]
opt-level = "s"
strip = true

# A crate of its own, not part of an enclosing workspace.
[workspace]
"#
    )
}

/// Creates the step's folder and adds it to the manifest.
pub fn new_step(manifest: &Path, name: &str, lang: Lang, dir: Option<&Path>) -> CliResult<u8> {
    if !weft_pipeline::valid_name(name) {
        return Err(CliError::usage(format!(
            "'{name}' is not a step name: use 1 to 64 letters, digits, '_' or '-'"
        )));
    }
    let root = manifest.parent().unwrap_or(Path::new("."));
    let relative = dir
        .map(Path::to_owned)
        .unwrap_or_else(|| PathBuf::from("steps").join(name));
    let folder = root.join(&relative);
    if folder.exists() {
        return Err(CliError::usage(format!(
            "{} exists already; pick another name or --dir",
            folder.display()
        )));
    }
    let text = std::fs::read_to_string(manifest)
        .map_err(|e| CliError::usage(format!("cannot read {}: {e}", manifest.display())))?;
    let parsed: toml::Table =
        toml::from_str(&text).map_err(|e| CliError::usage(format!("invalid manifest {}: {e}", manifest.display())))?;
    if parsed.get("steps").and_then(|s| s.get(name)).is_some() {
        return Err(CliError::usage(format!(
            "{} already has a step '{name}'",
            manifest.display()
        )));
    }

    let write = |path: &Path, contents: &str| -> CliResult<()> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| CliError::usage(format!("cannot create {}: {e}", parent.display())))?;
        }
        std::fs::write(path, contents).map_err(|e| CliError::usage(format!("cannot write {}: {e}", path.display())))
    };
    let shown = relative.display().to_string().replace('\\', "/");
    let entry = match lang {
        Lang::Python => {
            write(&folder.join("app.py"), PYTHON_APP)?;
            format!("python = {}\n", toml_string(&shown))
        }
        Lang::Js => {
            write(&folder.join("app.js"), JS_APP)?;
            format!("js = {}\n", toml_string(&shown))
        }
        Lang::C => {
            write(&folder.join("main.c"), C_MAIN)?;
            format!("c = {}\n", toml_string(&shown))
        }
        Lang::Rust => {
            write(&folder.join("Cargo.toml"), &rust_cargo_toml(name))?;
            write(&folder.join("src/lib.rs"), RUST_LIB)?;
            write(&folder.join("wit/step.wit"), weft_pipeline::STEP_WIT)?;
            let crate_file = name.replace('-', "_");
            format!(
                "component = {}\nbuild = {}\n",
                toml_string(&format!("{shown}/target/wasm32-wasip2/release/{crate_file}.wasm")),
                toml_string(&format!(
                    "cargo build --release --target wasm32-wasip2 --manifest-path {shown}/Cargo.toml"
                ))
            )
        }
    };
    let block =
        format!("\n[steps.{name}]\n{entry}outputs = [\"out\"]\nparams = {{ message = \"hello from {name}\" }}\n");
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(manifest)
        .map_err(|e| CliError::usage(format!("cannot write {}: {e}", manifest.display())))?;
    file.write_all(block.as_bytes())
        .map_err(|e| CliError::usage(format!("cannot write {}: {e}", manifest.display())))?;
    eprintln!(
        "created {} and added [steps.{name}] to {}; now `weft build` and `weft run`",
        folder.display(),
        manifest.display()
    );
    Ok(exit::OK)
}

fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

//! Write [weft](https://github.com/weft-mlops/weft) pipeline steps in Rust.
//!
//! A step is a function from typed params to `Result<()>` that reads its
//! inputs, writes its outputs and logs what it measured:
//!
//! ```ignore
//! use serde::Deserialize;
//!
//! #[derive(Deserialize)]
//! struct Params { factor: f64 }
//!
//! fn scale(params: Params) -> weft_sdk::Result<()> {
//!     let text = weft_sdk::read_input_string("numbers")?;
//!     let scaled: Vec<String> = text
//!         .lines()
//!         .map(|l| l.trim().parse::<f64>().map(|x| (x * params.factor).to_string()))
//!         .collect::<Result<_, _>>()?;
//!     weft_sdk::write_output("scaled", scaled.join("\n"))?;
//!     weft_sdk::log_metric("count", scaled.len() as f64);
//!     Ok(())
//! }
//!
//! weft_sdk::export_step!(scale);
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2` (crate type
//! `cdylib`) and name the `.wasm` in `weft.toml`.
//!
//! # The sandbox
//!
//! - Inputs are read-only under `/inputs/<name>` ([`input_path`]).
//! - Outputs are written under `/outputs/<name>` ([`output_path`]); each
//!   declared output must exist when the step returns. An output is a file
//!   or a directory ([`create_output_dir`]).
//! - `/tmp` is private scratch space.
//! - stdout and stderr (`println!`, `eprintln!`) are captured as the step's
//!   logs.
//! - There is no environment, no network and no other path: reading one
//!   fails like a missing file.
//!
//! Params arrive as a JSON object and are deserialized into your type; a
//! mismatch fails the step as `invalid-params` with serde's message. A
//! returned [`Error`] fails the step with its message; a panic fails it with
//! the panic message.

use std::fmt;
use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::PathBuf;

#[doc(hidden)]
#[cfg(feature = "csv")]
mod table;
#[cfg(feature = "csv")]
pub use table::{read_csv, write_csv, Table};

pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/step",
        world: "step",
        pub_export_macro: true,
        export_macro_name: "__export_step_world",
        default_bindings_module: "weft_sdk::bindings",
    });
}

/// Params type for a step that takes none (any JSON is accepted and ignored).
pub type NoParams = serde::de::IgnoredAny;

/// Where inputs are mounted, read-only.
pub const INPUTS_DIR: &str = "/inputs";
/// Where outputs are written.
pub const OUTPUTS_DIR: &str = "/outputs";

/// Why a step failed. Any `std::error::Error` converts into it with `?`.
pub struct Error {
    message: String,
    invalid_params: bool,
}

impl Error {
    /// A failure with a message.
    pub fn msg(message: impl fmt::Display) -> Self {
        Self {
            message: message.to_string(),
            invalid_params: false,
        }
    }

    /// The params (or the shape of an input) are not acceptable; retrying
    /// will not help.
    pub fn invalid_params(message: impl fmt::Display) -> Self {
        Self {
            message: message.to_string(),
            invalid_params: true,
        }
    }

    /// Adds what was being done to the message.
    pub fn context(self, context: impl fmt::Display) -> Self {
        Self {
            message: format!("{context}: {}", self.message),
            ..self
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl<E: std::error::Error> From<E> for Error {
    fn from(error: E) -> Self {
        Self::msg(error)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// `Result<T, weft_sdk::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Returns early with an [`Error`] built like `format!`.
#[macro_export]
macro_rules! bail {
    ($($arg:tt)*) => {
        return ::core::result::Result::Err($crate::Error::msg(::std::format!($($arg)*)))
    };
}

fn check_name(kind: &str, name: &str) -> Result<()> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(Error::msg(format!("'{name}' is not a valid {kind} name")));
    }
    Ok(())
}

/// The path of input `name` (`/inputs/<name>`).
pub fn input_path(name: &str) -> PathBuf {
    PathBuf::from(INPUTS_DIR).join(name)
}

/// The path of output `name` (`/outputs/<name>`).
pub fn output_path(name: &str) -> PathBuf {
    PathBuf::from(OUTPUTS_DIR).join(name)
}

/// Reads a whole input file.
pub fn read_input(name: &str) -> Result<Vec<u8>> {
    check_name("input", name)?;
    std::fs::read(input_path(name)).map_err(|e| Error::msg(format!("cannot read input '{name}': {e}")))
}

/// Reads a whole input file as UTF-8 text.
pub fn read_input_string(name: &str) -> Result<String> {
    check_name("input", name)?;
    std::fs::read_to_string(input_path(name)).map_err(|e| Error::msg(format!("cannot read input '{name}': {e}")))
}

/// Opens an input file for buffered reading.
pub fn open_input(name: &str) -> Result<BufReader<File>> {
    check_name("input", name)?;
    File::open(input_path(name))
        .map(BufReader::new)
        .map_err(|e| Error::msg(format!("cannot open input '{name}': {e}")))
}

/// Reads an input holding JSON into `T`.
pub fn read_input_json<T: serde::de::DeserializeOwned>(name: &str) -> Result<T> {
    serde_json::from_reader(open_input(name)?)
        .map_err(|e| Error::msg(format!("input '{name}' is not the JSON expected: {e}")))
}

/// Writes a whole output file.
pub fn write_output(name: &str, contents: impl AsRef<[u8]>) -> Result<()> {
    check_name("output", name)?;
    std::fs::write(output_path(name), contents).map_err(|e| Error::msg(format!("cannot write output '{name}': {e}")))
}

/// Writes `value` as JSON to an output file.
pub fn write_output_json<T: serde::Serialize>(name: &str, value: &T) -> Result<()> {
    let bytes =
        serde_json::to_vec_pretty(value).map_err(|e| Error::msg(format!("cannot encode output '{name}': {e}")))?;
    write_output(name, bytes)
}

/// Creates an output file for buffered writing.
pub fn create_output(name: &str) -> Result<BufWriter<File>> {
    check_name("output", name)?;
    File::create(output_path(name))
        .map(BufWriter::new)
        .map_err(|e| Error::msg(format!("cannot create output '{name}': {e}")))
}

/// Creates an output that is a directory, and returns its path.
pub fn create_output_dir(name: &str) -> Result<PathBuf> {
    check_name("output", name)?;
    let path = output_path(name);
    std::fs::create_dir_all(&path).map_err(|e| Error::msg(format!("cannot create output directory '{name}': {e}")))?;
    Ok(path)
}

/// Logs a metric value.
pub fn log_metric(key: &str, value: f64) {
    bindings::weft::step::tracker::log_metric(key, value, None);
}

/// Logs a metric value at a step of a history (an epoch, an iteration).
pub fn log_metric_at(key: &str, value: f64, step: u64) {
    bindings::weft::step::tracker::log_metric(key, value, Some(step));
}

/// Logs a parameter (once per key).
pub fn log_param(key: &str, value: impl fmt::Display) {
    bindings::weft::step::tracker::log_param(key, &value.to_string());
}

/// Sets a tag.
pub fn set_tag(key: &str, value: impl fmt::Display) {
    bindings::weft::step::tracker::set_tag(key, &value.to_string());
}

/// Attaches a JSON document.
pub fn log_metadata<T: serde::Serialize + ?Sized>(key: &str, value: &T) -> Result<()> {
    let json = serde_json::to_string(value).map_err(|e| Error::msg(format!("cannot encode metadata '{key}': {e}")))?;
    bindings::weft::step::tracker::log_metadata(key, &json);
    Ok(())
}

#[doc(hidden)]
pub fn __run<P, F>(params: &str, step: F) -> std::result::Result<(), bindings::weft::step::types::StepError>
where
    P: serde::de::DeserializeOwned,
    F: FnOnce(P) -> Result<()>,
{
    use bindings::weft::step::types::StepError;
    let params: P = serde_json::from_str(params).map_err(|e| StepError::InvalidParams(e.to_string()))?;
    step(params).map_err(|e| {
        if e.invalid_params {
            StepError::InvalidParams(e.message)
        } else {
            StepError::Failed(e.message)
        }
    })
}

/// Exports a function `fn(P) -> weft_sdk::Result<()>` as the step, where
/// `P: serde::Deserialize` is the step's params.
#[macro_export]
macro_rules! export_step {
    ($step:path) => {
        #[doc(hidden)]
        struct __WeftStep;

        impl $crate::bindings::Guest for __WeftStep {
            fn run(params: ::std::string::String) -> ::core::result::Result<(), $crate::bindings::weft::step::types::StepError> {
                $crate::__run(&params, $step)
            }
        }

        $crate::bindings::__export_step_world!(__WeftStep with_types_in $crate::bindings);
    };
}

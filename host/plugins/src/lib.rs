//! weft's stack integrations as sandboxed WebAssembly plugins.
//!
//! A plugin is a component of one of the worlds of `wit/plugin/plugin.wit`:
//! an **alerter** (told of run and step events through the `on_failure` /
//! `on_success` hooks), a **tracker sink** (receives each finished run to
//! forward elsewhere), a **data validator** (checks an artifact; a gate in
//! weft.toml) or a **materializer** (converts an artifact between media
//! types).
//!
//! - [`PluginHost`] runs plugins: a fresh instance per call, no files, no
//!   environment, no sockets, a memory limit and a timeout; the only way out
//!   is `wasi:http`, and a request leaves only for a host the plugin
//!   declared and the user granted ([`Grant`]). Every refused request is
//!   reported with the call ([`CallReport::refused`]).
//! - [`PluginHome`] keeps installed plugins: `install` reads the plugin's
//!   manifest (its `describe` export, called with nothing granted) and
//!   installs it only when every capability it asks for is consented to.

mod bindings;
mod grant;
mod home;
mod host;

pub use bindings::types::{
    Artifact, ConfigKey, Event, KeyValue, Kind, Manifest, Metric, RunInfo, StepInfo, TrackedRun, Validation,
};
pub use grant::{Capability, Grant};
pub use home::{InstalledPlugin, PluginHome};
pub use host::{CallReport, PluginHost};

/// Largest artifact handed to a validator or materializer.
pub const MAX_ARTIFACT_BYTES: usize = 64 * 1024 * 1024;

/// Errors of plugin management and calls.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The component could not be compiled or does not fit a plugin world.
    #[error("{path}: not a weft plugin: {message}")]
    NotAPlugin { path: std::path::PathBuf, message: String },
    /// Installing needs consent to capabilities that were not granted.
    #[error(
        "plugin '{name}' asks for capabilities you did not grant:\n{}\nRe-run with --allow for each (e.g. --allow {}), or answer yes when asked.",
        .missing.iter().map(|c| format!("  - {}", c.describe())).collect::<Vec<_>>().join("\n"),
        .missing.first().map(|c| c.flag()).unwrap_or_default()
    )]
    ConsentRequired { name: String, missing: Vec<Capability> },
    /// A grant names something the plugin did not ask for, or is malformed.
    #[error("{0}")]
    BadGrant(String),
    /// No plugin of that name is installed.
    #[error("no plugin named '{0}' is installed (see `weft plugin list`)")]
    NotInstalled(String),
    /// A plugin of that name is installed already.
    #[error("a plugin named '{0}' is installed already: `weft plugin remove {0}` first")]
    AlreadyInstalled(String),
    /// The plugin is not of the kind the caller needs.
    #[error("plugin '{name}' is a {actual}, not a {wanted}")]
    WrongKind {
        name: String,
        actual: String,
        wanted: String,
    },
    /// Configuration given to a plugin is malformed.
    #[error("{0}")]
    BadConfig(String),
    /// Reading or writing the plugin home failed.
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// The runtime failed.
    #[error(transparent)]
    Runtime(#[from] weft_runtime::RuntimeError),
}

/// A kind's name as manifests and messages spell it.
pub fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Alerter => "alerter",
        Kind::TrackerSink => "tracker-sink",
        Kind::DataValidator => "data-validator",
        Kind::Materializer => "materializer",
    }
}

/// A plugin name: lowercase letters, digits and '-', 1 to 64 characters,
/// starting with a letter.
pub fn valid_plugin_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

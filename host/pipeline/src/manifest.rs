//! `weft.toml`: what a pipeline is made of, and every check made before
//! anything runs.
//!
//! ```toml
//! [pipeline]
//! name = "iris"
//!
//! [inputs]                       # external data, ingested as artifacts
//! iris = { path = "data/iris.csv", media_type = "text/csv" }
//!
//! [steps.split]
//! component = "target/wasm32-wasip2/release/split.wasm"
//! build = "cargo build --release --target wasm32-wasip2 -p split"
//! inputs = { data = "inputs.iris" }
//! outputs = ["train", "test"]
//! params = { test_fraction = 0.2, seed = 7 }
//! limits = { memory = "512MiB", timeout = "2m" }
//! retry = { max = 2, backoff = "1s" }
//! cache = true
//! env = { LOG_LEVEL = "debug" }  # granted environment variables (part of the cache key)
//! nondeterministic = false       # true: real clocks and randomness, never cached
//!
//! [steps.clean]                  # a step in Python: the folder holding app.py
//! python = "steps/clean"
//!
//! [steps.report]                 # a step in JavaScript: the folder holding app.js
//! js = "steps/report"
//!
//! [steps.fast]                   # a step in C: the folder holding its .c files
//! c = "steps/fast"
//! ```
//!
//! A Python, JavaScript or C step is built by `weft build` into
//! `<folder>/build/step.wasm` unless `component` names another path.
//!
//! A step of weft's own library names it with `uses` and needs no
//! component; its outputs are the library step's unless listed:
//!
//! ```toml
//! [steps.forest]
//! uses = "ml/random-forest"
//! inputs = { train = "split.train" }
//! params = { n_trees = 100, seed = 1 }
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use weft_runtime::Limits;

use crate::resources::Resources;

/// A manifest that is wrong, with the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
    #[error("steps form a cycle: {0}")]
    Cycle(String),
    #[error("{key}: component {path} does not exist{hint}")]
    MissingComponent { key: String, path: PathBuf, hint: String },
    #[error("{key}: input file {path} does not exist")]
    MissingInput { key: String, path: PathBuf },
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ManifestError {
    ManifestError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    pipeline: RawPipeline,
    #[serde(default)]
    inputs: BTreeMap<String, RawInput>,
    #[serde(default)]
    steps: BTreeMap<String, RawStep>,
    /// Model name -> `step.output` (or `{ output, served_by }`) registered
    /// after each successful run.
    #[serde(default)]
    models: BTreeMap<String, toml::Value>,
    /// Plugins told of the run's outcome, and tracker sinks it goes to.
    #[serde(default)]
    hooks: RawHooks,
    /// Data validators that must pass before an artifact is used.
    #[serde(default)]
    gates: Vec<RawGate>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHooks {
    #[serde(default)]
    on_failure: Vec<String>,
    #[serde(default)]
    on_success: Vec<String>,
    #[serde(default)]
    publish: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGate {
    artifact: String,
    plugin: String,
    #[serde(default)]
    config: toml::Table,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPipeline {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    max_parallel: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInput {
    path: PathBuf,
    #[serde(default)]
    media_type: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    /// A step of weft's library (`ml/random-forest`), instead of a component.
    #[serde(default)]
    uses: Option<String>,
    #[serde(default)]
    component: Option<PathBuf>,
    #[serde(default)]
    build: Option<String>,
    #[serde(default)]
    python: Option<PathBuf>,
    #[serde(default)]
    js: Option<PathBuf>,
    #[serde(default)]
    c: Option<PathBuf>,
    #[serde(default)]
    inputs: BTreeMap<String, String>,
    #[serde(default)]
    outputs: Vec<RawOutput>,
    #[serde(default)]
    params: toml::Table,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    retry: Option<RawRetry>,
    #[serde(default = "yes")]
    cache: bool,
    /// The step needs the host's real clocks and randomness: it gets them,
    /// and is never served from the cache.
    #[serde(default)]
    nondeterministic: bool,
    /// Environment variables granted to the step.
    #[serde(default)]
    env: BTreeMap<String, String>,
    /// Alerter plugins told when this step fails / succeeds (or is cached).
    #[serde(default)]
    on_failure: Vec<String>,
    #[serde(default)]
    on_success: Vec<String>,
    /// Where this step runs, when not where the rest of the run does (a
    /// step operator: e.g. `slurm` for the training step only).
    #[serde(default)]
    orchestrator: Option<String>,
    /// What the orchestrator gives the step (Slurm: cores, memory, ...).
    #[serde(default)]
    resources: Resources,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawOutput {
    Name(String),
    Full {
        name: String,
        #[serde(default)]
        media_type: Option<String>,
    },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    memory: Option<String>,
    timeout: Option<String>,
    max_output: Option<String>,
    max_log: Option<String>,
    max_tmp: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetry {
    max: u32,
    #[serde(default)]
    backoff: Option<String>,
}

/// Where a step input comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputSource {
    /// `inputs.<name>`: external data declared under `[inputs]`.
    External(String),
    /// `<step>.<output>`: an output of another step.
    Step { step: String, output: String },
}

/// Largest `limits.max_log` accepted.
const MAX_LOG_BYTES: usize = 64 << 20;

/// A declared output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputSpec {
    pub name: String,
    pub media_type: Option<String>,
}

/// Resource limits of a step: the sandbox's, plus the size of its outputs.
#[derive(Debug, Clone)]
pub struct StepLimits {
    /// Memory, time, captured logs and resources inside the sandbox.
    pub sandbox: Limits,
    /// Total bytes the step's outputs may hold.
    pub max_output_bytes: u64,
    /// Bytes the step may leave in `/tmp` (checked when it returns).
    pub max_tmp_bytes: u64,
}

impl Default for StepLimits {
    fn default() -> Self {
        Self {
            sandbox: Limits::default(),
            max_output_bytes: 10 * 1024 * 1024 * 1024,
            max_tmp_bytes: 10 * 1024 * 1024 * 1024,
        }
    }
}

/// Retry policy: up to `max` more attempts, waiting `backoff`, then twice
/// that, and so on.
#[derive(Debug, Clone, Default)]
pub struct Retry {
    pub max: u32,
    pub backoff: Duration,
}

/// A validated step.
#[derive(Debug, Clone)]
pub struct Step {
    pub name: String,
    /// Absolute path of the component.
    pub component: PathBuf,
    /// How `weft build` makes the component, if it does.
    pub build: Option<BuildSpec>,
    /// (input name, source), sorted by name.
    pub inputs: Vec<(String, InputSource)>,
    pub outputs: Vec<OutputSpec>,
    /// The params as a JSON object.
    pub params: Value,
    pub limits: StepLimits,
    pub retry: Retry,
    pub cache: bool,
    /// Real clocks and randomness (`nondeterministic = true`): never a
    /// cache hit.
    pub nondeterministic: bool,
    /// Environment variables granted to the step, sorted by name.
    pub env: Vec<(String, String)>,
    /// Alerters told of this step's outcome.
    pub hooks: Hooks,
    /// The orchestrator this step runs on, if not the stack's.
    pub orchestrator: Option<String>,
    /// What an orchestrator that hands the step out gives it.
    pub resources: Resources,
}

/// Alerter plugins to tell of an outcome (by installed plugin name).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hooks {
    /// Told when it fails (a run: when it does not succeed).
    pub on_failure: Vec<String>,
    /// Told when it succeeds; a cached step counts, reported as cached.
    pub on_success: Vec<String>,
}

/// A data validator an artifact must pass before anything uses it.
#[derive(Debug, Clone)]
pub struct Gate {
    /// `inputs.<name>` or `<step>.<output>`.
    pub artifact: InputSource,
    /// The installed data-validator plugin.
    pub plugin: String,
    /// Configuration on top of the plugin's own.
    pub config: serde_json::Map<String, Value>,
}

/// How `weft build` makes a step's component.
#[derive(Debug, Clone, PartialEq)]
pub enum BuildSpec {
    /// A shell command run in the manifest's folder.
    Command(String),
    /// componentize-py over the folder holding `app.py` (absolute path).
    Python(PathBuf),
    /// componentize-js over the folder holding `app.js` (absolute path).
    Js(PathBuf),
    /// clang for wasm32-wasi over the folder's `.c` files, then made a
    /// component (absolute path).
    C(PathBuf),
}

/// An external input.
#[derive(Debug, Clone)]
pub struct ExternalInput {
    pub name: String,
    /// Absolute path.
    pub path: PathBuf,
    pub media_type: Option<String>,
}

/// An output registered as a version of a model after each successful run.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelOutput {
    /// The registered model's name.
    pub name: String,
    pub step: String,
    pub output: String,
    /// The model server component (the `weft:inference` world) that
    /// `weft serve` runs for this model's versions, if the manifest names
    /// one.
    pub served_by: Option<PathBuf>,
}

/// A validated pipeline manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub name: String,
    pub description: Option<String>,
    pub max_parallel: Option<usize>,
    /// Directory relative paths are resolved against.
    pub root: PathBuf,
    pub inputs: Vec<ExternalInput>,
    /// Steps in a topological order (every step after its upstreams).
    pub steps: Vec<Step>,
    /// Outputs registered as model versions after a successful run.
    pub models: Vec<ModelOutput>,
    /// Alerters told of the run's outcome.
    pub hooks: Hooks,
    /// Tracker-sink plugins each finished run is published to.
    pub publish: Vec<String>,
    /// Validators between artifacts and the steps that read them.
    pub gates: Vec<Gate>,
}

/// A `-p step.key=value` override.
#[derive(Debug, Clone)]
pub struct ParamOverride {
    pub step: String,
    pub key: String,
    pub value: String,
}

impl std::str::FromStr for ParamOverride {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (target, value) = s
            .split_once('=')
            .ok_or_else(|| format!("'{s}' is not step.key=value"))?;
        let (step, key) = target
            .split_once('.')
            .ok_or_else(|| format!("'{target}' is not step.key"))?;
        Ok(Self {
            step: step.trim().to_string(),
            key: key.trim().to_string(),
            value: value.to_string(),
        })
    }
}

/// Names of steps, inputs and outputs: what can safely be a file name.
/// Whether `name` may name a pipeline, step, input or output: 1 to 64
/// letters, digits, `_` or `-`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        && !name.starts_with('-')
}

impl Manifest {
    /// Whether any gate, hook or tracker sink names a plugin.
    pub fn uses_plugins(&self) -> bool {
        !(self.hooks == Hooks::default()
            && self.publish.is_empty()
            && self.gates.is_empty()
            && self.steps.iter().all(|s| s.hooks == Hooks::default()))
    }

    /// Reads and validates a manifest file.
    pub fn load(path: &Path) -> Result<Self, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
            path: path.to_owned(),
            source,
        })?;
        let root = path
            .parent()
            .map(|p| if p.as_os_str().is_empty() { Path::new(".") } else { p })
            .unwrap_or(Path::new("."));
        let root = root.canonicalize().map_err(|source| ManifestError::Read {
            path: root.to_owned(),
            source,
        })?;
        Self::parse(&text, &root).map_err(|e| match e {
            ManifestError::Parse { message, .. } => ManifestError::Parse {
                path: path.to_owned(),
                message,
            },
            other => other,
        })
    }

    /// Parses and validates manifest text; relative paths are resolved
    /// against `root`. Component files are not checked here (see
    /// [`Manifest::check_components`]).
    pub fn parse(text: &str, root: &Path) -> Result<Self, ManifestError> {
        let raw: RawManifest = toml::from_str(text).map_err(|e| ManifestError::Parse {
            path: PathBuf::from("weft.toml"),
            message: e.to_string(),
        })?;
        if !valid_name(&raw.pipeline.name) {
            return Err(invalid(
                "pipeline.name",
                format!("'{}' must be 1-64 letters, digits, '_' or '-'", raw.pipeline.name),
            ));
        }
        if raw.pipeline.max_parallel == Some(0) {
            return Err(invalid("pipeline.max_parallel", "must be at least 1"));
        }
        if raw.steps.is_empty() {
            return Err(invalid("steps", "the pipeline has no steps"));
        }

        let mut inputs = Vec::new();
        for (name, input) in raw.inputs {
            if !valid_name(&name) {
                return Err(invalid(
                    format!("inputs.{name}"),
                    "input names are 1-64 letters, digits, '_' or '-'",
                ));
            }
            inputs.push(ExternalInput {
                path: root.join(&input.path),
                name,
                media_type: input.media_type,
            });
        }

        let mut steps = BTreeMap::new();
        for (name, step) in &raw.steps {
            let key = format!("steps.{name}");
            if !valid_name(name) {
                return Err(invalid(key, "step names are 1-64 letters, digits, '_' or '-'"));
            }
            if name == "inputs" {
                return Err(invalid(
                    key,
                    "'inputs' is reserved for external inputs; rename the step",
                ));
            }
            steps.insert(name.clone(), convert_step(name, step, root)?);
        }

        // Wiring: every input refers to a declared external input or to a
        // declared output of another step.
        let external: BTreeSet<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
        for step in steps.values() {
            for (input, source) in &step.inputs {
                let key = format!("steps.{}.inputs.{input}", step.name);
                match source {
                    InputSource::External(name) => {
                        if !external.contains(name.as_str()) {
                            return Err(invalid(key, format!("'inputs.{name}' is not declared under [inputs]")));
                        }
                    }
                    InputSource::Step { step: upstream, output } => {
                        let Some(up) = steps.get(upstream) else {
                            return Err(invalid(key, format!("no step named '{upstream}'")));
                        };
                        if upstream == &step.name {
                            return Err(ManifestError::Cycle(format!("{0} -> {0}", step.name)));
                        }
                        if !up.outputs.iter().any(|o| &o.name == output) {
                            let declared: Vec<_> = up.outputs.iter().map(|o| o.name.as_str()).collect();
                            return Err(invalid(
                                key,
                                format!(
                                    "step '{upstream}' has no output '{output}' (it declares: {})",
                                    declared.join(", ")
                                ),
                            ));
                        }
                    }
                }
            }
        }

        let mut models = Vec::new();
        for (model, entry) in &raw.models {
            let key = format!("models.{model}");
            weft_store::validate_model_name(model).map_err(|m| invalid(&key, m))?;
            let (source, served_by) = model_entry(&key, entry, root)?;
            let (step, output) = source
                .split_once('.')
                .ok_or_else(|| invalid(&key, format!("'{source}' must be 'step.output'")))?;
            match steps.get(step) {
                None => return Err(invalid(key, format!("no step named '{step}'"))),
                Some(s) if !s.outputs.iter().any(|o| o.name == output) => {
                    return Err(invalid(key, format!("step '{step}' has no output '{output}'")))
                }
                Some(_) => models.push(ModelOutput {
                    name: model.clone(),
                    step: step.to_string(),
                    output: output.to_string(),
                    served_by,
                }),
            }
        }

        let hooks = Hooks {
            on_failure: plugin_names("hooks.on_failure", &raw.hooks.on_failure)?,
            on_success: plugin_names("hooks.on_success", &raw.hooks.on_success)?,
        };
        let publish = plugin_names("hooks.publish", &raw.hooks.publish)?;
        let mut gates = Vec::new();
        for (i, gate) in raw.gates.iter().enumerate() {
            let key = format!("gates[{i}]");
            let artifact = match gate.artifact.split_once('.') {
                Some(("inputs", name)) if external.contains(name) => InputSource::External(name.to_string()),
                Some((step, output))
                    if steps
                        .get(step)
                        .is_some_and(|s| s.outputs.iter().any(|o| o.name == output)) =>
                {
                    InputSource::Step {
                        step: step.to_string(),
                        output: output.to_string(),
                    }
                }
                _ => {
                    return Err(invalid(
                        format!("{key}.artifact"),
                        format!(
                            "'{}' is neither a declared input (inputs.NAME) nor a step output (step.output)",
                            gate.artifact
                        ),
                    ))
                }
            };
            plugin_names(&format!("{key}.plugin"), std::slice::from_ref(&gate.plugin))?;
            let config = match serde_json::to_value(&gate.config) {
                Ok(Value::Object(map)) => map,
                _ => return Err(invalid(format!("{key}.config"), "must be a table")),
            };
            gates.push(Gate {
                artifact,
                plugin: gate.plugin.clone(),
                config,
            });
        }

        let order = topological_order(&steps)?;
        let steps = order.into_iter().filter_map(|name| steps.remove(&name)).collect();
        Ok(Self {
            name: raw.pipeline.name,
            description: raw.pipeline.description,
            max_parallel: raw.pipeline.max_parallel,
            root: root.to_owned(),
            inputs,
            steps,
            models,
            hooks,
            publish,
            gates,
        })
    }

    /// Checks that every component file and external input exists.
    pub fn check_files(&self) -> Result<(), ManifestError> {
        for input in &self.inputs {
            if !input.path.exists() {
                return Err(ManifestError::MissingInput {
                    key: format!("inputs.{}.path", input.name),
                    path: input.path.clone(),
                });
            }
        }
        for step in &self.steps {
            if !step.component.is_file() {
                let hint = match &step.build {
                    Some(_) => "; run `weft build` first".to_string(),
                    None => String::new(),
                };
                return Err(ManifestError::MissingComponent {
                    key: format!("steps.{}.component", step.name),
                    path: step.component.clone(),
                    hint,
                });
            }
        }
        Ok(())
    }

    /// Applies `-p step.key=value` overrides. Each must name an existing
    /// step and param, and keep the param's type (an integer may stand for a
    /// float).
    pub fn apply_overrides(&mut self, overrides: &[ParamOverride]) -> Result<(), ManifestError> {
        for o in overrides {
            let key = format!("steps.{}.params.{}", o.step, o.key);
            let step = self.steps.iter_mut().find(|s| s.name == o.step).ok_or_else(|| {
                invalid(
                    format!("-p {}.{}", o.step, o.key),
                    format!("no step named '{}'", o.step),
                )
            })?;
            let params = step
                .params
                .as_object_mut()
                .ok_or_else(|| invalid(&key, "params are not a table"))?;
            let Some(current) = params.get(&o.key) else {
                let known: Vec<_> = params.keys().cloned().collect();
                return Err(invalid(
                    key,
                    format!(
                        "step '{}' has no param '{}' (it has: {})",
                        o.step,
                        o.key,
                        known.join(", ")
                    ),
                ));
            };
            let new = parse_override_value(&o.value, current).map_err(|m| invalid(&key, m))?;
            params.insert(o.key.clone(), new);
        }
        Ok(())
    }

    /// A step by name.
    pub fn step(&self, name: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.name == name)
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a float",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "a table",
    }
}

fn parse_override_value(text: &str, current: &Value) -> Result<Value, String> {
    let parsed: Option<Value> = toml::from_str::<toml::Table>(&format!("v = {text}"))
        .ok()
        .and_then(|t| t.get("v").cloned())
        .and_then(|v| serde_json::to_value(v).ok());
    let expected = json_type(current);
    match (current, parsed) {
        (Value::String(_), Some(Value::String(s))) => Ok(Value::String(s)),
        (Value::String(_), _) => Ok(Value::String(text.to_string())),
        (Value::Number(_), Some(Value::Number(n))) if expected == "a float" || n.is_i64() || n.is_u64() => {
            Ok(match (expected, n.as_f64()) {
                ("a float", Some(f)) => serde_json::Number::from_f64(f)
                    .map(Value::Number)
                    .unwrap_or(Value::Number(n)),
                _ => Value::Number(n),
            })
        }
        (_, Some(v)) if json_type(&v) == expected => Ok(v),
        (_, got) => Err(format!(
            "'{text}' is {}, but the param is {expected}",
            got.as_ref().map(json_type).unwrap_or("not a value")
        )),
    }
}

fn parse_size(key: &str, text: &str) -> Result<u64, ManifestError> {
    text.parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| invalid(key, format!("'{text}' is not a size like 512MiB: {e}")))
}

fn parse_duration(key: &str, text: &str) -> Result<Duration, ManifestError> {
    humantime::parse_duration(text).map_err(|e| invalid(key, format!("'{text}' is not a duration like 30s or 2m: {e}")))
}

/// Plugin names as a hook or gate lists them.
fn plugin_names(key: &str, names: &[String]) -> Result<Vec<String>, ManifestError> {
    for name in names {
        if !weft_plugins::valid_plugin_name(name) {
            return Err(invalid(
                key,
                format!("'{name}' is not a plugin name (lowercase letters, digits and '-')"),
            ));
        }
    }
    Ok(names.to_vec())
}

/// A `[models]` entry: `"step.output"`, or a table `{ output = "step.output",
/// served_by = "path/to/server.wasm" }`.
fn model_entry(key: &str, entry: &toml::Value, root: &Path) -> Result<(String, Option<PathBuf>), ManifestError> {
    let shape = "give \"step.output\" or { output = \"step.output\", served_by = \"server.wasm\" }";
    match entry {
        toml::Value::String(source) => Ok((source.clone(), None)),
        toml::Value::Table(table) => {
            if let Some(unknown) = table.keys().find(|k| !matches!(k.as_str(), "output" | "served_by")) {
                return Err(invalid(format!("{key}.{unknown}"), format!("unknown key: {shape}")));
            }
            let source = match table.get("output") {
                Some(toml::Value::String(source)) => source.clone(),
                Some(_) => return Err(invalid(format!("{key}.output"), "must be a string \"step.output\"")),
                None => return Err(invalid(key, format!("'output' is missing: {shape}"))),
            };
            let served_by = match table.get("served_by") {
                None => None,
                Some(toml::Value::String(name)) if weft_library::model_server(name).is_some() => {
                    Some(library_model_server(&format!("{key}.served_by"), name)?)
                }
                Some(toml::Value::String(path)) if !path.trim().is_empty() => Some(root.join(path)),
                Some(_) => {
                    return Err(invalid(
                        format!("{key}.served_by"),
                        "must be the path of a model server component (a .wasm file)",
                    ))
                }
            };
            Ok((source, served_by))
        }
        _ => Err(invalid(key, shape)),
    }
}

/// The file of the library's model server `name` (`ml/model-server`).
pub fn library_model_server(key: &str, name: &str) -> Result<PathBuf, ManifestError> {
    let server = weft_library::model_server(name)
        .ok_or_else(|| invalid(key, format!("weft's library has no model server '{name}'")))?;
    let dir = weft_library::default_dir().map_err(|e| invalid(key, e.to_string()))?;
    server.materialize(&dir).map_err(|e| invalid(key, e.to_string()))
}

/// The library step `uses` names, checked against the rest of the step.
fn library_step(key: &str, uses: &str, raw: &RawStep) -> Result<&'static weft_library::LibraryStep, ManifestError> {
    let step = weft_library::get(uses)
        .filter(|s| s.kind == weft_library::Kind::Step)
        .ok_or_else(|| {
            let names: Vec<_> = weft_library::all()
                .iter()
                .filter(|s| s.kind == weft_library::Kind::Step)
                .map(|s| s.name)
                .collect();
            invalid(
                key,
                format!(
                    "weft's library has no step '{uses}' (it has: {}; see `weft library`)",
                    names.join(", ")
                ),
            )
        })?;
    if raw.component.is_some() || raw.build.is_some() || raw.python.is_some() || raw.js.is_some() || raw.c.is_some() {
        return Err(invalid(
            key,
            "a step `uses` a library step or names its own component (`component`, `build`, `python`, `js`, `c`), not both",
        ));
    }
    for input in step.inputs {
        if !raw.inputs.contains_key(*input) {
            return Err(invalid(
                key,
                format!(
                    "{uses} reads the input{} {}: map each, e.g. inputs = {{ {input} = \"other_step.output\" }}",
                    if step.inputs.len() > 1 { "s" } else { "" },
                    step.inputs.join(", ")
                ),
            ));
        }
    }
    if let Some(extra) = raw.inputs.keys().find(|i| !step.inputs.contains(&i.as_str())) {
        return Err(invalid(
            key,
            format!("{uses} has no input '{extra}' (it reads: {})", step.inputs.join(", ")),
        ));
    }
    Ok(step)
}

fn convert_step(name: &str, raw: &RawStep, root: &Path) -> Result<Step, ManifestError> {
    let key = |k: &str| format!("steps.{name}.{k}");
    let library = raw
        .uses
        .as_deref()
        .map(|uses| library_step(&key("uses"), uses, raw))
        .transpose()?;
    // A library step's outputs are its own unless the manifest lists them.
    let library_outputs: Vec<RawOutput>;
    let raw_outputs = match library {
        Some(step) if raw.outputs.is_empty() => {
            library_outputs = step
                .outputs
                .iter()
                .map(|(name, media_type)| RawOutput::Full {
                    name: name.to_string(),
                    media_type: Some(media_type.to_string()),
                })
                .collect();
            &library_outputs
        }
        _ => &raw.outputs,
    };
    let mut outputs = Vec::new();
    let mut seen = BTreeSet::new();
    for output in raw_outputs {
        let (name, media_type) = match output {
            RawOutput::Name(n) => (n.clone(), None),
            RawOutput::Full { name, media_type } => (name.clone(), media_type.clone()),
        };
        if !valid_name(&name) {
            return Err(invalid(
                key("outputs"),
                format!("'{name}' is not a valid output name (letters, digits, '_' or '-')"),
            ));
        }
        if !seen.insert(name.clone()) {
            return Err(invalid(key("outputs"), format!("output '{name}' is declared twice")));
        }
        outputs.push(OutputSpec { name, media_type });
    }
    let mut inputs = Vec::new();
    for (input, source) in &raw.inputs {
        if !valid_name(input) {
            return Err(invalid(
                key(&format!("inputs.{input}")),
                "input names are letters, digits, '_' or '-'",
            ));
        }
        let (left, right) = source.split_once('.').ok_or_else(|| {
            invalid(
                key(&format!("inputs.{input}")),
                format!("'{source}' must be 'step.output' or 'inputs.name'"),
            )
        })?;
        let source = if left == "inputs" {
            InputSource::External(right.to_string())
        } else {
            InputSource::Step {
                step: left.to_string(),
                output: right.to_string(),
            }
        };
        inputs.push((input.clone(), source));
    }
    let params = serde_json::to_value(&raw.params).map_err(|e| invalid(key("params"), e.to_string()))?;
    let size = |name: &str, text: &Option<String>| text.as_deref().map(|t| parse_size(&key(name), t)).transpose();
    let mut limits = StepLimits::default();
    let sandbox = &mut limits.sandbox;
    if let Some(bytes) = size("limits.memory", &raw.limits.memory)? {
        sandbox.memory_bytes = bytes;
    }
    if let Some(text) = &raw.limits.timeout {
        sandbox.timeout = parse_duration(&key("limits.timeout"), text)?;
    }
    if let Some(bytes) = size("limits.max_log", &raw.limits.max_log)? {
        sandbox.max_log_bytes = bytes as usize;
    }
    if let Some(bytes) = size("limits.max_output", &raw.limits.max_output)? {
        limits.max_output_bytes = bytes;
    }
    if let Some(bytes) = size("limits.max_tmp", &raw.limits.max_tmp)? {
        limits.max_tmp_bytes = bytes;
    }
    if limits.sandbox.memory_bytes < 64 * 1024 || limits.sandbox.memory_bytes > 4 << 30 {
        return Err(invalid(
            key("limits.memory"),
            "must be between 64KiB and 4GiB (the most a 32-bit WebAssembly memory can hold)",
        ));
    }
    if limits.sandbox.timeout.is_zero() {
        return Err(invalid(key("limits.timeout"), "must be more than zero"));
    }
    if limits.sandbox.max_log_bytes > MAX_LOG_BYTES {
        return Err(invalid(
            key("limits.max_log"),
            "must be at most 64MiB (the host keeps a step's logs in memory while it runs)",
        ));
    }
    let retry = match &raw.retry {
        None => Retry::default(),
        Some(r) => {
            if r.max > 10 {
                return Err(invalid(key("retry.max"), "at most 10 retries"));
            }
            Retry {
                max: r.max,
                backoff: r
                    .backoff
                    .as_deref()
                    .map(|t| parse_duration(&key("retry.backoff"), t))
                    .transpose()?
                    .unwrap_or(Duration::from_secs(1)),
            }
        }
    };
    // A Python or JavaScript source folder, and how it builds.
    let source = match (&raw.python, &raw.js, &raw.c) {
        (Some(dir), None, None) => Some((root.join(dir), BuildSpec::Python(root.join(dir)))),
        (None, Some(dir), None) => Some((root.join(dir), BuildSpec::Js(root.join(dir)))),
        (None, None, Some(dir)) => Some((root.join(dir), BuildSpec::C(root.join(dir)))),
        (None, None, None) => None,
        _ => {
            return Err(invalid(
                key("python"),
                "a step has one of `python`, `js` or `c`, not several",
            ))
        }
    };
    let (component, build) = match (&raw.component, &raw.build, source) {
        _ if library.is_some() => {
            let step = library.expect("checked");
            let dir = weft_library::default_dir().map_err(|e| invalid(key("uses"), e.to_string()))?;
            let path = step
                .materialize(&dir)
                .map_err(|e| invalid(key("uses"), e.to_string()))?;
            (path, None)
        }
        (Some(component), build, None) => (root.join(component), build.clone().map(BuildSpec::Command)),
        (component, None, Some((dir, spec))) => {
            let component = component
                .as_ref()
                .map(|c| root.join(c))
                .unwrap_or_else(|| dir.join("build/step.wasm"));
            (component, Some(spec))
        }
        (None, _, None) => {
            return Err(invalid(
                key("component"),
                "a step needs `component` (a .wasm file), or `python`/`js`/`c` (the folder of its source)",
            ))
        }
        (_, Some(_), Some(_)) => {
            return Err(invalid(
                key("build"),
                "`build` is for `component` steps; a `python`, `js` or `c` step is built by weft",
            ))
        }
    };
    let mut env = Vec::with_capacity(raw.env.len());
    for (name, value) in &raw.env {
        let valid = !name.is_empty()
            && name.len() <= 256
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !name.as_bytes()[0].is_ascii_digit();
        if !valid {
            return Err(invalid(
                key(&format!("env.{name}")),
                "an environment variable name is letters, digits and '_', not starting with a digit (at most 256)",
            ));
        }
        if value.contains('\0') || value.len() > 32 * 1024 {
            return Err(invalid(
                key(&format!("env.{name}")),
                "a value is at most 32 KiB and holds no NUL character",
            ));
        }
        env.push((name.clone(), value.clone()));
    }
    if let Err((field, message)) = raw.resources.validate() {
        return Err(invalid(key(&format!("resources.{field}")), message));
    }
    if let Some(orchestrator) = &raw.orchestrator {
        if !valid_name(orchestrator) {
            return Err(invalid(key("orchestrator"), "an orchestrator's name, e.g. slurm"));
        }
    }
    Ok(Step {
        name: name.to_string(),
        component,
        build,
        inputs,
        outputs,
        params,
        limits,
        retry,
        cache: raw.cache,
        nondeterministic: raw.nondeterministic,
        env,
        hooks: Hooks {
            on_failure: plugin_names(&key("on_failure"), &raw.on_failure)?,
            on_success: plugin_names(&key("on_success"), &raw.on_success)?,
        },
        orchestrator: raw.orchestrator.clone(),
        resources: raw.resources.clone(),
    })
}

/// Kahn's algorithm; on a cycle, names one.
fn topological_order(steps: &BTreeMap<String, Step>) -> Result<Vec<String>, ManifestError> {
    let mut indegree: HashMap<&str, usize> = steps.keys().map(|k| (k.as_str(), 0)).collect();
    let mut downstream: HashMap<&str, Vec<&str>> = HashMap::new();
    for step in steps.values() {
        let ups: BTreeSet<&str> = step
            .inputs
            .iter()
            .filter_map(|(_, s)| match s {
                InputSource::Step { step, .. } => Some(step.as_str()),
                InputSource::External(_) => None,
            })
            .collect();
        for up in ups {
            *indegree.entry(step.name.as_str()).or_default() += 1;
            downstream.entry(up).or_default().push(step.name.as_str());
        }
    }
    let mut ready: Vec<&str> = steps.keys().map(|k| k.as_str()).filter(|k| indegree[k] == 0).collect();
    let mut order = Vec::new();
    while let Some(name) = ready.pop() {
        order.push(name.to_string());
        for next in downstream.get(name).into_iter().flatten() {
            let d = indegree.get_mut(next).expect("every step has an indegree");
            *d -= 1;
            if *d == 0 {
                ready.push(next);
            }
        }
        ready.sort_by(|a, b| b.cmp(a));
    }
    if order.len() == steps.len() {
        return Ok(order);
    }
    // Walk upstream from any step left over until a name repeats.
    let left: BTreeSet<&str> = indegree.iter().filter(|(_, d)| **d > 0).map(|(k, _)| *k).collect();
    let mut path = vec![*left.iter().next().expect("a cycle has a step")];
    loop {
        let current = path[path.len() - 1];
        let next = steps[current]
            .inputs
            .iter()
            .find_map(|(_, s)| match s {
                InputSource::Step { step, .. } if left.contains(step.as_str()) => Some(step.as_str()),
                _ => None,
            })
            .expect("a step in a cycle has an upstream in it");
        if let Some(pos) = path.iter().position(|p| *p == next) {
            let mut cycle: Vec<&str> = path[pos..].to_vec();
            cycle.reverse();
            cycle.push(cycle[0]);
            return Err(ManifestError::Cycle(cycle.join(" -> ")));
        }
        path.push(next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Manifest, ManifestError> {
        Manifest::parse(text, Path::new("/project"))
    }

    const GOOD: &str = r#"
        [pipeline]
        name = "p"
        [inputs]
        raw = { path = "data.csv" }
        [steps.b]
        component = "b.wasm"
        inputs = { x = "a.out" }
        outputs = ["out"]
        params = { lr = 0.1, epochs = 10, name = "x", on = true }
        [steps.a]
        component = "a.wasm"
        inputs = { data = "inputs.raw" }
        outputs = ["out"]
    "#;

    #[test]
    fn orders_steps_and_resolves_paths() {
        let m = parse(GOOD).unwrap();
        let names: Vec<_> = m.steps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(m.steps[0].component, Path::new("/project/a.wasm"));
        assert_eq!(m.inputs[0].path, Path::new("/project/data.csv"));
    }

    #[test]
    fn errors_name_the_key() {
        let cycle = GOOD.replace(r#"inputs = { data = "inputs.raw" }"#, r#"inputs = { data = "b.out" }"#);
        assert_eq!(
            parse(&cycle).unwrap_err().to_string(),
            "steps form a cycle: b -> a -> b"
        );
        let unknown = GOOD.replace("a.out", "nope.out");
        assert!(parse(&unknown)
            .unwrap_err()
            .to_string()
            .starts_with("steps.b.inputs.x: no step named 'nope'"));
        let bad_output = GOOD.replace("a.out", "a.missing");
        assert!(parse(&bad_output)
            .unwrap_err()
            .to_string()
            .contains("step 'a' has no output 'missing'"));
        let bad_external = GOOD.replace("inputs.raw", "inputs.other");
        assert!(parse(&bad_external)
            .unwrap_err()
            .to_string()
            .contains("'inputs.other' is not declared"));
        let dup = format!("{GOOD}\n[steps.a]\ncomponent = \"x\"\n");
        let err = parse(&dup).unwrap_err().to_string();
        assert!(err.contains("duplicate key") && err.contains('a'), "{err}");
        let bad_limit = GOOD.replace(
            r#"outputs = ["out"]
        params"#,
            r#"outputs = ["out"]
        limits = { memory = "lots" }
        params"#,
        );
        assert!(parse(&bad_limit)
            .unwrap_err()
            .to_string()
            .starts_with("steps.b.limits.memory"));
        let unknown_field = GOOD.replace("[steps.a]", "[steps.a]\ncomponnet = 1");
        assert!(parse(&unknown_field).unwrap_err().to_string().contains("componnet"));
    }

    #[test]
    fn overrides_keep_types() {
        let mut m = parse(GOOD).unwrap();
        let o = |s: &str| s.parse::<ParamOverride>().unwrap();
        m.apply_overrides(&[
            o("b.lr=0.5"),
            o("b.epochs=20"),
            o("b.name=y z"),
            o("b.on=false"),
            o("b.lr=1"),
        ])
        .unwrap();
        assert_eq!(m.steps[1].params["lr"], serde_json::json!(1.0));
        assert_eq!(m.steps[1].params["epochs"], serde_json::json!(20));
        assert_eq!(m.steps[1].params["name"], serde_json::json!("y z"));
        let err = m.apply_overrides(&[o("b.epochs=abc")]).unwrap_err().to_string();
        assert_eq!(
            err,
            "steps.b.params.epochs: 'abc' is not a value, but the param is an integer"
        );
        let err = m.apply_overrides(&[o("b.epochs=1.5")]).unwrap_err().to_string();
        assert!(err.contains("is a float, but the param is an integer"), "{err}");
        assert!(m
            .apply_overrides(&[o("b.nope=1")])
            .unwrap_err()
            .to_string()
            .contains("has no param 'nope'"));
        assert!(m
            .apply_overrides(&[o("zz.lr=1")])
            .unwrap_err()
            .to_string()
            .contains("no step named 'zz'"));
    }
}

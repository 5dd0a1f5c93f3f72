//! Registered pipelines: a weft.toml kept in the metadata store with every
//! component and external input pinned by digest in the artifact store, so
//! that a server (an API call, a cron schedule) can start a run of it
//! without the project's source tree, build outputs or data files.
//!
//! [`register`] archives what the manifest names and records a new version
//! of the pipeline's definition; [`materialize`] places the pinned files in
//! a directory (hard links into a local store, no copy) and gives back the
//! manifest pointing at them, ready for [`crate::Executor::run`].

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use weft_artifacts::{ArtifactKind, ArtifactStore};
use weft_store::{PipelineDefinition, Store};

use crate::{ExecError, Manifest, ParamOverride};

/// What a definition pins: components by step, external inputs by name.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Pins {
    /// Step name → component digest.
    pub components: BTreeMap<String, String>,
    /// Input name → its stored bytes.
    pub inputs: BTreeMap<String, PinnedInput>,
    /// Model name → the digest of the component serving it (`served_by`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub servers: BTreeMap<String, String>,
}

/// An external input as registered.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PinnedInput {
    pub digest: String,
    /// `file` or `dir`.
    pub kind: String,
    /// The file or directory name it had (its extension can give its media
    /// type).
    pub file_name: String,
}

/// Archives the components and external inputs of the manifest at
/// `manifest_path` and records them as the newest definition of its
/// pipeline. The components must be built.
pub async fn register(
    manifest_path: &Path,
    store: &Store,
    artifacts: &ArtifactStore,
) -> Result<PipelineDefinition, ExecError> {
    let text = std::fs::read_to_string(manifest_path)
        .map_err(|e| ExecError::Io(format!("reading {}: {e}", manifest_path.display())))?;
    let manifest = Manifest::load(manifest_path).map_err(|e| ExecError::Io(e.to_string()))?;
    manifest.check_files().map_err(|e| ExecError::Io(e.to_string()))?;
    let mut pins = Pins::default();
    for step in &manifest.steps {
        let bytes = weft_runtime::read_component(&step.component).map_err(|e| ExecError::Io(e.to_string()))?;
        let digest = archive_component(artifacts, bytes, || format!("the component of step '{}'", step.name)).await?;
        pins.components.insert(step.name.clone(), digest);
    }
    for model in &manifest.models {
        let Some(path) = &model.served_by else { continue };
        let bytes = weft_runtime::read_component(path).map_err(|e| ExecError::Io(e.to_string()))?;
        let digest = archive_component(artifacts, bytes, || format!("the model server of '{}'", model.name)).await?;
        pins.servers.insert(model.name.clone(), digest);
    }
    for input in &manifest.inputs {
        let stored = artifacts
            .ingest(&input.path, u64::MAX)
            .await
            .map_err(|source| ExecError::Ingest {
                what: format!("inputs.{} ({})", input.name, input.path.display()),
                source,
            })?;
        let file_name = input
            .path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or(&input.name)
            .to_string();
        pins.inputs.insert(
            input.name.clone(),
            PinnedInput {
                digest: stored.digest,
                kind: stored.kind.as_str().to_string(),
                file_name,
            },
        );
    }
    let pins = serde_json::to_string(&pins).map_err(|e| ExecError::Io(e.to_string()))?;
    Ok(store.register_definition(&manifest.name, &text, &pins).await?)
}

/// Keeps a component's bytes in the artifact store (once: they are named by
/// their digest) and returns that digest; `what` names it in errors.
pub(crate) async fn archive_component(
    artifacts: &ArtifactStore,
    bytes: Vec<u8>,
    what: impl FnOnce() -> String,
) -> Result<String, ExecError> {
    let digest = weft_runtime::component_digest(&bytes);
    if !artifacts.contains(&digest, ArtifactKind::File).await.unwrap_or(false) {
        artifacts
            .put_bytes(bytes.into())
            .await
            .map_err(|source| ExecError::Ingest { what: what(), source })?;
    }
    Ok(digest)
}

/// The archived component `digest` as `DIR/<digest>.wasm` (placed once);
/// `what` names it in errors.
async fn place_component(
    artifacts: &ArtifactStore,
    dir: &Path,
    digest: &str,
    what: impl FnOnce() -> String,
) -> Result<std::path::PathBuf, ExecError> {
    let path = dir.join(format!("{digest}.wasm"));
    if !path.exists() {
        artifacts
            .materialize(digest, ArtifactKind::File, &path)
            .await
            .map_err(|source| ExecError::Ingest { what: what(), source })?;
    }
    Ok(path)
}

/// Places the pinned components and inputs of `definition` under `dir`
/// (created; it should be empty) and returns its manifest pointing at them,
/// with `params` (`{"step.param": value}`) applied.
pub async fn materialize(
    definition: &PipelineDefinition,
    params: &Value,
    artifacts: &ArtifactStore,
    dir: &Path,
) -> Result<Manifest, ExecError> {
    let broken = |what: String| {
        ExecError::Io(format!(
            "the registered definition {} of pipeline '{}' is broken: {what}; register it again",
            definition.version, definition.pipeline
        ))
    };
    let pins: Pins = serde_json::from_str(&definition.pins).map_err(|e| broken(e.to_string()))?;
    let mut manifest = Manifest::parse(&definition.manifest, dir).map_err(|e| broken(e.to_string()))?;
    manifest
        .apply_overrides(&overrides(params)?)
        .map_err(|e| ExecError::Io(format!("invalid param: {e}")))?;
    let io = |what: &Path, e: std::io::Error| ExecError::Io(format!("creating {}: {e}", what.display()));
    let components = dir.join("components");
    std::fs::create_dir_all(&components).map_err(|e| io(&components, e))?;
    for step in &mut manifest.steps {
        let digest = pins
            .components
            .get(&step.name)
            .ok_or_else(|| broken(format!("step '{}' has no pinned component", step.name)))?;
        step.component = place_component(artifacts, &components, digest, || {
            format!("the archived component of step '{}'", step.name)
        })
        .await?;
        step.build = None;
    }
    for model in &mut manifest.models {
        if model.served_by.is_none() {
            continue;
        }
        let digest = pins
            .servers
            .get(&model.name)
            .ok_or_else(|| broken(format!("the server of model '{}' is not pinned", model.name)))?;
        let path = place_component(artifacts, &components, digest, || {
            format!("the archived server of model '{}'", model.name)
        })
        .await?;
        model.served_by = Some(path);
    }
    for input in &mut manifest.inputs {
        let pin = pins
            .inputs
            .get(&input.name)
            .ok_or_else(|| broken(format!("input '{}' is not pinned", input.name)))?;
        let kind = ArtifactKind::parse(&pin.kind).ok_or_else(|| broken(format!("input kind '{}'", pin.kind)))?;
        if !is_plain_name(&pin.file_name) {
            return Err(broken(format!("input file name '{}'", pin.file_name)));
        }
        let parent = dir.join("inputs").join(&input.name);
        std::fs::create_dir_all(&parent).map_err(|e| io(&parent, e))?;
        let path = parent.join(&pin.file_name);
        artifacts
            .materialize(&pin.digest, kind, &path)
            .await
            .map_err(|source| ExecError::Ingest {
                what: format!("the registered inputs.{}", input.name),
                source,
            })?;
        input.path = path;
    }
    Ok(manifest)
}

/// `{"step.param": value}` as overrides: a string is taken as it is,
/// anything else as its JSON text (which parses as the same TOML value).
pub fn overrides(params: &Value) -> Result<Vec<ParamOverride>, ExecError> {
    let bad = |m: String| ExecError::Io(format!("invalid params: {m}"));
    let map = match params {
        Value::Null => return Ok(Vec::new()),
        Value::Object(map) => map,
        _ => return Err(bad("params must be an object {\"step.param\": value}".into())),
    };
    map.iter()
        .map(|(target, value)| {
            let (step, key) = target
                .split_once('.')
                .ok_or_else(|| bad(format!("'{target}' is not step.param")))?;
            let value = match value {
                Value::String(s) => s.clone(),
                Value::Object(_) | Value::Null => {
                    return Err(bad(format!(
                        "'{target}': a value must be a string, number, boolean or array"
                    )))
                }
                other => other.to_string(),
            };
            Ok(ParamOverride {
                step: step.to_string(),
                key: key.to_string(),
                value,
            })
        })
        .collect()
}

/// One normal path component: no separator, no `..`, not empty.
pub(crate) fn is_plain_name(name: &str) -> bool {
    let mut parts = Path::new(name).components();
    matches!(parts.next(), Some(std::path::Component::Normal(_))) && parts.next().is_none() && !name.contains('\\')
}

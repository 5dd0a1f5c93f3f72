//! Registering artifacts as model versions, and the hook that registers
//! the outputs a manifest names under `[models]` after each successful run.
//!
//! A version may name the component that serves it (`weft serve`): the
//! component is archived in the artifact store and its digest kept in the
//! version's tag `weft.served_by` ([`weft_store::SERVED_BY_TAG`]).

use std::path::Path;

use futures::future::BoxFuture;
use weft_artifacts::{ArtifactKind, ArtifactStore};
use weft_store::{status, ModelVersion, Store, SERVED_BY_TAG};

use crate::executor::{Event, RunOutcome};
use crate::hooks::{HookContext, RunHook};
use crate::ExecError;

/// Registers an artifact (id, prefix, `name` or `name:version`) as the next
/// version of model `name`, with its files (a directory artifact: each file
/// under the model; a file: the artifact's last name segment). The same
/// bytes as the newest version register as that version. With `served_by`,
/// that model server component is archived and named by the version.
pub async fn register_model(
    store: &Store,
    artifacts: &ArtifactStore,
    artifact_key: &str,
    name: &str,
    served_by: Option<&Path>,
) -> Result<ModelVersion, ExecError> {
    weft_store::validate_model_name(name).map_err(ExecError::Io)?;
    let server = read_server(name, served_by)?;
    let artifact = store.artifact(artifact_key).await?;
    let files: Vec<(String, String, i64)> = match ArtifactKind::parse(&artifact.kind) {
        Some(ArtifactKind::Dir) => artifacts
            .tree(&artifact.digest)
            .await
            .map_err(|e| ExecError::Io(format!("reading the files of {}: {e}", artifact.name)))?
            .entries
            .into_iter()
            .map(|e| (e.path, e.digest, e.size as i64))
            .collect(),
        _ => {
            let file = artifact.name.rsplit('/').next().unwrap_or(&artifact.name).to_string();
            vec![(file, artifact.digest.clone(), artifact.size)]
        }
    };
    let version = store.register_artifact(&artifact.id, name, &files).await?;
    attach_server(store, artifacts, version, server).await
}

/// Registers a file made outside weft (a model trained elsewhere, e.g. an
/// ONNX export) as the next version of model `name`: its bytes are stored
/// in the artifact store, and the version is tagged with their digest
/// like any weft artifact. The same bytes as the newest version register
/// as that version. With `served_by`, as in [`register_model`].
pub async fn register_model_file(
    store: &Store,
    artifacts: &ArtifactStore,
    path: &Path,
    name: &str,
    served_by: Option<&Path>,
) -> Result<ModelVersion, ExecError> {
    weft_store::validate_model_name(name).map_err(ExecError::Io)?;
    let server = read_server(name, served_by)?;
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| ExecError::Io(format!("{} does not name a file", path.display())))?;
    // Refused before anything is copied into the store.
    if path.is_dir() {
        return Err(ExecError::Io(format!(
            "{} is a directory; register a model file (directory models cannot be served yet)",
            path.display()
        )));
    }
    let stored = artifacts
        .ingest(path, u64::MAX)
        .await
        .map_err(|e| ExecError::Io(format!("storing {}: {e}", path.display())))?;
    if stored.kind != ArtifactKind::File {
        return Err(ExecError::Io(format!("{} is not a file", path.display())));
    }
    let size = i64::try_from(stored.size).unwrap_or(i64::MAX);
    let version = store.register_file(name, file_name, &stored.digest, size).await?;
    attach_server(store, artifacts, version, server).await
}

/// Reads the model server component first: a missing one fails before
/// anything is registered.
fn read_server(name: &str, served_by: Option<&Path>) -> Result<Option<Vec<u8>>, ExecError> {
    served_by
        .map(|path| {
            weft_runtime::read_component(path).map_err(|e| ExecError::Io(format!("the model server of '{name}': {e}")))
        })
        .transpose()
}

/// Archives the model server and names it in the version's tags.
async fn attach_server(
    store: &Store,
    artifacts: &ArtifactStore,
    mut version: ModelVersion,
    server: Option<Vec<u8>>,
) -> Result<ModelVersion, ExecError> {
    if let Some(bytes) = server {
        let name = version.name.clone();
        let digest =
            crate::registered::archive_component(artifacts, bytes, || format!("the model server of '{name}'")).await?;
        store
            .model_version_tag(&name, version.version, SERVED_BY_TAG, Some(&digest))
            .await?;
        version.tags.retain(|(k, _)| k != SERVED_BY_TAG);
        version.tags.push((SERVED_BY_TAG.to_string(), digest));
    }
    Ok(version)
}

/// Registers the outputs named under `[models]` after a successful run.
pub struct ModelRegistration;

impl RunHook for ModelRegistration {
    fn run_finished<'a>(&'a self, run: &'a HookContext<'a>, outcome: &'a RunOutcome) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if outcome.status != status::SUCCEEDED || run.manifest.models.is_empty() {
                return;
            }
            let step_runs = match run.store.step_runs(run.run_id).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("registering the models of run {}: {e}", run.run_id);
                    return;
                }
            };
            for model in &run.manifest.models {
                let Some(step_run) = step_runs.iter().find(|s| s.step_name == model.step) else {
                    continue;
                };
                let registered = async {
                    let outputs = run.store.step_run_outputs(&step_run.id).await?;
                    let Some(link) = outputs.iter().find(|l| l.slot == model.output) else {
                        return Ok(None);
                    };
                    let served_by = model.served_by.as_deref();
                    register_model(run.store, run.artifacts, &link.artifact.id, &model.name, served_by)
                        .await
                        .map(Some)
                };
                match registered.await {
                    Ok(Some(version)) => (run.on_event)(Event::ModelRegistered {
                        model: model.name.clone(),
                        version: version.version,
                        source: format!("{}.{}", model.step, model.output),
                    }),
                    Ok(None) => {}
                    Err(e) => (run.on_event)(Event::ModelNotRegistered {
                        model: model.name.clone(),
                        error: e.to_string(),
                    }),
                }
            }
        })
    }
}

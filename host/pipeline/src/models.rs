//! Registering artifacts as model versions, and the hook that registers
//! the outputs a manifest names under `[models]` after each successful run.

use futures::future::BoxFuture;
use weft_artifacts::{ArtifactKind, ArtifactStore};
use weft_store::{status, ModelVersion, Store};

use crate::executor::{Event, RunOutcome};
use crate::hooks::{HookContext, RunHook};
use crate::ExecError;

/// Registers an artifact (id, prefix, `name` or `name:version`) as the next
/// version of model `name`, with its files (a directory artifact: each file
/// under the model; a file: the artifact's last name segment). The same
/// bytes as the newest version register as that version.
pub async fn register_model(
    store: &Store,
    artifacts: &ArtifactStore,
    artifact_key: &str,
    name: &str,
) -> Result<ModelVersion, ExecError> {
    weft_store::validate_model_name(name).map_err(ExecError::Io)?;
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
    Ok(store.register_artifact(&artifact.id, name, &files).await?)
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
            for (model, step, output) in &run.manifest.models {
                let Some(step_run) = step_runs.iter().find(|s| &s.step_name == step) else {
                    continue;
                };
                let registered = async {
                    let outputs = run.store.step_run_outputs(&step_run.id).await?;
                    let Some(link) = outputs.iter().find(|l| &l.slot == output) else {
                        return Ok(None);
                    };
                    register_model(run.store, run.artifacts, &link.artifact.id, model)
                        .await
                        .map(Some)
                };
                match registered.await {
                    Ok(Some(version)) => (run.on_event)(Event::ModelRegistered {
                        model: model.clone(),
                        version: version.version,
                        source: format!("{step}.{output}"),
                    }),
                    Ok(None) => {}
                    Err(e) => (run.on_event)(Event::ModelNotRegistered {
                        model: model.clone(),
                        error: e.to_string(),
                    }),
                }
            }
        })
    }
}

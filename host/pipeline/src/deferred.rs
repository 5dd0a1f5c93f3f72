//! Step runs handed to a worker before their upstream step runs finished.
//!
//! On an orchestrator that can hold a job until others succeed (Slurm's
//! `--dependency=afterok`), a run submits a step as soon as every step it
//! reads from is submitted there too, instead of waiting for their outputs:
//! the whole DAG is queued at the cluster at once, and a step starts the
//! moment its inputs exist, with no round trip through the submitting
//! process. Its cache key needs its inputs' digests, which nobody knows
//! yet, so the step run is prepared *deferred* ([`Deferred`]): the sandbox
//! spec without those inputs, and where they will come from. The worker
//! that runs once the upstream jobs succeeded completes the spec from the
//! upstream step runs' recorded outputs, records it, looks the completed
//! key up in the cache, and executes the step only on a miss.

use serde::{Deserialize, Serialize};
use weft_artifacts::ArtifactKind;
use weft_store::{status, Store};

use crate::cache_key::{SpecInput, StepSpec};
use crate::ExecError;

/// What a deferred step run's worker needs besides the stores (recorded
/// as JSON with the step run).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Deferred {
    /// The sandbox spec, without the inputs in [`Deferred::upstream`].
    pub spec: StepSpec,
    /// The artifacts of the inputs known when it was handed out:
    /// `(input name, artifact id)`.
    pub known: Vec<(String, String)>,
    /// The inputs its upstream step runs produce.
    pub upstream: Vec<UpstreamInput>,
    /// Whether it may be served from the cache (its step is cached, the
    /// run is not `--no-cache`, and it is not nondeterministic).
    pub lookup: bool,
    /// Whether imported step runs may serve it unverified (the stack's
    /// setting, as the run had it).
    pub trust_imported: bool,
}

/// One input of a deferred step run that an upstream step run produces.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct UpstreamInput {
    /// The input's name in this step.
    pub input: String,
    /// The upstream step's name (for messages).
    pub step: String,
    /// The upstream step run of the same run.
    pub step_run: String,
    /// Its output read here.
    pub output: String,
}

/// A deferred step run's spec, completed.
#[derive(Debug)]
pub(crate) struct Completed {
    pub spec: StepSpec,
    /// `(input name, artifact id)` of every input.
    pub input_ids: Vec<(String, String)>,
}

impl Deferred {
    pub(crate) fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub(crate) fn from_json(text: &str) -> Result<Self, ExecError> {
        serde_json::from_str(text).map_err(|e| {
            ExecError::Io(format!(
                "the recorded deferred spec of this step run is unreadable: {e}"
            ))
        })
    }

    /// The spec completed from the upstream step runs' outputs; `Err`
    /// with the reason when one of them has not succeeded (yet).
    pub(crate) async fn complete(&self, store: &Store) -> Result<Result<Completed, String>, ExecError> {
        let mut spec = self.spec.clone();
        let mut input_ids = self.known.clone();
        for up in &self.upstream {
            let upstream = store.step_run(&up.step_run).await?;
            if upstream.status != status::SUCCEEDED && upstream.status != status::CACHED {
                let now = if upstream.status == status::PENDING || upstream.status == status::RUNNING {
                    format!("has not finished (it is {})", upstream.status)
                } else {
                    format!("did not succeed (it is {})", upstream.status)
                };
                return Ok(Err(format!("upstream step '{}' {now}", up.step)));
            }
            let outputs = store.step_run_outputs(&up.step_run).await?;
            let Some(link) = outputs.into_iter().find(|l| l.slot == up.output) else {
                return Ok(Err(format!(
                    "upstream step '{}' recorded no output '{}'",
                    up.step, up.output
                )));
            };
            let kind = ArtifactKind::parse(&link.artifact.kind).unwrap_or(ArtifactKind::File);
            spec.inputs.push(SpecInput {
                name: up.input.clone(),
                kind,
                digest: link.artifact.digest,
            });
            input_ids.push((up.input.clone(), link.artifact.id));
        }
        spec.inputs.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Ok(Completed { spec, input_ids }))
    }
}

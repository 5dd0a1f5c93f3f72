//! `weft verify`: executes the step runs of a past run again, from the
//! component archived under its digest and the input bytes recorded in its
//! sandbox spec, and compares every output's digest with the recorded one.
//! It needs the metadata and artifact stores only: no manifest, no source
//! tree, no build output.

use weft_artifacts::ArtifactStore;
use weft_runtime::{Cancel, ComponentBytes, Runtime, StepFailure};
use weft_store::{status, verification, OutputCheck, StepRun, Store};

use crate::cache_key::StepSpec;
use crate::executor::hostname;
use crate::recorder::Keep;
use crate::runner::attempt;
use crate::sandbox::SandboxPool;
use crate::ExecError;

/// How re-executing one step run went.
#[derive(Debug, Clone)]
pub struct StepVerification {
    pub step: String,
    pub step_run_id: String,
    /// `match`, `mismatch`, `error`, or `skipped` (not verifiable: it did
    /// not succeed, or it is nondeterministic; not recorded).
    pub outcome: String,
    /// Why, when it is not a match.
    pub message: Option<String>,
    pub outputs: Vec<OutputCheck>,
}

/// Not a verification outcome: the step run is not one to re-execute.
pub const SKIPPED: &str = "skipped";

/// Re-executes past step runs.
pub struct Verifier {
    runtime: Runtime,
    store: Store,
    artifacts: ArtifactStore,
    sandboxes: SandboxPool,
    secrets: Option<weft_secrets::Secrets>,
}

impl Verifier {
    /// A verifier staging its sandboxes under `work_dir`.
    pub fn new(runtime: Runtime, store: Store, artifacts: ArtifactStore, work_dir: &std::path::Path) -> Self {
        let root = work_dir.join(format!("verify-{}", std::process::id()));
        Self {
            runtime,
            store,
            artifacts,
            sandboxes: SandboxPool::new(root),
            secrets: None,
        }
    }

    /// Resolves the secrets a step's `env` refers to from `secrets`.
    pub fn with_secrets(mut self, secrets: Option<weft_secrets::Secrets>) -> Self {
        self.secrets = secrets;
        self
    }

    /// Verifies the step runs of run `run_key` (id, prefix or `latest`),
    /// all of them or those of the named steps, one after the other;
    /// `each` is told of each as it is done. Every re-execution is recorded
    /// with the run.
    pub async fn verify_run(
        &self,
        run_key: &str,
        steps: &[String],
        cancel: &Cancel,
        each: &(dyn Fn(&StepVerification) + Send + Sync),
    ) -> Result<Vec<StepVerification>, ExecError> {
        let run = self.store.run(run_key).await?;
        let step_runs = self.store.step_runs(&run.id).await?;
        for name in steps {
            if !step_runs.iter().any(|s| &s.step_name == name) {
                let known: Vec<&str> = step_runs.iter().map(|s| s.step_name.as_str()).collect();
                return Err(ExecError::Io(format!(
                    "run {} has no step '{name}'; its steps are: {}",
                    run.id,
                    known.join(", ")
                )));
            }
        }
        let host = hostname();
        let mut results = Vec::new();
        for step_run in step_runs
            .iter()
            .filter(|s| steps.is_empty() || steps.contains(&s.step_name))
        {
            if cancel.is_cancelled() {
                break;
            }
            let result = self.verify_step_run(step_run, cancel).await?;
            if result.outcome != SKIPPED {
                self.store
                    .record_verification(
                        &step_run.id,
                        &result.outcome,
                        result.message.as_deref(),
                        &result.outputs,
                        &host,
                    )
                    .await?;
            }
            each(&result);
            results.push(result);
        }
        self.sandboxes.remove_all();
        Ok(results)
    }

    async fn verify_step_run(&self, step_run: &StepRun, cancel: &Cancel) -> Result<StepVerification, ExecError> {
        let verdict = |outcome: &str, message: Option<String>, outputs: Vec<OutputCheck>| StepVerification {
            step: step_run.step_name.clone(),
            step_run_id: step_run.id.clone(),
            outcome: outcome.to_string(),
            message,
            outputs,
        };
        if step_run.status != status::SUCCEEDED && step_run.status != status::CACHED {
            return Ok(verdict(
                SKIPPED,
                Some(format!(
                    "it {}; only a step run that succeeded has outputs to compare",
                    step_run.status
                )),
                Vec::new(),
            ));
        }
        let Some(spec_json) = self.store.step_run_sandbox(&step_run.id).await? else {
            return Ok(verdict(
                verification::ERROR,
                Some("it recorded no sandbox (an older weft ran it): there is nothing to re-execute".into()),
                Vec::new(),
            ));
        };
        let spec = match StepSpec::from_json(&spec_json) {
            Ok(spec) => spec,
            Err(e) => return Ok(verdict(verification::ERROR, Some(e), Vec::new())),
        };
        let key = spec.key();
        if step_run.cache_key.as_deref() != Some(key.as_str()) {
            return Ok(verdict(
                verification::MISMATCH,
                Some("its recorded sandbox does not hash to its cache key (the record was changed)".into()),
                Vec::new(),
            ));
        }
        if spec.nondeterministic {
            return Ok(verdict(
                SKIPPED,
                Some(
                    "it is nondeterministic (real time and randomness): its outputs are not expected to repeat".into(),
                ),
                Vec::new(),
            ));
        }
        let recorded: Vec<(String, String)> = self
            .store
            .step_run_outputs(&step_run.id)
            .await?
            .into_iter()
            .map(|l| (l.slot, l.artifact.digest))
            .collect();
        let checks = |now: &dyn Fn(&str) -> Option<String>| -> Vec<OutputCheck> {
            recorded
                .iter()
                .map(|(name, digest)| OutputCheck {
                    name: name.clone(),
                    recorded: digest.clone(),
                    now: now(name),
                })
                .collect()
        };

        // The component, from the archive, checked against its digest.
        let component = match self.artifacts.get_bytes(&spec.component).await {
            Ok(bytes) => ComponentBytes::new(bytes),
            Err(e) => {
                return Ok(verdict(
                    verification::ERROR,
                    Some(format!("its archived component is not readable: {e}")),
                    checks(&|_| None),
                ))
            }
        };
        if component.digest() != spec.component {
            return Ok(verdict(
                verification::MISMATCH,
                Some(format!(
                    "the archived component no longer hashes to its digest {} (it was changed)",
                    spec.component
                )),
                checks(&|_| None),
            ));
        }
        // Every input, checked against its digest.
        for input in &spec.inputs {
            match self.artifacts.check(&input.digest, input.kind).await {
                Ok(true) => {}
                Ok(false) => {
                    return Ok(verdict(
                        verification::MISMATCH,
                        Some(format!(
                            "input '{}' no longer hashes to its digest {} (its stored bytes were changed or removed)",
                            input.name, input.digest
                        )),
                        checks(&|_| None),
                    ))
                }
                Err(e) => {
                    return Ok(verdict(
                        verification::ERROR,
                        Some(format!("input '{}' cannot be read: {e}", input.name)),
                        checks(&|_| None),
                    ))
                }
            }
        }
        let label = std::path::PathBuf::from(format!("archived component {}", spec.component));
        let loaded = {
            let runtime = self.runtime.clone();
            tokio::task::spawn_blocking(move || runtime.load_component(&label, &component))
                .await
                .map_err(|e| ExecError::Io(format!("loading the component: {e}")))?
        };
        let loaded = match loaded {
            Ok(loaded) => loaded,
            Err(e) => return Ok(verdict(verification::ERROR, Some(e.to_string()), checks(&|_| None))),
        };
        let dirs = self
            .sandboxes
            .take()
            .map_err(|e| ExecError::Io(format!("creating a sandbox directory: {e}")))?;
        let again = attempt(
            &self.artifacts,
            &loaded,
            &dirs,
            &step_run.step_name,
            &spec,
            &key,
            cancel,
            Keep::Hash,
            self.secrets.as_ref(),
        )
        .await;
        self.sandboxes.give(dirs);
        if let Err(failure) = again.result {
            // A pure step that succeeded once succeeds again; a timeout or
            // weft's own trouble says nothing about the step.
            let outcome = match failure {
                StepFailure::TimedOut(_) | StepFailure::Host(_) | StepFailure::Cancelled => verification::ERROR,
                _ => verification::MISMATCH,
            };
            return Ok(verdict(
                outcome,
                Some(format!("the re-execution failed: {failure}")),
                checks(&|_| None),
            ));
        }
        let outputs = checks(&|name| {
            again
                .outputs
                .iter()
                .find(|o| o.name == name)
                .map(|o| o.stored.digest.clone())
        });
        let differ: Vec<&str> = outputs
            .iter()
            .filter(|c| c.now.as_deref() != Some(c.recorded.as_str()))
            .map(|c| c.name.as_str())
            .collect();
        if differ.is_empty() {
            return Ok(verdict(verification::MATCH, None, outputs));
        }
        let mut message = format!(
            "output{} {} differ{}",
            plural(differ.len()),
            differ.join(", "),
            if differ.len() == 1 { "s" } else { "" }
        );
        if spec.host != weft_runtime::STEP_WIT_DIGEST {
            message.push_str(&format!(
                " (it ran under another step contract: wit/step {} then, {} now)",
                short(&spec.host),
                short(weft_runtime::STEP_WIT_DIGEST)
            ));
        }
        Ok(verdict(verification::MISMATCH, Some(message), outputs))
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn short(digest: &str) -> &str {
    &digest[..digest.len().min(12)]
}

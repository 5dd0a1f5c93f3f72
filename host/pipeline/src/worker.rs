//! Step runs executed away from the process that runs the pipeline.
//!
//! The executor, given a [`Dispatcher`], prepares each step run that is
//! not a cache hit (its sandbox spec, its inputs; see
//! [`Store::prepare_step_run`]) and hands its id to the dispatcher, which
//! starts a worker somewhere (`weft step exec`: another process, a Slurm
//! job, a Kubernetes Job). The [`Worker`] needs only the stores: it claims
//! the step run, fetches the archived component and the input blobs by
//! digest, runs the step in the same sandbox with the same limits and
//! records the outcome, exactly as the executor would. A duplicate or late
//! worker finds the step run taken or ended and changes nothing.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use weft_artifacts::{ArtifactKind, ArtifactStore};
use weft_runtime::{Cancel, ComponentBytes, Runtime, StepFailure};
use weft_store::{status, Claim, StepRun, StepRunRecord, Store};

use crate::cache_key::StepSpec;
use crate::executor::Event;
use crate::manifest::{Retry, Step};
use crate::recorder;
use crate::resources::Resources;
use crate::runner::{attempt_in, backoff, sleep_unless_cancelled, Resolved, Retrying, RunContext, StepResult};
use crate::sandbox::SandboxPool;
use crate::ExecError;

/// A step run handed to a [`Dispatcher`].
#[derive(Debug, Clone)]
pub struct StepJob {
    /// The prepared step run a worker is to execute.
    pub step_run_id: String,
    /// The step's name, for the dispatcher's own records (job names).
    pub step: String,
    /// The step's retry policy, applied by the worker.
    pub retry: Retry,
    /// What the step asks of the orchestrator.
    pub resources: Resources,
}

/// The dispatchers of a run: the stack's orchestrator's, for every step,
/// and those of the orchestrators steps name (step operators).
#[derive(Debug, Clone, Default)]
pub struct Dispatchers {
    /// For the steps that name no orchestrator; none: they run in the
    /// run's process.
    pub default: Option<Arc<dyn Dispatcher>>,
    /// By orchestrator name, for the steps that name one (`local`: in the
    /// run's process).
    pub named: BTreeMap<String, Arc<dyn Dispatcher>>,
}

impl Dispatchers {
    /// Where `step` goes: `None`, this process.
    pub(crate) fn for_step(&self, step: &Step) -> Result<Option<&Arc<dyn Dispatcher>>, ExecError> {
        match step.orchestrator.as_deref() {
            None => Ok(self.default.as_ref()),
            Some("local") => Ok(None),
            Some(name) => self.named.get(name).map(Some).ok_or_else(|| {
                ExecError::Io(format!(
                    "step '{}' runs on orchestrator '{name}', which this run was not given",
                    step.name
                ))
            }),
        }
    }
}

/// Where the executor sends the steps it does not serve from the cache.
pub trait Dispatcher: Send + Sync + std::fmt::Debug {
    /// Has a worker execute `job` and returns once that worker is gone.
    /// The worker records the outcome; an `Err` says why no worker could
    /// run or why it ended without recording (the executor records that
    /// against the step run). `cancel` set: stop the worker.
    fn dispatch<'a>(
        &'a self,
        job: &'a StepJob,
        cancel: &'a Cancel,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

    /// How many steps a run hands it at once when neither the manifest
    /// nor the command line says: `None`, as many as this machine has
    /// cores (its workers share them); a cluster's jobs do not.
    fn default_parallel(&self) -> Option<usize> {
        None
    }
}

/// The tag of a step run that a worker executed: which one
/// (`HOST pid PID`).
pub const WORKER_TAG: &str = "weft.worker";

fn worker_name() -> String {
    format!("{} pid {}", crate::executor::hostname(), std::process::id())
}

/// How a worker's turn at a step run went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerOutcome {
    /// It executed the step run and recorded this status.
    Recorded { status: String, error: Option<String> },
    /// Another worker had it, or it had ended (its status): nothing changed.
    AlreadyTaken(String),
}

/// Executes prepared step runs (`weft step exec`).
pub struct Worker {
    runtime: Runtime,
    store: Store,
    artifacts: ArtifactStore,
    sandboxes: SandboxPool,
    secrets: Option<weft_secrets::Secrets>,
}

impl Worker {
    /// A worker staging its sandboxes under `work_dir`.
    pub fn new(runtime: Runtime, store: Store, artifacts: ArtifactStore, work_dir: &std::path::Path) -> Self {
        Self {
            runtime,
            store,
            artifacts,
            sandboxes: SandboxPool::new(work_dir.join(format!("worker-{}", std::process::id()))),
            secrets: None,
        }
    }

    /// Resolves the secrets a step's `env` refers to from `secrets`.
    pub fn with_secrets(mut self, secrets: Option<weft_secrets::Secrets>) -> Self {
        self.secrets = secrets;
        self
    }

    /// Claims step run `id`, executes it with `retry` and records it.
    /// Fails only if the step run does not exist, was never prepared, or
    /// the store cannot be reached; a failure of the step, or of loading
    /// its archived component, is recorded as the step run's.
    pub async fn exec(&self, id: &str, retry: &Retry, cancel: &Cancel) -> Result<WorkerOutcome, ExecError> {
        let step_run = self.store.step_run(id).await?;
        let claim = match self.store.claim_step_run(id).await? {
            Claim::Claimed(claim) => claim,
            Claim::Taken(status) => return Ok(WorkerOutcome::AlreadyTaken(status)),
            Claim::NotPrepared => {
                return Err(ExecError::Io(format!(
                    "step run {id} ({}) was not prepared for a worker: only a run whose stack hands steps to \
                     workers prepares them",
                    step_run.step_name
                )))
            }
        };
        let mut record = match self.run(&step_run, retry, cancel).await {
            Ok(record) => record,
            // Interrupted while it was being set up (the signal reached
            // its compiler process too): cancelled, not failed.
            Err(_) if cancel.is_cancelled() => StepRunRecord {
                status: status::CANCELLED.into(),
                error: Some(StepFailure::Cancelled.to_string()),
                attempts: 1,
                ..Default::default()
            },
            Err(e) => StepRunRecord {
                status: status::FAILED.into(),
                error: Some(format!("weft could not run this step: {e}")),
                attempts: 1,
                ..Default::default()
            },
        };
        record.ended_at = Some(weft_store::now_ms());
        self.sandboxes.remove_all();
        let recorded = self
            .store
            .finish_claimed_step_run(&step_run.run_id, id, &claim, &record)
            .await?;
        if !recorded {
            let now = self.store.step_run(id).await?;
            return Ok(WorkerOutcome::AlreadyTaken(now.status));
        }
        Ok(WorkerOutcome::Recorded {
            status: record.status,
            error: record.error,
        })
    }

    /// Executes a claimed step run, returning its record.
    async fn run(&self, step_run: &StepRun, retry: &Retry, cancel: &Cancel) -> Result<StepRunRecord, ExecError> {
        let pipeline = self.store.run(&step_run.run_id).await?.pipeline;
        let spec_json = self
            .store
            .step_run_sandbox(&step_run.id)
            .await?
            .ok_or_else(|| ExecError::Io("it has no sandbox spec".into()))?;
        let spec = StepSpec::from_json(&spec_json).map_err(ExecError::Io)?;
        let key = spec.key();
        if step_run.cache_key.as_deref() != Some(key.as_str()) {
            return Err(ExecError::Io(
                "its recorded sandbox does not hash to its cache key (the record was changed)".into(),
            ));
        }
        let component = ComponentBytes::new(self.artifacts.get_bytes(&spec.component).await.map_err(|e| {
            ExecError::Io(format!(
                "its archived component {} is not readable: {e}",
                spec.component
            ))
        })?);
        if component.digest() != spec.component {
            return Err(ExecError::Io(format!(
                "the archived component no longer hashes to its digest {}",
                spec.component
            )));
        }
        let loaded = match self.runtime.loaded(&spec.component) {
            Some(loaded) => loaded,
            None => {
                let runtime = self.runtime.clone();
                let label = std::path::PathBuf::from(format!("archived component {}", spec.component));
                tokio::task::spawn_blocking(move || runtime.load_component(&label, &component))
                    .await
                    .map_err(|e| ExecError::Io(format!("loading the component: {e}")))?
                    .map_err(|e| ExecError::Io(e.to_string()))?
            }
        };

        let mut retrying = Retrying::new(retry, spec.nondeterministic, cancel);
        let last = loop {
            let last = attempt_in(
                &self.sandboxes,
                &self.artifacts,
                &loaded,
                &step_run.step_name,
                &spec,
                &key,
                cancel,
                self.secrets.as_ref(),
            )
            .await;
            match retrying.after(&last) {
                Some(wait) if retrying.wait(wait).await => continue,
                _ => break last,
            }
        };
        let (status, error) = match &last.result {
            Ok(()) => (status::SUCCEEDED, None),
            Err(StepFailure::Cancelled) => (status::CANCELLED, Some(StepFailure::Cancelled.to_string())),
            Err(failure) => (status::FAILED, Some(failure.to_string())),
        };
        let (logs, attempts) = retrying.finish();
        let mut record = StepRunRecord {
            status: status.into(),
            error,
            logs,
            attempts: attempts as i64,
            outputs: last
                .outputs
                .iter()
                .map(|o| (o.name.clone(), o.artifact(&pipeline, &step_run.step_name)))
                .collect(),
            ..Default::default()
        };
        recorder::add_events(&mut record, last.events);
        record.tags.push((WORKER_TAG.into(), worker_name()));
        Ok(record)
    }
}

/// What the executor records of a step run before a worker takes it.
pub(crate) struct Prepared<'a> {
    pub digest: &'a str,
    pub key: &'a str,
    pub spec_json: &'a str,
    pub determinism: &'a str,
    pub input_ids: &'a [(String, String)],
}

/// The executor's side of a step that is not a cache hit, when its stack
/// hands steps to workers: prepare the step run, dispatch it, wait, and
/// read what the worker recorded. A worker that ended without recording
/// (killed, never started) leaves the step run failed with the
/// dispatcher's reason, or cancelled when the run was.
pub(crate) async fn run_dispatched(
    ctx: &RunContext,
    dispatcher: &dyn Dispatcher,
    step: &Step,
    step_run_id: &str,
    prepared: Prepared<'_>,
    started: Instant,
) -> Result<StepResult, ExecError> {
    // The artifacts it reads are linked when it is prepared: they must be
    // written, not queued.
    ctx.ledger.flush().await?;
    ctx.store
        .prepare_step_run(
            step_run_id,
            prepared.digest,
            prepared.key,
            prepared.spec_json,
            prepared.determinism,
            prepared.input_ids,
        )
        .await?;
    (ctx.on_event)(Event::StepStarted {
        step: step.name.clone(),
    });
    let job = StepJob {
        step_run_id: step_run_id.to_string(),
        step: step.name.clone(),
        retry: step.retry.clone(),
        resources: step.resources.clone(),
    };
    // A worker that ends without recording (its job killed, its node
    // lost) is replaced by the step's retry policy, as a failed attempt.
    let mut lost = 0u32;
    let step_run = loop {
        let handed = dispatcher.dispatch(&job, &ctx.cancel).await;
        let step_run = ctx.store.step_run(step_run_id).await?;
        if step_run.status != status::PENDING && step_run.status != status::RUNNING {
            break step_run;
        }
        let why = handed
            .err()
            .unwrap_or_else(|| "the worker ended without recording the step run".into());
        if !ctx.cancel.is_cancelled() && lost < step.retry.max && ctx.store.release_step_run(step_run_id).await? {
            lost += 1;
            let wait = backoff(&step.retry, lost);
            (ctx.on_event)(Event::StepRetrying {
                step: step.name.clone(),
                attempt: lost,
                error: why,
                wait,
            });
            sleep_unless_cancelled(&ctx.cancel, wait).await;
            continue;
        }
        let (ended, error) = if ctx.cancel.is_cancelled() {
            (status::CANCELLED, StepFailure::Cancelled.to_string())
        } else if lost > 0 {
            (
                status::FAILED,
                format!("the step's worker was lost {} times; the last: {why}", lost + 1),
            )
        } else {
            (status::FAILED, format!("the step's worker failed: {why}"))
        };
        let record = StepRunRecord {
            status: ended.into(),
            error: Some(error),
            // The store adds the lost workers' attempts.
            attempts: 1,
            ..Default::default()
        };
        ctx.store
            .close_dispatched_step_run(&ctx.run_id, step_run_id, &record)
            .await?;
        break ctx.store.step_run(step_run_id).await?;
    };
    let outputs = ctx
        .store
        .step_run_outputs(step_run_id)
        .await?
        .into_iter()
        .map(|link| {
            let kind = ArtifactKind::parse(&link.artifact.kind).unwrap_or(ArtifactKind::File);
            (
                link.slot,
                Resolved {
                    id: link.artifact.id,
                    digest: link.artifact.digest,
                    kind,
                },
            )
        })
        .collect();
    Ok(StepResult {
        status: step_run.status,
        duration: started.elapsed(),
        error: step_run.error,
        outputs,
        cached_from: None,
    })
}

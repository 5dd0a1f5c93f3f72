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
//!
//! On a dispatcher that can hold a job until others succeed
//! ([`Dispatcher::holds_jobs`]), a step is handed out *deferred* as soon as
//! the steps it reads from are submitted there, each job held on its
//! upstream jobs (see [`crate::deferred`]); each step's current job is
//! published as its [`Flight`], which the steps held on it follow.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};
use weft_artifacts::{ArtifactKind, ArtifactStore};
use weft_runtime::{Cancel, ComponentBytes, Runtime, StepFailure};
use weft_store::{status, CacheHit, Claim, StepRun, StepRunRecord, Store};

use crate::cache_key::StepSpec;
use crate::deferred::Deferred;
use crate::executor::Event;
use crate::manifest::{Retry, Step};
use crate::recorder;
use crate::resources::Resources;
use crate::runner::{
    attempt_in, backoff, determinism_name, hit_outputs, sleep_unless_cancelled, Resolved, Retrying, RunContext,
    StepResult, StepTask,
};
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
    /// The jobs (ids at this dispatcher, as it [reported](Reporter) them)
    /// that must succeed before this one starts; only given to a
    /// dispatcher that [holds jobs](Dispatcher::holds_jobs).
    pub after: Vec<String>,
    /// Where the dispatcher reports the job it submitted.
    pub reporter: Reporter,
}

/// Where a step handed to a dispatcher is, as the steps held on it see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flight {
    /// No job of it submitted (yet).
    Unsent,
    /// Its current job at the dispatcher (a Slurm job id).
    Job(String),
    /// It ended: whether it succeeded (its outputs are there to read).
    Ended(bool),
}

/// How a dispatcher tells the run which job now runs a step (see
/// [`Flight`]). The default reports to nobody.
#[derive(Clone, Default)]
pub struct Reporter {
    to: Option<(Arc<watch::Sender<Flight>>, Arc<Notify>)>,
}

impl Reporter {
    pub(crate) fn new(flight: Arc<watch::Sender<Flight>>, changed: Arc<Notify>) -> Self {
        Self {
            to: Some((flight, changed)),
        }
    }

    /// Job `job` was submitted for the step, replacing any earlier one.
    pub fn submitted(&self, job: &str) {
        if let Some((flight, changed)) = &self.to {
            flight.send_replace(Flight::Job(job.to_string()));
            changed.notify_one();
        }
    }
}

impl std::fmt::Debug for Reporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.to.is_some() {
            "Reporter"
        } else {
            "Reporter(none)"
        })
    }
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

    /// Whether it can hold a job until others it submitted succeed
    /// ([`StepJob::after`]) and cancel it when one fails, reporting each
    /// job it submits through [`StepJob::reporter`]. Then a run hands it
    /// a step as soon as the steps it reads from are submitted.
    fn holds_jobs(&self) -> bool {
        false
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
    /// It was handed out before the step runs it reads from finished, and
    /// one of them has not succeeded (why): nothing changed.
    NotReady(String),
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
        // A deferred step run: its inputs are its upstream step runs'
        // outputs, which must be there before it is claimed.
        let deferred = match self.store.step_run_deferred(id).await? {
            Some(json) => Some(Deferred::from_json(&json)?),
            None => None,
        };
        let completed = match &deferred {
            Some(deferred) => match deferred.complete(&self.store).await? {
                Ok(completed) => Some(completed),
                Err(why) => return Ok(WorkerOutcome::NotReady(why)),
            },
            None => None,
        };
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
        if let (Some(deferred), Some(completed)) = (&deferred, completed) {
            let spec = completed.spec;
            let key = spec.key();
            let spec_json = spec.to_json();
            let resolved = self
                .store
                .resolve_deferred_step_run(
                    id,
                    &claim,
                    &spec.component,
                    &key,
                    &spec_json,
                    determinism_name(&spec),
                    &completed.input_ids,
                )
                .await?;
            if !resolved {
                let now = self.store.step_run(id).await?;
                return Ok(WorkerOutcome::AlreadyTaken(now.status));
            }
            if deferred.lookup {
                let served = self
                    .serve_from_cache(&step_run, &claim, &spec, &key, &spec_json, deferred.trust_imported)
                    .await?;
                if let Some(outcome) = served {
                    return Ok(outcome);
                }
            }
        }
        // What it runs is what was recorded: a deferred step run's, as
        // its worker completed it.
        let step_run = if deferred.is_some() {
            self.store.step_run(id).await?
        } else {
            step_run
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

    /// Serves a claimed step run (`claim`) from the cache when a step run
    /// with its key may serve it and its outputs are all stored, as a run
    /// serves its own hits; `None` on a miss.
    async fn serve_from_cache(
        &self,
        step_run: &StepRun,
        claim: &str,
        spec: &StepSpec,
        key: &str,
        spec_json: &str,
        trust_imported: bool,
    ) -> Result<Option<WorkerOutcome>, ExecError> {
        let pipeline = self.store.run(&step_run.run_id).await?.pipeline;
        for (original, links) in self.store.cache_candidates(key, trust_imported).await? {
            let Some((outputs, _)) = hit_outputs(&self.artifacts, &pipeline, &step_run.step_name, spec, &links).await
            else {
                continue;
            };
            let hit = CacheHit {
                step_run_id: step_run.id.clone(),
                run_id: step_run.run_id.clone(),
                step_name: step_run.step_name.clone(),
                params: step_run.params.clone(),
                original,
                component_digest: spec.component.clone(),
                cache_key: key.to_string(),
                sandbox: spec_json.to_string(),
                determinism: determinism_name(spec).to_string(),
                inputs: Vec::new(),
                outputs,
            };
            if !self.store.finish_claimed_as_hit(claim, &hit).await? {
                let now = self.store.step_run(&step_run.id).await?;
                return Ok(Some(WorkerOutcome::AlreadyTaken(now.status)));
            }
            return Ok(Some(WorkerOutcome::Recorded {
                status: status::CACHED.into(),
                error: None,
            }));
        }
        Ok(None)
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
pub(crate) enum Handout<'a> {
    /// Its sandbox spec is complete: every input is known.
    Prepared {
        digest: &'a str,
        key: &'a str,
        spec_json: &'a str,
        determinism: &'a str,
        input_ids: &'a [(String, String)],
    },
    /// Some inputs come from step runs still in flight at the same
    /// dispatcher (`upstream`): its worker completes the spec.
    Deferred {
        deferred: &'a Deferred,
        upstream: &'a [Upstream],
    },
}

/// A step in flight that a deferred step reads from.
pub(crate) struct Upstream {
    /// Its name (for messages).
    pub step: String,
    pub flight: watch::Receiver<Flight>,
}

/// How often a step held on others looks at their flights while it waits
/// (for the run's cancellation; their changes wake it at once).
const FLIGHT_POLL: Duration = Duration::from_millis(100);

/// Waits until `upstream`'s flight is neither unsent nor `not` (the job
/// the last submission was held on) and returns it; `None` if the run was
/// cancelled meanwhile.
async fn next_flight(upstream: &Upstream, not: Option<&str>, cancel: &Cancel) -> Option<Flight> {
    let mut flight = upstream.flight.clone();
    loop {
        let now = flight.borrow_and_update().clone();
        let waiting = match &now {
            Flight::Unsent => true,
            Flight::Job(job) => Some(job.as_str()) == not,
            Flight::Ended(_) => false,
        };
        if !waiting {
            return Some(now);
        }
        if cancel.is_cancelled() {
            return None;
        }
        let _ = tokio::time::timeout(FLIGHT_POLL, flight.changed()).await;
    }
}

/// How a dispatched step's jobs stand against the steps it reads from.
enum Held {
    /// Submit it held on these jobs (none: its inputs are all there).
    After(Vec<String>),
    /// One of them did not succeed: it will not run (why).
    Skip(String),
    /// The run was cancelled.
    Cancelled,
}

/// Where `upstream` stands, for a submission after one held on the jobs
/// in `held` (`None` where it was not held on that step).
async fn hold(upstream: &[Upstream], held: &mut [Option<String>], cancel: &Cancel) -> Held {
    let mut after = Vec::new();
    for (up, held) in upstream.iter().zip(held.iter_mut()) {
        match next_flight(up, held.as_deref(), cancel).await {
            None => return Held::Cancelled,
            Some(Flight::Ended(false)) => {
                return Held::Skip(format!("skipped: upstream step '{}' did not succeed", up.step))
            }
            Some(Flight::Job(job)) => {
                after.push(job.clone());
                *held = Some(job);
            }
            Some(_) => *held = None,
        }
    }
    Held::After(after)
}

/// Whether a step whose job was held on the jobs in `held` ended without
/// a record because one of them failed or was replaced (Slurm cancels a
/// job held on a job that failed; the step behind that job is handed out
/// again, or ends failed). Waits while the run goes on and none of them
/// has ended or been replaced. A held job that succeeded let the step's
/// own job run: its loss is the step's, not its upstream's.
async fn lost_hold(upstream: &[Upstream], held: &[Option<String>], cancel: &Cancel) -> bool {
    loop {
        let mut settled = true;
        for (up, held) in upstream.iter().zip(held) {
            let Some(job) = held else { continue };
            match &*up.flight.borrow() {
                Flight::Job(now) if now == job => settled = false,
                Flight::Job(_) | Flight::Ended(false) => return true,
                Flight::Ended(true) | Flight::Unsent => {}
            }
        }
        if settled || cancel.is_cancelled() {
            return false;
        }
        tokio::time::sleep(FLIGHT_POLL / 2).await;
    }
}

/// The executor's side of a step that is not a cache hit, when its stack
/// hands steps to workers: prepare the step run, dispatch it, wait, and
/// read what the worker recorded. A worker that ended without recording
/// (killed, never started) leaves the step run failed with the
/// dispatcher's reason, or cancelled when the run was. A deferred step
/// is held on its upstream steps' jobs: it is submitted again on the job
/// that replaces one of them, and skipped when one fails.
pub(crate) async fn run_dispatched(
    ctx: &RunContext,
    dispatcher: &dyn Dispatcher,
    task: &StepTask,
    handout: Handout<'_>,
    started: Instant,
) -> Result<StepResult, ExecError> {
    let (step, step_run_id) = (&task.step, task.step_run_id.as_str());
    // The artifacts it reads are linked when it is prepared (or when its
    // worker completes it): they must be written, not queued.
    ctx.ledger.flush().await?;
    let upstream: &[Upstream] = match handout {
        Handout::Prepared {
            digest,
            key,
            spec_json,
            determinism,
            input_ids,
        } => {
            ctx.store
                .prepare_step_run(step_run_id, digest, key, spec_json, determinism, input_ids)
                .await?;
            &[]
        }
        Handout::Deferred { deferred, upstream } => {
            ctx.store
                .prepare_deferred_step_run(step_run_id, &deferred.to_json())
                .await?;
            upstream
        }
    };
    (ctx.on_event)(Event::StepStarted {
        step: step.name.clone(),
    });
    let mut job = StepJob {
        step_run_id: step_run_id.to_string(),
        step: step.name.clone(),
        retry: step.retry.clone(),
        resources: step.resources.clone(),
        after: Vec::new(),
        reporter: task.reporter.clone(),
    };
    let mut held: Vec<Option<String>> = vec![None; upstream.len()];
    // A worker that ends without recording (its job killed, its node
    // lost) is replaced by the step's retry policy, as a failed attempt.
    let mut lost = 0u32;
    let step_run = loop {
        let ended = match hold(upstream, &mut held, &ctx.cancel).await {
            Held::After(after) => {
                job.after = after;
                None
            }
            Held::Skip(reason) => Some((status::SKIPPED, reason)),
            Held::Cancelled => Some((status::CANCELLED, StepFailure::Cancelled.to_string())),
        };
        let (ended, error) = match ended {
            Some(ended) => ended,
            None => {
                let handed = dispatcher.dispatch(&job, &ctx.cancel).await;
                let step_run = ctx.store.step_run(step_run_id).await?;
                if step_run.status != status::PENDING && step_run.status != status::RUNNING {
                    break step_run;
                }
                // Held on a job that failed or was replaced: Slurm
                // cancelled this one; submit it again or skip it.
                if !ctx.cancel.is_cancelled() && lost_hold(upstream, &held, &ctx.cancel).await {
                    continue;
                }
                let why = handed
                    .err()
                    .unwrap_or_else(|| "the worker ended without recording the step run".into());
                if !ctx.cancel.is_cancelled()
                    && lost < step.retry.max
                    && ctx.store.release_step_run(step_run_id).await?
                {
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
                if ctx.cancel.is_cancelled() {
                    (status::CANCELLED, StepFailure::Cancelled.to_string())
                } else if lost > 0 {
                    (
                        status::FAILED,
                        format!("the step's worker was lost {} times; the last: {why}", lost + 1),
                    )
                } else {
                    (status::FAILED, format!("the step's worker failed: {why}"))
                }
            }
        };
        let record = StepRunRecord {
            status: ended.into(),
            error: Some(error),
            // The store adds the lost workers' attempts.
            attempts: if ended == status::SKIPPED { 0 } else { 1 },
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
        cached_from: step_run.cached_from,
    })
}

//! The local executor: runs a pipeline's steps on this machine, concurrently
//! where the DAG allows, each in its own sandbox.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::task::JoinSet;
use weft_artifacts::{ArtifactKind, ArtifactStore};
use weft_runtime::{Cancel, Limits, LoadedStep, Runtime, SandboxDirs, StepFailure, TrackerEvent};
use weft_store::{status, MirrorScope, NewArtifact, StepRunRecord, Store};

use crate::manifest::{InputSource, Step};
use crate::sandbox::SandboxPool;
use crate::{cache_key, canonical_json, Manifest};

/// How often finished steps are written to the MLflow view while a run goes.
const MIRROR_EVERY: Duration = Duration::from_secs(1);

/// Something that happened during a run, for progress displays.
#[derive(Debug, Clone)]
pub enum Event {
    /// The run was recorded.
    RunStarted {
        run_id: String,
        number: i64,
        pipeline: String,
        steps: Vec<String>,
    },
    /// A step began executing (not a cache hit).
    StepStarted { step: String },
    /// A step's component is being compiled (first use).
    StepCompiled {
        step: String,
        took: Duration,
        from_cache: bool,
    },
    /// A step failed and will be tried again after `wait`.
    StepRetrying {
        step: String,
        attempt: u32,
        error: String,
        wait: Duration,
    },
    /// A step reached its final status.
    StepFinished {
        step: String,
        status: String,
        duration: Duration,
        error: Option<String>,
    },
    /// A plugin was called (a gate, a hook, a tracker sink).
    PluginCalled(weft_store::PluginCall),
}

/// How to run.
#[derive(Clone)]
pub struct RunOptions {
    /// Execute every step even when a cached result exists.
    pub no_cache: bool,
    /// Set to stop the run; running steps are interrupted.
    pub cancel: Cancel,
    /// Called for every [`Event`].
    pub on_event: Arc<dyn Fn(Event) + Send + Sync>,
    /// Plugins the manifest's gates, hooks and sinks call.
    pub plugins: Option<crate::Plugins>,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            no_cache: false,
            cancel: Cancel::default(),
            on_event: Arc::new(|_| {}),
            plugins: None,
        }
    }
}

/// Settings of an [`Executor`].
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    /// Where sandboxes are staged (removed after each step run).
    pub work_dir: PathBuf,
    /// Most steps running at once; default: the number of cores.
    pub max_parallel: Option<usize>,
}

/// How one step of a run ended.
#[derive(Debug, Clone)]
pub struct StepOutcomeSummary {
    pub name: String,
    pub status: String,
    pub duration: Duration,
    pub error: Option<String>,
    /// For a cache hit, the step run it was served from.
    pub cached_from: Option<String>,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub run_id: String,
    pub number: i64,
    pub status: String,
    /// Why the run did not succeed, when one reason says it (a gate's report).
    pub error: Option<String>,
    pub steps: Vec<StepOutcomeSummary>,
    pub duration: Duration,
}

impl RunOutcome {
    /// Steps that executed (not served from the cache, not skipped).
    pub fn executed(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| s.status == status::SUCCEEDED || s.status == status::FAILED)
            .count()
    }
    /// Steps served from the cache.
    pub fn cached(&self) -> usize {
        self.steps.iter().filter(|s| s.status == status::CACHED).count()
    }
}

/// Errors that stop a run before or outside its steps.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(transparent)]
    Store(#[from] weft_store::StoreError),
    #[error("ingesting {what}: {source}")]
    Ingest {
        what: String,
        #[source]
        source: weft_artifacts::ArtifactError,
    },
    #[error("{0}")]
    Io(String),
    /// A plugin the manifest names is missing or of the wrong kind.
    #[error("{0}")]
    Plugins(String),
}

/// An artifact as the scheduler passes it between steps.
#[derive(Debug, Clone)]
struct Resolved {
    id: String,
    digest: String,
    kind: ArtifactKind,
}

/// Runs pipelines.
#[derive(Clone)]
pub struct Executor {
    runtime: Runtime,
    store: Store,
    artifacts: ArtifactStore,
    options: ExecutorOptions,
    host: String,
}

struct Shared {
    executor: Executor,
    pipeline: String,
    run_id: String,
    no_cache: bool,
    cancel: Cancel,
    on_event: Arc<dyn Fn(Event) + Send + Sync>,
    components: Mutex<HashMap<PathBuf, (String, Arc<Vec<u8>>)>>,
    sandboxes: SandboxPool,
}

impl Executor {
    /// An executor over a runtime and stores.
    pub fn new(runtime: Runtime, store: Store, artifacts: ArtifactStore, options: ExecutorOptions) -> Self {
        Self {
            runtime,
            store,
            artifacts,
            options,
            host: hostname(),
        }
    }

    /// Runs `manifest` to the end (or until cancelled) and records it.
    pub async fn run(&self, manifest: &Manifest, options: RunOptions) -> Result<RunOutcome, ExecError> {
        let started = Instant::now();
        for crashed in self.store.recover_crashed(&self.host, pid_alive).await? {
            self.mirror(&crashed, MirrorScope::All).await;
        }
        self.clean_stale_work_dirs();
        crate::integrations::check(manifest, options.plugins.as_ref())?;

        let pipeline_id = self.store.ensure_pipeline(&manifest.name).await?;
        let run = self
            .store
            .create_run(
                &pipeline_id,
                &manifest_json(manifest).to_string(),
                &self.host,
                std::process::id() as i64,
            )
            .await?;
        // MLflow clients see the run as RUNNING at once, and each step as
        // it finishes.
        self.mirror(&run.id, MirrorScope::Run).await;
        let result = self
            .run_recorded(manifest, &options, &run.id, run.number, started)
            .await;
        match &result {
            Ok(outcome) => {
                let error = match outcome.status.as_str() {
                    status::FAILED => Some(outcome.error.as_deref().unwrap_or("one or more steps failed")),
                    status::CANCELLED => Some("cancelled by the user"),
                    _ => None,
                };
                self.store.finish_run(&run.id, &outcome.status, error).await?;
            }
            Err(e) => {
                let message = e.to_string();
                self.store
                    .close_pending(&run.id, status::CANCELLED, "the run stopped before this step")
                    .await?;
                self.store.finish_run(&run.id, status::FAILED, Some(&message)).await?;
            }
        }
        // Hooks and tracker sinks; they do not change how the run went.
        if let Some(plugins) = &options.plugins {
            let on_event = options.on_event.clone();
            crate::integrations::after_run(plugins, &self.store, manifest, &run.id, &move |call| {
                on_event(Event::PluginCalled(call.clone()))
            })
            .await;
        }
        // The MLflow view of the run (experiment = pipeline, nested runs =
        // steps); a failure here does not change how the run went.
        self.mirror(&run.id, MirrorScope::All).await;
        result
    }

    /// Records the MLflow view of a run; a failure here is logged, and does
    /// not change how the run went.
    async fn mirror(&self, run_id: &str, scope: MirrorScope<'_>) {
        if let Err(e) = self.store.mirror_run_to_tracking(run_id, scope).await {
            tracing::warn!("could not record the MLflow view of run {run_id}: {e}");
        }
    }

    async fn run_recorded(
        &self,
        manifest: &Manifest,
        options: &RunOptions,
        run_id: &str,
        number: i64,
        started: Instant,
    ) -> Result<RunOutcome, ExecError> {
        // External data becomes artifacts first: its content is what the
        // cache keys of the first steps depend on.
        let mut external: HashMap<String, Resolved> = HashMap::new();
        for input in &manifest.inputs {
            let stored = self
                .artifacts
                .ingest(&input.path, u64::MAX)
                .await
                .map_err(|source| ExecError::Ingest {
                    what: format!("inputs.{} ({})", input.name, input.path.display()),
                    source,
                })?;
            let artifact = NewArtifact {
                name: format!("{}/inputs.{}", manifest.name, input.name),
                digest: stored.digest.clone(),
                kind: stored.kind.as_str().into(),
                media_type: input
                    .media_type
                    .clone()
                    .unwrap_or_else(|| default_media_type(stored.kind, &input.path)),
                size: stored.size as i64,
                source_uri: Some(format!("file://{}", input.path.display())),
            };
            let row = self.store.record_run_input(run_id, &input.name, &artifact).await?;
            external.insert(
                input.name.clone(),
                Resolved {
                    id: row.id,
                    digest: stored.digest,
                    kind: stored.kind,
                },
            );
        }

        let steps = &manifest.steps;
        let specs: Vec<(String, String)> = steps
            .iter()
            .map(|s| (s.name.clone(), canonical_json(&s.params)))
            .collect();
        let step_run_ids = self.store.create_step_runs(run_id, &specs).await?;
        (options.on_event)(Event::RunStarted {
            run_id: run_id.to_string(),
            number,
            pipeline: manifest.name.clone(),
            steps: steps.iter().map(|s| s.name.clone()).collect(),
        });

        let index: HashMap<&str, usize> = steps.iter().enumerate().map(|(i, s)| (s.name.as_str(), i)).collect();
        let upstream: Vec<Vec<usize>> = steps
            .iter()
            .map(|s| {
                let mut ups: Vec<usize> = s
                    .inputs
                    .iter()
                    .filter_map(|(_, src)| match src {
                        InputSource::Step { step, .. } => index.get(step.as_str()).copied(),
                        InputSource::External(_) => None,
                    })
                    .collect();
                ups.sort_unstable();
                ups.dedup();
                ups
            })
            .collect();

        let shared = Arc::new(Shared {
            executor: self.clone(),
            pipeline: manifest.name.clone(),
            run_id: run_id.to_string(),
            no_cache: options.no_cache,
            cancel: options.cancel.clone(),
            on_event: options.on_event.clone(),
            components: Mutex::new(HashMap::new()),
            sandboxes: SandboxPool::new(self.options.work_dir.join(std::process::id().to_string()).join(run_id)),
        });
        let max_parallel = manifest
            .max_parallel
            .or(self.options.max_parallel)
            .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2))
            .max(1);

        #[derive(Clone, PartialEq)]
        enum State {
            Waiting,
            Running,
            Done(bool),
        }
        let mut state = vec![State::Waiting; steps.len()];
        let mut summaries: Vec<Option<StepOutcomeSummary>> = vec![None; steps.len()];

        // Gates on the external data: a rejection stops the run before any
        // step reads it.
        let mut gate_error: Option<String> = None;
        if let Some(plugins) = &options.plugins {
            for input in &manifest.inputs {
                let source = InputSource::External(input.name.clone());
                for gate in crate::integrations::gates_on(manifest, &source) {
                    let id = &external[&input.name].id;
                    let (call, verdict) =
                        crate::integrations::run_gate(plugins, &self.store, &self.artifacts, run_id, gate, id).await?;
                    (options.on_event)(Event::PluginCalled(call));
                    if let Some(report) = verdict {
                        gate_error.get_or_insert(report);
                    }
                }
            }
        }
        if let Some(report) = &gate_error {
            let reason = format!("not run: {}", report.lines().next().unwrap_or(report));
            for (i, step) in steps.iter().enumerate() {
                self.store
                    .skip_step_run(&step_run_ids[i], status::SKIPPED, &reason)
                    .await?;
                state[i] = State::Done(false);
                (options.on_event)(Event::StepFinished {
                    step: step.name.clone(),
                    status: status::SKIPPED.into(),
                    duration: Duration::ZERO,
                    error: Some(reason.clone()),
                });
                summaries[i] = Some(StepOutcomeSummary {
                    name: step.name.clone(),
                    status: status::SKIPPED.into(),
                    duration: Duration::ZERO,
                    error: Some(reason.clone()),
                    cached_from: None,
                });
            }
        }
        let mut produced: HashMap<(String, String), Resolved> = HashMap::new();
        let mut tasks: JoinSet<(usize, StepResult)> = JoinSet::new();
        let mut running = 0usize;
        let mut unmirrored: Vec<String> = Vec::new();
        let mut last_mirror = Instant::now();

        loop {
            if !options.cancel.is_cancelled() {
                for i in 0..steps.len() {
                    if running >= max_parallel {
                        break;
                    }
                    if state[i] != State::Waiting || !upstream[i].iter().all(|u| state[*u] == State::Done(true)) {
                        continue;
                    }
                    let inputs: Vec<(String, Resolved)> = steps[i]
                        .inputs
                        .iter()
                        .filter_map(|(slot, src)| {
                            let r = match src {
                                InputSource::External(name) => external.get(name),
                                InputSource::Step { step, output } => produced.get(&(step.clone(), output.clone())),
                            };
                            r.map(|r| (slot.clone(), r.clone()))
                        })
                        .collect();
                    state[i] = State::Running;
                    running += 1;
                    let shared = shared.clone();
                    let step = steps[i].clone();
                    let step_run_id = step_run_ids[i].clone();
                    tasks.spawn(async move { (i, execute_step(&shared, &step, &step_run_id, inputs).await) });
                }
            }
            if running == 0 {
                break;
            }
            // Wait for the next step to finish; meanwhile, steps finished
            // earlier reach the MLflow view when their second is up.
            let joined = loop {
                if unmirrored.is_empty() {
                    break tasks.join_next().await;
                }
                tokio::select! {
                    joined = tasks.join_next() => break joined,
                    _ = tokio::time::sleep_until((last_mirror + MIRROR_EVERY).into()) => {
                        self.mirror(run_id, MirrorScope::Steps(&unmirrored)).await;
                        unmirrored.clear();
                        last_mirror = Instant::now();
                    }
                }
            };
            let Some(joined) = joined else { break };
            running -= 1;
            let (i, mut result) = match joined {
                Ok(r) => r,
                Err(e) => return Err(ExecError::Io(format!("a step task failed: {e}"))),
            };
            // Gates on the step's outputs: a rejection fails the step, so
            // nothing downstream reads what it wrote.
            if let (Some(plugins), true) = (
                &options.plugins,
                result.status == status::SUCCEEDED || result.status == status::CACHED,
            ) {
                'outputs: for (output, resolved) in &result.outputs {
                    let source = InputSource::Step {
                        step: steps[i].name.clone(),
                        output: output.clone(),
                    };
                    for gate in crate::integrations::gates_on(manifest, &source) {
                        let (call, verdict) = crate::integrations::run_gate(
                            plugins,
                            &self.store,
                            &self.artifacts,
                            run_id,
                            gate,
                            &resolved.id,
                        )
                        .await?;
                        (options.on_event)(Event::PluginCalled(call));
                        if let Some(report) = verdict {
                            self.store
                                .skip_step_run(&step_run_ids[i], status::FAILED, &report)
                                .await?;
                            result.status = status::FAILED.into();
                            result.error = Some(report.clone());
                            gate_error.get_or_insert(report);
                            break 'outputs;
                        }
                    }
                }
            }
            let ok = result.status == status::SUCCEEDED || result.status == status::CACHED;
            state[i] = State::Done(ok);
            for (output, resolved) in &result.outputs {
                produced.insert((steps[i].name.clone(), output.clone()), resolved.clone());
            }
            // Finished steps reach the MLflow view at most a second late:
            // writing it after every step would cost more than a short step.
            unmirrored.push(step_run_ids[i].clone());
            if last_mirror.elapsed() >= MIRROR_EVERY {
                self.mirror(run_id, MirrorScope::Steps(&unmirrored)).await;
                unmirrored.clear();
                last_mirror = Instant::now();
            }
            (options.on_event)(Event::StepFinished {
                step: steps[i].name.clone(),
                status: result.status.clone(),
                duration: result.duration,
                error: result.error.clone(),
            });
            summaries[i] = Some(StepOutcomeSummary {
                name: steps[i].name.clone(),
                status: result.status,
                duration: result.duration,
                error: result.error,
                cached_from: result.cached_from,
            });
            if !ok {
                // Everything downstream of a failed step is skipped.
                let mut stack = vec![i];
                while let Some(failed) = stack.pop() {
                    for (j, ups) in upstream.iter().enumerate() {
                        if ups.contains(&failed) && state[j] == State::Waiting {
                            state[j] = State::Done(false);
                            let (why, reason) = if options.cancel.is_cancelled() {
                                (
                                    status::CANCELLED,
                                    "the run was cancelled before this step started".to_string(),
                                )
                            } else {
                                (
                                    status::SKIPPED,
                                    format!("skipped: upstream step '{}' did not succeed", steps[failed].name),
                                )
                            };
                            self.store.skip_step_run(&step_run_ids[j], why, &reason).await?;
                            (options.on_event)(Event::StepFinished {
                                step: steps[j].name.clone(),
                                status: why.into(),
                                duration: Duration::ZERO,
                                error: Some(reason.clone()),
                            });
                            summaries[j] = Some(StepOutcomeSummary {
                                name: steps[j].name.clone(),
                                status: why.into(),
                                duration: Duration::ZERO,
                                error: Some(reason),
                                cached_from: None,
                            });
                            stack.push(j);
                        }
                    }
                }
            }
        }

        shared.sandboxes.remove_all();
        let cancelled = options.cancel.is_cancelled();
        if cancelled {
            self.store
                .close_pending(
                    run_id,
                    status::CANCELLED,
                    "the run was cancelled before this step started",
                )
                .await?;
        }
        let steps_out: Vec<StepOutcomeSummary> = summaries
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                s.unwrap_or_else(|| StepOutcomeSummary {
                    name: steps[i].name.clone(),
                    status: status::CANCELLED.into(),
                    duration: Duration::ZERO,
                    error: Some("the run was cancelled before this step started".into()),
                    cached_from: None,
                })
            })
            .collect();
        let all_ok = steps_out
            .iter()
            .all(|s| s.status == status::SUCCEEDED || s.status == status::CACHED);
        let status = if all_ok {
            status::SUCCEEDED
        } else if cancelled {
            status::CANCELLED
        } else {
            status::FAILED
        };
        Ok(RunOutcome {
            run_id: run_id.to_string(),
            number,
            status: status.to_string(),
            error: gate_error,
            steps: steps_out,
            duration: started.elapsed(),
        })
    }

    /// Removes sandbox directories left by processes that died.
    fn clean_stale_work_dirs(&self) {
        let Ok(entries) = std::fs::read_dir(&self.options.work_dir) else {
            return;
        };
        for entry in entries.flatten() {
            let stale = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i64>().ok())
                .is_some_and(|pid| !pid_alive(pid));
            if stale {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        self.artifacts.clean_staging(pid_alive);
    }
}

struct StepResult {
    status: String,
    duration: Duration,
    error: Option<String>,
    outputs: Vec<(String, Resolved)>,
    cached_from: Option<String>,
}

impl StepResult {
    fn failed(error: String, started: Instant) -> Self {
        Self {
            status: status::FAILED.into(),
            duration: started.elapsed(),
            error: Some(error),
            outputs: Vec::new(),
            cached_from: None,
        }
    }
}

async fn execute_step(shared: &Shared, step: &Step, step_run_id: &str, inputs: Vec<(String, Resolved)>) -> StepResult {
    let started = Instant::now();
    match try_execute_step(shared, step, step_run_id, inputs, started).await {
        Ok(result) => result,
        Err(error) => {
            // A failure of weft itself (database, disk) while running this
            // step: record it against the step, keep the host running.
            let message = format!("weft could not run this step: {error}");
            let record = StepRunRecord {
                status: status::FAILED.into(),
                error: Some(message.clone()),
                ..Default::default()
            };
            let _ = shared
                .executor
                .store
                .complete_step_run(&shared.run_id, step_run_id, &record)
                .await;
            StepResult::failed(message, started)
        }
    }
}

async fn try_execute_step(
    shared: &Shared,
    step: &Step,
    step_run_id: &str,
    inputs: Vec<(String, Resolved)>,
    started: Instant,
) -> Result<StepResult, ExecError> {
    let executor = &shared.executor;
    let (digest, bytes) = shared.component(&step.component)?;
    let input_digests: Vec<(String, String)> = inputs
        .iter()
        .map(|(slot, r)| (slot.clone(), r.digest.clone()))
        .collect();
    let input_ids: Vec<(String, String)> = inputs.iter().map(|(slot, r)| (slot.clone(), r.id.clone())).collect();
    let output_names: Vec<String> = step.outputs.iter().map(|o| o.name.clone()).collect();
    let key = cache_key(&digest, &step.params, &input_digests, &output_names, &json!({}));

    if step.cache && !shared.no_cache {
        for (original, outputs) in executor.store.cache_candidates(&key).await? {
            let mut resolved = Vec::new();
            for name in &output_names {
                let Some(link) = outputs.iter().find(|l| &l.slot == name) else {
                    break;
                };
                let kind = ArtifactKind::parse(&link.artifact.kind).unwrap_or(ArtifactKind::File);
                // A hit whose bytes are gone is a miss.
                if !executor
                    .artifacts
                    .contains(&link.artifact.digest, kind)
                    .await
                    .unwrap_or(false)
                {
                    break;
                }
                resolved.push((
                    name.clone(),
                    Resolved {
                        id: link.artifact.id.clone(),
                        digest: link.artifact.digest.clone(),
                        kind,
                    },
                ));
            }
            if resolved.len() == output_names.len() {
                executor
                    .store
                    .record_cached_step_run(step_run_id, &original, &digest, &key)
                    .await?;
                return Ok(StepResult {
                    status: status::CACHED.into(),
                    duration: started.elapsed(),
                    error: None,
                    outputs: resolved,
                    cached_from: Some(original),
                });
            }
        }
    }

    (shared.on_event)(Event::StepStarted {
        step: step.name.clone(),
    });
    executor.store.start_step_run(step_run_id, &digest, &key).await?;
    let loaded = match executor.runtime.loaded(&digest) {
        Some(loaded) => Ok(loaded),
        None => {
            // Compiling is CPU-bound: keep it off the async workers.
            let runtime = executor.runtime.clone();
            let path = step.component.clone();
            tokio::task::spawn_blocking(move || runtime.load_bytes(&path, &bytes))
                .await
                .map_err(|e| ExecError::Io(format!("loading the component: {e}")))?
        }
    };
    let loaded = match loaded {
        Ok(loaded) => loaded,
        Err(e) => {
            let record = StepRunRecord {
                status: status::FAILED.into(),
                error: Some(e.to_string()),
                attempts: 1,
                inputs: input_ids,
                ..Default::default()
            };
            executor
                .store
                .complete_step_run(&shared.run_id, step_run_id, &record)
                .await?;
            return Ok(StepResult::failed(e.to_string(), started));
        }
    };
    if !loaded.compiled_from_cache() {
        (shared.on_event)(Event::StepCompiled {
            step: step.name.clone(),
            took: loaded.load_time(),
            from_cache: false,
        });
    }

    let limits = &step.limits.sandbox;
    let params = canonical_json(&step.params);
    let mut logs = String::new();
    let mut attempt = 0u32;
    let (result, events, outputs) = loop {
        attempt += 1;
        let (result, events, outputs, attempt_logs) = match shared.sandboxes.take() {
            Ok(dirs) => {
                let attempt = run_attempt(shared, step, &loaded, &dirs, &inputs, &params, limits).await;
                shared.sandboxes.give(dirs);
                attempt
            }
            Err(e) => (
                Err(StepFailure::Failed(format!(
                    "weft could not create a sandbox directory: {e}"
                ))),
                Vec::new(),
                Vec::new(),
                String::new(),
            ),
        };
        if attempt > 1 {
            logs.push_str(&format!("--- attempt {attempt} ---\n"));
        }
        logs.push_str(&attempt_logs);
        match &result {
            Err(failure) if failure.is_retryable() && attempt <= step.retry.max && !shared.cancel.is_cancelled() => {
                let wait = step.retry.backoff * 2u32.saturating_pow(attempt - 1);
                (shared.on_event)(Event::StepRetrying {
                    step: step.name.clone(),
                    attempt,
                    error: failure.to_string(),
                    wait,
                });
                let deadline = Instant::now() + wait;
                while Instant::now() < deadline && !shared.cancel.is_cancelled() {
                    tokio::time::sleep(
                        Duration::from_millis(20).min(deadline.saturating_duration_since(Instant::now())),
                    )
                    .await;
                }
                if shared.cancel.is_cancelled() {
                    break (result, events, outputs);
                }
            }
            _ => break (result, events, outputs),
        }
    };

    let (status, error) = match &result {
        Ok(()) => (status::SUCCEEDED, None),
        Err(StepFailure::Cancelled) => (status::CANCELLED, Some(StepFailure::Cancelled.to_string())),
        Err(failure) => (status::FAILED, Some(failure.to_string())),
    };
    let mut record = StepRunRecord {
        status: status.into(),
        error: error.clone(),
        logs,
        attempts: attempt as i64,
        inputs: input_ids,
        outputs: outputs.iter().map(|(name, a)| (name.clone(), a.clone())).collect(),
        ..Default::default()
    };
    for event in events {
        match event {
            TrackerEvent::Metric {
                key,
                value,
                step,
                timestamp_ms,
            } => record.metrics.push((key, value, step.map(|s| s as i64), timestamp_ms)),
            TrackerEvent::Param { key, value } => record.params.push((key, value)),
            TrackerEvent::Tag { key, value } => record.tags.push((key, value)),
            TrackerEvent::Metadata { key, json } => record.metadata.push((key, json)),
        }
    }
    let recording = Instant::now();
    let ids = executor
        .store
        .complete_step_run(&shared.run_id, step_run_id, &record)
        .await?;
    tracing::debug!(step = %step.name, record_us = recording.elapsed().as_micros() as u64, total_us = started.elapsed().as_micros() as u64, "step recorded");
    let outputs = ids
        .into_iter()
        .zip(outputs)
        .map(|((name, id), (_, artifact))| {
            let kind = ArtifactKind::parse(&artifact.kind).unwrap_or(ArtifactKind::File);
            (
                name,
                Resolved {
                    id,
                    digest: artifact.digest,
                    kind,
                },
            )
        })
        .collect();
    Ok(StepResult {
        status: status.into(),
        duration: started.elapsed(),
        error,
        outputs,
        cached_from: None,
    })
}

type AttemptResult = (
    Result<(), StepFailure>,
    Vec<TrackerEvent>,
    Vec<(String, NewArtifact)>,
    String,
);

/// One attempt: stage the sandbox, run, ingest the declared outputs.
async fn run_attempt(
    shared: &Shared,
    step: &Step,
    loaded: &LoadedStep,
    dirs: &SandboxDirs,
    inputs: &[(String, Resolved)],
    params: &str,
    limits: &Limits,
) -> AttemptResult {
    let executor = &shared.executor;
    for (slot, artifact) in inputs {
        if let Err(e) = executor
            .artifacts
            .materialize(&artifact.digest, artifact.kind, &dirs.inputs.join(slot))
            .await
        {
            return (
                Err(StepFailure::Failed(format!("weft could not stage input '{slot}': {e}"))),
                Vec::new(),
                Vec::new(),
                String::new(),
            );
        }
    }
    let staged = Instant::now();
    let outcome = loaded.run(params, dirs, limits, &shared.cancel).await;
    tracing::debug!(step = %step.name, run_us = staged.elapsed().as_micros() as u64, guest_us = outcome.duration.as_micros() as u64, "guest finished");
    let mut logs = outcome.logs;
    if let Err(failure) = outcome.result {
        return (Err(failure), outcome.events, Vec::new(), logs);
    }
    let scratch = dir_size(&dirs.tmp, step.limits.max_tmp_bytes);
    if scratch > step.limits.max_tmp_bytes {
        let message = format!(
            "the step wrote over its /tmp limit of {} bytes (limits.max_tmp)",
            step.limits.max_tmp_bytes
        );
        return (Err(StepFailure::Failed(message)), outcome.events, Vec::new(), logs);
    }

    let mut outputs = Vec::new();
    let mut remaining = step.limits.max_output_bytes;
    for spec in &step.outputs {
        let path = dirs.outputs.join(&spec.name);
        let failure = |message: String| StepFailure::Failed(message);
        match std::fs::symlink_metadata(&path) {
            Err(_) => {
                let message = format!(
                    "the step did not write its declared output '{0}' (expected /outputs/{0})",
                    spec.name
                );
                return (Err(failure(message)), outcome.events, Vec::new(), logs);
            }
            Ok(meta) if meta.file_type().is_symlink() => {
                let message = format!(
                    "output '{}' is a symbolic link; outputs must be regular files or directories",
                    spec.name
                );
                return (Err(failure(message)), outcome.events, Vec::new(), logs);
            }
            Ok(_) => {}
        }
        // The sandbox is ours and goes next: its files move into the store.
        match executor.artifacts.adopt(&path, remaining).await {
            Ok(stored) => {
                remaining = remaining.saturating_sub(stored.size);
                outputs.push((
                    spec.name.clone(),
                    NewArtifact {
                        name: format!("{}/{}.{}", shared.pipeline, step.name, spec.name),
                        media_type: spec
                            .media_type
                            .clone()
                            .unwrap_or_else(|| default_media_type(stored.kind, &path)),
                        digest: stored.digest,
                        kind: stored.kind.as_str().into(),
                        size: stored.size as i64,
                        source_uri: None,
                    },
                ));
            }
            Err(weft_artifacts::ArtifactError::TooLarge { limit, .. }) => {
                let message = format!(
                    "outputs exceed the limit of {limit} bytes (steps.{}.limits.max_output)",
                    step.name
                );
                return (Err(failure(message)), outcome.events, Vec::new(), logs);
            }
            Err(e) => {
                let message = format!("output '{}' cannot be stored: {e}", spec.name);
                return (Err(failure(message)), outcome.events, Vec::new(), logs);
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir(&dirs.outputs) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !step.outputs.iter().any(|o| o.name == name) {
                logs.push_str(&format!("[weft: ignored /outputs/{name}: not a declared output]\n"));
            }
        }
    }
    (Ok(()), outcome.events, outputs, logs)
}

impl Shared {
    /// The digest and bytes of a component file, read once per run.
    fn component(&self, path: &Path) -> Result<(String, Arc<Vec<u8>>), ExecError> {
        let mut components = match self.components.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some((digest, bytes)) = components.get(path) {
            return Ok((digest.clone(), bytes.clone()));
        }
        let bytes = weft_runtime::read_component(path).map_err(|e| ExecError::Io(e.to_string()))?;
        let digest = weft_runtime::component_digest(&bytes);
        let bytes = Arc::new(bytes);
        components.insert(path.to_owned(), (digest.clone(), bytes.clone()));
        Ok((digest, bytes))
    }
}

fn default_media_type(kind: ArtifactKind, path: &Path) -> String {
    if kind == ArtifactKind::Dir {
        return "inode/directory".into();
    }
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "csv" => "text/csv",
        "json" => "application/json",
        "txt" | "log" => "text/plain",
        "md" => "text/markdown",
        "html" => "text/html",
        "png" => "image/png",
        "parquet" => "application/vnd.apache.parquet",
        _ => "application/octet-stream",
    }
    .into()
}

/// The manifest as recorded with a run.
fn manifest_json(manifest: &Manifest) -> serde_json::Value {
    json!({
        "name": manifest.name,
        "inputs": manifest.inputs.iter().map(|i| json!({"name": i.name, "path": i.path, "media_type": i.media_type})).collect::<Vec<_>>(),
        "steps": manifest.steps.iter().map(|s| json!({
            "name": s.name,
            "component": s.component,
            "inputs": s.inputs.iter().map(|(slot, src)| {
                let source = match src {
                    InputSource::External(n) => format!("inputs.{n}"),
                    InputSource::Step { step, output } => format!("{step}.{output}"),
                };
                (slot.clone(), serde_json::Value::String(source))
            }).collect::<serde_json::Map<_, _>>(),
            "outputs": s.outputs.iter().map(|o| o.name.clone()).collect::<Vec<_>>(),
            "params": s.params,
            "cache": s.cache,
        })).collect::<Vec<_>>(),
    })
}

/// Bytes of regular files under `dir`, counting stops past `cap`.
fn dir_size(dir: &Path, cap: u64) -> u64 {
    let mut total = 0u64;
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                total += meta.len();
                if total > cap {
                    return total;
                }
            }
        }
    }
    total
}

/// Whether a process with this pid exists on this machine.
fn pid_alive(pid: i64) -> bool {
    if pid == std::process::id() as i64 {
        return true;
    }
    if cfg!(target_os = "linux") {
        Path::new(&format!("/proc/{pid}")).exists()
    } else {
        true
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

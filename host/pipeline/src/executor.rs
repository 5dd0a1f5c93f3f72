//! The local executor: runs a pipeline's steps on this machine, concurrently
//! where the DAG allows, each in its own sandbox.
//!
//! It ingests the external inputs, records the run, and then lets the
//! [`Scheduler`] say which steps may start; each runs on the step runner
//! (cache lookup, sandbox, retries, recording). Whatever else attaches to a
//! run (gates, plugin hooks, model registration) is a
//! [`RunHook`] it calls at fixed points.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use weft_artifacts::ArtifactStore;
use weft_runtime::{Cancel, Runtime};
use weft_store::{status, NewArtifact, Store};

use crate::deferred::UpstreamInput;
use crate::hooks::{HookContext, RunHook};
use crate::ledger::Ledger;
use crate::manifest::InputSource;
use crate::recorder::default_media_type;
use crate::runner::{run_step, Components, PendingInput, Resolved, RunContext, StepResult, StepTask};
use crate::sandbox::SandboxPool;
use crate::scheduler::{Scheduler, StepState};
use crate::worker::{Dispatcher, Flight, Reporter};
use crate::{canonical_json, ExecError, Manifest};

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
    /// An output named under `[models]` became a model version.
    ModelRegistered {
        model: String,
        version: i64,
        source: String,
    },
    /// An output named under `[models]` could not be registered.
    ModelNotRegistered { model: String, error: String },
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
    /// What attaches to the run (gates and plugins, model
    /// registration), called in this order.
    pub hooks: Vec<Arc<dyn RunHook>>,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            no_cache: false,
            cancel: Cancel::default(),
            on_event: Arc::new(|_| {}),
            hooks: Vec::new(),
        }
    }
}

/// Settings of an [`Executor`].
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    /// Where sandboxes are staged (removed after each step run).
    pub work_dir: PathBuf,
    /// Most steps running at once; default: the number of cores, or what
    /// the stack's orchestrator says ([`crate::Dispatcher::default_parallel`]).
    pub max_parallel: Option<usize>,
    /// Let step runs imported through the sync API serve cache hits before
    /// a verification here matched them (a stack setting; off by default).
    pub trust_imported: bool,
    /// Where `${secret:NAME}` in a step's `env` is resolved (none: a step
    /// that refers to a secret fails, saying so).
    pub secrets: Option<weft_secrets::Secrets>,
    /// Where the steps that are not cache hits execute: by default in
    /// this process; else a worker each (see [`crate::Dispatcher`]).
    pub dispatchers: crate::Dispatchers,
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

/// Runs pipelines.
#[derive(Clone)]
pub struct Executor {
    runtime: Runtime,
    store: Store,
    artifacts: ArtifactStore,
    options: ExecutorOptions,
    host: String,
    /// Component digests known to be archived in the artifact store.
    archived: Arc<Mutex<HashSet<String>>>,
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
            archived: Arc::default(),
        }
    }

    /// Runs `manifest` to the end (or until cancelled) and records it.
    pub async fn run(&self, manifest: &Manifest, options: RunOptions) -> Result<RunOutcome, ExecError> {
        let started = Instant::now();
        self.store.warm_up_reader();
        self.store.recover_crashed(&self.host, pid_alive).await?;
        self.clean_stale_work_dirs();

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
        let hooks = HookContext {
            run_id: &run.id,
            manifest,
            store: &self.store,
            artifacts: &self.artifacts,
            on_event: options.on_event.as_ref(),
        };
        for hook in &options.hooks {
            hook.run_started(&hooks).await;
        }
        let result = self.run_recorded(manifest, &options, &hooks, run.number, started).await;
        let outcome = match &result {
            Ok(outcome) => {
                let error = match outcome.status.as_str() {
                    status::FAILED => Some(outcome.error.as_deref().unwrap_or("one or more steps failed")),
                    status::CANCELLED => Some("cancelled by the user"),
                    _ => None,
                };
                self.store.finish_run(&run.id, &outcome.status, error).await?;
                outcome.clone()
            }
            Err(e) => {
                let message = e.to_string();
                self.store
                    .close_pending(&run.id, status::CANCELLED, "the run stopped before this step")
                    .await?;
                self.store.finish_run(&run.id, status::FAILED, Some(&message)).await?;
                RunOutcome {
                    run_id: run.id.clone(),
                    number: run.number,
                    status: status::FAILED.into(),
                    error: Some(message),
                    steps: Vec::new(),
                    duration: started.elapsed(),
                }
            }
        };
        for hook in &options.hooks {
            hook.run_finished(&hooks, &outcome).await;
        }
        result
    }

    /// Asks every hook about an artifact before anything reads it: the
    /// first rejection.
    async fn check(
        hooks: &[Arc<dyn RunHook>],
        ctx: &HookContext<'_>,
        source: &InputSource,
        artifact_id: &str,
    ) -> Result<Option<String>, ExecError> {
        for hook in hooks {
            if let Some(report) = hook.check(ctx, source, artifact_id).await? {
                return Ok(Some(report));
            }
        }
        Ok(None)
    }

    async fn run_recorded(
        &self,
        manifest: &Manifest,
        options: &RunOptions,
        hooks: &HookContext<'_>,
        number: i64,
        started: Instant,
    ) -> Result<RunOutcome, ExecError> {
        let run_id = hooks.run_id;
        let external = self.ingest_inputs(manifest, run_id).await?;
        let steps = &manifest.steps;
        let specs: Vec<(String, String)> = steps
            .iter()
            .map(|s| (s.name.clone(), canonical_json(&s.params)))
            .collect();
        // The previous run's cache candidates are read (on the reader
        // connection) while this run's step runs are written.
        let previous = async {
            if options.no_cache {
                return Ok(HashMap::new());
            }
            self.store
                .previous_run_candidates(&manifest.name, run_id, self.options.trust_imported)
                .await
        };
        let (step_run_ids, previous) = tokio::join!(self.store.create_step_runs(run_id, &specs), previous);
        let (step_run_ids, previous) = (step_run_ids?, previous?);
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
        let mut scheduler = Scheduler::new(upstream);
        let ctx = Arc::new(RunContext {
            runtime: self.runtime.clone(),
            store: self.store.clone(),
            artifacts: self.artifacts.clone(),
            pipeline: manifest.name.clone(),
            run_id: run_id.to_string(),
            cancel: options.cancel.clone(),
            no_cache: options.no_cache,
            trust_imported: self.options.trust_imported,
            secrets: self.options.secrets.clone(),
            on_event: options.on_event.clone(),
            sandboxes: SandboxPool::new(self.options.work_dir.join(std::process::id().to_string()).join(run_id)),
            components: Components::new(self.archived.clone()),
            ledger: Ledger::new(self.store.clone()),
            previous,
            dispatchers: self.options.dispatchers.clone(),
        });
        // Steps executed on this machine share its cores; a cluster's
        // jobs do not, so a run on one follows many at once.
        let default_parallel = || {
            self.options
                .dispatchers
                .default
                .as_ref()
                .and_then(|d| d.default_parallel())
                .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2))
        };
        let max_parallel = manifest
            .max_parallel
            .or(self.options.max_parallel)
            .unwrap_or_else(default_parallel)
            .max(1);
        let mut summaries: Vec<Option<StepOutcomeSummary>> = vec![None; steps.len()];
        let finish = |summaries: &mut Vec<Option<StepOutcomeSummary>>, i: usize, result: &StepResult| {
            (options.on_event)(Event::StepFinished {
                step: steps[i].name.clone(),
                status: result.status.clone(),
                duration: result.duration,
                error: result.error.clone(),
            });
            summaries[i] = Some(StepOutcomeSummary {
                name: steps[i].name.clone(),
                status: result.status.clone(),
                duration: result.duration,
                error: result.error.clone(),
                cached_from: result.cached_from.clone(),
            });
        };

        // Gates on the external data: a rejection stops the run before any
        // step reads it.
        let mut gate_error: Option<String> = None;
        for input in &manifest.inputs {
            let source = InputSource::External(input.name.clone());
            if let Some(report) = Self::check(&options.hooks, hooks, &source, &external[&input.name].id).await? {
                gate_error.get_or_insert(report);
            }
        }
        if let Some(report) = &gate_error {
            let reason = format!("not run: {}", report.lines().next().unwrap_or(report));
            for skip in scheduler.skip_waiting() {
                self.store
                    .skip_step_run(&step_run_ids[skip.step], status::SKIPPED, &reason)
                    .await?;
                finish(&mut summaries, skip.step, &skipped(status::SKIPPED, &reason));
            }
        }

        // Where each step handed to an orchestrator is (its job), for the
        // steps held on it; `changed` wakes this loop when one is submitted.
        let flights: Vec<Arc<watch::Sender<Flight>>> = steps
            .iter()
            .map(|_| Arc::new(watch::channel(Flight::Unsent).0))
            .collect();
        let changed = Arc::new(Notify::new());
        // A step can be held on a running one when both go to the same
        // orchestrator, which holds jobs and has that one's job. (Gates
        // read outputs in this process: with gates, steps wait here.)
        let holding: Vec<Option<Arc<dyn Dispatcher>>> = steps
            .iter()
            .map(|s| {
                let dispatcher = ctx.dispatchers.for_step(s).ok().flatten()?;
                (dispatcher.holds_jobs() && manifest.gates.is_empty()).then(|| dispatcher.clone())
            })
            .collect();
        let held = |u: usize, i: usize| match (&holding[u], &holding[i]) {
            (Some(up), Some(down)) => Arc::ptr_eq(up, down) && matches!(*flights[u].borrow(), Flight::Job(_)),
            _ => false,
        };

        let mut produced: HashMap<(String, String), Resolved> = HashMap::new();
        let mut tasks: JoinSet<(usize, StepResult)> = JoinSet::new();
        loop {
            if !options.cancel.is_cancelled() {
                for i in scheduler.start_ready_or_held(max_parallel - tasks.len(), held) {
                    let mut inputs: Vec<(String, Resolved)> = Vec::new();
                    let mut pending: Vec<PendingInput> = Vec::new();
                    for (slot, src) in &steps[i].inputs {
                        match src {
                            InputSource::External(name) => {
                                if let Some(r) = external.get(name) {
                                    inputs.push((slot.clone(), r.clone()));
                                }
                            }
                            InputSource::Step { step, output } => {
                                if let Some(r) = produced.get(&(step.clone(), output.clone())) {
                                    inputs.push((slot.clone(), r.clone()));
                                } else if let Some(&u) = index.get(step.as_str()) {
                                    debug_assert_eq!(scheduler.state(u), StepState::Running);
                                    pending.push(PendingInput {
                                        input: UpstreamInput {
                                            input: slot.clone(),
                                            step: step.clone(),
                                            step_run: step_run_ids[u].clone(),
                                            output: output.clone(),
                                        },
                                        flight: flights[u].subscribe(),
                                    });
                                }
                            }
                        }
                    }
                    let ctx = ctx.clone();
                    let task = StepTask {
                        step: steps[i].clone(),
                        step_run_id: step_run_ids[i].clone(),
                        inputs,
                        pending,
                        reporter: Reporter::new(flights[i].clone(), changed.clone()),
                    };
                    tasks.spawn(async move { (i, run_step(&ctx, task).await) });
                }
            }
            let joined = tokio::select! {
                joined = tasks.join_next() => joined,
                // A step was submitted: the steps that read it may be held on it.
                _ = changed.notified(), if !tasks.is_empty() => continue,
            };
            let Some(joined) = joined else { break };
            let (i, mut result) = joined.map_err(|e| ExecError::Io(format!("a step task failed: {e}")))?;
            // Gates on the step's outputs: a rejection fails the step, so
            // nothing downstream reads what it wrote. (A gate reads the
            // output's row: the ledger is written first.)
            let gated =
                (result.status == status::SUCCEEDED || result.status == status::CACHED) && !manifest.gates.is_empty();
            if gated {
                ctx.ledger.flush().await?;
            }
            if gated {
                for (output, resolved) in &result.outputs {
                    let source = InputSource::Step {
                        step: steps[i].name.clone(),
                        output: output.clone(),
                    };
                    if let Some(report) = Self::check(&options.hooks, hooks, &source, &resolved.id).await? {
                        self.store
                            .skip_step_run(&step_run_ids[i], status::FAILED, &report)
                            .await?;
                        result.status = status::FAILED.into();
                        result.error = Some(report.clone());
                        gate_error.get_or_insert(report);
                        break;
                    }
                }
            }
            let ok = result.status == status::SUCCEEDED || result.status == status::CACHED;
            flights[i].send_replace(Flight::Ended(ok));
            for (output, resolved) in &result.outputs {
                produced.insert((steps[i].name.clone(), output.clone()), resolved.clone());
            }
            // (A step held on one that failed ends skipped, never having run.)
            if result.status != status::SKIPPED {
                for hook in &options.hooks {
                    hook.step_finished(hooks, &step_run_ids[i]).await;
                }
            }
            finish(&mut summaries, i, &result);
            // Everything downstream of a failed step is skipped.
            for skip in scheduler.finish(i, ok) {
                let (why, reason) = match skip.because {
                    _ if options.cancel.is_cancelled() => (
                        status::CANCELLED,
                        "the run was cancelled before this step started".to_string(),
                    ),
                    Some(upstream) => (
                        status::SKIPPED,
                        format!("skipped: upstream step '{}' did not succeed", steps[upstream].name),
                    ),
                    None => (status::SKIPPED, "skipped: the run stopped".to_string()),
                };
                self.store.skip_step_run(&step_run_ids[skip.step], why, &reason).await?;
                finish(&mut summaries, skip.step, &skipped(why, &reason));
            }
        }

        ctx.ledger.flush().await?;
        ctx.sandboxes.remove_all();
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

    /// External data becomes artifacts first: its content is what the cache
    /// keys of the first steps depend on.
    async fn ingest_inputs(&self, manifest: &Manifest, run_id: &str) -> Result<HashMap<String, Resolved>, ExecError> {
        let mut external = HashMap::new();
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
        Ok(external)
    }

    /// Removes sandbox directories left by processes that died (or that a
    /// live one could not empty), whatever their depth.
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
                if let Err(e) = crate::sandbox::remove_tree(&entry.path()) {
                    tracing::warn!(
                        "could not remove the sandboxes a dead weft process left in {}: {e}",
                        entry.path().display()
                    );
                }
            }
        }
        self.artifacts.clean_staging(pid_alive);
    }
}

/// The result of a step that did not run.
fn skipped(status: &str, reason: &str) -> StepResult {
    StepResult {
        status: status.into(),
        duration: Duration::ZERO,
        error: Some(reason.to_string()),
        outputs: Vec::new(),
        cached_from: None,
    }
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
            "nondeterministic": s.nondeterministic,
            "env": s.env.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect::<serde_json::Map<_, _>>(),
        })).collect::<Vec<_>>(),
    })
}

/// Whether a process with this pid exists on this machine.
pub(crate) fn pid_alive(pid: i64) -> bool {
    if pid == std::process::id() as i64 {
        return true;
    }
    if cfg!(target_os = "linux") {
        Path::new(&format!("/proc/{pid}")).exists()
    } else {
        true
    }
}

/// This machine's name, as recorded with runs and verifications.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

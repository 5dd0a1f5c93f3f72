//! The step runner: one step of one run, from its inputs to its recorded
//! outcome. It reads and archives the component, builds the step's
//! [`StepSpec`] (and so its cache key), serves it from the cache when it
//! can, and otherwise runs it in a sandbox with its retry policy.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use weft_artifacts::{ArtifactKind, ArtifactStore};
use weft_runtime::{Cancel, ComponentBytes, LoadedStep, Runtime, SandboxDirs, StepCall, StepFailure, TrackerEvent};
use weft_store::{new_id, status, ArtifactLink, CacheHit, NewArtifact, StepRunRecord, Store};

use crate::cache_key::{SpecInput, SpecLimits, SpecOutput, StepSpec};
use crate::deferred::{Deferred, UpstreamInput};
use crate::executor::Event;
use crate::ledger::Ledger;
use crate::manifest::{Retry, Step};
use crate::recorder::{self, Keep, Output};
use crate::sandbox::SandboxPool;
use crate::worker::{run_dispatched, Dispatchers, Handout, Reporter, Upstream};
use crate::ExecError;

/// An artifact as the scheduler passes it between steps.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub id: String,
    pub digest: String,
    pub kind: ArtifactKind,
}

/// How one step ended.
pub(crate) struct StepResult {
    pub status: String,
    pub duration: Duration,
    pub error: Option<String>,
    pub outputs: Vec<(String, Resolved)>,
    /// For a cache hit, the step run it was served from.
    pub cached_from: Option<String>,
}

impl StepResult {
    fn failed(error: String, started: Instant) -> Self {
        Self::ended(status::FAILED, error, started)
    }

    fn ended(status: &str, error: String, started: Instant) -> Self {
        Self {
            status: status.into(),
            duration: started.elapsed(),
            error: Some(error),
            outputs: Vec::new(),
            cached_from: None,
        }
    }
}

/// What every step of one run shares.
pub(crate) struct RunContext {
    pub runtime: Runtime,
    pub store: Store,
    pub artifacts: ArtifactStore,
    pub pipeline: String,
    pub run_id: String,
    pub cancel: Cancel,
    pub no_cache: bool,
    /// Imported step runs may serve cache hits unverified.
    pub trust_imported: bool,
    /// Where the secrets a step's `env` refers to are resolved.
    pub secrets: Option<weft_secrets::Secrets>,
    pub on_event: Arc<dyn Fn(Event) + Send + Sync>,
    pub sandboxes: SandboxPool,
    pub components: Components,
    /// What the step runs did, written behind them (see [`Ledger`]).
    pub ledger: Arc<Ledger>,
    /// The cache candidates of the pipeline's previous run, by cache key
    /// (see [`Store::previous_run_candidates`]): a rerun's hits need no
    /// query each.
    pub previous: HashMap<String, (String, Vec<ArtifactLink>)>,
    /// Where steps that are not cache hits execute, if not here.
    pub dispatchers: Dispatchers,
}

/// Component files, read once per run and archived once per process.
pub(crate) struct Components {
    read: Mutex<HashMap<PathBuf, ComponentBytes>>,
    /// Digests known to be in the artifact store (shared by the runs of a
    /// process).
    archived: Arc<Mutex<HashSet<String>>>,
}

impl Components {
    pub(crate) fn new(archived: Arc<Mutex<HashSet<String>>>) -> Self {
        Self {
            read: Mutex::default(),
            archived,
        }
    }

    /// A component file's bytes and digest.
    fn get(&self, path: &Path) -> Result<ComponentBytes, ExecError> {
        let mut read = self.read.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(component) = read.get(path) {
            return Ok(component.clone());
        }
        let component = ComponentBytes::read(path).map_err(|e| ExecError::Io(e.to_string()))?;
        read.insert(path.to_owned(), component.clone());
        Ok(component)
    }

    /// Keeps the component in the artifact store under its digest, so a
    /// step run can be re-executed without the source tree (`weft verify`,
    /// another machine). Paid once per component: a digest already stored
    /// is remembered.
    async fn archive(&self, artifacts: &ArtifactStore, component: &ComponentBytes) -> Result<(), ExecError> {
        let digest = component.digest();
        if self.archived.lock().unwrap_or_else(|p| p.into_inner()).contains(digest) {
            return Ok(());
        }
        let stored = artifacts.contains(digest, ArtifactKind::File).await.unwrap_or(false);
        if !stored {
            artifacts
                .put_bytes(component.bytes().clone())
                .await
                .map_err(|e| ExecError::Io(format!("archiving the component {digest}: {e}")))?;
        }
        self.archived
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(digest.to_string());
        Ok(())
    }
}

/// The sandbox spec of `step` given `inputs` and its component's digest.
fn spec_of(step: &Step, component: &str, inputs: &[(String, Resolved)]) -> StepSpec {
    let mut spec_inputs: Vec<SpecInput> = inputs
        .iter()
        .map(|(name, r)| SpecInput {
            name: name.clone(),
            kind: r.kind,
            digest: r.digest.clone(),
        })
        .collect();
    spec_inputs.sort_by(|a, b| a.name.cmp(&b.name));
    let mut outputs: Vec<SpecOutput> = step
        .outputs
        .iter()
        .map(|o| SpecOutput {
            name: o.name.clone(),
            media_type: o.media_type.clone(),
        })
        .collect();
    outputs.sort_by(|a, b| a.name.cmp(&b.name));
    let limits = &step.limits;
    StepSpec {
        component: component.to_string(),
        params: step.params.clone(),
        inputs: spec_inputs,
        outputs,
        env: step.env.clone(),
        nondeterministic: step.nondeterministic,
        host: weft_runtime::STEP_WIT_DIGEST.to_string(),
        limits: SpecLimits {
            memory_bytes: limits.sandbox.memory_bytes,
            timeout_ms: limits.sandbox.timeout.as_millis() as u64,
            max_log_bytes: limits.sandbox.max_log_bytes as u64,
            max_resources: limits.sandbox.max_resources as u64,
            max_output_bytes: limits.max_output_bytes,
            max_tmp_bytes: limits.max_tmp_bytes,
        },
    }
}

/// `virtual` or `real`, as recorded.
pub(crate) fn determinism_name(spec: &StepSpec) -> &'static str {
    if spec.nondeterministic {
        "real"
    } else {
        "virtual"
    }
}

/// An input of a step that a step still in flight at the same dispatcher
/// produces (the step is handed out deferred, see [`crate::deferred`]).
pub(crate) struct PendingInput {
    pub input: UpstreamInput,
    pub flight: tokio::sync::watch::Receiver<crate::worker::Flight>,
}

/// One step of a run, as the executor hands it to the runner.
pub(crate) struct StepTask {
    pub step: Step,
    pub step_run_id: String,
    /// Its inputs that exist.
    pub inputs: Vec<(String, Resolved)>,
    /// Its inputs that steps in flight will produce (then it is handed
    /// to their dispatcher, held on their jobs).
    pub pending: Vec<PendingInput>,
    /// Where its dispatcher reports its jobs.
    pub reporter: Reporter,
}

/// Runs one step of a run to its recorded end. Never fails: a failure of
/// weft itself (database, disk) is recorded against the step.
pub(crate) async fn run_step(ctx: &RunContext, task: StepTask) -> StepResult {
    let started = Instant::now();
    let step_run_id = &task.step_run_id;
    match try_run_step(ctx, &task, started).await {
        Ok(result) => result,
        Err(error) => {
            // Interrupted while it was being set up (its compiler process
            // got the Ctrl-C too): cancelled, not failed.
            let (ended, message) = if ctx.cancel.is_cancelled() {
                (status::CANCELLED, StepFailure::Cancelled.to_string())
            } else {
                (status::FAILED, format!("weft could not run this step: {error}"))
            };
            let record = StepRunRecord {
                status: ended.into(),
                error: Some(message.clone()),
                ..Default::default()
            };
            let _ = ctx.ledger.flush().await;
            let _ = ctx.store.complete_step_run(&ctx.run_id, step_run_id, &record).await;
            StepResult::ended(ended, message, started)
        }
    }
}

async fn try_run_step(ctx: &RunContext, task: &StepTask, started: Instant) -> Result<StepResult, ExecError> {
    let StepTask {
        step,
        step_run_id,
        inputs,
        pending,
        reporter: _,
    } = task;
    let step_run_id = step_run_id.as_str();
    let component = ctx.components.get(&step.component)?;
    ctx.components.archive(&ctx.artifacts, &component).await?;
    let digest = component.digest().to_string();
    let spec = spec_of(step, &digest, inputs);
    let input_ids: Vec<(String, String)> = inputs.iter().map(|(slot, r)| (slot.clone(), r.id.clone())).collect();
    let lookup = step.cache && !ctx.no_cache && !step.nondeterministic;

    let dispatcher = ctx.dispatchers.for_step(step)?;
    if !pending.is_empty() {
        let dispatcher = dispatcher.ok_or_else(|| {
            ExecError::Io(format!(
                "step '{}' was handed out before its inputs existed, with no orchestrator to hold it",
                step.name
            ))
        })?;
        let deferred = Deferred {
            spec,
            known: input_ids,
            upstream: pending.iter().map(|p| p.input.clone()).collect(),
            lookup,
            trust_imported: ctx.trust_imported,
        };
        let upstream: Vec<Upstream> = pending
            .iter()
            .map(|p| Upstream {
                step: p.input.step.clone(),
                flight: p.flight.clone(),
            })
            .collect();
        let handout = Handout::Deferred {
            deferred: &deferred,
            upstream: &upstream,
        };
        return run_dispatched(ctx, dispatcher.as_ref(), task, handout, started).await;
    }

    let key = spec.key();
    let spec_json = spec.to_json();
    if lookup {
        let lookup = Lookup {
            step,
            step_run_id,
            spec: &spec,
            key: &key,
            spec_json: &spec_json,
            input_ids: &input_ids,
            started,
        };
        if let Some(hit) = serve_from_cache(ctx, &lookup).await? {
            return Ok(hit);
        }
    }

    if let Some(dispatcher) = dispatcher {
        let handout = Handout::Prepared {
            digest: &digest,
            key: &key,
            spec_json: &spec_json,
            determinism: determinism_name(&spec),
            input_ids: &input_ids,
        };
        return run_dispatched(ctx, dispatcher.as_ref(), task, handout, started).await;
    }

    (ctx.on_event)(Event::StepStarted {
        step: step.name.clone(),
    });
    let started_ms = weft_store::now_ms();
    // The step run is recorded as running only if it takes a while: a
    // short step is written once, when it ends.
    let work = execute(ctx, step, &spec, &key, component);
    tokio::pin!(work);
    let executed = tokio::select! {
        executed = &mut work => executed,
        _ = tokio::time::sleep(MARK_RUNNING_AFTER) => {
            ctx.store
                .start_step_run(step_run_id, &digest, &key, &spec_json, determinism_name(&spec))
                .await?;
            work.await
        }
    }?;

    let mut record = StepRunRecord {
        component_digest: Some(digest.clone()),
        cache_key: Some(key.clone()),
        sandbox: Some(spec_json),
        determinism: Some(determinism_name(&spec).into()),
        started_at: Some(started_ms),
        inputs: input_ids,
        ..Default::default()
    };
    let last = match executed {
        Executed::NotLoaded(e) => {
            record.status = status::FAILED.into();
            record.error = Some(e.to_string());
            record.attempts = 1;
            ctx.ledger.flush().await?;
            ctx.store.complete_step_run(&ctx.run_id, step_run_id, &record).await?;
            return Ok(StepResult::failed(e.to_string(), started));
        }
        Executed::Ran { last, logs, attempts } => {
            record.logs = logs;
            record.attempts = attempts as i64;
            last
        }
    };
    let (status, error) = match &last.result {
        Ok(()) => (status::SUCCEEDED, None),
        Err(StepFailure::Cancelled) => (status::CANCELLED, Some(StepFailure::Cancelled.to_string())),
        Err(failure) => (status::FAILED, Some(failure.to_string())),
    };
    record.status = status.into();
    record.error = error.clone();
    record.outputs = last
        .outputs
        .iter()
        .map(|o| (o.name.clone(), o.artifact(&ctx.pipeline, &step.name)))
        .collect();
    recorder::add_events(&mut record, last.events);
    record.output_ids = last.outputs.iter().map(|_| new_id()).collect();
    record.ended_at = Some(weft_store::now_ms());
    let outputs = record
        .output_ids
        .iter()
        .zip(last.outputs)
        .map(|(id, output)| {
            (
                output.name,
                Resolved {
                    id: id.clone(),
                    digest: output.stored.digest,
                    kind: output.stored.kind,
                },
            )
        })
        .collect();
    // Written behind: the next steps need only the ids and the bytes.
    ctx.ledger.push_finished(&ctx.run_id, step_run_id, record);
    Ok(StepResult {
        status: status.into(),
        duration: started.elapsed(),
        error,
        outputs,
        cached_from: None,
    })
}

/// How long a step runs before it is recorded as running.
const MARK_RUNNING_AFTER: Duration = Duration::from_millis(100);

/// How executing a step went.
enum Executed {
    /// Its component could not be compiled or does not fit the step world.
    NotLoaded(weft_runtime::RuntimeError),
    /// It ran: the last attempt, every attempt's logs, how many.
    Ran { last: Attempt, logs: String, attempts: u32 },
}

/// Loads the component and runs the step, retrying as its policy says.
async fn execute(
    ctx: &RunContext,
    step: &Step,
    spec: &StepSpec,
    key: &str,
    component: ComponentBytes,
) -> Result<Executed, ExecError> {
    let loaded = match ctx.runtime.loaded(component.digest()) {
        Some(loaded) => loaded,
        None => {
            // Compiling is CPU-bound: keep it off the async workers.
            let runtime = ctx.runtime.clone();
            let path = step.component.clone();
            let loaded = tokio::task::spawn_blocking(move || runtime.load_component(&path, &component))
                .await
                .map_err(|e| ExecError::Io(format!("loading the component: {e}")))?;
            match loaded {
                Ok(loaded) => loaded,
                Err(e) => return Ok(Executed::NotLoaded(e)),
            }
        }
    };
    if !loaded.compiled_from_cache() {
        (ctx.on_event)(Event::StepCompiled {
            step: step.name.clone(),
            took: loaded.load_time(),
            from_cache: false,
        });
    }

    let mut retrying = Retrying::new(&step.retry, step.nondeterministic, &ctx.cancel);
    loop {
        let last = attempt_in(
            &ctx.sandboxes,
            &ctx.artifacts,
            &loaded,
            &step.name,
            spec,
            key,
            &ctx.cancel,
            ctx.secrets.as_ref(),
        )
        .await;
        let Some(wait) = retrying.after(&last) else {
            let (logs, attempts) = retrying.finish();
            return Ok(Executed::Ran { last, logs, attempts });
        };
        if let Err(failure) = &last.result {
            (ctx.on_event)(Event::StepRetrying {
                step: step.name.clone(),
                attempt: retrying.attempts(),
                error: failure.to_string(),
                wait,
            });
        }
        if !retrying.wait(wait).await {
            let (logs, attempts) = retrying.finish();
            return Ok(Executed::Ran { last, logs, attempts });
        }
    }
}

/// A step's retry policy at work: gathers every attempt's logs and says
/// whether another attempt follows. The executor and workers share it.
pub(crate) struct Retrying<'a> {
    retry: &'a Retry,
    nondeterministic: bool,
    cancel: &'a Cancel,
    logs: String,
    attempts: u32,
}

impl<'a> Retrying<'a> {
    pub(crate) fn new(retry: &'a Retry, nondeterministic: bool, cancel: &'a Cancel) -> Self {
        Self {
            retry,
            nondeterministic,
            cancel,
            logs: String::new(),
            attempts: 0,
        }
    }

    /// Takes the attempt that just ended: how long to wait before the
    /// next, or `None` when it was the last (it succeeded, the policy is
    /// spent, the run is cancelled, or the failure would happen again).
    pub(crate) fn after(&mut self, last: &Attempt) -> Option<Duration> {
        self.attempts += 1;
        if self.attempts > 1 {
            self.logs.push_str(&format!("--- attempt {} ---\n", self.attempts));
        }
        self.logs.push_str(&last.logs);
        let Err(failure) = &last.result else {
            return None;
        };
        if self.attempts > self.retry.max || self.cancel.is_cancelled() {
            return None;
        }
        if !failure.may_change_on_retry(self.nondeterministic) {
            self.logs.push_str(
                "[weft: not retried: this failure would happen again (a step with virtual time and randomness \
                 is retried only after a timeout or a failure of weft itself; traps, panics, memory limits and \
                 invalid params are never retried)]\n",
            );
            return None;
        }
        Some(backoff(self.retry, self.attempts))
    }

    /// How many attempts ended so far.
    pub(crate) fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Waits `wait` before the next attempt; `false` if the run was
    /// cancelled meanwhile.
    pub(crate) async fn wait(&self, wait: Duration) -> bool {
        sleep_unless_cancelled(self.cancel, wait).await
    }

    /// Every attempt's logs, and how many attempts there were.
    pub(crate) fn finish(self) -> (String, u32) {
        (self.logs, self.attempts)
    }
}

/// The wait before retry number `retry` (from 1): the policy's backoff,
/// doubled each time.
pub(crate) fn backoff(policy: &Retry, retry: u32) -> Duration {
    policy.backoff * 2u32.saturating_pow(retry.saturating_sub(1))
}

/// Sleeps `wait`, or less if `cancel` is set meanwhile; `false` if it was.
pub(crate) async fn sleep_unless_cancelled(cancel: &Cancel, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline && !cancel.is_cancelled() {
        tokio::time::sleep(Duration::from_millis(20).min(deadline.saturating_duration_since(Instant::now()))).await;
    }
    !cancel.is_cancelled()
}

/// One [`attempt`] in sandbox directories taken from `sandboxes` (and
/// given back).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn attempt_in(
    sandboxes: &SandboxPool,
    artifacts: &ArtifactStore,
    loaded: &LoadedStep,
    step: &str,
    spec: &StepSpec,
    key: &str,
    cancel: &Cancel,
    secrets: Option<&weft_secrets::Secrets>,
) -> Attempt {
    match sandboxes.take() {
        Ok(dirs) => {
            let a = attempt(artifacts, loaded, &dirs, step, spec, key, cancel, Keep::Store, secrets).await;
            sandboxes.give(dirs);
            a
        }
        Err(e) => Attempt::failed(StepFailure::Host(format!(
            "weft could not create a sandbox directory: {e}"
        ))),
    }
}

/// A step run looking for a cache hit.
struct Lookup<'a> {
    step: &'a Step,
    step_run_id: &'a str,
    spec: &'a StepSpec,
    key: &'a str,
    spec_json: &'a str,
    input_ids: &'a [(String, String)],
    started: Instant,
}

/// Serves a step from an earlier step run with the same cache key whose
/// outputs are all still stored, recording it (queued, see [`Ledger`]) as
/// a step run of this run with outputs of its own: new versions under its
/// names, the same bytes. The previous run's candidate is tried first,
/// without a query; then the store's.
async fn serve_from_cache(ctx: &RunContext, lookup: &Lookup<'_>) -> Result<Option<StepResult>, ExecError> {
    let previous = ctx.previous.get(lookup.key);
    if let Some((original, links)) = previous {
        if let Some(result) = serve_from(ctx, lookup, original, links).await? {
            return Ok(Some(result));
        }
    }
    for (original, links) in ctx.store.cache_candidates(lookup.key, ctx.trust_imported).await? {
        if previous.is_some_and(|(tried, _)| *tried == original) {
            continue;
        }
        if let Some(result) = serve_from(ctx, lookup, &original, &links).await? {
            return Ok(Some(result));
        }
    }
    Ok(None)
}

/// Serves a step from one candidate step run (`original`, with its output
/// `links`), or `None` when it lacks a declared output or its bytes.
async fn serve_from(
    ctx: &RunContext,
    lookup: &Lookup<'_>,
    original: &str,
    links: &[ArtifactLink],
) -> Result<Option<StepResult>, ExecError> {
    let Lookup {
        step,
        step_run_id,
        spec,
        key,
        spec_json,
        input_ids,
        started,
    } = *lookup;
    let Some((outputs, resolved)) = hit_outputs(&ctx.artifacts, &ctx.pipeline, &step.name, spec, links).await else {
        return Ok(None);
    };
    let full = ctx.ledger.push_hit(CacheHit {
        step_run_id: step_run_id.to_string(),
        run_id: ctx.run_id.clone(),
        step_name: step.name.clone(),
        params: crate::canonical_json(&step.params),
        original: original.to_string(),
        component_digest: spec.component.clone(),
        cache_key: key.to_string(),
        sandbox: spec_json.to_string(),
        determinism: determinism_name(spec).to_string(),
        inputs: input_ids.to_vec(),
        outputs,
    });
    if full {
        ctx.ledger.flush().await?;
    }
    Ok(Some(StepResult {
        status: status::CACHED.into(),
        duration: started.elapsed(),
        error: None,
        outputs: resolved,
        cached_from: Some(original.to_string()),
    }))
}

/// The outputs that serving `pipeline`'s step `step` (sandbox `spec`)
/// from a step run with the output `links` gives it: for each declared
/// output, its new artifact (`(output, new id, artifact)`: the same bytes
/// under this step's name) and what the steps after it read. `None` when
/// a declared output is missing or its bytes are gone (a miss).
#[allow(clippy::type_complexity)]
pub(crate) async fn hit_outputs(
    artifacts: &ArtifactStore,
    pipeline: &str,
    step: &str,
    spec: &StepSpec,
    links: &[ArtifactLink],
) -> Option<(Vec<(String, String, NewArtifact)>, Vec<(String, Resolved)>)> {
    let mut outputs = Vec::with_capacity(spec.outputs.len());
    let mut resolved = Vec::with_capacity(spec.outputs.len());
    for declared in &spec.outputs {
        let link = links.iter().find(|l| l.slot == declared.name)?;
        let a = &link.artifact;
        let kind = ArtifactKind::parse(&a.kind).unwrap_or(ArtifactKind::File);
        if !artifacts.contains(&a.digest, kind).await.unwrap_or(false) {
            return None;
        }
        let id = new_id();
        resolved.push((
            declared.name.clone(),
            Resolved {
                id: id.clone(),
                digest: a.digest.clone(),
                kind,
            },
        ));
        outputs.push((
            declared.name.clone(),
            id,
            NewArtifact {
                name: format!("{pipeline}/{step}.{}", declared.name),
                digest: a.digest.clone(),
                kind: a.kind.clone(),
                media_type: a.media_type.clone(),
                size: a.size,
                source_uri: None,
            },
        ));
    }
    Some((outputs, resolved))
}

/// One execution of a step in a sandbox.
pub(crate) struct Attempt {
    pub result: Result<(), StepFailure>,
    pub events: Vec<TrackerEvent>,
    pub outputs: Vec<Output>,
    pub logs: String,
}

impl Attempt {
    pub(crate) fn failed(failure: StepFailure) -> Self {
        Self {
            result: Err(failure),
            events: Vec::new(),
            outputs: Vec::new(),
            logs: String::new(),
        }
    }
}

/// A step's environment with every `${secret:NAME}` resolved, and the
/// values used (to mask them in its logs).
#[allow(clippy::type_complexity)]
fn granted_env(
    env: &[(String, String)],
    secrets: Option<&weft_secrets::Secrets>,
) -> Result<(Vec<(String, String)>, Vec<zeroize::Zeroizing<String>>), String> {
    let mut granted = Vec::with_capacity(env.len());
    let mut values = Vec::new();
    for (name, value) in env {
        if !value.contains(weft_secrets::REFERENCE_START) {
            granted.push((name.clone(), value.clone()));
            continue;
        }
        let secrets =
            secrets.ok_or_else(|| format!("env {name} refers to a secret, and no secrets are available here"))?;
        let resolved = secrets.resolve(value).map_err(|e| format!("env {name}: {e}"))?;
        granted.push((name.clone(), resolved.text.to_string()));
        values.extend(resolved.values);
    }
    Ok((granted, values))
}

/// One execution: stage the inputs `spec` names from the artifact store
/// into `dirs`, run the step in the sandbox `spec` describes, collect its
/// declared outputs. Runs and verifications both go through here, so a
/// verification sees exactly the sandbox the step run had.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn attempt(
    artifacts: &ArtifactStore,
    loaded: &LoadedStep,
    dirs: &SandboxDirs,
    step: &str,
    spec: &StepSpec,
    key: &str,
    cancel: &Cancel,
    keep: Keep,
    secrets: Option<&weft_secrets::Secrets>,
) -> Attempt {
    // The environment as granted, its secrets resolved: the spec (and so
    // the cache key and the record) keeps the references, never values.
    let (env, values) = match granted_env(&spec.env, secrets) {
        Ok(granted) => granted,
        Err(e) => return Attempt::failed(StepFailure::Host(e)),
    };
    for input in &spec.inputs {
        if let Err(e) = artifacts
            .materialize(&input.digest, input.kind, &dirs.inputs.join(&input.name))
            .await
        {
            return Attempt::failed(StepFailure::Host(format!(
                "weft could not stage input '{}': {}",
                input.name,
                recorder::sandbox_view(&e.to_string(), dirs)
            )));
        }
    }
    let params = crate::canonical_json(&spec.params);
    let limits = spec.limits.sandbox();
    let call = StepCall {
        params: &params,
        dirs,
        limits: &limits,
        cancel,
        env: &env,
        determinism: spec.determinism(key),
    };
    let outcome = loaded.run(&call).await;
    // What the step printed never shows a secret it was given.
    let mut logs = if values.is_empty() {
        outcome.logs
    } else {
        weft_secrets::mask(&outcome.logs, &values)
    };
    if let Err(failure) = outcome.result {
        return Attempt {
            result: Err(failure),
            events: outcome.events,
            outputs: Vec::new(),
            logs,
        };
    }
    match recorder::collect_outputs(artifacts, dirs, step, &spec.outputs, &spec.limits, keep, &mut logs).await {
        Ok(outputs) => Attempt {
            result: Ok(()),
            events: outcome.events,
            outputs,
            logs,
        },
        Err(failure) => Attempt {
            result: Err(failure),
            events: outcome.events,
            outputs: Vec::new(),
            logs,
        },
    }
}

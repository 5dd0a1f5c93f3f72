//! Runs that `weft server` starts: `weft pipeline register` (what it can
//! start), `weft schedule ...` (when), and the [`ServerLauncher`] that
//! runs them on the server's stack.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use serde_json::{Map, Value};
use tokio::task::JoinSet;
use weft_pipeline::{registered, Event, Executor, ExecutorOptions, ModelRegistration, RunHook, RunOptions};
use weft_runtime::Cancel;
use weft_store::NewSchedule;
use weft_triggers::{Launched, Launcher, Missed};

use crate::context::{find_manifest, CliError, CliResult, Stack, Stores};
use crate::exit;

/// `weft pipeline register`: archives the manifest's components and
/// inputs and records them as the pipeline's newest definition.
pub async fn register(manifest: Option<&Path>, stores: &Stores) -> CliResult<u8> {
    let path = find_manifest(manifest)?;
    let definition = registered::register(&path, &stores.store, &stores.artifacts)
        .await
        .map_err(|e| CliError::usage(format!("cannot register {}: {e}", path.display())))?;
    eprintln!(
        "registered pipeline '{}' version {}: `POST /api/v1/pipelines/{}/runs` and schedules now run it",
        definition.pipeline, definition.version, definition.pipeline
    );
    Ok(exit::OK)
}

/// What `weft schedule create` takes.
pub struct NewScheduleArgs<'a> {
    pub name: &'a str,
    pub pipeline: &'a str,
    pub cron: &'a str,
    pub params: &'a [String],
    pub missed: &'a str,
}

fn trigger_error(e: weft_triggers::TriggerError) -> CliError {
    match e {
        weft_triggers::TriggerError::Store(e) => e.into(),
        other => CliError::usage(other),
    }
}

/// `weft schedule create`.
pub async fn create(stores: &Stores, args: NewScheduleArgs<'_>) -> CliResult<u8> {
    let mut params = Map::new();
    for p in args.params {
        let (target, value) = p
            .split_once('=')
            .filter(|(t, _)| t.contains('.'))
            .ok_or_else(|| CliError::usage(format!("-p {p}: expected STEP.KEY=VALUE")))?;
        params.insert(target.trim().to_string(), Value::String(value.to_string()));
    }
    let params = Value::Object(params);
    let next_due_at = weft_triggers::check_new(args.name, args.cron, args.missed, &params).map_err(trigger_error)?;
    let schedule = stores
        .store
        .create_schedule(NewSchedule {
            name: args.name,
            pipeline: args.pipeline,
            cron: args.cron,
            params: &params,
            missed: args.missed,
            next_due_at,
        })
        .await?;
    eprintln!(
        "schedule '{}' runs pipeline '{}' at '{}' (UTC); next at {}. `weft server` fires it.",
        schedule.name,
        schedule.pipeline,
        schedule.cron,
        crate::commands::time(schedule.next_due_at)
    );
    Ok(exit::OK)
}

/// `weft schedule list`.
pub async fn list(stores: &Stores, json: bool) -> CliResult<u8> {
    let schedules = stores.store.schedules().await?;
    if json {
        return crate::commands::print_json(&schedules);
    }
    println!(
        "{:<20} {:<16} {:<16} {:<8} {:<20} LAST",
        "SCHEDULE", "PIPELINE", "CRON", "STATE", "NEXT"
    );
    for s in schedules {
        let last = s
            .last
            .map(|f| {
                format!(
                    "{} {} {}",
                    crate::commands::time(f.due_at),
                    f.outcome,
                    f.run_id.unwrap_or_default()
                )
            })
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<20} {:<16} {:<16} {:<8} {:<20} {}",
            s.name,
            s.pipeline,
            s.cron,
            if s.paused { "paused" } else { "active" },
            crate::commands::time(s.next_due_at),
            last
        );
    }
    Ok(exit::OK)
}

/// `weft schedule show`: the schedule and its history.
pub async fn show(stores: &Stores, name: &str, json: bool) -> CliResult<u8> {
    let schedule = stores.store.schedule(name).await?;
    let firings = stores.store.firings(&schedule.id, 100).await?;
    if json {
        return crate::commands::print_json(&serde_json::json!({ "schedule": schedule, "firings": firings }));
    }
    println!(
        "schedule {} — pipeline {} — '{}' UTC — missed: {} — {}",
        schedule.name,
        schedule.pipeline,
        schedule.cron,
        schedule.missed,
        if schedule.paused { "paused" } else { "active" }
    );
    println!("next: {}", crate::commands::time(schedule.next_due_at));
    println!("\n{:<20} {:<10} {:>6}  RUN / ERROR", "DUE", "OUTCOME", "MISSED");
    for f in firings {
        println!(
            "{:<20} {:<10} {:>6}  {}",
            crate::commands::time(f.due_at),
            f.outcome,
            f.missed,
            f.run_id.or(f.error).unwrap_or_default()
        );
    }
    Ok(exit::OK)
}

/// `weft schedule pause|resume`.
pub async fn set_paused(stores: &Stores, name: &str, paused: bool) -> CliResult<u8> {
    let schedule = stores.store.schedule(name).await?;
    let cron = weft_triggers::parse_cron(&schedule.cron).map_err(trigger_error)?;
    let next = weft_triggers::next_after(&cron, weft_triggers::now_ms()).map_err(CliError::usage)?;
    let schedule = stores.store.set_schedule_paused(name, paused, next).await?;
    if schedule.paused {
        eprintln!("schedule '{name}' paused");
    } else {
        eprintln!(
            "schedule '{name}' resumed; next at {}",
            crate::commands::time(schedule.next_due_at)
        );
    }
    Ok(exit::OK)
}

/// `weft schedule delete`.
pub async fn delete(stores: &Stores, name: &str) -> CliResult<u8> {
    stores.store.delete_schedule(name).await?;
    eprintln!("schedule '{name}' deleted (the runs it started stay)");
    Ok(exit::OK)
}

/// Checks a missed-run policy given on the command line.
pub fn missed_policy(text: &str) -> Result<String, String> {
    Missed::parse(text)
        .map(|m| m.as_str().to_string())
        .map_err(|e| e.to_string())
}

/// Starts runs of registered pipelines inside `weft server`, on its
/// stack, each in a directory of its own under the state directory.
#[derive(Clone)]
pub struct ServerLauncher {
    inner: Arc<Inner>,
}

struct Inner {
    state: PathBuf,
    stack: Stack,
    stores: Stores,
    executor: Executor,
    runtime: weft_runtime::Runtime,
    cancel: Cancel,
    runs: Mutex<JoinSet<()>>,
}

impl ServerLauncher {
    pub fn new(state: &Path, stack: &Stack, stores: Stores) -> CliResult<Self> {
        let runtime = crate::commands::open_runtime(state)?;
        let executor = Executor::new(
            runtime.clone(),
            stores.store.clone(),
            stores.artifacts.clone(),
            ExecutorOptions {
                work_dir: state.join("work"),
                max_parallel: None,
                trust_imported: stack.trust_imports,
                secrets: crate::secrets::open().ok(),
                dispatchers: crate::worker::dispatchers(state, stack)?,
            },
        );
        Ok(Self {
            inner: Arc::new(Inner {
                state: state.to_owned(),
                stack: stack.clone(),
                stores,
                executor,
                runtime,
                cancel: Cancel::default(),
                runs: Mutex::new(JoinSet::new()),
            }),
        })
    }

    /// Cancels the runs still going and waits for them to record it.
    pub async fn shutdown(&self) {
        self.inner.cancel.cancel();
        let mut runs = std::mem::take(&mut *self.inner.runs.lock().unwrap_or_else(|p| p.into_inner()));
        while runs.join_next().await.is_some() {}
    }
}

impl Launcher for ServerLauncher {
    fn launch(&self, pipeline: &str, params: &Value) -> BoxFuture<'static, Result<Launched, String>> {
        let inner = self.inner.clone();
        let pipeline = pipeline.to_string();
        let params = params.clone();
        Box::pin(async move { inner.launch(&pipeline, &params).await })
    }
}

type Started = Arc<Mutex<Option<tokio::sync::oneshot::Sender<Result<Launched, String>>>>>;

fn tell(started: &Started, result: Result<Launched, String>) {
    if let Some(sender) = started.lock().unwrap_or_else(|p| p.into_inner()).take() {
        let _ = sender.send(result);
    }
}

impl Inner {
    async fn launch(self: Arc<Self>, pipeline: &str, params: &Value) -> Result<Launched, String> {
        let definition = self
            .stores
            .store
            .latest_definition(pipeline)
            .await
            .map_err(|e| e.to_string())?;
        let dir = self.state.join("work").join("triggered").join(weft_store::new_id());
        let manifest = match registered::materialize(&definition, params, &self.stores.artifacts, &dir).await {
            Ok(manifest) => manifest,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e.to_string());
            }
        };
        let mut hooks: Vec<Arc<dyn RunHook>> = Vec::new();
        if manifest.uses_plugins() {
            let (home, host) = crate::plugins::open(Some(self.runtime.clone())).map_err(|e| e.message)?;
            let plugins = weft_pipeline::Plugins::new(
                host,
                home,
                self.stack.plugin_config.clone(),
                crate::secrets::open().ok(),
            );
            hooks.push(Arc::new(plugins.hooks(&manifest).map_err(|e| e.to_string())?));
        }
        hooks.push(Arc::new(ModelRegistration));
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let started: Started = Arc::new(Mutex::new(Some(sender)));
        let options = RunOptions {
            no_cache: false,
            cancel: self.cancel.clone(),
            on_event: {
                let started = started.clone();
                Arc::new(move |event| {
                    if let Event::RunStarted { run_id, number, .. } = event {
                        tell(&started, Ok(Launched { run_id, number }));
                    }
                })
            },
            hooks,
        };
        let executor = self.executor.clone();
        let name = pipeline.to_string();
        {
            let mut runs = self.runs.lock().unwrap_or_else(|p| p.into_inner());
            while runs.try_join_next().is_some() {}
            runs.spawn(async move {
                let result = executor.run(&manifest, options).await;
                match result {
                    Ok(outcome) => tracing::info!("triggered run {} of '{name}': {}", outcome.run_id, outcome.status),
                    Err(e) => {
                        tracing::warn!("triggered run of '{name}': {e}");
                        tell(&started, Err(e.to_string()));
                    }
                }
                if let Err(e) = std::fs::remove_dir_all(&dir) {
                    tracing::warn!("could not remove {}: {e}", dir.display());
                }
            });
        }
        receiver
            .await
            .unwrap_or_else(|_| Err("the run stopped before it was recorded".into()))
    }
}

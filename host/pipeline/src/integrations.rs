//! Where a run meets plugins: gates (data validators an artifact must pass
//! before a step reads it), hooks (alerters told of outcomes) and
//! publishing (tracker sinks each finished run goes to). Every call is
//! recorded with the run, refusals included; only a gate can change how a
//! run goes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use serde_json::Value;
use weft_artifacts::{ArtifactKind, ArtifactStore};
use weft_plugins::{CallReport, Event, InstalledPlugin, Kind, PluginHome, PluginHost, RunInfo, StepInfo, TrackedRun};
use weft_store::{status, PluginCall, RunDetail, Store};

use crate::executor::RunOutcome;
use crate::hooks::{HookContext, RunHook};
use crate::manifest::{Gate, InputSource, Manifest};
use crate::ExecError;

/// The plugins a run may call.
#[derive(Clone)]
pub struct Plugins {
    pub host: PluginHost,
    pub home: PluginHome,
    /// Configuration on top of each installed plugin's own (a stack's), by
    /// plugin name.
    pub overrides: BTreeMap<String, serde_json::Map<String, Value>>,
    /// Where `${secret:NAME}` in a configuration value is resolved.
    pub secrets: Option<weft_secrets::Secrets>,
    /// Every secret value handed to a plugin, masked in what is recorded
    /// of its calls.
    handed: Arc<Mutex<Vec<zeroize::Zeroizing<String>>>>,
}

impl Plugins {
    /// The installed plugins of `home`, run on `host`, with a stack's
    /// configuration `overrides` and the `secrets` their configuration
    /// may refer to.
    pub fn new(
        host: PluginHost,
        home: PluginHome,
        overrides: BTreeMap<String, serde_json::Map<String, Value>>,
        secrets: Option<weft_secrets::Secrets>,
    ) -> Self {
        Self {
            host,
            home,
            overrides,
            secrets,
            handed: Arc::default(),
        }
    }

    /// The configuration a call gets, as JSON, its secrets resolved (the
    /// values are remembered, to mask them in what the call reports).
    fn config(
        &self,
        plugin: &InstalledPlugin,
        extra: Option<&serde_json::Map<String, Value>>,
    ) -> Result<String, String> {
        let mut merged = self.overrides.get(&plugin.name).cloned().unwrap_or_default();
        for (k, v) in extra.into_iter().flatten() {
            merged.insert(k.clone(), v.clone());
        }
        let text = plugin.config_with(Some(&merged));
        if !text.contains(weft_secrets::REFERENCE_START) {
            return Ok(text);
        }
        let secrets = self.secrets.as_ref().ok_or_else(|| {
            format!(
                "the configuration of {} refers to a secret, and no secrets are available here",
                plugin.name
            )
        })?;
        let resolved = secrets
            .resolve_json(&text)
            .map_err(|e| format!("the configuration of {}: {e}", plugin.name))?;
        self.handed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(resolved.values);
        Ok(resolved.text.to_string())
    }

    /// `text` with every secret handed to a plugin masked.
    fn mask(&self, text: &str) -> String {
        let handed = self.handed.lock().unwrap_or_else(|p| p.into_inner());
        if handed.is_empty() {
            return text.to_string();
        }
        weft_secrets::mask(text, &handed)
    }
}

impl Plugins {
    /// The run hook calling these plugins: gates, alerters and tracker
    /// sinks, after checking that every plugin `manifest` names is
    /// installed and of the right kind.
    pub fn hooks(self, manifest: &Manifest) -> Result<PluginHooks, ExecError> {
        check(manifest, Some(&self))?;
        Ok(PluginHooks { plugins: self })
    }
}

/// Gates, hooks and tracker sinks as a [`RunHook`].
pub struct PluginHooks {
    plugins: Plugins,
}

impl RunHook for PluginHooks {
    fn check<'a>(
        &'a self,
        run: &'a HookContext<'a>,
        source: &'a InputSource,
        artifact_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, ExecError>> {
        Box::pin(async move {
            for gate in gates_on(run.manifest, source) {
                let (call, verdict) =
                    run_gate(&self.plugins, run.store, run.artifacts, run.run_id, gate, artifact_id).await?;
                (run.on_event)(crate::Event::PluginCalled(call));
                if verdict.is_some() {
                    return Ok(verdict);
                }
            }
            Ok(None)
        })
    }

    fn run_finished<'a>(&'a self, run: &'a HookContext<'a>, _outcome: &'a RunOutcome) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            after_run(&self.plugins, run.store, run.manifest, run.run_id, &|call| {
                (run.on_event)(crate::Event::PluginCalled(call.clone()))
            })
            .await
        })
    }
}

/// Checks, before anything runs, that every plugin the manifest names is
/// installed and of the right kind; with no plugins at hand, that it names
/// none.
pub fn check(manifest: &Manifest, plugins: Option<&Plugins>) -> Result<(), ExecError> {
    let mut wanted: Vec<(&str, Kind, String)> = Vec::new();
    for name in manifest.hooks.on_failure.iter().chain(&manifest.hooks.on_success) {
        wanted.push((name, Kind::Alerter, "hooks".into()));
    }
    for step in &manifest.steps {
        for name in step.hooks.on_failure.iter().chain(&step.hooks.on_success) {
            wanted.push((name, Kind::Alerter, format!("steps.{}", step.name)));
        }
    }
    for name in &manifest.publish {
        wanted.push((name, Kind::TrackerSink, "hooks.publish".into()));
    }
    for gate in &manifest.gates {
        wanted.push((&gate.plugin, Kind::DataValidator, "gates".into()));
    }
    if wanted.is_empty() {
        return Ok(());
    }
    let Some(plugins) = plugins else {
        return Err(ExecError::Plugins(
            "this pipeline uses plugins, but none are available to this run".into(),
        ));
    };
    for (name, kind, key) in wanted {
        let plugin = plugins
            .home
            .get(name)
            .map_err(|e| ExecError::Plugins(format!("{key}: {e}")))?;
        if plugin.kind != weft_plugins::kind_name(kind) {
            return Err(ExecError::Plugins(format!(
                "{key}: plugin '{name}' is a {}, not a {}",
                plugin.kind,
                weft_plugins::kind_name(kind)
            )));
        }
    }
    Ok(())
}

/// The gates on `artifact` (`inputs.NAME` or `step.output`).
fn gates_on<'m>(manifest: &'m Manifest, artifact: &'m InputSource) -> impl Iterator<Item = &'m Gate> {
    manifest.gates.iter().filter(move |g| &g.artifact == artifact)
}

/// Runs one gate on a stored artifact: the call as recorded, and
/// `Some(report)` when it does not let the artifact through (rejected, or
/// the validator could not say).
async fn run_gate(
    plugins: &Plugins,
    store: &Store,
    artifacts: &ArtifactStore,
    run_id: &str,
    gate: &Gate,
    artifact_id: &str,
) -> Result<(PluginCall, Option<String>), ExecError> {
    let target = match &gate.artifact {
        InputSource::External(name) => format!("inputs.{name}"),
        InputSource::Step { step, output } => format!("{step}.{output}"),
    };
    let row = store.artifact(artifact_id).await?;
    let purpose = format!("gate {target}");
    let plugin = plugins
        .home
        .get(&gate.plugin)
        .map_err(|e| ExecError::Plugins(e.to_string()))?;
    let report = if ArtifactKind::parse(&row.kind) == Some(ArtifactKind::Dir) {
        CallReport {
            result: Err(format!("{} is a directory; gates check files", row.name)),
            refused: vec![],
            duration: Default::default(),
        }
    } else {
        let data = artifacts
            .get_bytes(&row.digest)
            .await
            .map_err(|e| ExecError::Io(format!("reading {} for its gate: {e}", row.name)))?;
        let artifact = weft_plugins::Artifact {
            name: row.name.clone(),
            media_type: row.media_type.clone(),
            data: data.to_vec(),
        };
        let config = plugins
            .config(&plugin, Some(&gate.config))
            .map_err(ExecError::Plugins)?;
        plugins
            .host
            .validate(&plugin, &config, &artifact)
            .await
            .map_err(|e| ExecError::Plugins(plugins.mask(&e.to_string())))?
    };
    let (outcome, message, blocked) = match &report.result {
        Ok(v) if v.passed => ("passed", v.report.clone(), None),
        Ok(v) => (
            "rejected",
            v.report.clone(),
            Some(format!("gate {} rejected {target}:\n{}", gate.plugin, v.report)),
        ),
        Err(e) => (
            "failed",
            e.clone(),
            Some(format!("gate {} could not check {target}: {e}", gate.plugin)),
        ),
    };
    let call = record(
        plugins,
        store,
        run_id,
        &plugin.name,
        &purpose,
        outcome,
        Some(message),
        &report,
    )
    .await;
    Ok((call, blocked))
}

/// After a run: its hooks and tracker sinks. Failures are recorded, never
/// raised: they do not change how the run went.
async fn after_run(
    plugins: &Plugins,
    store: &Store,
    manifest: &Manifest,
    run_id: &str,
    on_call: &(dyn Fn(&PluginCall) + Send + Sync),
) {
    // Every metric point only when a tracker sink takes them; hooks need
    // the run and its steps.
    let detail = if manifest.publish.is_empty() {
        store.run_overview(run_id).await
    } else {
        store.run_detail(run_id).await
    };
    let detail = match detail {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!("hooks of run {run_id}: {e}");
            return;
        }
    };
    let run = run_info(&detail);
    let steps: Vec<StepInfo> = detail.steps.iter().map(step_info).collect();

    let succeeded = detail.run.status == status::SUCCEEDED;
    let run_hooks = if succeeded {
        &manifest.hooks.on_success
    } else {
        &manifest.hooks.on_failure
    };
    let hook = if succeeded { "on_success" } else { "on_failure" };
    let mut calls: Vec<(String, String, Event)> = run_hooks
        .iter()
        .map(|name| {
            (
                name.clone(),
                hook.to_string(),
                Event::RunFinished((run.clone(), steps.clone())),
            )
        })
        .collect();
    for (step, info) in manifest.steps.iter().zip(&steps) {
        let (names, hook) = match info.status.as_str() {
            status::FAILED => (&step.hooks.on_failure, "on_failure"),
            status::SUCCEEDED | status::CACHED => (&step.hooks.on_success, "on_success"),
            _ => continue,
        };
        for name in names {
            calls.push((
                name.clone(),
                format!("step {} {hook}", step.name),
                Event::StepFinished((run.clone(), info.clone())),
            ));
        }
    }
    for (name, purpose, event) in calls {
        let call = match plugins.home.get(&name) {
            Ok(plugin) => match plugins.config(&plugin, None) {
                Ok(config) => plugins
                    .host
                    .notify(&plugin, &config, &event)
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e),
            },
            Err(e) => Err(e.to_string()),
        };
        on_call(&finish(plugins, store, &run.run_id, &name, &purpose, call).await);
    }

    if manifest.publish.is_empty() {
        return;
    }
    let names: BTreeMap<&str, &str> = detail
        .steps
        .iter()
        .map(|s| (s.cached_from.as_deref().unwrap_or(&s.id), s.step_name.as_str()))
        .collect();
    let step_of = |id: &str| names.get(id).copied().unwrap_or("?").to_string();
    let tracked = TrackedRun {
        run: run.clone(),
        steps,
        params: detail
            .params
            .iter()
            .map(|p| weft_plugins::KeyValue {
                step: step_of(&p.step_run_id),
                key: p.key.clone(),
                value: p.value.clone(),
            })
            .collect(),
        metrics: detail
            .metrics
            .iter()
            .map(|m| weft_plugins::Metric {
                step: step_of(&m.step_run_id),
                key: m.key.clone(),
                value: m.value,
                index: m.step.map(|s| s.max(0) as u64),
                timestamp: m.timestamp,
            })
            .collect(),
        tags: detail
            .tags
            .iter()
            .map(|t| weft_plugins::KeyValue {
                step: step_of(&t.step_run_id),
                key: t.key.clone(),
                value: t.value.clone(),
            })
            .collect(),
    };
    for name in &manifest.publish {
        let call = match plugins.home.get(name) {
            Ok(plugin) => match plugins.config(&plugin, None) {
                Ok(config) => plugins
                    .host
                    .publish(&plugin, &config, &tracked)
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e),
            },
            Err(e) => Err(e.to_string()),
        };
        on_call(&finish(plugins, store, &run.run_id, name, "publish", call).await);
    }
}

/// Records a hook or publish call; what was recorded.
async fn finish(
    plugins: &Plugins,
    store: &Store,
    run_id: &str,
    plugin: &str,
    purpose: &str,
    call: Result<CallReport<()>, String>,
) -> PluginCall {
    let report = call.unwrap_or_else(|e| CallReport {
        result: Err(e),
        refused: vec![],
        duration: Default::default(),
    });
    let (outcome, message) = match &report.result {
        Ok(()) => ("ok", None),
        Err(e) => ("failed", Some(e.clone())),
    };
    record(plugins, store, run_id, plugin, purpose, outcome, message, &report).await
}

/// Records a plugin call, every secret handed to a plugin masked.
#[allow(clippy::too_many_arguments)]
async fn record<T>(
    plugins: &Plugins,
    store: &Store,
    run_id: &str,
    plugin: &str,
    purpose: &str,
    outcome: &str,
    message: Option<String>,
    report: &CallReport<T>,
) -> PluginCall {
    let call = PluginCall {
        plugin: plugin.to_string(),
        purpose: purpose.to_string(),
        outcome: outcome.to_string(),
        message: message.map(|m| plugins.mask(&m)),
        refused: report.refused.iter().map(|r| plugins.mask(r)).collect(),
        duration_ms: report.duration.as_millis() as i64,
        at: weft_store::now_ms(),
    };
    if let Err(e) = store.record_plugin_call(run_id, &call).await {
        tracing::warn!("could not record the call to plugin {plugin}: {e}");
    }
    call
}

fn run_info(detail: &RunDetail) -> RunInfo {
    RunInfo {
        run_id: detail.run.id.clone(),
        pipeline: detail.run.pipeline.clone(),
        number: detail.run.number.max(0) as u64,
        status: detail.run.status.clone(),
        error: detail.run.error.clone(),
        started_at: detail.run.started_at,
        ended_at: detail.run.ended_at,
    }
}

fn step_info(step: &weft_store::StepRun) -> StepInfo {
    StepInfo {
        name: step.step_name.clone(),
        status: step.status.clone(),
        error: step.error.clone(),
        duration_ms: match (step.started_at, step.ended_at) {
            (Some(a), Some(b)) if b >= a => Some((b - a) as u64),
            _ => None,
        },
        cached_from: step.cached_from.clone(),
        params: step.params.clone(),
    }
}

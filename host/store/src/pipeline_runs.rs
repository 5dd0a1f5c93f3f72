//! Pipeline runs in the tracking model: a pipeline is an experiment, a
//! pipeline run a run, each step run a nested run (tag
//! `mlflow.parentRunId`) whose run id is the step run's id. This module
//! writes those runs' rows, weft's tags (`weft.step`, `weft.status`, the
//! cache key...) and each step's configured params, in the same
//! transaction as the ledger rows they follow (the run when it starts and
//! ends, step runs with each batch of the run's ledger), so MLflow clients
//! and searches see weft's pipelines live like any other run. What a step
//! logs (params, tags, metrics) is written to its tracking run directly
//! (`store.rs`, `write_logged`), not here: it is kept once. A cache hit
//! gets its own copy of what its original logged.

use sqlx::{Any, Transaction};

use crate::experiments::insert_experiment;
use crate::model::{KeyValue, Run, StepRun};
use crate::sql::{Backend, Sql};
use crate::store::{RUN_COLUMNS, STEP_RUN_COLUMNS};
use crate::{status, Store, StoreError};

/// weft status -> MLflow run status.
fn mlflow_status(weft: &str) -> &'static str {
    match weft {
        status::SUCCEEDED | status::CACHED => "FINISHED",
        status::CANCELLED | status::SKIPPED => "KILLED",
        status::RUNNING | status::PENDING => "RUNNING",
        _ => "FAILED",
    }
}

/// Top-level params of a step as MLflow params (strings unquoted, other
/// values as JSON).
pub(crate) fn flatten_params(json: &str) -> Vec<(String, String)> {
    match serde_json::from_str::<serde_json::Value>(json) {
        Ok(serde_json::Value::Object(map)) => map
            .into_iter()
            .map(|(k, v)| {
                let v = match v {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                (k, v)
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// How much of a pipeline run [`Store::write_tracking_runs`] writes.
#[derive(Debug, Clone, Copy)]
pub enum RunScope<'a> {
    /// The run only (how a run in progress shows up at once).
    Run,
    /// The run and these step runs (ids), as they finish.
    Steps(&'a [String]),
    /// The run and every step run.
    All,
}

impl Store {
    /// Writes (or rewrites) the tracking runs of a pipeline run in a
    /// transaction of its own (a crash recovered). Runs of this process
    /// write theirs with their ledger, in the same transactions (see
    /// [`write_runs`]).
    pub async fn write_tracking_runs(&self, run_id: &str, scope: RunScope<'_>) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        write_runs(&mut tx, self.backend, run_id, scope).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Writes the tracking runs of a pipeline run in `tx`: those of the step
/// runs `scope` names, as they are in `tx` (a cache hit with a copy of
/// what its original logged), and the run's own unless only step runs of a
/// run already written are named. Called by every write that changes what
/// they show (a run created or finished, a batch of the ledger, a skip), so
/// the tracking model is never behind the ledger.
pub(crate) async fn write_runs(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    run_id: &str,
    scope: RunScope<'_>,
) -> Result<(), StoreError> {
    let run: Run = sqlx::query_as(&format!(
        "SELECT {RUN_COLUMNS} FROM runs r JOIN pipelines p ON p.id = r.pipeline_id WHERE r.id = $1"
    ))
    .bind(run_id)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(StoreError::NotFound {
        what: "run",
        key: run_id.into(),
    })?;
    let scope = match scope {
        RunScope::Steps([]) => RunScope::Run,
        other => other,
    };
    // The step runs in scope, as a filter on `step_runs` (alias s).
    let in_scope = |q: &mut Sql<'_>| match scope {
        RunScope::Run => {
            q.push("1 = 0");
        }
        RunScope::Steps(ids) => {
            q.push("s.run_id = ")
                .push_bind(run_id.to_string())
                .push(" AND s.id IN (");
            q.push_list(ids.iter().cloned()).push(")");
        }
        RunScope::All => {
            q.push("s.run_id = ").push_bind(run_id.to_string());
        }
    };
    let steps: Vec<StepRun> = if matches!(scope, RunScope::Run) {
        Vec::new()
    } else {
        let mut q = Sql::new(backend, format!("SELECT {STEP_RUN_COLUMNS} FROM step_runs s WHERE "));
        in_scope(&mut q);
        q.push(" ORDER BY s.id");
        q.build_query_as()?.fetch_all(&mut **tx).await?
    };
    // Step runs of a run whose own row is written already: only
    // theirs are written (the run's is written when it starts and ends).
    let parent_experiment: Option<i64> = if matches!(scope, RunScope::Steps(_)) {
        sqlx::query_scalar("SELECT experiment_id FROM tracking_runs WHERE run_uuid = $1")
            .bind(run_id)
            .fetch_optional(&mut **tx)
            .await?
    } else {
        None
    };
    let existing: Option<i64> = match parent_experiment {
        Some(id) => Some(id),
        None => {
            sqlx::query_scalar("SELECT experiment_id FROM experiments WHERE name = $1")
                .bind(&run.pipeline)
                .fetch_optional(&mut **tx)
                .await?
        }
    };
    let experiment_id = match existing {
        Some(id) => id,
        None => {
            insert_experiment(
                tx,
                &run.pipeline,
                None,
                &[("weft.pipeline".into(), run.pipeline.clone())],
            )
            .await?
        }
    };

    struct Row {
        id: String,
        name: String,
        status: &'static str,
        start: i64,
        end: Option<i64>,
        tags: Vec<(String, String)>,
        params: Vec<(String, String)>,
    }
    let mut rows = vec![Row {
        id: run.id.clone(),
        name: format!("{} #{}", run.pipeline, run.number),
        status: mlflow_status(&run.status),
        start: run.started_at,
        end: run.ended_at,
        tags: vec![
            ("mlflow.runName".into(), format!("{} #{}", run.pipeline, run.number)),
            ("mlflow.source.name".into(), "weft".into()),
            ("weft.pipeline".into(), run.pipeline.clone()),
            ("weft.run_number".into(), run.number.to_string()),
            ("weft.status".into(), run.status.clone()),
        ],
        params: Vec::new(),
    }];
    if parent_experiment.is_some() {
        rows.clear();
    }
    let run = &run;
    for step in &steps {
        let mut tags = vec![
            ("mlflow.runName".into(), step.step_name.clone()),
            ("mlflow.parentRunId".into(), run.id.clone()),
            ("weft.step".into(), step.step_name.clone()),
            ("weft.status".into(), step.status.clone()),
        ];
        for (key, value) in [
            ("weft.component_digest", &step.component_digest),
            ("weft.cache_key", &step.cache_key),
            ("weft.cached_from", &step.cached_from),
            ("weft.error", &step.error),
        ] {
            if let Some(value) = value {
                tags.push((key.into(), value.chars().take(8000).collect()));
            }
        }
        let params = flatten_params(&step.params);
        rows.push(Row {
            id: step.id.clone(),
            name: step.step_name.clone(),
            status: mlflow_status(&step.status),
            start: step.started_at.unwrap_or(run.started_at),
            end: step.ended_at,
            tags,
            params,
        });
    }

    for chunk in rows.chunks(100) {
        let mut q = Sql::new(backend,
            "INSERT INTO tracking_runs (run_uuid, experiment_id, name, user_id, status, start_time, end_time, lifecycle_stage, artifact_uri) ",
        );
        q.push_values(chunk, |b, r| {
            b.bind(&r.id)
                .bind(experiment_id)
                .bind(&r.name)
                .bind("weft")
                .bind(r.status)
                .bind(r.start)
                .bind(r.end)
                .bind("active")
                .bind(format!("mlflow-artifacts:/{experiment_id}/{}/artifacts", r.id));
        });
        q.push(" ON CONFLICT (run_uuid) DO UPDATE SET status = excluded.status, end_time = excluded.end_time, name = excluded.name");
        q.build()?.execute(&mut **tx).await?;
    }
    let pairs: Vec<(&str, &(String, String))> = rows
        .iter()
        .flat_map(|r| r.tags.iter().map(move |t| (r.id.as_str(), t)))
        .collect();
    for chunk in pairs.chunks(300) {
        let mut q = Sql::new(backend, "INSERT INTO tracking_tags (run_uuid, key, value) ");
        q.push_values(chunk, |b, (id, (k, v))| {
            b.bind(*id).bind(k).bind(v);
        });
        q.push(" ON CONFLICT (run_uuid, key) DO UPDATE SET value = excluded.value");
        q.build()?.execute(&mut **tx).await?;
    }
    let pairs: Vec<(&str, &(String, String))> = rows
        .iter()
        .flat_map(|r| r.params.iter().map(move |p| (r.id.as_str(), p)))
        .collect();
    for chunk in pairs.chunks(300) {
        let mut q = Sql::new(backend, "INSERT INTO tracking_params (run_uuid, key, value) ");
        q.push_values(chunk, |b, (id, (k, v))| {
            b.bind(*id).bind(k).bind(v.chars().take(6000).collect::<String>());
        });
        q.push(" ON CONFLICT (run_uuid, key) DO NOTHING");
        q.build()?.execute(&mut **tx).await?;
    }
    // A cache hit shows what its original logged: its own copy, as every
    // run holds its own values (idempotent: written again, it changes
    // nothing).
    if steps.iter().any(|s| s.cached_from.is_some()) {
        for (table, columns, on_conflict) in [
            (
                "tracking_params",
                "key, value",
                "(run_uuid, key) DO UPDATE SET value = excluded.value",
            ),
            ("tracking_tags", "key, value", "(run_uuid, key) DO NOTHING"),
            (
                "tracking_metrics",
                "key, value, is_nan, timestamp, step, has_step",
                "(run_uuid, key, timestamp, step, value, is_nan) DO NOTHING",
            ),
            (
                "tracking_latest_metrics",
                "key, value, is_nan, timestamp, step",
                "(run_uuid, key) DO UPDATE SET value = excluded.value, is_nan = excluded.is_nan, \
                 timestamp = excluded.timestamp, step = excluded.step",
            ),
        ] {
            let picked = columns
                .split(", ")
                .map(|c| format!("x.{c}"))
                .collect::<Vec<_>>()
                .join(", ");
            let mut q = Sql::new(
                backend,
                format!(
                    "INSERT INTO {table} (run_uuid, {columns}) SELECT s.id, {picked} FROM step_runs s \
                     JOIN {table} x ON x.run_uuid = s.cached_from WHERE "
                ),
            );
            in_scope(&mut q);
            if table == "tracking_tags" {
                q.push(" AND x.key NOT LIKE 'mlflow.%' AND x.key NOT LIKE 'weft.%'");
            }
            q.push(format!(" ON CONFLICT {on_conflict}"));
            q.build()?.execute(&mut **tx).await?;
        }
    }
    Ok(())
}

/// The params the steps logged, without the configured params their
/// tracking runs also hold (a logged param equal to a configured one is the
/// same fact, shown once, in the step's params). `params` are keyed by the
/// step run that logged them: for a cache hit, its original.
pub(crate) fn logged_params(params: Vec<KeyValue>, steps: &[StepRun]) -> Vec<KeyValue> {
    let configured: std::collections::HashSet<(&str, String, String)> = steps
        .iter()
        .flat_map(|s| {
            let source = s.cached_from.as_deref().unwrap_or(&s.id);
            let own = flatten_params(&s.params)
                .into_iter()
                .map(move |(k, v)| (s.id.as_str(), k, v));
            let shown = flatten_params(&s.params).into_iter().map(move |(k, v)| (source, k, v));
            own.chain(shown)
        })
        .collect();
    params
        .into_iter()
        .filter(|p| !configured.contains(&(p.step_run_id.as_str(), p.key.clone(), p.value.clone())))
        .collect()
}

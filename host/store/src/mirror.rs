//! Pipeline runs as MLflow sees them: a pipeline is an experiment, a
//! pipeline run a run, each step run a nested run (tag
//! `mlflow.parentRunId`) holding the step's params and metrics. Written as
//! the run goes (the run when it starts, each step when it finishes) and
//! whole when it ends, each time in one transaction, so MLflow clients and
//! searches see weft's pipelines live like any other run.

use crate::sql::Sql;

use crate::model::{KeyValue, Metric, Run};
use crate::store::{RUN_COLUMNS, SOURCE_STEP_RUNS};
use crate::tracking::MetricPoint;
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
fn flatten_params(json: &str) -> Vec<(String, String)> {
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

/// How much of a pipeline run [`Store::mirror_run_to_tracking`] writes.
#[derive(Debug, Clone, Copy)]
pub enum MirrorScope<'a> {
    /// The run only (how a run in progress shows up at once).
    Run,
    /// The run and these step runs (ids), as they finish.
    Steps(&'a [String]),
    /// The run and every step run.
    All,
}

impl Store {
    /// Writes (or rewrites) the MLflow view of a pipeline run: the run,
    /// and the step runs `scope` names.
    pub async fn mirror_run_to_tracking(&self, run_id: &str, scope: MirrorScope<'_>) -> Result<(), StoreError> {
        // Only what the view holds: the run, the step runs in scope and
        // what their source step runs logged.
        let run: Run = sqlx::query_as(&format!(
            "SELECT {RUN_COLUMNS} FROM runs r JOIN pipelines p ON p.id = r.pipeline_id WHERE r.id = $1"
        ))
        .bind(run_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound {
            what: "run",
            key: run_id.into(),
        })?;
        let mut steps = match scope {
            MirrorScope::Run => Vec::new(),
            MirrorScope::Steps(_) | MirrorScope::All => self.step_runs(run_id).await?,
        };
        if let MirrorScope::Steps(ids) = scope {
            steps.retain(|s| ids.contains(&s.id));
        }
        let (logged_params, logged_tags, logged_metrics) = if steps.is_empty() {
            (Vec::new(), Vec::new(), Vec::new())
        } else {
            let kv = |table: &str| {
                format!(
                    "SELECT step_run_id, key, value FROM {table} WHERE step_run_id IN ({SOURCE_STEP_RUNS}) \
                     ORDER BY step_run_id, key"
                )
            };
            let params: Vec<KeyValue> = sqlx::query_as(&kv("params")).bind(run_id).fetch_all(&self.pool).await?;
            let tags: Vec<KeyValue> = sqlx::query_as(&kv("tags")).bind(run_id).fetch_all(&self.pool).await?;
            let metrics: Vec<Metric> = sqlx::query_as(&format!(
                "SELECT step_run_id, key, value, step, timestamp FROM metrics WHERE step_run_id IN ({SOURCE_STEP_RUNS}) \
                 ORDER BY step_run_id, key, step, timestamp"
            ))
            .bind(run_id)
            .fetch_all(&self.pool)
            .await?;
            (params, tags, metrics)
        };
        let existing: Option<i64> = sqlx::query_scalar("SELECT experiment_id FROM experiments WHERE name = $1")
            .bind(&run.pipeline)
            .fetch_optional(&self.pool)
            .await?;
        let experiment_id = match existing {
            Some(id) => id,
            None => {
                match self
                    .create_experiment(&run.pipeline, None, &[("weft.pipeline".into(), run.pipeline.clone())])
                    .await
                {
                    Ok(id) => id,
                    // Created concurrently by another process: use it.
                    Err(StoreError::AlreadyExists(_)) => self.experiment_by_name(&run.pipeline).await?.experiment_id,
                    Err(e) => return Err(e),
                }
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
            metrics: Vec<MetricPoint>,
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
            metrics: Vec::new(),
        }];
        let run = &run;
        for step in &steps {
            let source = step.cached_from.as_deref().unwrap_or(&step.id);
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
            tags.extend(
                logged_tags
                    .iter()
                    .filter(|t| t.step_run_id == source)
                    .map(|t| (t.key.clone(), t.value.clone())),
            );
            let mut params = flatten_params(&step.params);
            for p in logged_params.iter().filter(|p| p.step_run_id == source) {
                if !params.iter().any(|(k, _)| *k == p.key) {
                    params.push((p.key.clone(), p.value.clone()));
                }
            }
            let metrics = logged_metrics
                .iter()
                .filter(|m| m.step_run_id == source)
                .map(|m| MetricPoint {
                    key: m.key.clone(),
                    value: m.value,
                    timestamp: m.timestamp,
                    step: m.step.unwrap_or(0),
                })
                .collect();
            rows.push(Row {
                id: step.id.clone(),
                name: step.step_name.clone(),
                status: mlflow_status(&step.status),
                start: step.started_at.unwrap_or(run.started_at),
                end: step.ended_at,
                tags,
                params,
                metrics,
            });
        }

        let mut tx = self.begin_write().await?;
        for chunk in rows.chunks(100) {
            let mut q = Sql::new(self.backend,
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
            q.build()?.execute(&mut *tx).await?;
        }
        let pairs: Vec<(&str, &(String, String))> = rows
            .iter()
            .flat_map(|r| r.tags.iter().map(move |t| (r.id.as_str(), t)))
            .collect();
        for chunk in pairs.chunks(300) {
            let mut q = Sql::new(self.backend, "INSERT INTO tracking_tags (run_uuid, key, value) ");
            q.push_values(chunk, |b, (id, (k, v))| {
                b.bind(*id).bind(k).bind(v);
            });
            q.push(" ON CONFLICT (run_uuid, key) DO UPDATE SET value = excluded.value");
            q.build()?.execute(&mut *tx).await?;
        }
        let pairs: Vec<(&str, &(String, String))> = rows
            .iter()
            .flat_map(|r| r.params.iter().map(move |p| (r.id.as_str(), p)))
            .collect();
        for chunk in pairs.chunks(300) {
            let mut q = Sql::new(self.backend, "INSERT INTO tracking_params (run_uuid, key, value) ");
            q.push_values(chunk, |b, (id, (k, v))| {
                b.bind(*id).bind(k).bind(v.chars().take(6000).collect::<String>());
            });
            q.push(" ON CONFLICT (run_uuid, key) DO NOTHING");
            q.build()?.execute(&mut *tx).await?;
        }
        let points: Vec<(&str, &MetricPoint)> = rows
            .iter()
            .flat_map(|r| r.metrics.iter().map(move |m| (r.id.as_str(), m)))
            .collect();
        crate::tracking::insert_metric_points(&mut tx, self.backend, &points).await?;
        tx.commit().await?;
        Ok(())
    }
}

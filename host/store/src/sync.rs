//! Copying a run from one store to another (`weft run --server URL`): the
//! run exported as one self-contained document, imported on the other side
//! in one transaction. Importing the same run again (as it progresses)
//! updates it in place.
//!
//! A run can point into other runs: a cached step run at the step run it
//! was served from, an input at the artifact an earlier run produced. Those
//! runs are its `depends_on`; the importing store refuses a run whose
//! dependencies it does not have, naming them, so the sender sends them
//! first.

use serde::{Deserialize, Serialize};

use crate::model::{status, Artifact, KeyValue, Metric, StepRun};
use crate::store::STEP_METRIC_ROWS;
use crate::{RunScope, Store, StoreError};

/// A run and everything it recorded, as another store imports it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunExport {
    pub pipeline: String,
    pub run: ExportedRun,
    /// Every step run of the run, with its captured logs.
    pub steps: Vec<ExportedStepRun>,
    /// Every artifact the run reads or writes. Versions are the exporting
    /// store's; the importing store numbers them after its own.
    pub artifacts: Vec<Artifact>,
    /// (input name, artifact id) of the run's external data.
    pub run_inputs: Vec<(String, String)>,
    /// (step run id, input name, artifact id).
    pub step_inputs: Vec<(String, String, String)>,
    /// (step run id, output name, artifact id).
    pub step_outputs: Vec<(String, String, String)>,
    /// What the run's own step runs logged.
    pub params: Vec<KeyValue>,
    pub metrics: Vec<Metric>,
    pub tags: Vec<KeyValue>,
    pub metadata: Vec<KeyValue>,
    /// Other runs this one points into; they must be imported first.
    pub depends_on: Vec<String>,
}

/// A run's own fields.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow)]
pub struct ExportedRun {
    pub id: String,
    pub status: String,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub error: Option<String>,
    pub manifest: String,
    pub host: Option<String>,
}

/// A step run with its logs and the sandbox it was given.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportedStepRun {
    #[serde(flatten)]
    pub step: StepRun,
    pub logs: Option<String>,
    /// The sandbox spec (JSON), for `weft verify` on the importing side.
    #[serde(default)]
    pub sandbox: Option<String>,
}

const ARTIFACT_COLUMNS: &str =
    "a.id, a.name, a.version, a.digest, a.kind, a.media_type, a.size, a.producer_step_run_id, a.source_uri, a.created_at";

/// Limits on what an import may hold (it arrives over HTTP).
const MAX_ID: usize = 64;
const MAX_NAME: usize = 500;
const MAX_STEPS: usize = 10_000;
const MAX_SANDBOX: usize = 1 << 20;

fn check_id(what: &str, id: &str) -> Result<(), StoreError> {
    if id.is_empty() || id.len() > MAX_ID || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(StoreError::Invalid(format!(
            "{what} id '{}' is not an id (letters, digits and '-', at most {MAX_ID})",
            id.chars().take(80).collect::<String>()
        )));
    }
    Ok(())
}

fn check_text(what: &str, text: &str, max: usize) -> Result<(), StoreError> {
    if text.is_empty() || text.len() > max {
        return Err(StoreError::Invalid(format!("{what} must be 1 to {max} bytes")));
    }
    Ok(())
}

const STATUSES: [&str; 8] = [
    status::PENDING,
    status::RUNNING,
    status::SUCCEEDED,
    status::CACHED,
    status::FAILED,
    status::SKIPPED,
    status::CANCELLED,
    status::CRASHED,
];

fn check_status(what: &str, s: &str) -> Result<(), StoreError> {
    if !STATUSES.contains(&s) {
        return Err(StoreError::Invalid(format!(
            "{what} status '{s}' is not one of {}",
            STATUSES.join(", ")
        )));
    }
    Ok(())
}

impl RunExport {
    /// Checks every id, name, status and digest before anything is written.
    pub fn validate(&self) -> Result<(), StoreError> {
        check_text("the pipeline name", &self.pipeline, MAX_NAME)?;
        check_id("run", &self.run.id)?;
        check_status("the run", &self.run.status)?;
        if self.steps.len() > MAX_STEPS {
            return Err(StoreError::Invalid(format!("a run has at most {MAX_STEPS} steps")));
        }
        for s in &self.steps {
            check_id("step run", &s.step.id)?;
            if s.step.run_id != self.run.id {
                return Err(StoreError::Invalid(format!(
                    "step run {} belongs to run {}, not {}",
                    s.step.id, s.step.run_id, self.run.id
                )));
            }
            check_text("a step name", &s.step.step_name, MAX_NAME)?;
            check_status("a step run", &s.step.status)?;
            if let Some(from) = &s.step.cached_from {
                check_id("cached-from step run", from)?;
            }
            if s.sandbox.as_ref().is_some_and(|spec| spec.len() > MAX_SANDBOX) {
                return Err(StoreError::Invalid(format!(
                    "step run {} has a sandbox spec over {MAX_SANDBOX} bytes",
                    s.step.id
                )));
            }
            if let Some(d) = s
                .step
                .determinism
                .as_deref()
                .filter(|d| !["virtual", "real"].contains(d))
            {
                return Err(StoreError::Invalid(format!(
                    "step run {} has determinism '{d}': use virtual or real",
                    s.step.id
                )));
            }
        }
        for a in &self.artifacts {
            check_id("artifact", &a.id)?;
            check_text("an artifact name", &a.name, MAX_NAME)?;
            if a.digest.len() != 64
                || !a
                    .digest
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            {
                return Err(StoreError::Invalid(format!(
                    "artifact {} has digest '{}': not a blake3 hex digest",
                    a.id, a.digest
                )));
            }
            if a.kind != "file" && a.kind != "dir" {
                return Err(StoreError::Invalid(format!(
                    "artifact {} has kind '{}': use file or dir",
                    a.id, a.kind
                )));
            }
            if a.size < 0 {
                return Err(StoreError::Invalid(format!("artifact {} has a negative size", a.id)));
            }
        }
        let own_steps: std::collections::HashSet<&str> = self.steps.iter().map(|s| s.step.id.as_str()).collect();
        let known_artifacts: std::collections::HashSet<&str> = self.artifacts.iter().map(|a| a.id.as_str()).collect();
        for (step, _, artifact) in self.step_inputs.iter().chain(&self.step_outputs) {
            if !own_steps.contains(step.as_str()) || !known_artifacts.contains(artifact.as_str()) {
                return Err(StoreError::Invalid(format!(
                    "link {step} -> {artifact} names a step run or artifact the export does not hold"
                )));
            }
        }
        for (_, artifact) in &self.run_inputs {
            if !known_artifacts.contains(artifact.as_str()) {
                return Err(StoreError::Invalid(format!(
                    "run input {artifact} is not among the exported artifacts"
                )));
            }
        }
        let logged = self
            .params
            .iter()
            .chain(&self.tags)
            .chain(&self.metadata)
            .map(|kv| &kv.step_run_id)
            .chain(self.metrics.iter().map(|m| &m.step_run_id));
        for step in logged {
            if !own_steps.contains(step.as_str()) {
                return Err(StoreError::Invalid(format!(
                    "a logged value names step run {step}, which is not in this run"
                )));
            }
        }
        for dep in &self.depends_on {
            check_id("dependency run", dep)?;
        }
        Ok(())
    }
}

impl Store {
    /// Exports a run (id or prefix, or `latest`) for another store.
    pub async fn export_run(&self, key: &str) -> Result<RunExport, StoreError> {
        let run = self.run(key).await?;
        let exported: ExportedRun =
            sqlx::query_as("SELECT id, status, started_at, ended_at, error, manifest, host FROM runs WHERE id = $1")
                .bind(&run.id)
                .fetch_one(&self.pool)
                .await?;
        let steps = self.step_runs(&run.id).await?;
        let mut extra: std::collections::HashMap<String, (Option<String>, Option<String>)> =
            sqlx::query_as::<_, (String, Option<String>, Option<String>)>(
                "SELECT id, logs, sandbox FROM step_runs WHERE run_id = $1",
            )
            .bind(&run.id)
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(|(id, logs, sandbox)| (id, (logs, sandbox)))
            .collect();
        let steps: Vec<ExportedStepRun> = steps
            .into_iter()
            .map(|s| {
                let (logs, sandbox) = extra.remove(&s.id).unwrap_or_default();
                ExportedStepRun { step: s, logs, sandbox }
            })
            .collect();
        let links = |table: &str| {
            format!(
                "SELECT l.step_run_id, l.name, l.artifact_id FROM {table} l JOIN step_runs s ON s.id = l.step_run_id \
                 WHERE s.run_id = $1 ORDER BY l.step_run_id, l.name"
            )
        };
        let step_inputs: Vec<(String, String, String)> = sqlx::query_as(&links("step_run_inputs"))
            .bind(&run.id)
            .fetch_all(&self.pool)
            .await?;
        let step_outputs: Vec<(String, String, String)> = sqlx::query_as(&links("step_run_outputs"))
            .bind(&run.id)
            .fetch_all(&self.pool)
            .await?;
        let run_inputs: Vec<(String, String)> =
            sqlx::query_as("SELECT name, artifact_id FROM run_inputs WHERE run_id = $1 ORDER BY name")
                .bind(&run.id)
                .fetch_all(&self.pool)
                .await?;
        let artifacts: Vec<Artifact> = sqlx::query_as(&format!(
            "SELECT {ARTIFACT_COLUMNS} FROM artifacts a WHERE a.id IN (\
             SELECT artifact_id FROM run_inputs WHERE run_id = $1 \
             UNION SELECT l.artifact_id FROM step_run_inputs l JOIN step_runs s ON s.id = l.step_run_id WHERE s.run_id = $1 \
             UNION SELECT l.artifact_id FROM step_run_outputs l JOIN step_runs s ON s.id = l.step_run_id WHERE s.run_id = $1) \
             ORDER BY a.created_at, a.id"
        ))
        .bind(&run.id)
        .fetch_all(&self.pool)
        .await?;
        // What the steps logged, from their tracking runs (weft's own tags
        // are written again by the importer).
        let kv = |table: &str, column: &str, only: &str| {
            format!(
                "SELECT x.{column} AS step_run_id, x.key, x.value FROM {table} x JOIN step_runs s ON s.id = x.{column} \
                 WHERE s.run_id = $1{only} ORDER BY x.{column}, x.key"
            )
        };
        let key_values = |sql: String| {
            let run_id = run.id.clone();
            async move {
                sqlx::query_as::<_, KeyValue>(&sql)
                    .bind(run_id)
                    .fetch_all(&self.pool)
                    .await
            }
        };
        let run_steps: Vec<StepRun> = steps.iter().map(|s| s.step.clone()).collect();
        let params =
            crate::pipeline_runs::logged_params(key_values(kv("tracking_params", "run_uuid", "")).await?, &run_steps);
        let tags = key_values(kv(
            "tracking_tags",
            "run_uuid",
            " AND x.key NOT LIKE 'mlflow.%' AND x.key NOT LIKE 'weft.%'",
        ))
        .await?;
        let metadata = key_values(kv("metadata", "step_run_id", "")).await?;
        let metrics: Vec<Metric> = sqlx::query_as(&format!(
            "{STEP_METRIC_ROWS} AND run_uuid IN (SELECT id FROM step_runs WHERE run_id = $1) \
             ORDER BY tracking_metrics.run_uuid, tracking_metrics.key, tracking_metrics.step, tracking_metrics.timestamp"
        ))
        .bind(&run.id)
        .fetch_all(&self.pool)
        .await?;
        // Runs owning the step runs this one points at: cached sources and
        // producers of the artifacts it read.
        let depends_on: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT s.run_id FROM step_runs s WHERE s.run_id <> $1 AND (\
             s.id IN (SELECT cached_from FROM step_runs WHERE run_id = $1 AND cached_from IS NOT NULL) \
             OR s.id IN (SELECT a.producer_step_run_id FROM artifacts a WHERE a.id IN (\
                 SELECT l.artifact_id FROM step_run_inputs l JOIN step_runs x ON x.id = l.step_run_id WHERE x.run_id = $1 \
                 UNION SELECT l.artifact_id FROM step_run_outputs l JOIN step_runs x ON x.id = l.step_run_id WHERE x.run_id = $1 \
                 UNION SELECT artifact_id FROM run_inputs WHERE run_id = $1)))",
        )
        .bind(&run.id)
        .fetch_all(&self.pool)
        .await?;
        Ok(RunExport {
            pipeline: run.pipeline,
            run: exported,
            steps,
            artifacts,
            run_inputs,
            step_inputs,
            step_outputs,
            params,
            metrics,
            tags,
            metadata,
            depends_on,
        })
    }

    /// The runs of `ids` this store does not have.
    pub async fn missing_runs(&self, ids: &[String]) -> Result<Vec<String>, StoreError> {
        let mut missing = Vec::new();
        for id in ids {
            let found: Option<String> = sqlx::query_scalar("SELECT id FROM runs WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
            if found.is_none() {
                missing.push(id.clone());
            }
        }
        Ok(missing)
    }

    /// Imports (or updates) a run exported by another store, in one
    /// transaction, and writes its tracking runs. A new run is numbered after
    /// this store's runs of the pipeline, a new artifact after its versions
    /// of the name. Returns the run's number here.
    pub async fn import_run(&self, export: &RunExport) -> Result<i64, StoreError> {
        export.validate()?;
        let missing = self.missing_runs(&export.depends_on).await?;
        if !missing.is_empty() {
            return Err(StoreError::MissingRuns(missing));
        }
        let pipeline_id = self.ensure_pipeline(&export.pipeline).await?;
        let mut tx = self.begin_write().await?;
        let r = &export.run;
        let existing: Option<(i64, String)> = sqlx::query_as("SELECT number, pipeline_id FROM runs WHERE id = $1")
            .bind(&r.id)
            .fetch_optional(&mut *tx)
            .await?;
        let number = match existing {
            Some((_, owner)) if owner != pipeline_id => {
                return Err(StoreError::Invalid(format!(
                    "run {} belongs to another pipeline here",
                    r.id
                )))
            }
            Some((number, _)) => {
                sqlx::query("UPDATE runs SET status = $1, ended_at = $2, error = $3 WHERE id = $4")
                    .bind(&r.status)
                    .bind(r.ended_at)
                    .bind(&r.error)
                    .bind(&r.id)
                    .execute(&mut *tx)
                    .await?;
                number
            }
            None => {
                let number: i64 =
                    sqlx::query_scalar("SELECT COALESCE(MAX(number), 0) + 1 FROM runs WHERE pipeline_id = $1")
                        .bind(&pipeline_id)
                        .fetch_one(&mut *tx)
                        .await?;
                sqlx::query(
                    "INSERT INTO runs (id, pipeline_id, number, status, started_at, ended_at, manifest, error, host, pid) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL)",
                )
                .bind(&r.id)
                .bind(&pipeline_id)
                .bind(number)
                .bind(&r.status)
                .bind(r.started_at)
                .bind(r.ended_at)
                .bind(&r.manifest)
                .bind(&r.error)
                .bind(&r.host)
                .execute(&mut *tx)
                .await?;
                number
            }
        };
        for s in &export.steps {
            let f = &s.step;
            let owner: Option<String> = sqlx::query_scalar("SELECT run_id FROM step_runs WHERE id = $1")
                .bind(&f.id)
                .fetch_optional(&mut *tx)
                .await?;
            if owner.as_deref().is_some_and(|owner| owner != r.id) {
                return Err(StoreError::Invalid(format!(
                    "step run {} belongs to another run here",
                    f.id
                )));
            }
            sqlx::query(
                "INSERT INTO step_runs (id, run_id, step_name, status, params, started_at, ended_at, component_digest, \
                 cache_key, cached_from, attempts, logs, error, sandbox, determinism, origin) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, 'imported') \
                 ON CONFLICT (id) DO UPDATE SET status = excluded.status, started_at = excluded.started_at, \
                 ended_at = excluded.ended_at, component_digest = excluded.component_digest, cache_key = excluded.cache_key, \
                 cached_from = excluded.cached_from, attempts = excluded.attempts, logs = excluded.logs, error = excluded.error, \
                 sandbox = excluded.sandbox, determinism = excluded.determinism, origin = 'imported'",
            )
            .bind(&f.id)
            .bind(&r.id)
            .bind(&f.step_name)
            .bind(&f.status)
            .bind(&f.params)
            .bind(f.started_at)
            .bind(f.ended_at)
            .bind(&f.component_digest)
            .bind(&f.cache_key)
            .bind(&f.cached_from)
            .bind(f.attempts)
            .bind(&s.logs)
            .bind(&f.error)
            .bind(&s.sandbox)
            .bind(&f.determinism)
            .execute(&mut *tx)
            .await?;
        }
        for a in &export.artifacts {
            sqlx::query(
                "INSERT INTO artifacts (id, name, version, digest, kind, media_type, size, producer_step_run_id, source_uri, created_at) \
                 SELECT $1, $2, COALESCE(MAX(version), 0) + 1, $3, $4, $5, $6, $7, $8, $9 FROM artifacts WHERE name = $2 \
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(&a.id)
            .bind(&a.name)
            .bind(&a.digest)
            .bind(&a.kind)
            .bind(&a.media_type)
            .bind(a.size)
            .bind(&a.producer_step_run_id)
            .bind(&a.source_uri)
            .bind(a.created_at)
            .execute(&mut *tx)
            .await?;
        }
        for (name, artifact) in &export.run_inputs {
            sqlx::query(
                "INSERT INTO run_inputs (run_id, name, artifact_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            )
            .bind(&r.id)
            .bind(name)
            .bind(artifact)
            .execute(&mut *tx)
            .await?;
        }
        for (table, links) in [
            ("step_run_inputs", &export.step_inputs),
            ("step_run_outputs", &export.step_outputs),
        ] {
            for (step, name, artifact) in links {
                sqlx::query(&format!(
                    "INSERT INTO {table} (step_run_id, name, artifact_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"
                ))
                .bind(step)
                .bind(name)
                .bind(artifact)
                .execute(&mut *tx)
                .await?;
            }
        }
        // What the steps logged: replaced whole, so a re-import as the run
        // goes never doubles a metric point. The step runs' tracking runs
        // are written first (their rows, weft's tags, configured params),
        // then what was logged into them.
        for s in &export.steps {
            for (table, column) in [
                ("tracking_params", "run_uuid"),
                ("tracking_tags", "run_uuid"),
                ("tracking_metrics", "run_uuid"),
                ("tracking_latest_metrics", "run_uuid"),
                ("metadata", "step_run_id"),
            ] {
                sqlx::query(&format!("DELETE FROM {table} WHERE {column} = $1"))
                    .bind(&s.step.id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        crate::pipeline_runs::write_runs(&mut tx, self.backend, &r.id, RunScope::All).await?;
        for (table, rows, on_conflict) in [
            (
                "tracking_params",
                &export.params,
                "DO UPDATE SET value = excluded.value",
            ),
            ("tracking_tags", &export.tags, "DO NOTHING"),
        ] {
            for kv in rows {
                sqlx::query(&format!(
                    "INSERT INTO {table} (run_uuid, key, value) VALUES ($1, $2, $3) ON CONFLICT (run_uuid, key) {on_conflict}"
                ))
                .bind(&kv.step_run_id)
                .bind(&kv.key)
                .bind(&kv.value)
                .execute(&mut *tx)
                .await?;
            }
        }
        for kv in &export.metadata {
            sqlx::query(
                "INSERT INTO metadata (run_id, step_run_id, key, value) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            )
            .bind(&r.id)
            .bind(&kv.step_run_id)
            .bind(&kv.key)
            .bind(&kv.value)
            .execute(&mut *tx)
            .await?;
        }
        let points: Vec<(&str, &str, f64, Option<i64>, i64)> = export
            .metrics
            .iter()
            .map(|m| (m.step_run_id.as_str(), m.key.as_str(), m.value, m.step, m.timestamp))
            .collect();
        crate::tracking::insert_step_points(&mut tx, self.backend, &points).await?;
        tx.commit().await?;
        Ok(number)
    }
}

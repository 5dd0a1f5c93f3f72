//! Registered pipelines and the cron schedules that start them.
//!
//! A registered pipeline is a weft.toml with every component and external
//! input pinned by digest (the pins are opaque JSON here; `weft-pipeline`
//! reads them), so a server can start it without the project's tree.
//!
//! Two servers may share one database: a due time belongs to the server
//! whose conditional UPDATE of `next_due_at` succeeds
//! ([`Store::claim_due`]), and `schedule_firings` holds at most one row
//! per (schedule, due time).

use serde::{Deserialize, Serialize};

use crate::{new_id, now_ms, Store, StoreError};

/// What a schedule did at one due time.
pub mod firing {
    /// Started on time.
    pub const FIRED: &str = "fired";
    /// A due time missed while no server ran, started late (policy
    /// `catch-up`, once however many were missed).
    pub const CAUGHT_UP: &str = "caught-up";
    /// Due times missed while no server ran, not started (policy `skip`).
    pub const SKIPPED: &str = "skipped";
    /// The run could not start (the reason is recorded).
    pub const FAILED: &str = "failed";
}

/// A registered version of a pipeline.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PipelineDefinition {
    pub id: String,
    pub pipeline: String,
    /// 1, 2, ... per pipeline.
    pub version: i64,
    /// The weft.toml text as registered.
    pub manifest: String,
    /// What pins its components and inputs (JSON, read by weft-pipeline).
    pub pins: String,
    pub created_at: i64,
}

/// A cron schedule of a registered pipeline.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Schedule {
    pub id: String,
    pub name: String,
    pub pipeline: String,
    /// Cron expression in UTC: 5 fields, or 6 with seconds first.
    pub cron: String,
    /// Param overrides, `{"step.param": value}`.
    #[schema(value_type = Object)]
    pub params: serde_json::Value,
    /// `skip` or `catch-up`: what happens to due times missed while no
    /// server ran.
    pub missed: String,
    pub paused: bool,
    /// When it fires next (ms since the epoch).
    pub next_due_at: i64,
    pub created_at: i64,
    /// Its most recent firing.
    pub last: Option<Firing>,
}

/// One entry of a schedule's history.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Firing {
    pub id: String,
    /// The due time (ms) this entry is for.
    pub due_at: i64,
    /// When a server acted on it.
    pub fired_at: i64,
    /// `fired`, `caught-up`, `skipped` or `failed`.
    pub outcome: String,
    /// The run it started; empty for a moment after a `fired` or
    /// `caught-up` entry is recorded, while that run is being started.
    pub run_id: Option<String>,
    /// For `skipped`: how many due times were passed over.
    pub missed: i64,
    pub error: Option<String>,
    /// The server's machine.
    pub host: Option<String>,
}

/// A schedule to create.
#[derive(Debug, Clone)]
pub struct NewSchedule<'a> {
    pub name: &'a str,
    pub pipeline: &'a str,
    pub cron: &'a str,
    pub params: &'a serde_json::Value,
    pub missed: &'a str,
    pub next_due_at: i64,
}

#[derive(sqlx::FromRow)]
struct ScheduleRow {
    id: String,
    name: String,
    pipeline: String,
    cron: String,
    params: String,
    missed: String,
    paused: i64,
    next_due_at: i64,
    created_at: i64,
}

impl ScheduleRow {
    /// The schedule, with `last`, its latest firing if it was read.
    fn into_schedule(self, last: Option<Firing>) -> Schedule {
        Schedule {
            params: serde_json::from_str(&self.params).unwrap_or(serde_json::Value::Null),
            id: self.id,
            name: self.name,
            pipeline: self.pipeline,
            cron: self.cron,
            missed: self.missed,
            paused: self.paused != 0,
            next_due_at: self.next_due_at,
            created_at: self.created_at,
            last,
        }
    }
}

#[derive(sqlx::FromRow)]
struct FiringRow {
    id: String,
    due_at: i64,
    fired_at: i64,
    outcome: String,
    run_id: Option<String>,
    missed: i64,
    error: Option<String>,
    host: Option<String>,
}

impl From<FiringRow> for Firing {
    fn from(r: FiringRow) -> Self {
        Firing {
            id: r.id,
            due_at: r.due_at,
            fired_at: r.fired_at,
            outcome: r.outcome,
            run_id: r.run_id,
            missed: r.missed,
            error: r.error,
            host: r.host,
        }
    }
}

const SCHEDULE_COLUMNS: &str =
    "s.id, s.name, p.name AS pipeline, s.cron, s.params, s.missed, CAST(s.paused AS INTEGER) AS paused, \
     s.next_due_at, s.created_at FROM schedules s JOIN pipelines p ON p.id = s.pipeline_id";

const FIRING_COLUMNS: &str = "id, due_at, fired_at, outcome, run_id, missed, error, host FROM schedule_firings";

impl Store {
    /// Records a new version of `pipeline`'s definition.
    pub async fn register_definition(
        &self,
        pipeline: &str,
        manifest: &str,
        pins: &str,
    ) -> Result<PipelineDefinition, StoreError> {
        let pipeline_id = self.ensure_pipeline(pipeline).await?;
        let mut tx = self.begin_write().await?;
        let version: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) + 1 FROM pipeline_definitions WHERE pipeline_id = $1")
                .bind(&pipeline_id)
                .fetch_one(&mut *tx)
                .await?;
        let definition = PipelineDefinition {
            id: new_id(),
            pipeline: pipeline.to_string(),
            version,
            manifest: manifest.to_string(),
            pins: pins.to_string(),
            created_at: now_ms(),
        };
        sqlx::query(
            "INSERT INTO pipeline_definitions (id, pipeline_id, version, manifest, pins, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&definition.id)
        .bind(&pipeline_id)
        .bind(version)
        .bind(manifest)
        .bind(pins)
        .bind(definition.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(definition)
    }

    /// The newest registered definition of `pipeline`.
    pub async fn latest_definition(&self, pipeline: &str) -> Result<PipelineDefinition, StoreError> {
        #[derive(sqlx::FromRow)]
        struct Row {
            id: String,
            version: i64,
            manifest: String,
            pins: String,
            created_at: i64,
        }
        let row: Option<Row> = sqlx::query_as(
            "SELECT d.id, d.version, d.manifest, d.pins, d.created_at FROM pipeline_definitions d \
             JOIN pipelines p ON p.id = d.pipeline_id WHERE p.name = $1 ORDER BY d.version DESC LIMIT 1",
        )
        .bind(pipeline)
        .fetch_optional(&self.pool)
        .await?;
        let row = row.ok_or_else(|| StoreError::NotFound {
            what: "registered pipeline (run `weft pipeline register` in its project)",
            key: pipeline.to_string(),
        })?;
        Ok(PipelineDefinition {
            id: row.id,
            pipeline: pipeline.to_string(),
            version: row.version,
            manifest: row.manifest,
            pins: row.pins,
            created_at: row.created_at,
        })
    }

    /// Creates a schedule of a registered pipeline.
    pub async fn create_schedule(&self, new: NewSchedule<'_>) -> Result<Schedule, StoreError> {
        self.latest_definition(new.pipeline).await?;
        let pipeline_id: String = sqlx::query_scalar("SELECT id FROM pipelines WHERE name = $1")
            .bind(new.pipeline)
            .fetch_one(&self.pool)
            .await?;
        let id = new_id();
        let done = sqlx::query(
            "INSERT INTO schedules (id, name, pipeline_id, cron, params, missed, paused, next_due_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, FALSE, $7, $8) ON CONFLICT (name) DO NOTHING",
        )
        .bind(&id)
        .bind(new.name)
        .bind(&pipeline_id)
        .bind(new.cron)
        .bind(new.params.to_string())
        .bind(new.missed)
        .bind(new.next_due_at)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::AlreadyExists(format!(
                "a schedule named '{}' exists already",
                new.name
            )));
        }
        self.schedule(new.name).await
    }

    /// Every schedule with its last firing, by name.
    pub async fn schedules(&self) -> Result<Vec<Schedule>, StoreError> {
        let rows: Vec<ScheduleRow> = sqlx::query_as(&format!("SELECT {SCHEDULE_COLUMNS} ORDER BY s.name"))
            .fetch_all(&self.pool)
            .await?;
        let mut schedules = Vec::with_capacity(rows.len());
        for row in rows {
            schedules.push(self.with_last(row).await?);
        }
        Ok(schedules)
    }

    /// The schedule named `name`.
    pub async fn schedule(&self, name: &str) -> Result<Schedule, StoreError> {
        let row: Option<ScheduleRow> = sqlx::query_as(&format!("SELECT {SCHEDULE_COLUMNS} WHERE s.name = $1"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        let row = row.ok_or_else(|| StoreError::NotFound {
            what: "schedule",
            key: name.to_string(),
        })?;
        self.with_last(row).await
    }

    async fn with_last(&self, row: ScheduleRow) -> Result<Schedule, StoreError> {
        let last = self.firings(&row.id, 1).await?.into_iter().next();
        Ok(row.into_schedule(last))
    }

    /// Schedules that are not paused and due at `now` (ms).
    pub async fn due_schedules(&self, now: i64) -> Result<Vec<Schedule>, StoreError> {
        let rows: Vec<ScheduleRow> = sqlx::query_as(&format!(
            "SELECT {SCHEDULE_COLUMNS} WHERE s.paused = FALSE AND s.next_due_at <= $1 ORDER BY s.next_due_at"
        ))
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|row| row.into_schedule(None)).collect())
    }

    /// The earliest due time of the schedules that are not paused.
    pub async fn next_due(&self) -> Result<Option<i64>, StoreError> {
        Ok(
            sqlx::query_scalar::<_, Option<i64>>("SELECT MIN(next_due_at) FROM schedules WHERE paused = FALSE")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Takes the due time `due` of schedule `id` for this caller, moving
    /// the schedule on to `next`: false when another server took it first
    /// (or the schedule was paused, changed or deleted meanwhile).
    pub async fn claim_due(&self, id: &str, due: i64, next: i64) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE schedules SET next_due_at = $1 WHERE id = $2 AND next_due_at = $3 AND paused = FALSE")
                .bind(next)
                .bind(id)
                .bind(due)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records what a schedule did at a due time; `None` when that due
    /// time has a record already.
    pub async fn record_firing(
        &self,
        schedule_id: &str,
        due_at: i64,
        outcome: &str,
        missed: i64,
        host: &str,
    ) -> Result<Option<String>, StoreError> {
        let id = new_id();
        let done = sqlx::query(
            "INSERT INTO schedule_firings (id, schedule_id, due_at, fired_at, outcome, missed, host) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (schedule_id, due_at) DO NOTHING",
        )
        .bind(&id)
        .bind(schedule_id)
        .bind(due_at)
        .bind(now_ms())
        .bind(outcome)
        .bind(missed)
        .bind(host)
        .execute(&self.pool)
        .await?;
        Ok((done.rows_affected() == 1).then_some(id))
    }

    /// Completes a firing's record: the run it started, or why none started.
    pub async fn finish_firing(
        &self,
        firing_id: &str,
        run_id: Option<&str>,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE schedule_firings SET run_id = $1, error = $2, outcome = COALESCE($3, outcome) WHERE id = $4",
        )
        .bind(run_id)
        .bind(error)
        .bind(error.map(|_| firing::FAILED))
        .bind(firing_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A schedule's history, newest first.
    pub async fn firings(&self, schedule_id: &str, limit: i64) -> Result<Vec<Firing>, StoreError> {
        let rows: Vec<FiringRow> = sqlx::query_as(&format!(
            "SELECT {FIRING_COLUMNS} WHERE schedule_id = $1 ORDER BY due_at DESC LIMIT $2"
        ))
        .bind(schedule_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Firing::from).collect())
    }

    /// Pauses or resumes a schedule; a resumed one fires next at
    /// `next_due_at` (the times it was paused for are not caught up).
    pub async fn set_schedule_paused(
        &self,
        name: &str,
        paused: bool,
        next_due_at: i64,
    ) -> Result<Schedule, StoreError> {
        let done = if paused {
            sqlx::query("UPDATE schedules SET paused = TRUE WHERE name = $1")
                .bind(name)
                .execute(&self.pool)
                .await?
        } else {
            sqlx::query("UPDATE schedules SET paused = FALSE, next_due_at = $1 WHERE name = $2 AND paused = TRUE")
                .bind(next_due_at)
                .bind(name)
                .execute(&self.pool)
                .await?
        };
        if done.rows_affected() == 0 {
            // Unknown (an error) or already running (nothing to do).
            self.schedule(name).await?;
        }
        self.schedule(name).await
    }

    /// Deletes a schedule and its history (the runs it started stay).
    pub async fn delete_schedule(&self, name: &str) -> Result<(), StoreError> {
        let schedule = self.schedule(name).await?;
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM schedule_firings WHERE schedule_id = $1")
            .bind(&schedule.id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM schedules WHERE id = $1")
            .bind(&schedule.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

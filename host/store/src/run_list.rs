//! The runs list as a dashboard pages through it: filtered, sorted and
//! counted in the database, each run with its duration and how many of its
//! steps were served from the cache or failed.

use serde::Serialize;

use crate::sql::Sql;
use crate::store::escape_like;
use crate::{now_ms, Run, Store, StoreError};

/// What to sort runs by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RunSort {
    /// When the run started (the default).
    #[default]
    Started,
    /// How long it took (so far, for a running one).
    Duration,
    /// Pipeline name, then run number.
    Pipeline,
    /// Status, then start.
    Status,
}

impl RunSort {
    /// Parses `started`, `duration`, `pipeline` or `status`.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "started" => RunSort::Started,
            "duration" => RunSort::Duration,
            "pipeline" => RunSort::Pipeline,
            "status" => RunSort::Status,
            _ => return None,
        })
    }
}

/// Which runs, in which order, which page.
#[derive(Debug, Clone, Default)]
pub struct RunQuery {
    /// Only runs of this pipeline (exact name).
    pub pipeline: Option<String>,
    /// Only runs with this status.
    pub status: Option<String>,
    /// Only runs whose pipeline name contains this (any case) or whose id
    /// starts with it.
    pub search: Option<String>,
    pub sort: RunSort,
    pub descending: bool,
    pub limit: i64,
    pub offset: i64,
}

/// A run as the runs list shows it: the run and a summary of its steps.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct RunSummary {
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub run: Run,
    /// Milliseconds from start to end, or to now while it runs.
    pub duration_ms: i64,
    /// Steps in the run.
    pub steps: i64,
    /// Steps served from the cache.
    pub cached: i64,
    /// Steps that failed.
    pub failed: i64,
}

/// One page of runs and how many match in all.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RunPage {
    pub runs: Vec<RunSummary>,
    /// Runs matching the filters, over all pages.
    pub total: i64,
}

impl Store {
    /// A page of runs, with the number of runs matching in all.
    pub async fn run_page(&self, q: &RunQuery) -> Result<RunPage, StoreError> {
        let now = now_ms();
        let filtered = |select: &str| {
            let mut sql = Sql::new(
                self.backend,
                format!("SELECT {select} FROM runs r JOIN pipelines p ON p.id = r.pipeline_id WHERE 1 = 1"),
            );
            if let Some(pipeline) = &q.pipeline {
                sql.push(" AND p.name = ").push_bind(pipeline.clone());
            }
            if let Some(status) = &q.status {
                sql.push(" AND r.status = ").push_bind(status.clone());
            }
            if let Some(search) = q.search.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
                let escaped = escape_like(&search.to_lowercase());
                sql.push(" AND (LOWER(p.name) LIKE ")
                    .push_bind(format!("%{escaped}%"))
                    .push(" ESCAPE '\\' OR r.id LIKE ")
                    .push_bind(format!("{escaped}%"))
                    .push(" ESCAPE '\\')");
            }
            sql
        };
        let total: i64 = filtered("COUNT(*)").build_query_scalar()?.fetch_one(&self.pool).await?;

        let mut page = Sql::new(self.backend, "SELECT x.*, ");
        page.push(
            "(SELECT COUNT(*) FROM step_runs s WHERE s.run_id = x.id) AS steps, \
             (SELECT COUNT(*) FROM step_runs s WHERE s.run_id = x.id AND s.status = 'cached') AS cached, \
             (SELECT COUNT(*) FROM step_runs s WHERE s.run_id = x.id AND s.status = 'failed') AS failed \
             FROM (",
        );
        // `now` is our own integer, not user input.
        let mut inner = filtered(&format!(
            "r.id, p.name AS pipeline, r.number, r.status, r.started_at, r.ended_at, r.error, \
             COALESCE(r.ended_at, {now}) - r.started_at AS duration_ms"
        ));
        let direction = if q.descending { "DESC" } else { "ASC" };
        // The same order inside (on the tables) and outside (on the page).
        let order = |run: &str, pipeline: &str| match q.sort {
            RunSort::Started => format!("{run}started_at {direction}, {run}id {direction}"),
            RunSort::Duration => format!("duration_ms {direction}, {run}id {direction}"),
            RunSort::Pipeline => format!("{pipeline} {direction}, {run}number {direction}"),
            RunSort::Status => format!("{run}status {direction}, {run}started_at DESC, {run}id DESC"),
        };
        inner.push(format!(" ORDER BY {} LIMIT ", order("r.", "p.name")));
        inner.push_bind(q.limit).push(" OFFSET ").push_bind(q.offset);
        page.append(inner);
        page.push(format!(") x ORDER BY {}", order("x.", "x.pipeline")));
        let runs = page.build_query_as()?.fetch_all(&self.pool).await?;
        Ok(RunPage { runs, total })
    }
}

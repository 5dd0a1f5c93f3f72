//! Experiment tracking as MLflow models it: experiments, runs, params,
//! tags and metric histories, for runs that clients log directly.

use serde::Serialize;
use sqlx::Any;

use crate::sql::{Backend, Sql};

use crate::search::{Attribute, Clause, Entity, Literal, Op, OrderBy};
use crate::store::WriteScope;
use crate::{new_id, now_ms, Store, StoreError};

/// A run's own fields (in the order the run page query writes them).
#[derive(Debug, Clone, Serialize, serde::Deserialize, sqlx::FromRow)]
pub struct RunInfo {
    pub run_uuid: String,
    pub experiment_id: i64,
    pub name: String,
    pub user_id: String,
    pub status: String,
    pub start_time: i64,
    pub end_time: Option<i64>,
    pub lifecycle_stage: String,
    pub artifact_uri: String,
}

/// A metric point. `value` is NaN when the point was NaN.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MetricPoint {
    pub key: String,
    pub value: f64,
    pub timestamp: i64,
    pub step: i64,
}

/// A run with its params, tags and the latest value of each metric.
#[derive(Debug, Clone, Serialize)]
pub struct TrackedRun {
    pub info: RunInfo,
    pub params: Vec<(String, String)>,
    pub tags: Vec<(String, String)>,
    pub metrics: Vec<MetricPoint>,
    /// The datasets the run used (`runs/log-inputs`).
    pub inputs: Vec<crate::DatasetInput>,
}

#[derive(sqlx::FromRow)]
struct MetricRow {
    key: String,
    value: f64,
    is_nan: i64,
    timestamp: i64,
    step: i64,
}

impl From<MetricRow> for MetricPoint {
    fn from(r: MetricRow) -> Self {
        MetricPoint {
            key: r.key,
            value: if r.is_nan != 0 { f64::NAN } else { r.value },
            timestamp: r.timestamp,
            step: r.step,
        }
    }
}

/// Infinite values are stored as the largest finite ones, as MLflow does.
fn storable(value: f64) -> (f64, bool) {
    if value.is_nan() {
        (0.0, true)
    } else {
        (value.clamp(f64::MIN, f64::MAX), false)
    }
}

const RUN_INFO_COLUMNS: &str =
    "r.run_uuid, r.experiment_id, r.name, r.user_id, r.status, r.start_time, r.end_time, r.lifecycle_stage, r.artifact_uri";

impl Store {
    /// Starts a run in an experiment.
    pub async fn create_tracked_run(
        &self,
        experiment_id: i64,
        name: &str,
        user_id: &str,
        start_time: Option<i64>,
        tags: &[(String, String)],
    ) -> Result<RunInfo, StoreError> {
        let experiment = self.experiment(experiment_id).await?;
        if experiment.lifecycle_stage != "active" {
            return Err(StoreError::Invalid(format!("experiment {experiment_id} is deleted")));
        }
        let run_uuid = new_id().replace('-', "");
        let artifact_uri = format!(
            "{}/{run_uuid}/artifacts",
            experiment.artifact_location.trim_end_matches('/')
        );
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO tracking_runs (run_uuid, experiment_id, name, user_id, status, start_time, lifecycle_stage, artifact_uri) \
             VALUES ($1, $2, $3, $4, 'RUNNING', $5, 'active', $6)",
        )
        .bind(&run_uuid)
        .bind(experiment_id)
        .bind(name)
        .bind(user_id)
        .bind(start_time.unwrap_or_else(now_ms))
        .bind(&artifact_uri)
        .execute(&mut *tx)
        .await?;
        upsert_tags(&mut tx, self.backend, &run_uuid, tags).await?;
        tx.commit().await?;
        self.run_info(&run_uuid).await
    }

    /// A run's own fields.
    pub async fn run_info(&self, run_uuid: &str) -> Result<RunInfo, StoreError> {
        sqlx::query_as(&format!(
            "SELECT {RUN_INFO_COLUMNS} FROM tracking_runs r WHERE r.run_uuid = $1"
        ))
        .bind(run_uuid)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound {
            what: "run",
            key: run_uuid.to_string(),
        })
    }

    /// Changes a run's status, end time or name.
    pub async fn update_tracked_run(
        &self,
        run_uuid: &str,
        status: Option<&str>,
        end_time: Option<i64>,
        name: Option<&str>,
    ) -> Result<RunInfo, StoreError> {
        self.active_run(run_uuid).await?;
        sqlx::query(
            "UPDATE tracking_runs SET status = COALESCE($1, status), end_time = COALESCE($2, end_time), name = COALESCE($3, name) WHERE run_uuid = $4",
        )
        .bind(status)
        .bind(end_time)
        .bind(name)
        .bind(run_uuid)
        .execute(&self.pool)
        .await?;
        if let Some(name) = name {
            self.log_batch(run_uuid, &[], &[], &[("mlflow.runName".into(), name.into())])
                .await?;
        }
        self.run_info(run_uuid).await
    }

    /// Marks a run deleted (or active again).
    pub async fn set_run_lifecycle(&self, run_uuid: &str, stage: &str) -> Result<(), StoreError> {
        self.run_info(run_uuid).await?;
        sqlx::query("UPDATE tracking_runs SET lifecycle_stage = $1 WHERE run_uuid = $2")
            .bind(stage)
            .bind(run_uuid)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub(crate) async fn active_run(&self, run_uuid: &str) -> Result<RunInfo, StoreError> {
        let info = self.run_info(run_uuid).await?;
        if info.lifecycle_stage != "active" {
            return Err(StoreError::Invalid(format!(
                "run {run_uuid} is deleted; it cannot be changed"
            )));
        }
        Ok(info)
    }

    /// Logs metrics, params and tags in one transaction. A param logged
    /// again with a different value is refused (params are immutable); the
    /// same value again is fine. An exact duplicate metric point is kept once.
    pub async fn log_batch(
        &self,
        run_uuid: &str,
        metrics: &[MetricPoint],
        params: &[(String, String)],
        tags: &[(String, String)],
    ) -> Result<(), StoreError> {
        self.active_run(run_uuid).await?;
        let mut tx = self.begin_write_in(WriteScope::Run(run_uuid)).await?;
        for chunk in params.chunks(300) {
            let mut insert = Sql::new(self.backend, "INSERT INTO tracking_params (run_uuid, key, value) ");
            insert.push_values(chunk, |row, (key, value)| {
                row.bind(run_uuid).bind(key).bind(value);
            });
            insert.push(" ON CONFLICT (run_uuid, key) DO NOTHING");
            insert.build()?.execute(&mut *tx).await?;
            // Anything that conflicted must have had the same value.
            let mut check = Sql::new(self.backend, "SELECT key, value FROM tracking_params WHERE run_uuid = ");
            check.push_bind(run_uuid).push(" AND key IN (");
            check.push_list(chunk.iter().map(|(key, _)| key)).push(")");
            let stored: Vec<(String, String)> = check.build_query_as()?.fetch_all(&mut *tx).await?;
            for (key, value) in chunk {
                if let Some((_, old)) = stored.iter().find(|(k, _)| k == key) {
                    if old != value {
                        return Err(StoreError::Invalid(format!(
                            "param '{key}' of run {run_uuid} was already logged as '{old}'; params are immutable, so '{value}' is refused"
                        )));
                    }
                }
            }
        }
        // A key given twice keeps its last value.
        let mut last: Vec<(String, String)> = Vec::with_capacity(tags.len());
        for (key, value) in tags.iter().rev() {
            if !last.iter().any(|(k, _)| k == key) {
                last.push((key.clone(), value.clone()));
            }
        }
        upsert_tags(&mut tx, self.backend, run_uuid, &last).await?;
        // The run-name tag is the run's name.
        if let Some((_, name)) = last.iter().find(|(k, _)| k == "mlflow.runName") {
            sqlx::query("UPDATE tracking_runs SET name = $1 WHERE run_uuid = $2")
                .bind(name)
                .bind(run_uuid)
                .execute(&mut *tx)
                .await?;
        }
        let points: Vec<(&str, &MetricPoint)> = metrics.iter().map(|m| (run_uuid, m)).collect();
        insert_metric_points(&mut tx, self.backend, &points).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes a tag.
    pub async fn delete_tracked_tag(&self, run_uuid: &str, key: &str) -> Result<(), StoreError> {
        self.active_run(run_uuid).await?;
        let deleted = sqlx::query("DELETE FROM tracking_tags WHERE run_uuid = $1 AND key = $2")
            .bind(run_uuid)
            .bind(key)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if deleted == 0 {
            return Err(StoreError::NotFound {
                what: "tag",
                key: key.to_string(),
            });
        }
        Ok(())
    }

    /// The id of the newest active tracked run.
    pub async fn latest_tracked_run_id(&self) -> Result<String, StoreError> {
        sqlx::query_scalar(
            "SELECT run_uuid FROM tracking_runs WHERE lifecycle_stage = 'active' \
             ORDER BY start_time DESC, run_uuid DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound {
            what: "run",
            key: "latest".into(),
        })
    }

    /// A run with its data.
    pub async fn tracked_run(&self, run_uuid: &str) -> Result<TrackedRun, StoreError> {
        let mut q = Sql::new(
            self.backend,
            format!("SELECT {RUN_INFO_COLUMNS} FROM tracking_runs r WHERE r.run_uuid = "),
        );
        q.push_bind(run_uuid);
        self.page_with_data(q).await?.pop().ok_or_else(|| StoreError::NotFound {
            what: "run",
            key: run_uuid.to_string(),
        })
    }

    /// Runs the page query `q` (which selects [`RUN_INFO_COLUMNS`] from
    /// `tracking_runs r`, ordered and limited) and returns its runs with
    /// their params, tags and latest metrics.
    ///
    /// One statement answers the whole page as one JSON document: a page
    /// holds up to 50,000 runs, and every row sqlx fetches is a round trip
    /// to its connection thread. The data of each run is read for the page
    /// only, after the order and limit.
    async fn page_with_data(&self, inner: Sql<'_>) -> Result<Vec<TrackedRun>, StoreError> {
        let mut q = Sql::new(self.backend, format!("SELECT {} FROM (", self.backend.page_document()));
        q.append(inner).push(") p");
        let json: String = q.build_query_scalar()?.fetch_one(&self.pool).await?;
        // Per run: its columns (read into RunInfo in field order), params,
        // tags, latest metrics with their values as exact decimal text.
        type Page = Vec<(
            RunInfo,
            Vec<(String, String)>,
            Vec<(String, String)>,
            Vec<(String, String, i64, i64, i64)>,
        )>;
        let page: Page =
            serde_json::from_str(&json).map_err(|e| StoreError::Invalid(format!("malformed run page: {e}")))?;
        let ids: Vec<&str> = page.iter().map(|(info, ..)| info.run_uuid.as_str()).collect();
        let mut inputs = self.run_inputs(&ids).await?;
        page.into_iter()
            .map(|(info, mut params, mut tags, metrics)| {
                params.sort();
                tags.sort();
                let mut metrics = metrics
                    .into_iter()
                    .map(|(key, value, is_nan, timestamp, step)| {
                        let value = if is_nan != 0 {
                            f64::NAN
                        } else {
                            value.parse::<f64>().map_err(|e| {
                                StoreError::Invalid(format!("malformed metric value '{value}' in run page: {e}"))
                            })?
                        };
                        Ok(MetricPoint {
                            key,
                            value,
                            timestamp,
                            step,
                        })
                    })
                    .collect::<Result<Vec<_>, StoreError>>()?;
                metrics.sort_by(|a, b| a.key.cmp(&b.key));
                let inputs = inputs.remove(&info.run_uuid).unwrap_or_default();
                Ok(TrackedRun {
                    info,
                    params,
                    tags,
                    metrics,
                    inputs,
                })
            })
            .collect()
    }

    /// Every point of a metric, by time, then step, then value.
    pub async fn tracked_metric_history(
        &self,
        run_uuid: &str,
        key: &str,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<MetricPoint>, StoreError> {
        // An unknown run or key has an empty history, as in the reference;
        // points come in the reference's order (time, then step, then value).
        let rows: Vec<MetricRow> = sqlx::query_as(
            "SELECT key, value, CAST(is_nan AS INTEGER) AS is_nan, timestamp, step FROM tracking_metrics WHERE run_uuid = $1 AND key = $2 \
             ORDER BY timestamp, step, value LIMIT $3 OFFSET $4",
        )
        .bind(run_uuid)
        .bind(key)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// Runs of the given experiments matching every clause, in `order`
    /// (then start time descending, then id), one page.
    pub async fn search_tracked_runs(
        &self,
        experiment_ids: &[i64],
        lifecycle: Option<&str>,
        clauses: &[Clause],
        order: &[OrderBy],
        limit: i64,
        offset: i64,
    ) -> Result<Vec<TrackedRun>, StoreError> {
        check_run_search(clauses, order)?;
        if experiment_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = Sql::new(
            self.backend,
            format!("SELECT {RUN_INFO_COLUMNS} FROM tracking_runs r WHERE r.experiment_id IN ("),
        );
        q.push_list(experiment_ids.iter().copied()).push(")");
        if let Some(stage) = lifecycle {
            q.push(" AND r.lifecycle_stage = ").push_bind(stage.to_string());
        }
        for clause in clauses {
            q.push(" AND ");
            push_clause(&mut q, self.backend, clause);
        }
        q.push(" ORDER BY ");
        for o in order {
            push_order_value(&mut q, &o.entity);
            q.push(" IS NULL, ");
            push_order_value(&mut q, &o.entity);
            q.push(if o.ascending { " ASC, " } else { " DESC, " });
        }
        q.push("r.start_time DESC, r.run_uuid LIMIT ")
            .push_bind(limit)
            .push(" OFFSET ")
            .push_bind(offset);
        self.page_with_data(q).await
    }
}

/// Refuses attributes that runs do not have.
fn check_run_search(clauses: &[Clause], order: &[OrderBy]) -> Result<(), StoreError> {
    let entities = clauses.iter().map(|c| &c.entity).chain(order.iter().map(|o| &o.entity));
    for entity in entities {
        match entity {
            Entity::Attribute(a) if a.run_column().is_none() => {
                return Err(StoreError::Invalid(format!("runs have no attribute {a:?}")));
            }
            Entity::Metadata(key) => {
                return Err(StoreError::Invalid(format!(
                    "runs have no metadata ('metadata.{key}'): use tags.<key>"
                )));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Inserts metric points of any runs (an exact duplicate is kept once) and
/// moves each (run, key)'s latest point forward: highest step, then
/// timestamp, then value.
pub(crate) async fn insert_metric_points(
    tx: &mut sqlx::Transaction<'_, Any>,
    backend: Backend,
    points: &[(&str, &MetricPoint)],
) -> Result<(), StoreError> {
    let points: Vec<(&str, &MetricPoint, bool)> = points.iter().map(|(id, m)| (*id, *m, true)).collect();
    insert_points(tx, backend, &points).await
}

/// As [`insert_metric_points`], each point saying whether it was logged
/// with a step index (`false`: a pipeline step logged none; stored as step
/// 0, which is what MLflow clients see, and read back as no index).
pub(crate) async fn insert_points(
    tx: &mut sqlx::Transaction<'_, Any>,
    backend: Backend,
    points: &[(&str, &MetricPoint, bool)],
) -> Result<(), StoreError> {
    // The six columns both tables share.
    let bind_point = |b: &mut crate::sql::Row<'_, '_>, id: &str, m: &MetricPoint| {
        let (value, is_nan) = storable(m.value);
        b.bind(id.to_string())
            .bind(m.key.clone())
            .bind(value)
            .bind(is_nan)
            .bind(m.timestamp)
            .bind(m.step);
    };
    for chunk in points.chunks(150) {
        let mut insert = Sql::new(
            backend,
            "INSERT INTO tracking_metrics (run_uuid, key, value, is_nan, timestamp, step, has_step) ",
        );
        insert.push_values(chunk, |b, (id, m, has_step)| {
            bind_point(b, id, m);
            b.bind(*has_step);
        });
        insert.push(" ON CONFLICT DO NOTHING");
        insert.build()?.execute(&mut **tx).await?;
    }
    let mut latest: std::collections::HashMap<(&str, &str), &(&str, &MetricPoint, bool)> =
        std::collections::HashMap::new();
    for point in points {
        let (id, m, _) = point;
        let slot = latest.entry((id, m.key.as_str())).or_insert(point);
        if (m.step, m.timestamp, m.value) > (slot.1.step, slot.1.timestamp, slot.1.value) {
            *slot = point;
        }
    }
    let latest: Vec<&(&str, &MetricPoint, bool)> = latest.into_values().collect();
    for chunk in latest.chunks(150) {
        let mut upsert = Sql::new(
            backend,
            "INSERT INTO tracking_latest_metrics (run_uuid, key, value, is_nan, timestamp, step) ",
        );
        upsert.push_values(chunk, |b, (id, m, _)| bind_point(b, id, m));
        upsert.push(
            " ON CONFLICT (run_uuid, key) DO UPDATE SET value = excluded.value, is_nan = excluded.is_nan, \
             timestamp = excluded.timestamp, step = excluded.step \
             WHERE excluded.step > tracking_latest_metrics.step \
             OR (excluded.step = tracking_latest_metrics.step AND excluded.timestamp > tracking_latest_metrics.timestamp) \
             OR (excluded.step = tracking_latest_metrics.step AND excluded.timestamp = tracking_latest_metrics.timestamp \
                 AND excluded.value > tracking_latest_metrics.value)",
        );
        upsert.build()?.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Points a pipeline step logged, `(run, key, value, step index if any,
/// timestamp)`, into that run's metrics: a point without an index is stored
/// as step 0 and remembered so (`has_step`).
pub(crate) async fn insert_step_points(
    tx: &mut sqlx::Transaction<'_, Any>,
    backend: Backend,
    points: &[(&str, &str, f64, Option<i64>, i64)],
) -> Result<(), StoreError> {
    let metric_points: Vec<MetricPoint> = points
        .iter()
        .map(|(_, key, value, step, timestamp)| MetricPoint {
            key: key.to_string(),
            value: *value,
            timestamp: *timestamp,
            step: step.unwrap_or(0),
        })
        .collect();
    let points: Vec<(&str, &MetricPoint, bool)> = points
        .iter()
        .zip(&metric_points)
        .map(|((id, _, _, step, _), point)| (*id, point, step.is_some()))
        .collect();
    insert_points(tx, backend, &points).await
}

/// A clause on a keyed value (a tag, a metadata entry) of the row a search
/// looks at: `[NOT] EXISTS (SELECT 1 FROM <from_where> AND x.key = …)`,
/// where `from_where` is `<table> x WHERE <join to the searched row>`.
/// `IS NULL` asks that the key be absent, `IS NOT NULL` present.
pub(crate) fn push_keyed_clause(q: &mut Sql<'_>, backend: Backend, from_where: &str, key: &str, clause: &Clause) {
    let exists = if clause.op == Op::IsNull {
        "NOT EXISTS"
    } else {
        "EXISTS"
    };
    q.push(format!("{exists} (SELECT 1 FROM {from_where} AND x.key = "));
    q.push_bind(key.to_string());
    if !matches!(clause.op, Op::IsNull | Op::IsNotNull) {
        q.push(" AND ");
        push_comparison(q, backend, "x.value", clause);
    }
    q.push(")");
}

async fn upsert_tags(
    tx: &mut sqlx::Transaction<'_, Any>,
    backend: Backend,
    run_uuid: &str,
    tags: &[(String, String)],
) -> Result<(), StoreError> {
    for chunk in tags.chunks(300) {
        let mut insert = Sql::new(backend, "INSERT INTO tracking_tags (run_uuid, key, value) ");
        insert.push_values(chunk, |row, (key, value)| {
            row.bind(run_uuid).bind(key).bind(value);
        });
        insert.push(" ON CONFLICT (run_uuid, key) DO UPDATE SET value = excluded.value");
        insert.build()?.execute(&mut **tx).await?;
    }
    Ok(())
}

/// One clause as SQL over the `tracking_runs r` alias; keys and values are
/// bound, never spliced.
fn push_clause(q: &mut Sql<'_>, backend: Backend, clause: &Clause) {
    let (table, key) = match &clause.entity {
        Entity::Metric(k) => ("tracking_latest_metrics", k),
        Entity::Param(k) => ("tracking_params", k),
        Entity::Tag(k) => ("tracking_tags", k),
        // Refused by `check_run_search`.
        Entity::Metadata(_) => {
            q.push("0 = 1");
            return;
        }
        Entity::Attribute(a) => {
            // Checked by `check_run_search`.
            push_comparison(q, backend, a.run_column().unwrap_or("NULL"), clause);
            return;
        }
    };
    match clause.op {
        Op::IsNull => {
            q.push(format!(
                "NOT EXISTS (SELECT 1 FROM {table} x WHERE x.run_uuid = r.run_uuid AND x.key = "
            ));
            q.push_bind(key.clone()).push(")");
        }
        Op::IsNotNull => {
            q.push(format!(
                "EXISTS (SELECT 1 FROM {table} x WHERE x.run_uuid = r.run_uuid AND x.key = "
            ));
            q.push_bind(key.clone()).push(")");
        }
        _ => {
            q.push(format!(
                "EXISTS (SELECT 1 FROM {table} x WHERE x.run_uuid = r.run_uuid AND x.key = "
            ));
            q.push_bind(key.clone());
            if matches!(clause.entity, Entity::Metric(_)) {
                q.push(" AND NOT x.is_nan");
            }
            q.push(" AND ");
            push_comparison(q, backend, "x.value", clause);
            q.push(")");
        }
    }
}

pub(crate) fn push_comparison(q: &mut Sql<'_>, backend: Backend, column: &str, clause: &Clause) {
    match (&clause.op, &clause.value) {
        (Op::IsNull | Op::IsNotNull, _) => {
            q.push(format!("{column} {}", clause.op.sql()));
        }
        (Op::ILike, Literal::Text(t)) => {
            q.push(format!("LOWER({column}) LIKE LOWER("))
                .push_bind(t.clone())
                .push(")");
        }
        (Op::Like, Literal::Text(t)) => {
            // LIKE is case-sensitive in MLflow, as in PostgreSQL. SQLite's
            // LIKE ignores ASCII case, so there a case-sensitive GLOB must
            // match too.
            q.push(format!("{column} LIKE ")).push_bind(t.clone());
            if backend == Backend::Sqlite {
                q.push(format!(" AND {column} GLOB ")).push_bind(like_to_glob(t));
            }
        }
        (Op::In | Op::NotIn, Literal::List(items)) => {
            q.push(format!("{column} {} (", clause.op.sql()));
            q.push_list(items.iter().cloned()).push(")");
        }
        (op, Literal::Number(n)) => {
            q.push(format!("{column} {} ", op.sql())).push_bind(*n);
        }
        (op, Literal::Text(t)) => {
            q.push(format!("{column} {} ", op.sql())).push_bind(t.clone());
        }
        (_, _) => {
            q.push("0 = 1");
        }
    }
}

/// `%`/`_` wildcards as GLOB `*`/`?`, GLOB's own specials escaped.
fn like_to_glob(pattern: &str) -> String {
    let mut glob = String::new();
    for c in pattern.chars() {
        match c {
            '%' => glob.push('*'),
            '_' => glob.push('?'),
            '*' | '?' | '[' => {
                glob.push('[');
                glob.push(c);
                glob.push(']');
            }
            other => glob.push(other),
        }
    }
    glob
}

fn push_order_value(q: &mut Sql<'_>, entity: &Entity) {
    let (table, key) = match entity {
        Entity::Metric(k) => ("tracking_latest_metrics", k),
        Entity::Param(k) => ("tracking_params", k),
        Entity::Tag(k) => ("tracking_tags", k),
        Entity::Attribute(Attribute::RunId) => {
            q.push("r.run_uuid");
            return;
        }
        // Refused by `check_run_search`.
        Entity::Metadata(_) => {
            q.push("NULL");
            return;
        }
        Entity::Attribute(a) => {
            q.push(a.run_column().unwrap_or("NULL"));
            return;
        }
    };
    q.push(format!(
        "(SELECT x.value FROM {table} x WHERE x.run_uuid = r.run_uuid AND x.key = "
    ));
    q.push_bind(key.clone()).push(")");
}

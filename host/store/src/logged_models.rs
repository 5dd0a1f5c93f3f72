//! Logged models as MLflow 3 models them: created pending, their files
//! uploaded under their artifact location, then finalized as ready (or
//! failed); with params, tags, and the runs that output them.

use serde::Serialize;

use crate::search::{Attribute, Clause, Entity, Op};
use crate::sql::Sql;
use crate::tracking::push_comparison;
use crate::{now_ms, Store, StoreError};

/// A logged model's statuses.
pub mod model_status {
    pub const PENDING: &str = "LOGGED_MODEL_PENDING";
    pub const READY: &str = "LOGGED_MODEL_READY";
    pub const UPLOAD_FAILED: &str = "LOGGED_MODEL_UPLOAD_FAILED";
    /// Every status a client may set.
    pub const ALL: [&str; 3] = [PENDING, READY, UPLOAD_FAILED];
}

/// A logged model with its params and tags.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct LoggedModel {
    pub model_id: String,
    pub experiment_id: i64,
    pub name: String,
    pub artifact_location: String,
    pub creation_timestamp_ms: i64,
    pub last_updated_timestamp_ms: i64,
    pub model_type: Option<String>,
    pub source_run_id: Option<String>,
    pub status: String,
    pub status_message: Option<String>,
    pub lifecycle_stage: String,
    #[sqlx(skip)]
    pub params: Vec<(String, String)>,
    #[sqlx(skip)]
    pub tags: Vec<(String, String)>,
    /// Metrics logged against the model, by time.
    #[sqlx(skip)]
    pub metrics: Vec<ModelMetric>,
}

/// A metric logged against a logged model.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ModelMetric {
    pub point: crate::MetricPoint,
    /// The run that logged it.
    pub run_id: String,
    /// The dataset it was measured on (empty: none given).
    pub dataset_name: String,
    pub dataset_digest: String,
}

#[derive(sqlx::FromRow)]
struct ModelMetricRow {
    key: String,
    value: f64,
    is_nan: i64,
    timestamp: i64,
    step: i64,
    run_uuid: String,
    dataset_name: String,
    dataset_digest: String,
}

/// What a new logged model starts with.
#[derive(Debug, Clone, Default)]
pub struct NewLoggedModel {
    pub experiment_id: i64,
    pub name: Option<String>,
    pub model_type: Option<String>,
    pub source_run_id: Option<String>,
    pub params: Vec<(String, String)>,
    pub tags: Vec<(String, String)>,
}

const COLUMNS: &str = "model_id, experiment_id, name, artifact_location, creation_timestamp_ms, \
    last_updated_timestamp_ms, model_type, source_run_id, status, status_message, lifecycle_stage";

impl Store {
    /// Creates a pending logged model in an active experiment; its files go
    /// under `<experiment artifact location>/models/<model_id>/artifacts`.
    pub async fn create_logged_model(&self, new: &NewLoggedModel) -> Result<LoggedModel, StoreError> {
        let experiment = self.experiment(new.experiment_id).await?;
        if experiment.lifecycle_stage != "active" {
            return Err(StoreError::Invalid(format!(
                "experiment {} is deleted; restore it before logging models to it",
                experiment.experiment_id
            )));
        }
        if let Some(run) = &new.source_run_id {
            self.run_info(run).await?;
        }
        let model_id = format!("m-{}", uuid::Uuid::now_v7().simple());
        let name = new.name.clone().unwrap_or_else(|| "model".to_string());
        let location = format!(
            "{}/models/{model_id}/artifacts",
            experiment.artifact_location.trim_end_matches('/')
        );
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        sqlx::query(&format!(
            "INSERT INTO logged_models ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $5, $6, $7, $8, NULL, 'active')"
        ))
        .bind(&model_id)
        .bind(experiment.experiment_id)
        .bind(&name)
        .bind(&location)
        .bind(now)
        .bind(&new.model_type)
        .bind(&new.source_run_id)
        .bind(model_status::PENDING)
        .execute(&mut *tx)
        .await?;
        for (table, pairs) in [("logged_model_params", &new.params), ("logged_model_tags", &new.tags)] {
            upsert_pairs(&mut tx, table, &model_id, pairs).await?;
        }
        tx.commit().await?;
        self.logged_model(&model_id).await
    }

    /// A logged model (deleted ones are not found).
    pub async fn logged_model(&self, model_id: &str) -> Result<LoggedModel, StoreError> {
        let mut model: LoggedModel = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM logged_models WHERE model_id = $1 AND lifecycle_stage = 'active'"
        ))
        .bind(model_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::NotFound {
            what: "logged model",
            key: model_id.to_string(),
        })?;
        model.params = sqlx::query_as("SELECT key, value FROM logged_model_params WHERE model_id = $1 ORDER BY key")
            .bind(model_id)
            .fetch_all(&self.pool)
            .await?;
        model.tags = sqlx::query_as("SELECT key, value FROM logged_model_tags WHERE model_id = $1 ORDER BY key")
            .bind(model_id)
            .fetch_all(&self.pool)
            .await?;
        let rows: Vec<ModelMetricRow> = sqlx::query_as(
            "SELECT key, value, CAST(is_nan AS INTEGER) AS is_nan, timestamp, step, run_uuid, dataset_name, dataset_digest \
             FROM logged_model_metrics WHERE model_id = $1 ORDER BY timestamp, step, key",
        )
        .bind(model_id)
        .fetch_all(&self.pool)
        .await?;
        model.metrics = rows
            .into_iter()
            .map(|r| ModelMetric {
                point: crate::MetricPoint {
                    key: r.key,
                    value: if r.is_nan != 0 { f64::NAN } else { r.value },
                    timestamp: r.timestamp,
                    step: r.step,
                },
                run_id: r.run_uuid,
                dataset_name: r.dataset_name,
                dataset_digest: r.dataset_digest,
            })
            .collect();
        Ok(model)
    }

    /// Records metrics against logged models (each `(model_id, metric)`),
    /// logged by a run. An exact duplicate is kept once.
    pub async fn log_model_metrics(&self, metrics: &[(String, ModelMetric)]) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        for (model_id, m) in metrics {
            let exists: Option<String> = sqlx::query_scalar(
                "SELECT model_id FROM logged_models WHERE model_id = $1 AND lifecycle_stage = 'active'",
            )
            .bind(model_id)
            .fetch_optional(&mut *tx)
            .await?;
            if exists.is_none() {
                return Err(StoreError::NotFound {
                    what: "logged model",
                    key: model_id.clone(),
                });
            }
            let (value, is_nan) = if m.point.value.is_nan() {
                (0.0, true)
            } else {
                (m.point.value.clamp(f64::MIN, f64::MAX), false)
            };
            sqlx::query(
                "INSERT INTO logged_model_metrics (model_id, key, value, is_nan, timestamp, step, run_uuid, dataset_name, dataset_digest) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
            )
            .bind(model_id)
            .bind(&m.point.key)
            .bind(value)
            .bind(is_nan)
            .bind(m.point.timestamp)
            .bind(m.point.step)
            .bind(&m.run_id)
            .bind(&m.dataset_name)
            .bind(&m.dataset_digest)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Sets a logged model's status (finalizing it).
    pub async fn set_logged_model_status(&self, model_id: &str, status: &str) -> Result<LoggedModel, StoreError> {
        if !model_status::ALL.contains(&status) {
            return Err(StoreError::Invalid(format!(
                "unknown logged model status '{status}': use one of {}",
                model_status::ALL.join(", ")
            )));
        }
        self.logged_model(model_id).await?;
        sqlx::query("UPDATE logged_models SET status = $1, last_updated_timestamp_ms = $2 WHERE model_id = $3")
            .bind(status)
            .bind(now_ms())
            .bind(model_id)
            .execute(&self.pool)
            .await?;
        self.logged_model(model_id).await
    }

    /// Adds params to a logged model. A param logged again must keep its
    /// value.
    pub async fn log_logged_model_params(&self, model_id: &str, params: &[(String, String)]) -> Result<(), StoreError> {
        let model = self.logged_model(model_id).await?;
        for (key, value) in params {
            if let Some((_, old)) = model.params.iter().find(|(k, _)| k == key) {
                if old != value {
                    return Err(StoreError::Invalid(format!(
                        "param '{key}' of model {model_id} was already logged as '{old}'; params are immutable"
                    )));
                }
            }
        }
        self.upsert_model_pairs("logged_model_params", model_id, params).await
    }

    /// Sets tags of a logged model (the last value wins).
    pub async fn set_logged_model_tags(&self, model_id: &str, tags: &[(String, String)]) -> Result<(), StoreError> {
        self.logged_model(model_id).await?;
        self.upsert_model_pairs("logged_model_tags", model_id, tags).await
    }

    async fn upsert_model_pairs(
        &self,
        table: &str,
        model_id: &str,
        pairs: &[(String, String)],
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        upsert_pairs(&mut tx, table, model_id, pairs).await?;
        sqlx::query("UPDATE logged_models SET last_updated_timestamp_ms = $1 WHERE model_id = $2")
            .bind(now_ms())
            .bind(model_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes a tag of a logged model.
    pub async fn delete_logged_model_tag(&self, model_id: &str, key: &str) -> Result<(), StoreError> {
        self.logged_model(model_id).await?;
        let deleted = sqlx::query("DELETE FROM logged_model_tags WHERE model_id = $1 AND key = $2")
            .bind(model_id)
            .bind(key)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if deleted == 0 {
            return Err(StoreError::NotFound {
                what: "logged model tag",
                key: key.to_string(),
            });
        }
        Ok(())
    }

    /// Marks a logged model deleted.
    pub async fn delete_logged_model(&self, model_id: &str) -> Result<(), StoreError> {
        self.logged_model(model_id).await?;
        sqlx::query(
            "UPDATE logged_models SET lifecycle_stage = 'deleted', last_updated_timestamp_ms = $1 WHERE model_id = $2",
        )
        .bind(now_ms())
        .bind(model_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Logged models of the given experiments matching every clause (on
    /// `name`, `status`, `params.*` and `tags.*`), newest first, one page.
    pub async fn search_logged_models(
        &self,
        experiment_ids: &[i64],
        clauses: &[Clause],
        limit: i64,
        offset: i64,
    ) -> Result<Vec<LoggedModel>, StoreError> {
        if experiment_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = Sql::new(
            self.backend,
            "SELECT m.model_id FROM logged_models m WHERE m.lifecycle_stage = 'active' AND m.experiment_id IN (",
        );
        q.push_list(experiment_ids.iter().copied()).push(")");
        for clause in clauses {
            q.push(" AND ");
            let table = match &clause.entity {
                Entity::Attribute(Attribute::RunName) => {
                    push_comparison(&mut q, self.backend, "m.name", clause);
                    continue;
                }
                Entity::Attribute(Attribute::Status) => {
                    push_comparison(&mut q, self.backend, "m.status", clause);
                    continue;
                }
                Entity::Metric(key) => {
                    q.push("EXISTS (SELECT 1 FROM logged_model_metrics x WHERE x.model_id = m.model_id AND x.key = ")
                        .push_bind(key.clone())
                        .push(" AND NOT x.is_nan AND ");
                    push_comparison(&mut q, self.backend, "x.value", clause);
                    q.push(")");
                    continue;
                }
                Entity::Param(key) => ("logged_model_params", key),
                Entity::Tag(key) => ("logged_model_tags", key),
                _ => {
                    return Err(StoreError::Invalid(
                        "logged models can be filtered on name, status, metrics.<key>, params.<key> and tags.<key>"
                            .into(),
                    ))
                }
            };
            let negate = matches!(clause.op, Op::IsNull);
            q.push(format!(
                "{}EXISTS (SELECT 1 FROM {} x WHERE x.model_id = m.model_id AND x.key = ",
                if negate { "NOT " } else { "" },
                table.0
            ))
            .push_bind(table.1.clone());
            if !matches!(clause.op, Op::IsNull | Op::IsNotNull) {
                q.push(" AND ");
                push_comparison(&mut q, self.backend, "x.value", clause);
            }
            q.push(")");
        }
        q.push(" ORDER BY m.creation_timestamp_ms DESC, m.model_id LIMIT ")
            .push_bind(limit)
            .push(" OFFSET ")
            .push_bind(offset);
        let ids: Vec<String> = q.build_query_scalar()?.fetch_all(&self.pool).await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(self.logged_model(&id).await?);
        }
        Ok(out)
    }

    /// Records that a run output these models (at a step).
    pub async fn log_run_model_outputs(&self, run_uuid: &str, models: &[(String, i64)]) -> Result<(), StoreError> {
        self.run_info(run_uuid).await?;
        for (model_id, _) in models {
            self.logged_model(model_id).await?;
        }
        let mut tx = self.begin_write().await?;
        for (model_id, step) in models {
            sqlx::query(
                "INSERT INTO run_model_outputs (run_uuid, model_id, step) VALUES ($1, $2, $3) \
                 ON CONFLICT (run_uuid, model_id) DO UPDATE SET step = excluded.step",
            )
            .bind(run_uuid)
            .bind(model_id)
            .bind(*step)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

async fn upsert_pairs(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    table: &str,
    model_id: &str,
    pairs: &[(String, String)],
) -> Result<(), StoreError> {
    for (key, value) in pairs {
        sqlx::query(&format!(
            "INSERT INTO {table} (model_id, key, value) VALUES ($1, $2, $3) \
             ON CONFLICT (model_id, key) DO UPDATE SET value = excluded.value"
        ))
        .bind(model_id)
        .bind(key)
        .bind(value)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

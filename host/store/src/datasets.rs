//! Datasets that runs read, as MLflow's `runs/log-inputs` records them: a
//! dataset belongs to an experiment and is known by name and digest (the
//! first logging of it keeps its source, schema and profile); a run lists
//! the datasets it used, each once, in the order first logged, with the
//! input's own tags.

use std::collections::HashMap;

use serde::Serialize;

use crate::sql::Sql;
use crate::{new_id, Store, StoreError};

/// A dataset a run used, with the tags of that use.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DatasetInput {
    pub name: String,
    pub digest: String,
    pub source_type: String,
    pub source: String,
    pub schema: Option<String>,
    pub profile: Option<String>,
    /// The input's tags, e.g. `mlflow.data.context = training`.
    pub tags: Vec<(String, String)>,
}

impl Store {
    /// Records that an active run used these datasets.
    pub async fn log_inputs(&self, run_uuid: &str, inputs: &[DatasetInput]) -> Result<(), StoreError> {
        let run = self.active_run(run_uuid).await?;
        if inputs.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        let mut position: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(position), 0) FROM tracking_run_inputs WHERE run_uuid = $1")
                .bind(run_uuid)
                .fetch_one(&mut *tx)
                .await?;
        for input in inputs {
            let existing: Option<String> = sqlx::query_scalar(
                "SELECT dataset_id FROM tracking_datasets WHERE experiment_id = $1 AND name = $2 AND digest = $3",
            )
            .bind(run.experiment_id)
            .bind(&input.name)
            .bind(&input.digest)
            .fetch_optional(&mut *tx)
            .await?;
            let dataset_id = match existing {
                Some(id) => id,
                None => {
                    let id = new_id();
                    sqlx::query(
                        "INSERT INTO tracking_datasets (dataset_id, experiment_id, name, digest, source_type, source, schema, profile) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    )
                    .bind(&id)
                    .bind(run.experiment_id)
                    .bind(&input.name)
                    .bind(&input.digest)
                    .bind(&input.source_type)
                    .bind(&input.source)
                    .bind(input.schema.as_deref())
                    .bind(input.profile.as_deref())
                    .execute(&mut *tx)
                    .await?;
                    id
                }
            };
            position += 1;
            let tags = serde_json::to_string(&input.tags).map_err(|e| StoreError::Invalid(e.to_string()))?;
            sqlx::query(
                "INSERT INTO tracking_run_inputs (run_uuid, dataset_id, position, tags) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (run_uuid, dataset_id) DO NOTHING",
            )
            .bind(run_uuid)
            .bind(&dataset_id)
            .bind(position)
            .bind(tags)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The dataset inputs of these runs, each run's in the order first
    /// logged (runs without any are absent).
    pub async fn run_inputs(&self, run_uuids: &[&str]) -> Result<HashMap<String, Vec<DatasetInput>>, StoreError> {
        let mut out: HashMap<String, Vec<DatasetInput>> = HashMap::new();
        for chunk in run_uuids.chunks(500) {
            let mut q = Sql::new(
                self.backend,
                "SELECT i.run_uuid, d.name, d.digest, d.source_type, d.source, d.schema, d.profile, i.tags \
                 FROM tracking_run_inputs i JOIN tracking_datasets d ON d.dataset_id = i.dataset_id WHERE i.run_uuid IN (",
            );
            q.push_list(chunk.iter().map(|id| id.to_string()))
                .push(") ORDER BY i.run_uuid, i.position");
            type Row = (
                String,
                String,
                String,
                String,
                String,
                Option<String>,
                Option<String>,
                String,
            );
            let rows: Vec<Row> = q.build_query_as()?.fetch_all(&self.pool).await?;
            for (run, name, digest, source_type, source, schema, profile, tags) in rows {
                let tags = serde_json::from_str(&tags)
                    .map_err(|e| StoreError::Invalid(format!("malformed input tags of run {run}: {e}")))?;
                out.entry(run).or_default().push(DatasetInput {
                    name,
                    digest,
                    source_type,
                    source,
                    schema,
                    profile,
                    tags,
                });
            }
        }
        Ok(out)
    }
}

//! What weft asked of plugins for a run, and what the host refused them.

use serde::{Deserialize, Serialize};

use crate::{new_id, now_ms, Store, StoreError};

/// One call to a plugin.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PluginCall {
    pub plugin: String,
    /// Why it was called: `on_failure`, `step train on_success`,
    /// `gate inputs.iris`, `publish`.
    pub purpose: String,
    /// ok, failed (the plugin's error), passed or rejected (a gate).
    pub outcome: String,
    /// The plugin's error or a validator's report.
    pub message: Option<String>,
    /// HTTP requests the host refused it (hosts it was not granted).
    pub refused: Vec<String>,
    pub duration_ms: i64,
    pub at: i64,
}

impl Store {
    /// Records a call made for `run_id`.
    pub async fn record_plugin_call(&self, run_id: &str, call: &PluginCall) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO plugin_calls (id, run_id, plugin, purpose, outcome, message, refused, duration_ms, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(new_id())
        .bind(run_id)
        .bind(&call.plugin)
        .bind(&call.purpose)
        .bind(&call.outcome)
        .bind(&call.message)
        .bind(serde_json::to_string(&call.refused).unwrap_or_else(|_| "[]".into()))
        .bind(call.duration_ms)
        .bind(if call.at == 0 { now_ms() } else { call.at })
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The plugin calls of a run, in the order they were made.
    pub async fn plugin_calls(&self, run_id: &str) -> Result<Vec<PluginCall>, StoreError> {
        #[derive(sqlx::FromRow)]
        struct Row {
            plugin: String,
            purpose: String,
            outcome: String,
            message: Option<String>,
            refused: String,
            duration_ms: i64,
            at: i64,
        }
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT plugin, purpose, outcome, message, refused, duration_ms, at FROM plugin_calls \
             WHERE run_id = $1 ORDER BY at, id",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| PluginCall {
                plugin: r.plugin,
                purpose: r.purpose,
                outcome: r.outcome,
                message: r.message,
                refused: serde_json::from_str(&r.refused).unwrap_or_default(),
                duration_ms: r.duration_ms,
                at: r.at,
            })
            .collect())
    }
}

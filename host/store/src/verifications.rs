//! `weft verify`: re-executions of past step runs, and what they found.

use serde::{Deserialize, Serialize};

use crate::{new_id, now_ms, Store, StoreError};

/// How re-executing a step run went.
pub mod outcome {
    /// Every output came out with its recorded digest.
    pub const MATCH: &str = "match";
    /// At least one output differs (or an archived input or component no
    /// longer hashes to its digest).
    pub const MISMATCH: &str = "mismatch";
    /// It could not be re-executed (a blob is missing, the step failed).
    pub const ERROR: &str = "error";
}

/// One output as recorded and as re-executed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OutputCheck {
    pub name: String,
    /// The digest recorded with the step run.
    pub recorded: String,
    /// The digest the re-execution wrote (none when it wrote nothing).
    pub now: Option<String>,
}

/// A re-execution of one step run.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Verification {
    pub id: String,
    pub run_id: String,
    pub step_run_id: String,
    /// The step's name.
    pub step: String,
    /// `match`, `mismatch` or `error`.
    pub outcome: String,
    /// Why, in words, when it is not a match.
    pub message: Option<String>,
    pub outputs: Vec<OutputCheck>,
    pub verified_at: i64,
    /// The machine that re-executed it.
    pub host: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Detail {
    message: Option<String>,
    outputs: Vec<OutputCheck>,
}

impl Store {
    /// Records a re-execution of `step_run_id`; returns its id.
    pub async fn record_verification(
        &self,
        step_run_id: &str,
        outcome: &str,
        message: Option<&str>,
        outputs: &[OutputCheck],
        host: &str,
    ) -> Result<String, StoreError> {
        let id = new_id();
        let detail = serde_json::to_string(&Detail {
            message: message.map(str::to_string),
            outputs: outputs.to_vec(),
        })
        .unwrap_or_else(|_| "{}".into());
        sqlx::query(
            "INSERT INTO verifications (id, run_id, step_run_id, outcome, detail, verified_at, host) \
             SELECT $1, run_id, id, $2, $3, $4, $5 FROM step_runs WHERE id = $6",
        )
        .bind(&id)
        .bind(outcome)
        .bind(detail)
        .bind(now_ms())
        .bind(host)
        .bind(step_run_id)
        .execute(&self.pool)
        .await?;
        Ok(id)
    }

    /// Every verification of a run's step runs, oldest first.
    pub async fn verifications(&self, run_id: &str) -> Result<Vec<Verification>, StoreError> {
        #[derive(sqlx::FromRow)]
        struct Row {
            id: String,
            run_id: String,
            step_run_id: String,
            step: String,
            outcome: String,
            detail: String,
            verified_at: i64,
            host: Option<String>,
        }
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT v.id, v.run_id, v.step_run_id, s.step_name AS step, v.outcome, v.detail, v.verified_at, v.host \
             FROM verifications v JOIN step_runs s ON s.id = v.step_run_id WHERE v.run_id = $1 \
             ORDER BY v.verified_at, v.id",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let detail: Detail = serde_json::from_str(&r.detail).unwrap_or(Detail {
                    message: Some("the recorded detail is unreadable".into()),
                    outputs: Vec::new(),
                });
                Verification {
                    id: r.id,
                    run_id: r.run_id,
                    step_run_id: r.step_run_id,
                    step: r.step,
                    outcome: r.outcome,
                    message: detail.message,
                    outputs: detail.outputs,
                    verified_at: r.verified_at,
                    host: r.host,
                }
            })
            .collect())
    }

    /// The sandbox spec (JSON) a step run was given, if it recorded one.
    pub async fn step_run_sandbox(&self, step_run_id: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar::<_, Option<String>>("SELECT sandbox FROM step_runs WHERE id = $1")
                .bind(step_run_id)
                .fetch_optional(&self.pool)
                .await?
                .flatten(),
        )
    }
}

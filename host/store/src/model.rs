//! Rows as the store returns them.

use serde::{Deserialize, Serialize};

/// Status of a run or step run.
pub mod status {
    pub const PENDING: &str = "pending";
    pub const RUNNING: &str = "running";
    pub const SUCCEEDED: &str = "succeeded";
    pub const CACHED: &str = "cached";
    pub const FAILED: &str = "failed";
    /// A step that did not run because an upstream step failed.
    pub const SKIPPED: &str = "skipped";
    pub const CANCELLED: &str = "cancelled";
    /// The process recording it died (killed, crashed) before it finished.
    pub const CRASHED: &str = "crashed";
}

/// A pipeline run.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Run {
    pub id: String,
    pub pipeline: String,
    pub number: i64,
    pub status: String,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub error: Option<String>,
}

/// One step's execution within a run.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct StepRun {
    pub id: String,
    pub run_id: String,
    pub step_name: String,
    pub status: String,
    pub params: String,
    pub started_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub component_digest: Option<String>,
    pub cache_key: Option<String>,
    pub cached_from: Option<String>,
    pub attempts: i64,
    pub error: Option<String>,
    /// `virtual` (virtual clocks and seeded randomness) or `real` (a step
    /// declared `nondeterministic`); none for a step run that never started.
    #[serde(default)]
    pub determinism: Option<String>,
    /// `local`, or `imported` through the sync API (trusted by the cache
    /// only once verified here).
    #[serde(default = "local_origin")]
    pub origin: String,
}

fn local_origin() -> String {
    "local".into()
}

/// A versioned artifact.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Artifact {
    pub id: String,
    pub name: String,
    pub version: i64,
    pub digest: String,
    pub kind: String,
    pub media_type: String,
    pub size: i64,
    pub producer_step_run_id: Option<String>,
    pub source_uri: Option<String>,
    pub created_at: i64,
}

/// An artifact as a step run read or wrote it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ArtifactLink {
    /// The input or output name.
    pub slot: String,
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub artifact: Artifact,
}

/// A metric point.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Metric {
    pub step_run_id: String,
    pub key: String,
    pub value: f64,
    pub step: Option<i64>,
    pub timestamp: i64,
}

/// A key/value pair logged by a step (param, tag or metadata).
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct KeyValue {
    pub step_run_id: String,
    pub key: String,
    pub value: String,
}

/// Everything recorded about a run. The params, metrics, tags and metadata
/// of a cached step run are those of the step run it was served from
/// (`step_run_id` is then that original's id: match on
/// `cached_from.unwrap_or(id)`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RunDetail {
    pub run: Run,
    /// The pipeline as it ran: `{name, inputs: [{name, path, media_type}],
    /// steps: [{name, component, inputs: {slot: "step.output" |
    /// "inputs.name"}, outputs, params, cache, nondeterministic, env}]}`.
    #[schema(value_type = Object)]
    pub manifest: serde_json::Value,
    pub steps: Vec<StepRun>,
    pub inputs: Vec<ArtifactLink>,
    pub params: Vec<KeyValue>,
    pub metrics: Vec<Metric>,
    pub tags: Vec<KeyValue>,
    pub metadata: Vec<KeyValue>,
    /// Calls made to plugins for this run (hooks, gates, publishing).
    pub plugin_calls: Vec<crate::PluginCall>,
    /// Re-executions of its step runs by `weft verify`, oldest first.
    pub verifications: Vec<crate::Verification>,
}

/// One hop of lineage: an artifact and how it was made.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LineageNode {
    pub artifact: Artifact,
    /// The step run that produced it; `None` for external data.
    pub producer: Option<StepRun>,
    /// The inputs of that step run, each as `[input name, lineage node]`.
    #[schema(value_type = Vec<Vec<Value>>)]
    pub inputs: Vec<(String, LineageNode)>,
    /// This artifact's lineage is shown at its first appearance in the
    /// walk (a shared ancestor); `producer` and `inputs` are left out here.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub repeated: bool,
    /// The walk stopped here, at a limit (`inputs` are left out); see
    /// [`LINEAGE_MAX_DEPTH`] and [`LINEAGE_MAX_NODES`].
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

/// Levels a lineage walk follows before it stops (and says so).
pub const LINEAGE_MAX_DEPTH: usize = 200;
/// Artifacts a lineage walk expands before it stops (and says so).
pub const LINEAGE_MAX_NODES: usize = 5_000;

/// A pipeline with a summary of its runs.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Pipeline {
    pub id: String,
    pub name: String,
    pub created_at: i64,
    pub runs: i64,
    pub last_run_at: Option<i64>,
}

//! weft's metadata store: pipelines, runs, step runs, artifacts and their
//! lineage, and what steps logged (params, metrics, tags, metadata).
//!
//! Backed by sqlx. SQLite is the default (one file, WAL mode, migrations
//! embedded in the binary); the SQL is kept portable so PostgreSQL can run
//! the same migrations. Every state change that must be all-or-nothing (a
//! step run completing with its artifacts, lineage and metrics) is one
//! transaction, so a process killed at any point leaves a consistent
//! database.

mod datasets;
mod dispatch;
mod experiments;
mod fresh;
mod logged_models;
mod metric_series;
mod pipeline_runs;
pub use pipeline_runs::RunScope;
mod model;
mod plugin_calls;
mod registry;
mod registry_search;
mod run_artifacts;
mod run_list;
mod schedules;
pub mod search;
mod sql;
mod store;
mod sync;
mod traces;
mod tracking;
mod verifications;

pub use datasets::DatasetInput;
pub use dispatch::Claim;
pub use experiments::{Experiment, ViewType};
pub use logged_models::{model_status, LoggedModel, ModelMetric, NewLoggedModel};
pub use metric_series::{MetricSeries, MetricSummary};
pub use model::*;
pub use plugin_calls::PluginCall;
pub use registry::{validate_alias, validate_model_name, ModelVersion, RegisteredModel, DIGEST_TAG, SERVED_BY_TAG};
pub use run_artifacts::ArtifactEntry;
pub use run_list::{RunPage, RunQuery, RunSort, RunSummary};
pub use schedules::{firing, Firing, NewSchedule, PipelineDefinition, Schedule};
pub use sql::Backend;
pub use store::{CacheHit, LedgerWrite, NewArtifact, StepRunRecord, Store};
pub use sync::RunExport;
pub use traces::{
    validate_trace_id, TraceInfo, TRACE_ARTIFACT_LOCATION_TAG, TRACE_NAME_TAG, TRACE_RUN_METADATA, TRACE_STATES,
};
pub use tracking::{MetricPoint, RunInfo, TrackedRun};
pub use verifications::{outcome as verification, OutputCheck, Verification};

/// Errors of the metadata store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed.
    #[error("metadata store: {0}")]
    Db(#[from] sqlx::Error),
    /// Migrating the schema failed.
    #[error("metadata store migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Nothing matches.
    #[error("no {what} matches '{key}'")]
    NotFound { what: &'static str, key: String },
    /// More than one thing matches a prefix.
    #[error("'{key}' matches more than one {what}; give more characters")]
    Ambiguous { what: &'static str, key: String },
    /// The thing to create exists already.
    #[error("{0}")]
    AlreadyExists(String),
    /// The request breaks a rule of the data (immutable params, deleted runs).
    #[error("{0}")]
    Invalid(String),
    /// The thing is not in a state that allows this (e.g. renaming a
    /// deleted experiment).
    #[error("{0}")]
    InvalidState(String),
    /// The change collides with another row (e.g. a name in use).
    #[error("{0}")]
    Conflict(String),
    /// An imported run points into runs this store does not have.
    #[error("this store lacks runs the imported run depends on: {}", .0.join(", "))]
    MissingRuns(Vec<String>),
    /// The database URL is not understood.
    #[error("unsupported metadata store URL '{0}': use sqlite://path or postgres://user:password@host:port/database")]
    BadUrl(String),
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// A new time-ordered id.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

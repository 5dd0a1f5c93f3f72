//! Errors that stop a run before or outside its steps.

/// Errors that stop a run before or outside its steps (a step's own
/// failure is recorded with the step, not raised).
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(transparent)]
    Store(#[from] weft_store::StoreError),
    #[error("ingesting {what}: {source}")]
    Ingest {
        what: String,
        #[source]
        source: weft_artifacts::ArtifactError,
    },
    #[error("{0}")]
    Io(String),
    /// A plugin the manifest names is missing or of the wrong kind.
    #[error("{0}")]
    Plugins(String),
}

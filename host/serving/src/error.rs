//! What can go wrong while loading or serving a model.

use weft_runtime::RuntimeError;

/// Why a model could not be served, or a request answered.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A model URI that is not `models:/NAME@ALIAS`, `models:/NAME/VERSION`
    /// or `models:/NAME/latest`.
    #[error("invalid model URI '{uri}': {message}")]
    Reference { uri: String, message: String },
    /// The version names no model server, and none was given.
    #[error(
        "{name} version {version} names no model server: register it with `served_by` in weft.toml's [models] \
         (or `weft models register --served-by`), or give one with --component"
    )]
    NoServer { name: String, version: i64 },
    /// The model, alias or version is not registered.
    #[error("{0}")]
    NotFound(String),
    /// Reading the registry or the artifact store failed.
    #[error("{0}")]
    Registry(String),
    /// The component could not be compiled or instantiated.
    #[error("{0}")]
    Runtime(#[from] RuntimeError),
    /// The component is not a model server, or did not load the model.
    #[error("the model server could not load {what}: {message}")]
    Load { what: String, message: String },
    /// The request is not one the model answers: HTTP 400.
    #[error("{0}")]
    BadRequest(String),
    /// The call went past its time limit: HTTP 504.
    #[error("the model did not answer within {0:?}")]
    TimedOut(std::time::Duration),
    /// The call needed more memory than the instance may hold: HTTP 500.
    #[error("the model needed {requested} bytes of memory; an instance may hold {limit}")]
    MemoryLimit { requested: u64, limit: u64 },
    /// The component failed or trapped: HTTP 500.
    #[error("the model failed: {0}")]
    Failed(String),
}

//! weft's HTTP server.
//!
//! [`router`] builds the axum application over a metadata store and an
//! artifact store:
//!
//! - the web dashboard at `/` (see `weft-dashboard`);
//! - `GET /health`, `GET /version`;
//! - the native API under `/api/v1` (pipelines, runs with their steps,
//!   params and metrics, metric histories, step logs, artifacts with their
//!   content and lineage), described by the OpenAPI document at
//!   `/api/v1/openapi.json`, generated from the handlers themselves;
//! - triggered and scheduled runs of registered pipelines
//!   (`POST /api/v1/pipelines/{name}/runs`, `/api/v1/schedules`);
//! - `/api/v1/sync`, where `weft run --server URL` sends its runs;
//! - the MLflow REST API under `/api/2.0/mlflow` (tracking, registry,
//!   logged models, traces; the trace endpoints under `/api/3.0/mlflow`
//!   too) and its artifact proxy under `/api/2.0/mlflow-artifacts`.
//!
//! Every failure is a JSON body `{"error_code": "...", "message": "..."}`
//! with a 4xx status for anything the client got wrong. Before any handler,
//! [`Security`] checks the Host and Origin headers, the content type of
//! JSON writes and the bearer token (see `security.rs`); [`check_bind`]
//! refuses to listen on a non-loopback address without a token.

mod error;
mod mlflow;
mod mlflow_artifacts;
mod mlflow_models;
mod mlflow_registry;
mod mlflow_traces;
mod native;
mod requests;
mod security;
mod sync;
mod triggers;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use tower_http::limit::RequestBodyLimitLayer;
use weft_artifacts::ArtifactStore;
use weft_store::Store;

pub use error::ApiError;
pub use native::ApiDoc;
pub use security::Security;

/// Largest request body accepted (artifact uploads come later and will have
/// their own limit).
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub artifacts: ArtifactStore,
    /// When set, writes need `Authorization: Bearer <token>`.
    pub token: Option<Arc<str>>,
    /// Allowed hosts and origins, and whether reads need the token.
    pub security: Arc<Security>,
    /// What starts runs of registered pipelines (`POST
    /// /api/v1/pipelines/{name}/runs`); none: the endpoint answers 501.
    pub launcher: Option<Arc<dyn weft_triggers::Launcher>>,
    /// Registered models answered under `/serve/models/` (`weft server
    /// --serve-models`, see weft-serving's `Hub`); none: not served.
    pub models: Option<Router>,
}

/// The whole application.
pub fn router(state: AppState) -> Router {
    // JSON APIs take small bodies; the artifact proxy streams large ones.
    let api = Router::new()
        .route("/health", get(|| async { Json(serde_json::json!({ "status": "ok" })) }))
        .route(
            "/version",
            get(|| async { Json(serde_json::json!({ "name": "weft", "version": env!("CARGO_PKG_VERSION") })) }),
        )
        .nest("/api/v1", native::routes().merge(triggers::routes()))
        .nest(
            "/api/2.0/mlflow",
            mlflow::routes()
                .merge(mlflow_registry::routes())
                .merge(mlflow_models::routes())
                .merge(mlflow_traces::routes()),
        )
        .nest(
            "/ajax-api/2.0/mlflow",
            mlflow::routes()
                .merge(mlflow_registry::routes())
                .merge(mlflow_models::routes())
                .merge(mlflow_traces::routes()),
        )
        .nest("/api/3.0/mlflow", mlflow_traces::routes())
        .nest("/ajax-api/3.0/mlflow", mlflow_traces::routes())
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES));
    let artifacts = Router::new()
        .nest("/api/2.0/mlflow-artifacts", mlflow_artifacts::routes())
        .nest("/api/v1/sync", sync::routes())
        .layer(axum::extract::DefaultBodyLimit::max(sync::MAX_DOCUMENT_BYTES));
    let mut app = api.merge(artifacts).merge(weft_dashboard::routes());
    if let Some(models) = state.models.clone() {
        // Their own body limit (the hub's), and the guard below: asking a
        // model is a POST, so it needs the token when there is one.
        app = app.nest_service("/serve/models", models);
    }
    app.fallback(|| async { ApiError::not_found("ENDPOINT_NOT_FOUND", "no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "ENDPOINT_NOT_FOUND",
                "this endpoint does not take that method",
            )
        })
        .layer(axum::middleware::from_fn_with_state(state.clone(), security::guard))
        .with_state(state)
}

/// Why the server will not start.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error(
        "refusing to listen on {0} without a token: anyone who can reach it could write. \
         Pass --token (or set WEFT_SERVER_TOKEN), or bind 127.0.0.1"
    )]
    PublicWithoutToken(SocketAddr),
    #[error("the token must be at least 16 characters")]
    WeakToken,
}

/// Checks that the address and token are a safe combination.
pub fn check_bind(addr: SocketAddr, token: Option<&str>) -> Result<(), BindError> {
    if let Some(token) = token {
        if token.len() < 16 {
            return Err(BindError::WeakToken);
        }
        return Ok(());
    }
    let loopback = match addr.ip() {
        IpAddr::V4(ip) => ip.is_loopback(),
        IpAddr::V6(ip) => ip.is_loopback(),
    };
    if loopback {
        Ok(())
    } else {
        Err(BindError::PublicWithoutToken(addr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_addresses_need_a_strong_token() {
        let local: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let public: SocketAddr = "0.0.0.0:5000".parse().unwrap();
        assert!(check_bind(local, None).is_ok());
        assert!(matches!(
            check_bind(public, None),
            Err(BindError::PublicWithoutToken(_))
        ));
        assert!(matches!(check_bind(public, Some("short")), Err(BindError::WeakToken)));
        assert!(check_bind(public, Some("a-long-enough-token")).is_ok());
    }
}

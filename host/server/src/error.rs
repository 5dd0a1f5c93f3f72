//! JSON errors with the status a client can act on.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use weft_store::StoreError;

/// An error answered as `{"error_code", "message"}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(code = self.code, "{}", self.message);
        }
        let body = serde_json::json!({ "error_code": self.code, "message": self.message });
        (self.status, Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { .. } => Self::not_found("RESOURCE_DOES_NOT_EXIST", e.to_string()),
            // The request is fine; the data holds several matches.
            StoreError::Ambiguous { .. } => Self::new(StatusCode::CONFLICT, "AMBIGUOUS", e.to_string()),
            StoreError::AlreadyExists(m) => Self::new(StatusCode::BAD_REQUEST, "RESOURCE_ALREADY_EXISTS", m),
            StoreError::Invalid(m) => Self::invalid(m),
            StoreError::InvalidState(m) => Self::new(StatusCode::BAD_REQUEST, "INVALID_STATE", m),
            // What the reference answers when a rename collides.
            StoreError::Conflict(m) => Self::new(StatusCode::BAD_REQUEST, "BAD_REQUEST", m),
            // The database's own text stays in the server's log.
            other => {
                tracing::error!("{other}");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "INTERNAL_ERROR",
                    "the server failed to answer; its log has the details",
                )
            }
        }
    }
}

impl From<weft_artifacts::ArtifactError> for ApiError {
    fn from(e: weft_artifacts::ArtifactError) -> Self {
        use weft_artifacts::ArtifactError as A;
        match e {
            A::Missing(_) => Self::not_found("RESOURCE_DOES_NOT_EXIST", e.to_string()),
            A::BadDigest(_) => Self::invalid(e.to_string()),
            other => Self::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR", other.to_string()),
        }
    }
}

/// Rejections of axum's extractors (a bad query string, malformed JSON)
/// become 400s in the same JSON shape.
impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(e: axum::extract::rejection::QueryRejection) -> Self {
        Self::invalid(e.body_text())
    }
}

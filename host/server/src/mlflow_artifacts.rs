//! The MLflow artifact proxy (`/api/2.0/mlflow-artifacts/artifacts`): run
//! files uploaded by clients, stored in weft's content-addressed artifact
//! store and indexed by path.

use std::collections::HashMap;
use std::io::Write;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::StreamExt;
use serde_json::{json, Value};

use crate::mlflow::store_error;
use crate::{ApiError, AppState};

/// Largest artifact accepted in one upload.
pub const MAX_ARTIFACT_BYTES: u64 = 4 << 30;
const MAX_PATH_LEN: usize = 1024;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/artifacts", get(list))
        .route("/artifacts/{*path}", get(download).put(upload).delete(remove))
}

/// A relative path with no empty, `.` or `..` part, no backslash or NUL.
pub(crate) fn validate_path(path: &str) -> Result<&str, ApiError> {
    let trimmed = path.trim_end_matches('/');
    let ok = trimmed.len() <= MAX_PATH_LEN
        && !trimmed.starts_with('/')
        && !trimmed.contains('\\')
        && !trimmed.contains('\0')
        && (trimmed.is_empty() || trimmed.split('/').all(|p| !p.is_empty() && p != "." && p != ".."));
    if ok {
        Ok(trimmed)
    } else {
        Err(ApiError::invalid(format!(
            "invalid artifact path '{path}': it must be relative, without '..', '.' or empty parts"
        )))
    }
}

async fn upload(State(s): State<AppState>, Path(path): Path<String>, body: Body) -> Result<Json<Value>, ApiError> {
    let path = validate_path(&path)?.to_string();
    if path.is_empty() {
        return Err(ApiError::invalid("an artifact needs a file name"));
    }
    let internal = |e: std::io::Error| {
        ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_ERROR",
            format!("storing the upload: {e}"),
        )
    };
    let mut file = tempfile::NamedTempFile::new().map_err(internal)?;
    let mut stream = body.into_data_stream();
    let mut size = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::invalid(format!("reading the upload: {e}")))?;
        size += chunk.len() as u64;
        if size > MAX_ARTIFACT_BYTES {
            return Err(ApiError::new(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                "INVALID_PARAMETER_VALUE",
                format!("an artifact may be at most {MAX_ARTIFACT_BYTES} bytes"),
            ));
        }
        file.write_all(&chunk).map_err(internal)?;
    }
    file.flush().map_err(internal)?;
    let stored = s.artifacts.ingest(file.path(), MAX_ARTIFACT_BYTES).await?;
    s.store
        .put_run_artifact(&path, &stored.digest, stored.size as i64)
        .await
        .map_err(store_error)?;
    Ok(Json(json!({})))
}

async fn download(State(s): State<AppState>, Path(path): Path<String>) -> Result<Response, ApiError> {
    let path = validate_path(&path)?;
    let (digest, _) = s.store.run_artifact(path).await.map_err(store_error)?;
    // Streamed: the server holds a chunk at a time, whatever the size.
    let (size, stream) = s.artifacts.get_stream(&digest).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, size.to_string()),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

async fn remove(State(s): State<AppState>, Path(path): Path<String>) -> Result<Json<Value>, ApiError> {
    let path = validate_path(&path)?;
    if s.store.delete_run_artifacts(path).await.map_err(store_error)? == 0 {
        return Err(ApiError::not_found(
            "RESOURCE_DOES_NOT_EXIST",
            format!("no artifact at '{path}'"),
        ));
    }
    Ok(Json(json!({})))
}

async fn list(State(s): State<AppState>, Query(q): Query<HashMap<String, String>>) -> Result<Json<Value>, ApiError> {
    let dir = validate_path(q.get("path").map(String::as_str).unwrap_or(""))?;
    let entries = s.store.list_run_artifacts(dir).await.map_err(store_error)?;
    let files: Vec<Value> = entries
        .into_iter()
        .map(|e| match e.size {
            Some(size) => json!({ "path": e.name, "is_dir": e.is_dir, "file_size": size }),
            None => json!({ "path": e.name, "is_dir": e.is_dir }),
        })
        .collect();
    Ok(Json(json!({ "files": files })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_cannot_escape() {
        for bad in ["../x", "a/../../b", "/etc/passwd", "a//b", "a\\b", "./a"] {
            assert!(validate_path(bad).is_err(), "{bad}");
        }
        assert_eq!(
            validate_path("1/run/artifacts/model/").unwrap(),
            "1/run/artifacts/model"
        );
        assert_eq!(validate_path("").unwrap(), "");
    }
}

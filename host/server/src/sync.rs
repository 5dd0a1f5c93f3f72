//! Receiving runs from `weft run --server URL`: content-addressed blobs and
//! directory listings first (each checked against its digest), then the
//! run as one document, imported in one transaction. Under `/api/v1/sync`;
//! `POST /api/v1/sync/access` tells a client whether it may write.

use std::io::Write;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{post, put};
use axum::{Json, Router};
use futures::StreamExt;
use serde_json::{json, Value};
use weft_artifacts::{ArtifactKind, Tree};
use weft_store::{RunExport, StoreError};

use crate::{ApiError, AppState};

/// Largest blob accepted.
const MAX_BLOB_BYTES: u64 = 4 << 30;
/// Largest run document or tree listing accepted.
pub(crate) const MAX_DOCUMENT_BYTES: usize = 256 << 20;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/blobs/{digest}", put(put_blob).head(has_blob))
        .route("/trees/{digest}", put(put_tree).head(has_tree))
        .route("/runs", post(import_run))
        .route("/access", post(access))
}

/// Answers a write that carries nothing, so a client learns whether its
/// token lets it write before it streams any bytes (a refusal sent while
/// a large upload is still going reaches the client as a broken pipe).
async fn access() -> Json<Value> {
    Json(json!({ "writes": true }))
}

fn digest(text: &str) -> Result<&str, ApiError> {
    weft_artifacts::validate_digest(text)?;
    Ok(text)
}

async fn has(s: &AppState, digest_text: &str, kind: ArtifactKind) -> Result<StatusCode, ApiError> {
    let digest = digest(digest_text)?;
    Ok(if s.artifacts.contains(digest, kind).await? {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    })
}

async fn has_blob(State(s): State<AppState>, Path(d): Path<String>) -> Result<StatusCode, ApiError> {
    has(&s, &d, ArtifactKind::File).await
}

async fn has_tree(State(s): State<AppState>, Path(d): Path<String>) -> Result<StatusCode, ApiError> {
    has(&s, &d, ArtifactKind::Dir).await
}

fn mismatch(claimed: &str, actual: &str) -> ApiError {
    ApiError::invalid(format!(
        "the uploaded bytes hash to {actual}, not {claimed}: nothing was stored under {claimed}"
    ))
}

async fn put_blob(State(s): State<AppState>, Path(d): Path<String>, body: Body) -> Result<Json<Value>, ApiError> {
    let claimed = digest(&d)?.to_string();
    let internal = |e: std::io::Error| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_ERROR",
            format!("storing the upload: {e}"),
        )
    };
    let mut file = tempfile::NamedTempFile::new().map_err(internal)?;
    let mut stream = body.into_data_stream();
    let mut size = 0u64;
    // Hashed as it arrives: bytes that do not match their name never enter
    // the store.
    let mut hasher = blake3::Hasher::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::invalid(format!("reading the upload: {e}")))?;
        size += chunk.len() as u64;
        if size > MAX_BLOB_BYTES {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "INVALID_PARAMETER_VALUE",
                format!("a blob may be at most {MAX_BLOB_BYTES} bytes"),
            ));
        }
        hasher.update(&chunk);
        file.write_all(&chunk).map_err(internal)?;
    }
    file.flush().map_err(internal)?;
    let actual = hasher.finalize().to_hex().to_string();
    if actual != claimed {
        return Err(mismatch(&claimed, &actual));
    }
    s.artifacts.ingest(file.path(), MAX_BLOB_BYTES).await?;
    Ok(Json(json!({ "digest": claimed, "size": size })))
}

async fn put_tree(State(s): State<AppState>, Path(d): Path<String>, bytes: Bytes) -> Result<Json<Value>, ApiError> {
    let claimed = digest(&d)?.to_string();
    let tree = Tree::parse(&bytes).map_err(|e| ApiError::invalid(format!("not a directory listing: {e}")))?;
    let actual = blake3::hash(&tree.canonical_bytes()).to_hex().to_string();
    if actual != claimed {
        return Err(mismatch(&claimed, &actual));
    }
    match s.artifacts.put_tree(&tree).await {
        Ok(stored) => Ok(Json(json!({ "digest": stored.digest, "size": stored.size }))),
        Err(weft_artifacts::ArtifactError::Missing(blob)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "MISSING_BLOBS",
            format!("upload blob {blob} before the listing that names it"),
        )),
        Err(e) => Err(e.into()),
    }
}

async fn import_run(State(s): State<AppState>, bytes: Bytes) -> Result<Json<Value>, ApiError> {
    let export: RunExport = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "MALFORMED_REQUEST",
            format!("not a run document: {e}"),
        )
    })?;
    // Every artifact's bytes must be here before the run that names them.
    for a in &export.artifacts {
        let kind = ArtifactKind::parse(&a.kind)
            .ok_or_else(|| ApiError::invalid(format!("artifact {} has kind '{}': use file or dir", a.id, a.kind)))?;
        if !s.artifacts.contains(digest(&a.digest)?, kind).await? {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "MISSING_BLOBS",
                format!("upload the bytes of artifact {} ({}) before its run", a.name, a.digest),
            ));
        }
    }
    match s.store.import_run(&export).await {
        Ok(number) => Ok(Json(json!({ "run_id": export.run.id, "number": number }))),
        Err(StoreError::MissingRuns(runs)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "MISSING_RUNS",
            format!("send these runs first: {}", runs.join(" ")),
        )),
        Err(StoreError::Invalid(m)) => Err(ApiError::invalid(m)),
        Err(e) => Err(e.into()),
    }
}

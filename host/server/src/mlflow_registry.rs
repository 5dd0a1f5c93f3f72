//! The MLflow model registry API: registered models, versions, tags and
//! aliases.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use weft_store::{ModelVersion, RegisteredModel};

use crate::mlflow::{
    body, matches_filter, next_token, opt_i64, opt_str, page_token, req_str, store_error, tags, validate_key,
    MAX_TAG_VALUE,
};
use crate::{ApiError, AppState};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/registered-models/create", post(create_model))
        .route("/registered-models/get", get(get_model))
        .route("/registered-models/search", get(search_models))
        .route("/registered-models/update", axum::routing::patch(update_model))
        .route("/registered-models/delete", axum::routing::delete(delete_model))
        .route("/registered-models/rename", post(rename_model))
        .route("/registered-models/set-tag", post(set_model_tag))
        .route("/registered-models/delete-tag", axum::routing::delete(delete_model_tag))
        .route(
            "/registered-models/alias",
            post(set_alias).get(get_alias).delete(delete_alias),
        )
        .route(
            "/registered-models/get-latest-versions",
            post(latest_versions).get(latest_versions_get),
        )
        .route("/model-versions/create", post(create_version))
        .route("/model-versions/get", get(get_version))
        .route("/model-versions/search", get(search_versions))
        .route("/model-versions/update", axum::routing::patch(update_version))
        .route("/model-versions/delete", axum::routing::delete(delete_version))
        .route("/model-versions/set-tag", post(set_version_tag))
        .route("/model-versions/delete-tag", axum::routing::delete(delete_version_tag))
        .route("/model-versions/get-download-uri", get(download_uri))
}

fn model_name(m: &Map<String, Value>, key: &str) -> Result<String, ApiError> {
    let name = req_str(m, key)?;
    weft_store::validate_model_name(name).map_err(ApiError::invalid)?;
    Ok(name.to_string())
}

fn version(m: &Map<String, Value>) -> Result<i64, ApiError> {
    opt_i64(m, "version")?
        .filter(|v| *v > 0)
        .ok_or_else(|| ApiError::invalid("'version' must be a positive integer"))
}

fn alias(m: &Map<String, Value>) -> Result<String, ApiError> {
    let alias = req_str(m, "alias")?;
    weft_store::validate_alias(alias).map_err(ApiError::invalid)?;
    Ok(alias.to_string())
}

fn query_map(q: HashMap<String, String>) -> Map<String, Value> {
    q.into_iter().map(|(k, v)| (k, Value::String(v))).collect()
}

fn pairs(p: &[(String, String)]) -> Vec<Value> {
    p.iter().map(|(k, v)| json!({"key": k, "value": v})).collect()
}

fn version_json(v: &ModelVersion) -> Value {
    json!({
        "name": v.name,
        "version": v.version.to_string(),
        "creation_timestamp": v.creation_timestamp,
        "last_updated_timestamp": v.last_updated_timestamp,
        "current_stage": v.current_stage,
        "description": v.description,
        "source": v.source,
        "run_id": v.run_id.clone().unwrap_or_default(),
        "status": "READY",
        "tags": pairs(&v.tags),
        "aliases": v.aliases,
    })
}

fn model_json(m: &RegisteredModel) -> Value {
    json!({
        "name": m.name,
        "creation_timestamp": m.creation_timestamp,
        "last_updated_timestamp": m.last_updated_timestamp,
        "description": m.description,
        "latest_versions": m.latest_versions.iter().map(version_json).collect::<Vec<_>>(),
        "tags": pairs(&m.tags),
        "aliases": m.aliases.iter().map(|(a, v)| json!({"alias": a, "version": v.to_string()})).collect::<Vec<_>>(),
    })
}

async fn create_model(State(s): State<AppState>, bytes: Bytes) -> Result<Json<Value>, ApiError> {
    let m = body(&bytes)?;
    let name = model_name(&m, "name")?;
    let model = s
        .store
        .create_registered_model(&name, opt_str(&m, "description")?.unwrap_or(""), &tags(&m)?)
        .await
        .map_err(store_error)?;
    Ok(Json(json!({ "registered_model": model_json(&model) })))
}

async fn get_model(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let m = query_map(q);
    let model = s
        .store
        .registered_model(&model_name(&m, "name")?)
        .await
        .map_err(store_error)?;
    Ok(Json(json!({ "registered_model": model_json(&model) })))
}

async fn search_models(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let m = query_map(q);
    let limit = opt_i64(&m, "max_results")?.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid(format!("max_results must be 1 to 1000, got {limit}")));
    }
    let offset = page_token(opt_str(&m, "page_token")?)?;
    // Filter on names and tags, then load only the page: the work is
    // linear in the models, and full models are read for at most a page.
    let mut index = s.store.registered_model_index().await.map_err(store_error)?;
    if let Some(filter) = opt_str(&m, "filter")?.filter(|f| !f.trim().is_empty()) {
        let clauses = crate::mlflow::object_filter(filter)?;
        let mut kept = Vec::with_capacity(index.len());
        for (name, tags) in index {
            if matches_filter(&clauses, &name, &tags)? {
                kept.push((name, tags));
            }
        }
        index = kept;
    }
    let mut page: Vec<Value> = Vec::new();
    for (name, _) in index.iter().skip(offset as usize).take(limit as usize) {
        match s.store.registered_model(name).await {
            Ok(model) => page.push(model_json(&model)),
            // Deleted since the index was read.
            Err(weft_store::StoreError::NotFound { .. }) => {}
            Err(e) => return Err(store_error(e)),
        }
    }
    let next = next_token(page.len(), limit, offset);
    Ok(Json(json!({ "registered_models": page, "next_page_token": next })))
}

async fn update_model(State(s): State<AppState>, bytes: Bytes) -> Result<Json<Value>, ApiError> {
    let m = body(&bytes)?;
    let model = s
        .store
        .update_registered_model(&model_name(&m, "name")?, opt_str(&m, "description")?.unwrap_or(""))
        .await
        .map_err(store_error)?;
    Ok(Json(json!({ "registered_model": model_json(&model) })))
}

async fn delete_model(State(s): State<AppState>, bytes: Bytes) -> Result<Json<Value>, ApiError> {
    let m = body(&bytes)?;
    s.store
        .delete_registered_model(&model_name(&m, "name")?)
        .await
        .map_err(store_error)?;
    Ok(Json(json!({})))
}

async fn rename_model(State(s): State<AppState>, bytes: Bytes) -> Result<Json<Value>, ApiError> {
    let m = body(&bytes)?;
    let model = s
        .store
        .rename_registered_model(&model_name(&m, "name")?, &model_name(&m, "new_name")?)
        .await
        .map_err(store_error)?;
    Ok(Json(json!({ "registered_model": model_json(&model) })))
}

fn tag_pair(m: &Map<String, Value>) -> Result<(String, String), ApiError> {
    crate::mlflow::parse_pair("tag", m, MAX_TAG_VALUE)
}

async fn set_model_tag(State(s): State<AppState>, bytes: Bytes) -> Result<Json<Value>, ApiError> {
    let m = body(&bytes)?;
    let (key, value) = tag_pair(&m)?;
    s.store
        .registered_model_tag(&model_name(&m, "name")?, &key, Some(&value))
        .await
        .map_err(store_error)?;
    Ok(Json(json!({})))
}

async fn delete_model_tag(State(s): State<AppState>, bytes: Bytes) -> Result<Json<Value>, ApiError> {
    let m = body(&bytes)?;
    let key = req_str(&m, "key")?;
    validate_key("tag", key)?;
    s.store
        .registered_model_tag(&model_name(&m, "name")?, key, None)
        .await
        .map_err(store_error)?;
    Ok(Json(json!({})))
}

async fn set_alias(State(s): State<AppState>, bytes: Bytes) -> Result<Json<Value>, ApiError> {
    let m = body(&bytes)?;
    s.store
        .set_model_alias(&model_name(&m, "name")?, &alias(&m)?, version(&m)?)
        .await
        .map_err(store_error)?;
    Ok(Json(json!({})))
}

async fn get_alias(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let m = query_map(q);
    let v = s
        .store
        .model_version_by_alias(&model_name(&m, "name")?, &alias(&m)?)
        .await
        .map_err(store_error)?;
    Ok(Json(json!({ "model_version": version_json(&v) })))
}

async fn delete_alias(State(s): State<AppState>, bytes: Bytes) -> Result<Json<Value>, ApiError> {
    let m = body(&bytes)?;
    s.store
        .delete_model_alias(&model_name(&m, "name")?, &alias(&m)?)
        .await
        .map_err(store_error)?;
    Ok(Json(json!({})))
}

async fn latest_versions(State(s): State<AppState>, bytes: Bytes) -> Result<Json<Value>, ApiError> {
    let m = body(&bytes)?;
    let model = s
        .store
        .registered_model(&model_name(&m, "name")?)
        .await
        .map_err(store_error)?;
    Ok(Json(
        json!({ "model_versions": model.latest_versions.iter().map(version_json).collect::<Vec<_>>() }),
    ))
}

async fn latest_versions_get(
    state: State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    latest_versions(
        state,
        Bytes::from(serde_json::to_vec(&query_map(q)).unwrap_or_default()),
    )
    .await
}

async fn create_version(State(s): State<AppState>, bytes: Bytes) -> Result<Json<Value>, ApiError> {
    let m = body(&bytes)?;
    let name = model_name(&m, "name")?;
    let mut source = req_str(&m, "source")?.to_string();
    let run_id = opt_str(&m, "run_id")?.filter(|r| !r.is_empty());
    // `runs:/<run>/<path>` names a run's artifact: store where it really is.
    if let Some(rest) = source.strip_prefix("runs:/") {
        let (run, path) = rest.split_once('/').unwrap_or((rest, ""));
        let info = s.store.run_info(run).await.map_err(store_error)?;
        source = format!("{}/{}", info.artifact_uri.trim_end_matches('/'), path);
    }
    if let Some(run) = run_id {
        s.store.run_info(run).await.map_err(store_error)?;
    }
    let v = s
        .store
        .create_model_version(
            &name,
            &source,
            run_id,
            opt_str(&m, "description")?.unwrap_or(""),
            &tags(&m)?,
        )
        .await
        .map_err(store_error)?;
    Ok(Json(json!({ "model_version": version_json(&v) })))
}

async fn get_version(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let m = query_map(q);
    let v = s
        .store
        .model_version(&model_name(&m, "name")?, version(&m)?)
        .await
        .map_err(store_error)?;
    Ok(Json(json!({ "model_version": version_json(&v) })))
}

/// `name = 'x'` and/or `run_id = 'y'`, joined by AND.
fn version_filter(filter: &str) -> Result<(Option<String>, Option<String>), ApiError> {
    let (mut name, mut run) = (None, None);
    let lower = filter.to_ascii_lowercase();
    let mut parts = Vec::new();
    let mut start = 0;
    for (i, _) in lower.match_indices(" and ") {
        parts.push(&filter[start..i]);
        start = i + 5;
    }
    parts.push(&filter[start..]);
    for part in parts {
        let (key, value) = part
            .split_once('=')
            .ok_or_else(|| ApiError::invalid(format!("unsupported model version filter '{filter}'")))?;
        let value = value.trim();
        let value = value
            .strip_prefix('\'')
            .and_then(|v| v.strip_suffix('\''))
            .ok_or_else(|| ApiError::invalid(format!("quote the value in '{part}'")))?
            .to_string();
        match key.trim() {
            "name" => name = Some(value),
            "run_id" => run = Some(value),
            other => {
                return Err(ApiError::invalid(format!(
                    "model versions can be filtered by name or run_id, not '{other}'"
                )))
            }
        }
    }
    Ok((name, run))
}

async fn search_versions(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let m = query_map(q);
    let limit = opt_i64(&m, "max_results")?.unwrap_or(1000);
    if !(1..=200_000).contains(&limit) {
        return Err(ApiError::invalid(format!(
            "max_results must be 1 to 200000, got {limit}"
        )));
    }
    let offset = page_token(opt_str(&m, "page_token")?)?;
    let (name, run) = match opt_str(&m, "filter")?.filter(|f| !f.trim().is_empty()) {
        Some(f) => version_filter(f)?,
        None => (None, None),
    };
    let versions = s
        .store
        .model_versions(name.as_deref(), run.as_deref(), limit, offset)
        .await
        .map_err(store_error)?;
    let next = next_token(versions.len(), limit, offset);
    Ok(Json(
        json!({ "model_versions": versions.iter().map(version_json).collect::<Vec<_>>(), "next_page_token": next }),
    ))
}

async fn update_version(State(s): State<AppState>, bytes: Bytes) -> Result<Json<Value>, ApiError> {
    let m = body(&bytes)?;
    let v = s
        .store
        .update_model_version(
            &model_name(&m, "name")?,
            version(&m)?,
            opt_str(&m, "description")?.unwrap_or(""),
        )
        .await
        .map_err(store_error)?;
    Ok(Json(json!({ "model_version": version_json(&v) })))
}

async fn delete_version(State(s): State<AppState>, bytes: Bytes) -> Result<Json<Value>, ApiError> {
    let m = body(&bytes)?;
    s.store
        .delete_model_version(&model_name(&m, "name")?, version(&m)?)
        .await
        .map_err(store_error)?;
    Ok(Json(json!({})))
}

async fn set_version_tag(State(s): State<AppState>, bytes: Bytes) -> Result<Json<Value>, ApiError> {
    let m = body(&bytes)?;
    let (key, value) = tag_pair(&m)?;
    s.store
        .model_version_tag(&model_name(&m, "name")?, version(&m)?, &key, Some(&value))
        .await
        .map_err(store_error)?;
    Ok(Json(json!({})))
}

async fn delete_version_tag(State(s): State<AppState>, bytes: Bytes) -> Result<Json<Value>, ApiError> {
    let m = body(&bytes)?;
    let key = req_str(&m, "key")?;
    s.store
        .model_version_tag(&model_name(&m, "name")?, version(&m)?, key, None)
        .await
        .map_err(store_error)?;
    Ok(Json(json!({})))
}

async fn download_uri(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let m = query_map(q);
    let v = s
        .store
        .model_version(&model_name(&m, "name")?, version(&m)?)
        .await
        .map_err(store_error)?;
    Ok(Json(json!({ "artifact_uri": v.source })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_and_filters() {
        let m = |a: &str| json!({ "alias": a }).as_object().unwrap().clone();
        assert!(alias(&m("champion")).is_ok());
        for bad in ["latest", "v3", "has space", "a/b", ""] {
            assert!(alias(&m(bad)).is_err(), "{bad}");
        }
        assert_eq!(
            version_filter("name = 'iris' and run_id = 'r1'").unwrap(),
            (Some("iris".into()), Some("r1".into()))
        );
        assert!(version_filter("source = 'x'").is_err());
    }
}

//! The MLflow model registry API: registered models, versions, tags and
//! aliases.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use weft_store::{ModelVersion, RegisteredModel};

use crate::mlflow::{page_token, store_error, validate_key, MAX_TAG_VALUE};
use crate::requests::{
    from_query, page_size, typed, CreateModel, CreateVersion, Int64, KeyValueIn, LatestVersions, ModelAlias, ModelRef,
    RegistryTag, SearchRegistry, TransitionStage, VersionRef,
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
        .route("/model-versions/transition-stage", post(transition_stage))
}

fn required<'a>(value: &'a Option<String>, key: &str) -> Result<&'a str, ApiError> {
    value
        .as_deref()
        .ok_or_else(|| ApiError::invalid(format!("missing value for required parameter '{key}'")))
}

/// A model name field (`name`, `new_name`), checked.
fn model_name(value: &Option<String>, key: &str) -> Result<String, ApiError> {
    let name = required(value, key)?;
    weft_store::validate_model_name(name).map_err(ApiError::invalid)?;
    Ok(name.to_string())
}

fn version(value: &Option<Int64>) -> Result<i64, ApiError> {
    value
        .as_ref()
        .and_then(|v| v.get("version").ok())
        .filter(|v| *v > 0)
        .ok_or_else(|| ApiError::invalid("'version' must be a positive integer"))
}

fn alias(value: &Option<String>) -> Result<String, ApiError> {
    let alias = required(value, "alias")?;
    weft_store::validate_alias(alias).map_err(ApiError::invalid)?;
    Ok(alias.to_string())
}

/// Tags of a model or version being created.
fn new_tags(tags: &[KeyValueIn]) -> Result<Vec<(String, String)>, ApiError> {
    tags.iter().map(tag_pair).collect()
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
        // As the reference sends them: without their aliases.
        "latest_versions": m.latest_versions.iter().map(|v| {
            let mut v = version_json(v);
            if let Some(o) = v.as_object_mut() {
                o.remove("aliases");
            }
            v
        }).collect::<Vec<_>>(),
        "tags": pairs(&m.tags),
        "aliases": m.aliases.iter().map(|(a, v)| json!({"alias": a, "version": v.to_string()})).collect::<Vec<_>>(),
    })
}

async fn create_model(State(s): State<AppState>, bytes: Bytes) -> Result<Json<Value>, ApiError> {
    let r: CreateModel = typed(&bytes)?;
    let name = model_name(&r.name, "name")?;
    let model = s
        .store
        .create_registered_model(&name, r.description.as_deref().unwrap_or(""), &new_tags(&r.tags)?)
        .await
        .map_err(store_error)?;
    Ok(Json(json!({ "registered_model": model_json(&model) })))
}

async fn get_model(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let r: ModelRef = from_query(q)?;
    let model = s
        .store
        .registered_model(&model_name(&r.name, "name")?)
        .await
        .map_err(store_error)?;
    Ok(Json(json!({ "registered_model": model_json(&model) })))
}

async fn search_models(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let r: SearchRegistry = from_query(q)?;
    let limit = page_size(&r.max_results, 100, 1000)?;
    let offset = page_token(r.page_token.as_deref())?;
    let clauses = filter_clauses(&r)?;
    let order = order_by(r)?;
    // One more than a page: a next page token only when something follows.
    let mut models = s
        .store
        .search_registered_models(&clauses, &order, limit + 1, offset)
        .await
        .map_err(store_error)?;
    let next = (models.len() as i64 > limit).then(|| (offset + limit).to_string());
    models.truncate(limit as usize);
    Ok(Json(json!({
        "registered_models": models.iter().map(model_json).collect::<Vec<_>>(),
        "next_page_token": next,
    })))
}

/// The `filter` of a search, parsed (empty: none).
fn filter_clauses(r: &SearchRegistry) -> Result<Vec<weft_store::search::Clause>, ApiError> {
    match r.filter.as_deref().filter(|f| !f.trim().is_empty()) {
        Some(filter) => crate::mlflow::object_filter(filter),
        None => Ok(Vec::new()),
    }
}

/// The `order_by` of a search, parsed.
fn order_by(r: SearchRegistry) -> Result<Vec<weft_store::search::OrderBy>, ApiError> {
    weft_store::search::parse_order_by(&r.order_by.into_vec())
        .map_err(|e| ApiError::invalid(format!("invalid order_by: {e}")))
}

async fn update_model(State(s): State<AppState>, bytes: Bytes) -> Result<Json<Value>, ApiError> {
    let r: ModelRef = typed(&bytes)?;
    let model = s
        .store
        .update_registered_model(&model_name(&r.name, "name")?, r.description.as_deref().unwrap_or(""))
        .await
        .map_err(store_error)?;
    Ok(Json(json!({ "registered_model": model_json(&model) })))
}

async fn delete_model(State(s): State<AppState>, bytes: Bytes) -> Result<Json<Value>, ApiError> {
    let r: ModelRef = typed(&bytes)?;
    s.store
        .delete_registered_model(&model_name(&r.name, "name")?)
        .await
        .map_err(store_error)?;
    Ok(Json(json!({})))
}

async fn rename_model(State(s): State<AppState>, bytes: Bytes) -> Result<Json<Value>, ApiError> {
    let r: ModelRef = typed(&bytes)?;
    let model = s
        .store
        .rename_registered_model(&model_name(&r.name, "name")?, &model_name(&r.new_name, "new_name")?)
        .await
        .map_err(store_error)?;
    Ok(Json(json!({ "registered_model": model_json(&model) })))
}

fn tag_pair(tag: &KeyValueIn) -> Result<(String, String), ApiError> {
    crate::mlflow::key_value("tag", tag, MAX_TAG_VALUE)
}

async fn set_model_tag(State(s): State<AppState>, bytes: Bytes) -> Result<Json<Value>, ApiError> {
    let r: RegistryTag = typed(&bytes)?;
    let (key, value) = tag_pair(&r.tag)?;
    s.store
        .registered_model_tag(&model_name(&r.name, "name")?, &key, Some(&value))
        .await
        .map_err(store_error)?;
    Ok(Json(json!({})))
}

async fn delete_model_tag(State(s): State<AppState>, bytes: Bytes) -> Result<Json<Value>, ApiError> {
    let r: RegistryTag = typed(&bytes)?;
    let key = required(&r.tag.key, "key")?;
    validate_key("tag", key)?;
    s.store
        .registered_model_tag(&model_name(&r.name, "name")?, key, None)
        .await
        .map_err(store_error)?;
    Ok(Json(json!({})))
}

async fn set_alias(State(s): State<AppState>, bytes: Bytes) -> Result<Json<Value>, ApiError> {
    let r: ModelAlias = typed(&bytes)?;
    s.store
        .set_model_alias(&model_name(&r.name, "name")?, &alias(&r.alias)?, version(&r.version)?)
        .await
        .map_err(store_error)?;
    Ok(Json(json!({})))
}

async fn get_alias(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let r: ModelAlias = from_query(q)?;
    let v = s
        .store
        .model_version_by_alias(&model_name(&r.name, "name")?, &alias(&r.alias)?)
        .await
        .map_err(|e| match e {
            // The reference's code for an alias no version carries.
            weft_store::StoreError::NotFound { what: "alias", .. } => ApiError::invalid(e.to_string()),
            other => store_error(other),
        })?;
    Ok(Json(json!({ "model_version": version_json(&v) })))
}

async fn delete_alias(State(s): State<AppState>, bytes: Bytes) -> Result<Json<Value>, ApiError> {
    let r: ModelAlias = typed(&bytes)?;
    s.store
        .delete_model_alias(&model_name(&r.name, "name")?, &alias(&r.alias)?)
        .await
        .map_err(store_error)?;
    Ok(Json(json!({})))
}

async fn latest_versions(State(s): State<AppState>, bytes: Bytes) -> Result<Json<Value>, ApiError> {
    latest(s, typed(&bytes)?).await
}

async fn latest(s: AppState, r: LatestVersions) -> Result<Json<Value>, ApiError> {
    let name = model_name(&r.name, "name")?;
    s.store.registered_model(&name).await.map_err(store_error)?;
    let versions = s
        .store
        .latest_model_versions(&name, &r.stages.into_vec())
        .await
        .map_err(store_error)?;
    Ok(Json(
        json!({ "model_versions": versions.iter().map(version_json).collect::<Vec<_>>() }),
    ))
}

async fn latest_versions_get(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    latest(s, from_query(q)?).await
}

async fn create_version(State(s): State<AppState>, bytes: Bytes) -> Result<Json<Value>, ApiError> {
    let r: CreateVersion = typed(&bytes)?;
    let name = model_name(&r.name, "name")?;
    // Kept exactly as given (`runs:/…` stays `runs:/…`): the client
    // resolves it, as with the reference server.
    let source = required(&r.source, "source")?.to_string();
    let run_id = r.run_id.as_deref().filter(|r| !r.is_empty());
    s.store.registered_model(&name).await.map_err(store_error)?;
    validate_source(&s, &source, run_id).await?;
    if let Some(run) = run_id {
        s.store.run_info(run).await.map_err(store_error)?;
    }
    let v = s
        .store
        .create_model_version(
            &name,
            &source,
            run_id,
            r.description.as_deref().unwrap_or(""),
            &new_tags(&r.tags)?,
        )
        .await
        .map_err(store_error)?;
    Ok(Json(json!({ "model_version": version_json(&v) })))
}

async fn get_version(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let r: VersionRef = from_query(q)?;
    let v = s
        .store
        .model_version(&model_name(&r.name, "name")?, version(&r.version)?)
        .await
        .map_err(store_error)?;
    Ok(Json(json!({ "model_version": version_json(&v) })))
}

async fn search_versions(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let r: SearchRegistry = from_query(q)?;
    let limit = page_size(&r.max_results, 1000, 200_000)?;
    let offset = page_token(r.page_token.as_deref())?;
    let clauses = filter_clauses(&r)?;
    let order = order_by(r)?;
    let mut versions = s
        .store
        .search_model_versions(&clauses, &order, limit + 1, offset)
        .await
        .map_err(store_error)?;
    let next = (versions.len() as i64 > limit).then(|| (offset + limit).to_string());
    versions.truncate(limit as usize);
    Ok(Json(
        json!({ "model_versions": versions.iter().map(version_json).collect::<Vec<_>>(), "next_page_token": next }),
    ))
}

/// Moves a version to a stage (MLflow's stages, in any case), archiving
/// the others in that stage when asked.
async fn transition_stage(State(s): State<AppState>, bytes: Bytes) -> Result<Json<Value>, ApiError> {
    let r: TransitionStage = typed(&bytes)?;
    let given = required(&r.stage, "stage")?;
    let stage = STAGES.iter().find(|s| s.eq_ignore_ascii_case(given)).ok_or_else(|| {
        ApiError::invalid(format!(
            "invalid model version stage '{given}': one of {}",
            STAGES.join(", ")
        ))
    })?;
    let archive = match &r.archive_existing_versions {
        None => false,
        Some(b) => b.get("archive_existing_versions")?,
    };
    if archive && !matches!(*stage, "Staging" | "Production") {
        return Err(ApiError::invalid(format!(
            "archive_existing_versions is only valid for the Staging and Production stages, not {stage}"
        )));
    }
    let v = s
        .store
        .transition_model_version_stage(&model_name(&r.name, "name")?, version(&r.version)?, stage, archive)
        .await
        .map_err(store_error)?;
    Ok(Json(json!({ "model_version": version_json(&v) })))
}

/// MLflow's model version stages.
const STAGES: [&str; 4] = ["None", "Staging", "Production", "Archived"];

/// Where a model version's files may come from, as the reference checks
/// it: no `..` or NUL (also percent-encoded), no local paths, a `runs:/`
/// URI only of the given run, an `mlflow-artifacts:` URI only inside the
/// given run's artifacts.
async fn validate_source(s: &AppState, source: &str, run_id: Option<&str>) -> Result<(), ApiError> {
    let refuse = |why: &str| ApiError::invalid(format!("invalid model version source '{source}': {why}"));
    let mut decoded = source.to_string();
    for _ in 0..8 {
        let next = percent_decode(&decoded);
        if next == decoded {
            break;
        }
        decoded = next;
    }
    if decoded.contains('\0') || decoded.split('/').any(|p| p == ".." || p == ".") {
        return Err(refuse("relative path parts are not allowed"));
    }
    let scheme = decoded.split_once(':').map(|(s, _)| s).filter(|s| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    });
    match scheme {
        None | Some("file") => Err(refuse("a local path cannot be a model source here")),
        Some("runs") => {
            let rest = decoded.trim_start_matches("runs:");
            if rest.starts_with("//") {
                return Err(refuse("a runs: URI has no host"));
            }
            let source_run = rest.trim_start_matches('/').split('/').next().unwrap_or("");
            match run_id {
                Some(run) if run == source_run => Ok(()),
                _ => Err(refuse("a runs:/ source must name the run given as run_id")),
            }
        }
        Some("mlflow-artifacts") => {
            let Some(run) = run_id else {
                return Err(refuse("an mlflow-artifacts source needs the run_id it belongs to"));
            };
            let info = s.store.run_info(run).await.map_err(store_error)?;
            let root = info.artifact_uri.trim_end_matches('/');
            if decoded == root || decoded.starts_with(&format!("{root}/")) {
                Ok(())
            } else {
                Err(refuse("it is not inside the artifacts of the run given as run_id"))
            }
        }
        Some(_) => Ok(()),
    }
}

/// `%xx` escapes and `+` decoded, as a URL's query would be.
fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(&text.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

async fn update_version(State(s): State<AppState>, bytes: Bytes) -> Result<Json<Value>, ApiError> {
    let r: VersionRef = typed(&bytes)?;
    let v = s
        .store
        .update_model_version(
            &model_name(&r.name, "name")?,
            version(&r.version)?,
            r.description.as_deref().unwrap_or(""),
        )
        .await
        .map_err(store_error)?;
    Ok(Json(json!({ "model_version": version_json(&v) })))
}

async fn delete_version(State(s): State<AppState>, bytes: Bytes) -> Result<Json<Value>, ApiError> {
    let r: VersionRef = typed(&bytes)?;
    s.store
        .delete_model_version(&model_name(&r.name, "name")?, version(&r.version)?)
        .await
        .map_err(store_error)?;
    Ok(Json(json!({})))
}

async fn set_version_tag(State(s): State<AppState>, bytes: Bytes) -> Result<Json<Value>, ApiError> {
    let r: RegistryTag = typed(&bytes)?;
    let (key, value) = tag_pair(&r.tag)?;
    s.store
        .model_version_tag(&model_name(&r.name, "name")?, version(&r.version)?, &key, Some(&value))
        .await
        .map_err(store_error)?;
    Ok(Json(json!({})))
}

async fn delete_version_tag(State(s): State<AppState>, bytes: Bytes) -> Result<Json<Value>, ApiError> {
    let r: RegistryTag = typed(&bytes)?;
    let key = required(&r.tag.key, "key")?;
    s.store
        .model_version_tag(&model_name(&r.name, "name")?, version(&r.version)?, key, None)
        .await
        .map_err(store_error)?;
    Ok(Json(json!({})))
}

async fn download_uri(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let r: VersionRef = from_query(q)?;
    let v = s
        .store
        .model_version(&model_name(&r.name, "name")?, version(&r.version)?)
        .await
        .map_err(store_error)?;
    Ok(Json(json!({ "artifact_uri": v.source })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_and_filters() {
        let m = |a: &str| Some(a.to_string());
        assert!(alias(&m("champion")).is_ok());
        for bad in ["latest", "v3", "has space", "a/b", ""] {
            assert!(alias(&m(bad)).is_err(), "{bad}");
        }
        assert!(alias(&None).is_err());
    }
}

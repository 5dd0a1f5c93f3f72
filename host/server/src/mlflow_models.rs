//! MLflow 3's logged models (`/logged-models`) and `runs/outputs`: what
//! `mlflow.<flavor>.log_model` and `mlflow.initialize_logged_model` call.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use weft_store::{model_status, LoggedModel, NewLoggedModel};

use crate::mlflow::{key_value, next_token, page_token, store_error, MAX_PARAM_VALUE, MAX_TAG_VALUE};
use crate::requests::{
    experiment_ids, page_size, typed, CreateLoggedModel, FinalizeLoggedModel, KeyValueIn, LoggedModelPairs,
    NameOrNumber, RunOutputs, SearchLoggedModels,
};
use crate::{ApiError, AppState};

/// Most logged models in one search page.
const MAX_MODELS_PAGE: i64 = 1000;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/logged-models", post(create))
        .route("/logged-models/search", post(search))
        .route(
            "/logged-models/{model_id}",
            get(get_model).patch(finalize).delete(remove),
        )
        .route("/logged-models/{model_id}/params", post(log_params))
        .route("/logged-models/{model_id}/tags", axum::routing::patch(set_tags))
        .route("/logged-models/{model_id}/tags/{key}", delete(delete_tag))
        .route("/runs/outputs", post(run_outputs))
}

fn pairs(pairs: &[(String, String)]) -> Vec<Value> {
    pairs.iter().map(|(k, v)| json!({ "key": k, "value": v })).collect()
}

fn model_json(m: &LoggedModel) -> Value {
    json!({
        "info": {
            "model_id": m.model_id,
            "experiment_id": m.experiment_id.to_string(),
            "name": m.name,
            "creation_timestamp_ms": m.creation_timestamp_ms,
            "last_updated_timestamp_ms": m.last_updated_timestamp_ms,
            "artifact_uri": m.artifact_location,
            "status": m.status,
            "status_message": m.status_message,
            "model_type": m.model_type,
            "source_run_id": m.source_run_id,
            "tags": pairs(&m.tags),
            "registrations": [],
        },
        "data": { "params": pairs(&m.params), "metrics": m.metrics.iter().map(|x| {
            let mut metric = json!({
                "key": x.point.key,
                "value": crate::mlflow::metric_value_json(x.point.value),
                "timestamp": x.point.timestamp,
                "step": x.point.step,
                "run_id": x.run_id,
                "model_id": m.model_id,
            });
            if !x.dataset_name.is_empty() {
                metric["dataset_name"] = json!(x.dataset_name);
                metric["dataset_digest"] = json!(x.dataset_digest);
            }
            metric
        }).collect::<Vec<_>>() },
    })
}

fn params(pairs: &[KeyValueIn]) -> Result<Vec<(String, String)>, ApiError> {
    pairs.iter().map(|p| key_value("param", p, MAX_PARAM_VALUE)).collect()
}

fn tags(pairs: &[KeyValueIn]) -> Result<Vec<(String, String)>, ApiError> {
    pairs.iter().map(|p| key_value("tag", p, MAX_TAG_VALUE)).collect()
}

/// A status as a name (`LOGGED_MODEL_READY`) or its proto number.
fn status(given: &Option<NameOrNumber>) -> Result<&'static str, ApiError> {
    let by_number = |n: i64| match n {
        1 => Some(model_status::PENDING),
        2 => Some(model_status::READY),
        3 => Some(model_status::UPLOAD_FAILED),
        _ => None,
    };
    let found = match given {
        Some(NameOrNumber::Name(s)) => model_status::ALL.iter().copied().find(|known| known == s),
        Some(NameOrNumber::Number(n)) => by_number(*n),
        None => return Err(ApiError::invalid("missing value for required parameter 'status'")),
    };
    found.ok_or_else(|| ApiError::invalid(format!("'status' must be one of {}", model_status::ALL.join(", "))))
}

async fn create(State(s): State<AppState>, bytes: Bytes) -> Result<Json<Value>, ApiError> {
    let r: CreateLoggedModel = typed(&bytes)?;
    let new = NewLoggedModel {
        experiment_id: r
            .experiment_id
            .as_ref()
            .ok_or_else(|| ApiError::invalid("missing value for required parameter 'experiment_id'"))?
            .get("experiment_id")?,
        name: r.name,
        model_type: r.model_type,
        source_run_id: r.source_run_id,
        params: params(&r.params)?,
        tags: tags(&r.tags)?,
    };
    if let Some(name) = &new.name {
        if name.is_empty() || name.len() > 500 || name.contains('/') {
            return Err(ApiError::invalid("a model name is 1 to 500 characters without '/'"));
        }
    }
    let model = s.store.create_logged_model(&new).await.map_err(store_error)?;
    Ok(Json(json!({ "model": model_json(&model) })))
}

async fn get_model(State(s): State<AppState>, Path(model_id): Path<String>) -> Result<Json<Value>, ApiError> {
    let model = s.store.logged_model(&model_id).await.map_err(store_error)?;
    Ok(Json(json!({ "model": model_json(&model) })))
}

async fn finalize(
    State(s): State<AppState>,
    Path(model_id): Path<String>,
    bytes: Bytes,
) -> Result<Json<Value>, ApiError> {
    let r: FinalizeLoggedModel = typed(&bytes)?;
    let model = s
        .store
        .set_logged_model_status(&model_id, status(&r.status)?)
        .await
        .map_err(store_error)?;
    Ok(Json(json!({ "model": model_json(&model) })))
}

async fn remove(State(s): State<AppState>, Path(model_id): Path<String>) -> Result<Json<Value>, ApiError> {
    s.store.delete_logged_model(&model_id).await.map_err(store_error)?;
    Ok(Json(json!({})))
}

async fn log_params(
    State(s): State<AppState>,
    Path(model_id): Path<String>,
    bytes: Bytes,
) -> Result<Json<Value>, ApiError> {
    let r: LoggedModelPairs = typed(&bytes)?;
    s.store
        .log_logged_model_params(&model_id, &params(&r.params)?)
        .await
        .map_err(store_error)?;
    Ok(Json(json!({})))
}

async fn set_tags(
    State(s): State<AppState>,
    Path(model_id): Path<String>,
    bytes: Bytes,
) -> Result<Json<Value>, ApiError> {
    let r: LoggedModelPairs = typed(&bytes)?;
    s.store
        .set_logged_model_tags(&model_id, &tags(&r.tags)?)
        .await
        .map_err(store_error)?;
    Ok(Json(json!({})))
}

async fn delete_tag(
    State(s): State<AppState>,
    Path((model_id, key)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    s.store
        .delete_logged_model_tag(&model_id, &key)
        .await
        .map_err(store_error)?;
    Ok(Json(json!({})))
}

async fn search(State(s): State<AppState>, bytes: Bytes) -> Result<Json<Value>, ApiError> {
    let r: SearchLoggedModels = typed(&bytes)?;
    let clauses = weft_store::search::parse_filter(r.filter.as_deref().unwrap_or(""))
        .map_err(|e| ApiError::invalid(format!("invalid filter: {e}")))?;
    let ids = experiment_ids(&r.experiment_ids)?;
    let limit = page_size(&r.max_results, 100, MAX_MODELS_PAGE)?;
    let offset = page_token(r.page_token.as_deref())?;
    let models = s
        .store
        .search_logged_models(&ids, &clauses, limit, offset)
        .await
        .map_err(store_error)?;
    let mut out = json!({ "models": models.iter().map(model_json).collect::<Vec<_>>() });
    if let Some(token) = next_token(models.len(), limit, offset) {
        out["next_page_token"] = json!(token);
    }
    Ok(Json(out))
}

async fn run_outputs(State(s): State<AppState>, bytes: Bytes) -> Result<Json<Value>, ApiError> {
    let r: RunOutputs = typed(&bytes)?;
    let run = r.run.get()?;
    let models = r
        .models
        .iter()
        .map(|o| {
            let id = o
                .model_id
                .as_deref()
                .ok_or_else(|| ApiError::invalid("missing value for required parameter 'model_id'"))?;
            let step = o.step.as_ref().map(|s| s.get("step")).transpose()?.unwrap_or(0);
            Ok((id.to_string(), step))
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    s.store.log_run_model_outputs(run, &models).await.map_err(store_error)?;
    Ok(Json(json!({})))
}

//! The MLflow-compatible tracking API under `/api/2.0/mlflow` (and
//! `/ajax-api/2.0/mlflow`), so the official `mlflow` client works unchanged
//! with `MLFLOW_TRACKING_URI` pointing at weft.
//!
//! Wire rules followed here: POST bodies are JSON, read into the typed
//! request structs of `requests.rs` (a bad body is a 400 with an MLflow
//! error code, never a 5xx); int64 fields are accepted as numbers or
//! strings; NaN and infinities travel as the strings `"NaN"`, `"Infinity"`,
//! `"-Infinity"`; errors are `{"error_code", "message"}`. GET parameters
//! come from the query string.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::{json, Map, Value};
use weft_store::search::{parse_filter, parse_order_by};
use weft_store::{Experiment, MetricPoint, RunInfo, StoreError, TrackedRun, ViewType};

use crate::requests::{
    experiment_ids, page_size, typed, CreateExperiment, CreateRun, ExperimentRef, ExperimentTag, KeyValueIn, LogBatch,
    LogInputs, LogMetric, MetricIn, RenameExperiment, RunKeyValue, RunRef, SearchExperiments, SearchRuns, UpdateRun,
};
use crate::{ApiError, AppState};

/// Most metrics, params and tags in one log-batch call (MLflow's limits).
const MAX_BATCH_METRICS: usize = 1000;
const MAX_BATCH_PARAMS: usize = 100;
const MAX_BATCH_TAGS: usize = 100;
const MAX_KEY_LEN: usize = 250;
pub(crate) const MAX_PARAM_VALUE: usize = 6000;
pub(crate) const MAX_TAG_VALUE: usize = 8000;
const MAX_EXPERIMENT_TAG_VALUE: usize = 20_000;
const MAX_SEARCH_RESULTS: i64 = 50_000;
/// The tag that holds a run's name: setting it renames the run.
const RUN_NAME_TAG: &str = "mlflow.runName";

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/experiments/get-by-name", get(get_experiment_by_name))
        .route("/experiments/get", get(get_experiment))
        .route("/experiments/create", post(create_experiment))
        .route("/experiments/update", post(rename_experiment))
        .route("/experiments/delete", post(delete_experiment))
        .route("/experiments/restore", post(restore_experiment))
        .route("/experiments/set-experiment-tag", post(set_experiment_tag))
        .route("/experiments/delete-experiment-tag", post(delete_experiment_tag))
        .route(
            "/experiments/search",
            post(search_experiments).get(search_experiments_get),
        )
        .route("/runs/create", post(create_run))
        .route("/runs/update", post(update_run))
        .route("/runs/get", get(get_run))
        .route("/runs/delete", post(delete_run))
        .route("/runs/restore", post(restore_run))
        .route("/runs/log-metric", post(log_metric))
        .route("/runs/log-parameter", post(log_param))
        .route("/runs/set-tag", post(set_tag))
        .route("/runs/delete-tag", post(delete_tag))
        .route("/runs/log-batch", post(log_batch))
        .route("/runs/log-inputs", post(log_inputs))
        .route("/runs/search", post(search_runs))
        .route("/metrics/get-history", get(metric_history))
}

// ----- request helpers -----

pub(crate) fn experiment_id(text: &str) -> Result<i64, ApiError> {
    text.parse()
        .map_err(|_| ApiError::invalid(format!("'{text}' is not an experiment id")))
}

/// MLflow's rules for metric, param and tag keys: alphanumerics, `_`,
/// `-`, `.`, space, `:` and `/`; at most 250 characters; and a key must
/// name itself when read as a path (no empty, `.` or `..` parts, no
/// leading `/` or `..`).
pub(crate) fn validate_key(what: &str, key: &str) -> Result<(), ApiError> {
    if !key
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '_' | '/' | '.' | '-' | ' ' | ':'))
    {
        return Err(ApiError::invalid(format!(
            "invalid {what} name '{}': names may only contain alphanumerics, underscores (_), dashes (-), periods (.), spaces ( ), colons (:) and slashes (/)",
            key.escape_debug()
        )));
    }
    let is_path_of_itself = !key.is_empty()
        && !key.starts_with('/')
        && !key.starts_with("..")
        && key
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..");
    if !is_path_of_itself {
        return Err(ApiError::invalid(format!(
            "invalid {what} name '{key}': names may be treated as files, and must not resolve to other names \
             (no empty, '.' or '..' parts, no leading '/' or '..')"
        )));
    }
    if key.chars().count() > MAX_KEY_LEN {
        return Err(ApiError::invalid(format!(
            "{what} key '{key}' is longer than {MAX_KEY_LEN} characters"
        )));
    }
    Ok(())
}

fn parse_metric(m: &MetricIn) -> Result<MetricPoint, ApiError> {
    let key = required(&m.key, "key")?;
    validate_key("metric", key)?;
    let value = m
        .value
        .as_ref()
        .ok_or_else(|| ApiError::invalid(format!("metric '{key}' has no value")))?
        .get(&format!("metric '{key}'"))?;
    Ok(MetricPoint {
        key: key.to_string(),
        value,
        timestamp: m
            .timestamp
            .as_ref()
            .ok_or_else(|| ApiError::invalid(format!("metric '{key}' has no timestamp")))?
            .get("timestamp")?,
        step: m.step.as_ref().map(|s| s.get("step")).transpose()?.unwrap_or(0),
    })
}

/// A required string field of a typed request.
fn required<'a>(value: &'a Option<String>, name: &str) -> Result<&'a str, ApiError> {
    value
        .as_deref()
        .ok_or_else(|| ApiError::invalid(format!("missing value for required parameter '{name}'")))
}

/// A param or tag of a typed request: its key checked, its value cut to
/// `max_value` characters.
pub(crate) fn key_value(what: &str, pair: &KeyValueIn, max_value: usize) -> Result<(String, String), ApiError> {
    let key = required(&pair.key, "key")?;
    validate_key(what, key)?;
    Ok((key.to_string(), truncated(pair.value.0.clone(), max_value)))
}

/// An experiment tag: key rules as for runs; values up to 20,000
/// characters, longer ones refused (the reference does not truncate them).
fn experiment_tag(pair: &KeyValueIn) -> Result<(String, String), ApiError> {
    let (key, value) = key_value("tag", pair, usize::MAX)?;
    if value.chars().count() > MAX_EXPERIMENT_TAG_VALUE {
        return Err(ApiError::invalid(format!(
            "experiment tag '{key}' value is longer than {MAX_EXPERIMENT_TAG_VALUE} characters"
        )));
    }
    Ok((key, value))
}

/// A value cut to `max` characters: what the reference does with long
/// param and tag values (`MLFLOW_TRUNCATE_LONG_VALUES`, on by default).
fn truncated(mut value: String, max: usize) -> String {
    if let Some((at, _)) = value.char_indices().nth(max) {
        value.truncate(at);
    }
    value
}

/// MLflow's status codes for store errors.
pub(crate) fn store_error(e: StoreError) -> ApiError {
    e.into()
}

// ----- response shapes -----

fn experiment_json(e: &Experiment) -> Value {
    json!({
        "experiment_id": e.experiment_id.to_string(),
        "name": e.name,
        "artifact_location": e.artifact_location,
        "lifecycle_stage": e.lifecycle_stage,
        "creation_time": e.creation_time,
        "last_update_time": e.last_update_time,
        "tags": e.tags.iter().map(|(k, v)| json!({"key": k, "value": v})).collect::<Vec<_>>(),
    })
}

/// Runs are the bulk of search responses: serialized straight from these
/// borrowed shapes, without building a JSON tree.
#[derive(Serialize)]
struct KeyValueOut<'a> {
    key: &'a str,
    value: &'a str,
}

#[derive(Serialize)]
struct MetricOut<'a> {
    key: &'a str,
    #[serde(serialize_with = "mlflow_double")]
    value: f64,
    timestamp: i64,
    step: i64,
}

/// NaN travels as the string "NaN" (JSON has no NaN).
fn mlflow_double<S: serde::Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.is_nan() {
        s.serialize_str("NaN")
    } else {
        s.serialize_f64(*v)
    }
}

#[derive(Serialize)]
struct InfoOut<'a> {
    run_id: &'a str,
    run_uuid: &'a str,
    run_name: &'a str,
    experiment_id: String,
    user_id: &'a str,
    status: &'a str,
    start_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_time: Option<i64>,
    artifact_uri: &'a str,
    lifecycle_stage: &'a str,
}

#[derive(Serialize)]
struct DataOut<'a> {
    metrics: Vec<MetricOut<'a>>,
    params: Vec<KeyValueOut<'a>>,
    tags: Vec<KeyValueOut<'a>>,
}

#[derive(Serialize)]
struct RunOut<'a> {
    info: InfoOut<'a>,
    data: DataOut<'a>,
    inputs: Value,
}

/// A run's dataset inputs as MLflow sends them (empty parts left out).
fn inputs_json(inputs: &[weft_store::DatasetInput]) -> Value {
    if inputs.is_empty() {
        return json!({});
    }
    let items: Vec<Value> = inputs
        .iter()
        .map(|i| {
            let mut dataset = json!({
                "name": i.name,
                "digest": i.digest,
                "source_type": i.source_type,
                "source": i.source,
            });
            if let Some(o) = dataset.as_object_mut() {
                if let Some(schema) = &i.schema {
                    o.insert("schema".into(), json!(schema));
                }
                if let Some(profile) = &i.profile {
                    o.insert("profile".into(), json!(profile));
                }
            }
            let mut item = json!({ "dataset": dataset });
            if !i.tags.is_empty() {
                item["tags"] = i.tags.iter().map(|(k, v)| json!({"key": k, "value": v})).collect();
            }
            item
        })
        .collect();
    json!({ "dataset_inputs": items })
}

fn info_out(i: &RunInfo) -> InfoOut<'_> {
    InfoOut {
        run_id: &i.run_uuid,
        run_uuid: &i.run_uuid,
        run_name: &i.name,
        experiment_id: i.experiment_id.to_string(),
        user_id: &i.user_id,
        status: &i.status,
        start_time: i.start_time,
        end_time: i.end_time,
        artifact_uri: &i.artifact_uri,
        lifecycle_stage: &i.lifecycle_stage,
    }
}

fn pairs_out(pairs: &[(String, String)]) -> Vec<KeyValueOut<'_>> {
    pairs.iter().map(|(k, v)| KeyValueOut { key: k, value: v }).collect()
}

/// A metric value as MLflow sends it (NaN and infinities as strings).
pub(crate) fn metric_value_json(value: f64) -> Value {
    serde_json::to_value(metric_out(&MetricPoint {
        key: String::new(),
        value,
        timestamp: 0,
        step: 0,
    }))
    .ok()
    .and_then(|v| v.get("value").cloned())
    .unwrap_or(Value::Null)
}

fn metric_out(m: &MetricPoint) -> MetricOut<'_> {
    MetricOut {
        key: &m.key,
        value: m.value,
        timestamp: m.timestamp,
        step: m.step,
    }
}

fn run_out(r: &TrackedRun) -> RunOut<'_> {
    RunOut {
        info: info_out(&r.info),
        data: DataOut {
            metrics: r.metrics.iter().map(metric_out).collect(),
            params: pairs_out(&r.params),
            tags: pairs_out(&r.tags),
        },
        inputs: inputs_json(&r.inputs),
    }
}

fn run_info_json(i: &RunInfo) -> Value {
    serde_json::to_value(info_out(i)).unwrap_or_default()
}

fn metric_json(m: &MetricPoint) -> Value {
    serde_json::to_value(metric_out(m)).unwrap_or_default()
}

fn run_json(r: &TrackedRun) -> Value {
    serde_json::to_value(run_out(r)).unwrap_or_default()
}

pub(crate) fn page_token(token: Option<&str>) -> Result<i64, ApiError> {
    match token {
        None | Some("") => Ok(0),
        Some(t) => t
            .parse::<i64>()
            .ok()
            .filter(|o| *o >= 0)
            .ok_or_else(|| ApiError::invalid(format!("invalid page token '{t}'"))),
    }
}

pub(crate) fn next_token(len: usize, limit: i64, offset: i64) -> Option<String> {
    (len as i64 == limit).then(|| (offset + limit).to_string())
}

fn view_type(text: Option<&str>) -> Result<Option<&'static str>, ApiError> {
    match text.unwrap_or("ACTIVE_ONLY") {
        "ACTIVE_ONLY" => Ok(Some("active")),
        "DELETED_ONLY" => Ok(Some("deleted")),
        "ALL" => Ok(None),
        other => Err(ApiError::invalid(format!("unknown view type '{other}'"))),
    }
}

// ----- experiments -----

async fn get_experiment_by_name(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let name = q
        .get("experiment_name")
        .ok_or_else(|| ApiError::invalid("missing value for required parameter 'experiment_name'"))?;
    let e = s.store.experiment_by_name(name).await.map_err(|e| match e {
        StoreError::NotFound { .. } => ApiError::not_found(
            "RESOURCE_DOES_NOT_EXIST",
            format!("could not find experiment with name '{name}'"),
        ),
        other => store_error(other),
    })?;
    Ok(Json(json!({ "experiment": experiment_json(&e) })))
}

async fn get_experiment(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let id = q
        .get("experiment_id")
        .ok_or_else(|| ApiError::invalid("missing value for required parameter 'experiment_id'"))?;
    let e = s.store.experiment(experiment_id(id)?).await.map_err(store_error)?;
    Ok(Json(json!({ "experiment": experiment_json(&e) })))
}

async fn create_experiment(State(s): State<AppState>, bytes: Bytes) -> Result<Json<Value>, ApiError> {
    let r: CreateExperiment = typed(&bytes)?;
    let name = required(&r.name, "name")?;
    validate_experiment_name(name)?;
    let location = r.artifact_location.as_deref().filter(|l| !l.is_empty());
    let tags = r.tags.iter().map(experiment_tag).collect::<Result<Vec<_>, _>>()?;
    let id = s
        .store
        .create_experiment(name, location, &tags)
        .await
        .map_err(store_error)?;
    Ok(Json(json!({ "experiment_id": id.to_string() })))
}

async fn search_experiments(State(s): State<AppState>, bytes: Bytes) -> Result<Json<Value>, ApiError> {
    let r: SearchExperiments = typed(&bytes)?;
    let limit = page_size(&r.max_results, 1000, 50_000)?;
    let offset = page_token(r.page_token.as_deref())?;
    let view = match view_type(r.view_type.as_deref())? {
        Some("active") => ViewType::ActiveOnly,
        Some(_) => ViewType::DeletedOnly,
        None => ViewType::All,
    };
    let clauses = match r.filter.as_deref().filter(|f| !f.trim().is_empty()) {
        Some(filter) => object_filter(filter)?,
        None => Vec::new(),
    };
    let order =
        parse_order_by(&r.order_by.into_vec()).map_err(|e| ApiError::invalid(format!("invalid order_by: {e}")))?;
    // One more than a page: a next page token only when something follows.
    let mut experiments = s
        .store
        .search_experiments(view, &clauses, &order, limit + 1, offset)
        .await
        .map_err(store_error)?;
    let next = (experiments.len() as i64 > limit).then(|| (offset + limit).to_string());
    experiments.truncate(limit as usize);
    Ok(Json(json!({
        "experiments": experiments.iter().map(experiment_json).collect::<Vec<_>>(),
        "next_page_token": next,
    })))
}

async fn rename_experiment(State(s): State<AppState>, bytes: Bytes) -> Result<Json<Value>, ApiError> {
    let r: RenameExperiment = typed(&bytes)?;
    let id = r.experiment.get()?;
    let name = required(&r.new_name, "new_name")?;
    validate_experiment_name(name)?;
    s.store.rename_experiment(id, name).await.map_err(store_error)?;
    Ok(Json(json!({})))
}

async fn delete_experiment(State(s): State<AppState>, bytes: Bytes) -> Result<Json<Value>, ApiError> {
    let id = typed::<ExperimentRef>(&bytes)?.get()?;
    if id == 0 {
        return Err(ApiError::invalid("the default experiment cannot be deleted"));
    }
    s.store.delete_experiment(id).await.map_err(store_error)?;
    Ok(Json(json!({})))
}

async fn restore_experiment(State(s): State<AppState>, bytes: Bytes) -> Result<Json<Value>, ApiError> {
    s.store
        .restore_experiment(typed::<ExperimentRef>(&bytes)?.get()?)
        .await
        .map_err(store_error)?;
    Ok(Json(json!({})))
}

async fn set_experiment_tag(State(s): State<AppState>, bytes: Bytes) -> Result<Json<Value>, ApiError> {
    let r: ExperimentTag = typed(&bytes)?;
    let id = r.experiment.get()?;
    let (key, value) = experiment_tag(&r.tag)?;
    s.store
        .set_experiment_tag(id, &key, &value)
        .await
        .map_err(store_error)?;
    Ok(Json(json!({})))
}

async fn delete_experiment_tag(State(s): State<AppState>, bytes: Bytes) -> Result<Json<Value>, ApiError> {
    let r: ExperimentTag = typed(&bytes)?;
    let id = r.experiment.get()?;
    let key = required(&r.tag.key, "key")?;
    s.store.delete_experiment_tag(id, key).await.map_err(store_error)?;
    Ok(Json(json!({})))
}

fn validate_experiment_name(name: &str) -> Result<(), ApiError> {
    if name.trim().is_empty() || name.len() > 500 {
        return Err(ApiError::invalid("experiment name must be 1 to 500 characters"));
    }
    Ok(())
}

async fn search_experiments_get(
    state: State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let m: Map<String, Value> = q.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
    search_experiments(state, Bytes::from(serde_json::to_vec(&m).unwrap_or_default())).await
}

/// A filter such as `name LIKE 'iris%' AND tags.team = 'ml'`, parsed once
/// per request (at most [`MAX_FILTER`] bytes).
pub(crate) fn object_filter(filter: &str) -> Result<Vec<weft_store::search::Clause>, ApiError> {
    if filter.len() > MAX_FILTER {
        return Err(ApiError::invalid(format!(
            "the filter is {} bytes; the limit is {MAX_FILTER}",
            filter.len()
        )));
    }
    parse_filter(filter).map_err(|e| ApiError::invalid(format!("invalid filter: {e}")))
}

/// Longest filter accepted.
pub(crate) const MAX_FILTER: usize = 16 * 1024;

// ----- runs -----

const ADJECTIVES: [&str; 8] = ["brave", "calm", "eager", "gentle", "lucky", "quiet", "swift", "wise"];
const NOUNS: [&str; 8] = ["otter", "heron", "lynx", "finch", "badger", "koi", "moth", "wren"];

fn random_name() -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0) as usize;
    format!("{}-{}-{}", ADJECTIVES[n % 8], NOUNS[(n / 8) % 8], n % 1000)
}

async fn create_run(State(s): State<AppState>, bytes: Bytes) -> Result<Json<Value>, ApiError> {
    let r: CreateRun = typed(&bytes)?;
    let experiment = match &r.experiment_id {
        Some(id) => id.get("experiment_id")?,
        None => 0,
    };
    let mut tags = r
        .tags
        .iter()
        .map(|t| key_value("tag", t, MAX_TAG_VALUE))
        .collect::<Result<Vec<_>, _>>()?;
    let tagged = tags.iter().find(|(k, _)| k == RUN_NAME_TAG).map(|(_, v)| v.clone());
    let given = r.run_name.as_deref().filter(|n| !n.is_empty());
    if let (Some(given), Some(tagged)) = (given, &tagged) {
        if given != tagged {
            return Err(ApiError::invalid(format!(
                "both the run_name '{given}' and the {RUN_NAME_TAG} tag '{tagged}' were given, and they differ"
            )));
        }
    }
    let name = given.map(str::to_string).or(tagged).unwrap_or_else(random_name);
    if !tags.iter().any(|(k, _)| k == RUN_NAME_TAG) {
        tags.push((RUN_NAME_TAG.into(), name.clone()));
    }
    let user = r.user_id.as_deref().unwrap_or("");
    let start = r.start_time.as_ref().map(|t| t.get("start_time")).transpose()?;
    let info = s
        .store
        .create_tracked_run(experiment, &name, user, start, &tags)
        .await
        .map_err(store_error)?;
    let run = s.store.tracked_run(&info.run_uuid).await.map_err(store_error)?;
    Ok(Json(json!({ "run": run_json(&run) })))
}

const RUN_STATUSES: [&str; 5] = ["RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED"];

async fn update_run(State(s): State<AppState>, bytes: Bytes) -> Result<Json<Value>, ApiError> {
    let r: UpdateRun = typed(&bytes)?;
    let id = r.run.get()?;
    let status = r.status.as_deref();
    if let Some(st) = status {
        if !RUN_STATUSES.contains(&st) {
            return Err(ApiError::invalid(format!(
                "status must be one of {}",
                RUN_STATUSES.join(", ")
            )));
        }
    }
    let info = s
        .store
        .update_tracked_run(
            id,
            status,
            r.end_time.as_ref().map(|t| t.get("end_time")).transpose()?,
            r.run_name.as_deref().filter(|n| !n.is_empty()),
        )
        .await
        .map_err(store_error)?;
    Ok(Json(json!({ "run_info": run_info_json(&info) })))
}

async fn get_run(State(s): State<AppState>, Query(q): Query<HashMap<String, String>>) -> Result<Json<Value>, ApiError> {
    let id = q
        .get("run_id")
        .or(q.get("run_uuid"))
        .ok_or_else(|| ApiError::invalid("missing value for required parameter 'run_id'"))?;
    let run = s.store.tracked_run(id).await.map_err(store_error)?;
    Ok(Json(json!({ "run": run_json(&run) })))
}

async fn delete_run(State(s): State<AppState>, bytes: Bytes) -> Result<Json<Value>, ApiError> {
    s.store
        .set_run_lifecycle(typed::<RunRef>(&bytes)?.get()?, "deleted")
        .await
        .map_err(store_error)?;
    Ok(Json(json!({})))
}

async fn restore_run(State(s): State<AppState>, bytes: Bytes) -> Result<Json<Value>, ApiError> {
    s.store
        .set_run_lifecycle(typed::<RunRef>(&bytes)?.get()?, "active")
        .await
        .map_err(store_error)?;
    Ok(Json(json!({})))
}

async fn log_metric(State(s): State<AppState>, bytes: Bytes) -> Result<Json<Value>, ApiError> {
    let r: LogMetric = typed(&bytes)?;
    let metric = parse_metric(&r.metric)?;
    let run = r.run.get()?;
    let on_models = model_metrics(run, std::slice::from_ref(&r.metric), std::slice::from_ref(&metric));
    s.store.log_batch(run, &[metric], &[], &[]).await.map_err(store_error)?;
    if !on_models.is_empty() {
        s.store.log_model_metrics(&on_models).await.map_err(store_error)?;
    }
    Ok(Json(json!({})))
}

/// The metrics that name a logged model (`model_id`, and optionally the
/// dataset they were measured on), to be recorded on that model too.
fn model_metrics(run: &str, raw: &[MetricIn], parsed: &[MetricPoint]) -> Vec<(String, weft_store::ModelMetric)> {
    raw.iter()
        .zip(parsed)
        .filter_map(|(m, point)| {
            let model = m.model_id.as_deref().filter(|id| !id.is_empty())?;
            Some((
                model.to_string(),
                weft_store::ModelMetric {
                    point: point.clone(),
                    run_id: run.to_string(),
                    dataset_name: m.dataset_name.clone().unwrap_or_default(),
                    dataset_digest: m.dataset_digest.clone().unwrap_or_default(),
                },
            ))
        })
        .collect()
}

async fn log_param(State(s): State<AppState>, bytes: Bytes) -> Result<Json<Value>, ApiError> {
    let r: RunKeyValue = typed(&bytes)?;
    let param = key_value("param", &r.pair, MAX_PARAM_VALUE)?;
    s.store
        .log_batch(r.run.get()?, &[], &[param], &[])
        .await
        .map_err(store_error)?;
    Ok(Json(json!({})))
}

async fn set_tag(State(s): State<AppState>, bytes: Bytes) -> Result<Json<Value>, ApiError> {
    let r: RunKeyValue = typed(&bytes)?;
    let tag = key_value("tag", &r.pair, MAX_TAG_VALUE)?;
    s.store
        .log_batch(r.run.get()?, &[], &[], &[tag])
        .await
        .map_err(store_error)?;
    Ok(Json(json!({})))
}

async fn delete_tag(State(s): State<AppState>, bytes: Bytes) -> Result<Json<Value>, ApiError> {
    let r: RunKeyValue = typed(&bytes)?;
    s.store
        .delete_tracked_tag(r.run.get()?, required(&r.pair.key, "key")?)
        .await
        .map_err(store_error)?;
    Ok(Json(json!({})))
}

async fn log_batch(State(s): State<AppState>, bytes: Bytes) -> Result<Json<Value>, ApiError> {
    let r: LogBatch = typed(&bytes)?;
    let (metrics, params, tag_list) = (&r.metrics, &r.params, &r.tags);
    if metrics.len() > MAX_BATCH_METRICS || params.len() > MAX_BATCH_PARAMS || tag_list.len() > MAX_BATCH_TAGS {
        return Err(ApiError::invalid(format!(
            "a batch holds at most {MAX_BATCH_METRICS} metrics, {MAX_BATCH_PARAMS} params and {MAX_BATCH_TAGS} tags; got {}, {} and {}",
            metrics.len(),
            params.len(),
            tag_list.len()
        )));
    }
    if metrics.len() + params.len() + tag_list.len() > 1000 {
        return Err(ApiError::invalid(
            "a batch holds at most 1000 metrics, params and tags in total",
        ));
    }
    let parsed: Vec<MetricPoint> = metrics.iter().map(parse_metric).collect::<Result<_, _>>()?;
    let run = r.run.get()?;
    let on_models = model_metrics(run, metrics, &parsed);
    let metrics = parsed;
    let params: Vec<(String, String)> = params
        .iter()
        .map(|p| key_value("param", p, MAX_PARAM_VALUE))
        .collect::<Result<_, _>>()?;
    for (i, (key, _)) in params.iter().enumerate() {
        if params[..i].iter().any(|(k, _)| k == key) {
            return Err(ApiError::invalid(format!("duplicate param key '{key}' in one batch")));
        }
    }
    let tags: Vec<(String, String)> = tag_list
        .iter()
        .map(|t| key_value("tag", t, MAX_TAG_VALUE))
        .collect::<Result<_, _>>()?;
    s.store
        .log_batch(run, &metrics, &params, &tags)
        .await
        .map_err(store_error)?;
    if !on_models.is_empty() {
        s.store.log_model_metrics(&on_models).await.map_err(store_error)?;
    }
    Ok(Json(json!({})))
}

/// `runs/log-inputs`: the datasets a run used, with the reference's
/// limits on each field.
async fn log_inputs(State(s): State<AppState>, bytes: Bytes) -> Result<Json<Value>, ApiError> {
    let r: LogInputs = typed(&bytes)?;
    let run = r.run.get()?;
    if r.datasets.len() > 1000 {
        return Err(ApiError::invalid(format!(
            "a call logs at most 1000 datasets, got {}",
            r.datasets.len()
        )));
    }
    let field = |value: &Option<String>, key: &str, max: usize| -> Result<Option<String>, ApiError> {
        if let Some(v) = value {
            if v.chars().count() > max {
                return Err(ApiError::invalid(format!(
                    "dataset {key} is longer than {max} characters"
                )));
            }
        }
        Ok(value.clone())
    };
    let mut inputs = Vec::with_capacity(r.datasets.len());
    for item in &r.datasets {
        let dataset = item
            .dataset
            .as_ref()
            .ok_or_else(|| ApiError::invalid("each dataset input needs a 'dataset' object"))?;
        let mut tags = Vec::new();
        for tag in &item.tags {
            let key = required(&tag.key, "key")?;
            let value = &tag.value.0;
            if key.chars().count() > 255 || value.chars().count() > 500 {
                return Err(ApiError::invalid(format!(
                    "input tag '{key}': keys are at most 255 characters and values 500"
                )));
            }
            tags.push((key.to_string(), value.clone()));
        }
        inputs.push(weft_store::DatasetInput {
            name: field(&dataset.name, "name", 500)?.unwrap_or_default(),
            digest: field(&dataset.digest, "digest", 36)?.unwrap_or_default(),
            source_type: field(&dataset.source_type, "source_type", 500)?.unwrap_or_default(),
            source: field(&dataset.source, "source", 65_535)?.unwrap_or_default(),
            schema: field(&dataset.schema, "schema", 1_048_575)?,
            profile: field(&dataset.profile, "profile", 16_777_215)?,
            tags,
        });
    }
    s.store.log_inputs(run, &inputs).await.map_err(store_error)?;
    Ok(Json(json!({})))
}

async fn search_runs(State(s): State<AppState>, bytes: Bytes) -> Result<axum::response::Response, ApiError> {
    let r: SearchRuns = typed(&bytes)?;
    let ids = experiment_ids(&r.experiment_ids)?;
    let limit = page_size(&r.max_results, 1000, MAX_SEARCH_RESULTS)?;
    let offset = page_token(r.page_token.as_deref())?;
    let clauses = parse_filter(r.filter.as_deref().unwrap_or(""))
        .map_err(|e| ApiError::invalid(format!("invalid filter: {e}")))?;
    let order =
        parse_order_by(&r.order_by.into_vec()).map_err(|e| ApiError::invalid(format!("invalid order_by: {e}")))?;
    let lifecycle = view_type(r.run_view_type.as_deref())?;
    let runs = s
        .store
        .search_tracked_runs(&ids, lifecycle, &clauses, &order, limit, offset)
        .await
        .map_err(store_error)?;
    #[derive(Serialize)]
    struct SearchOut<'a> {
        runs: Vec<RunOut<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        next_page_token: Option<String>,
    }
    let next_page_token = next_token(runs.len(), limit, offset);
    let body = serde_json::to_vec(&SearchOut {
        runs: runs.iter().map(run_out).collect(),
        next_page_token,
    })
    .map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_ERROR",
            e.to_string(),
        )
    })?;
    Ok(([(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response())
}

async fn metric_history(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let id = q
        .get("run_id")
        .or(q.get("run_uuid"))
        .ok_or_else(|| ApiError::invalid("missing value for required parameter 'run_id'"))?;
    let key = q
        .get("metric_key")
        .ok_or_else(|| ApiError::invalid("missing value for required parameter 'metric_key'"))?;
    let limit = match q.get("max_results") {
        Some(t) => t
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=1_000_000).contains(n))
            .ok_or_else(|| ApiError::invalid("max_results must be 1 to 1000000"))?,
        None => 1_000_000,
    };
    let offset = page_token(q.get("page_token").map(String::as_str))?;
    let points = s
        .store
        .tracked_metric_history(id, key, limit, offset)
        .await
        .map_err(store_error)?;
    let mut response = json!({ "metrics": points.iter().map(metric_json).collect::<Vec<_>>() });
    if let Some(next) = next_token(points.len(), limit, offset) {
        response["next_page_token"] = json!(next);
    }
    Ok(Json(response))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_bounded() {
        assert!(object_filter("name = unquoted").is_err());
        assert!(object_filter(&"%".repeat(MAX_FILTER + 1)).is_err(), "bounded");
    }

    #[test]
    fn keys_are_validated() {
        assert!(validate_key("metric", "loss/val 1:a").is_ok());
        for bad in [
            "",
            "../x",
            "/abs",
            "a\\nb",
            "a;drop",
            &"k".repeat(251),
            "./x",
            "a/./b",
            "a//b",
            "a/",
            "..x",
            ".",
        ] {
            assert!(validate_key("metric", bad).is_err(), "{bad}");
        }
    }
}

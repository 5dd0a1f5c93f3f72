//! MLflow tracing: the v3 trace endpoints that `@mlflow.trace`,
//! `mlflow.start_span` and `search_traces` use, mounted under
//! `/api/2.0/mlflow` and `/api/3.0/mlflow`.
//!
//! When a trace's root span ends, the client records the trace
//! (`POST /traces`, answered with the trace's `mlflow.artifactLocation`
//! tag) and uploads its spans as `traces.json` through the artifact proxy
//! to that location; reading a trace back downloads that file. weft does
//! not take OTLP spans (`/v1/traces`): its `/version` is not an MLflow
//! version, so the client keeps to that artifact path.
//!
//! Requests are typed structs (serde, with the lenient field types of
//! `requests.rs`), so a field of the wrong type is a 400 naming it.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use weft_store::search::{parse_order_by, parse_trace_filter};
use weft_store::{StoreError, TraceInfo};

use crate::mlflow::{next_token, page_token, store_error, validate_key, MAX_FILTER, MAX_TAG_VALUE};
use crate::requests::{page_size, typed, Int64};
use crate::{ApiError, AppState};

/// Most traces one search answers, and one batch reads.
const MAX_RESULTS: i64 = 50_000;
/// Longest tag, metadata or preview value accepted.
const MAX_VALUE: usize = 64 * 1024;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/traces", post(start_trace))
        .route("/traces/search", post(search_traces))
        .route("/traces/batchGetInfos", post(batch_get_infos))
        .route("/traces/delete-traces", post(delete_traces))
        .route("/traces/{trace_id}", get(get_trace_info))
        .route("/traces/{trace_id}/tags", patch(set_tag).delete(delete_tag))
}

// ----- request shapes -----

#[derive(Deserialize)]
struct ExperimentLocation {
    experiment_id: Int64,
}

#[derive(Deserialize)]
struct TraceLocation {
    #[serde(default)]
    r#type: Option<String>,
    #[serde(default)]
    mlflow_experiment: Option<ExperimentLocation>,
}

impl TraceLocation {
    fn experiment_id(&self) -> Result<i64, ApiError> {
        match (&self.mlflow_experiment, self.r#type.as_deref()) {
            (Some(e), None | Some("MLFLOW_EXPERIMENT")) => e.experiment_id.get("experiment_id"),
            (_, other) => Err(ApiError::invalid(format!(
                "weft keeps traces in MLflow experiments only; the location {} is not one",
                other.unwrap_or("(none)")
            ))),
        }
    }
}

#[derive(Deserialize)]
struct TraceInfoIn {
    trace_id: String,
    trace_location: TraceLocation,
    #[serde(default)]
    client_request_id: Option<String>,
    request_time: String,
    #[serde(default)]
    execution_duration: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    request_preview: Option<String>,
    #[serde(default)]
    response_preview: Option<String>,
    #[serde(default)]
    trace_metadata: BTreeMap<String, String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct TraceIn {
    trace_info: TraceInfoIn,
}

#[derive(Deserialize)]
struct StartTraceRequest {
    trace: TraceIn,
}

#[derive(Deserialize, Default)]
struct SearchRequest {
    #[serde(default)]
    locations: Vec<TraceLocation>,
    /// The v2 spelling of the locations.
    #[serde(default)]
    experiment_ids: Vec<String>,
    #[serde(default)]
    filter: Option<String>,
    #[serde(default)]
    max_results: Option<Int64>,
    #[serde(default)]
    order_by: Vec<String>,
    #[serde(default)]
    page_token: Option<String>,
}

#[derive(Deserialize)]
struct BatchRequest {
    #[serde(default)]
    trace_ids: Vec<String>,
    #[serde(default)]
    experiment_ids: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct DeleteTracesRequest {
    experiment_id: Int64,
    #[serde(default)]
    max_timestamp_millis: Option<Int64>,
    #[serde(default)]
    max_traces: Option<Int64>,
    #[serde(default)]
    request_ids: Vec<String>,
    /// The v3 spelling of `request_ids`.
    #[serde(default)]
    trace_ids: Vec<String>,
}

#[derive(Deserialize)]
struct SetTagRequest {
    key: String,
    value: String,
}

#[derive(Deserialize)]
struct DeleteTagRequest {
    key: String,
}

// ----- conversions -----

/// protobuf's JSON `Timestamp` (RFC 3339, UTC) as milliseconds.
fn timestamp_ms(text: &str) -> Result<i64, ApiError> {
    let bad = || {
        ApiError::invalid(format!(
            "'{text}' is not an RFC 3339 timestamp like 2026-01-31T12:00:00.000Z"
        ))
    };
    let time = humantime::parse_rfc3339_weak(text.trim_end_matches('Z')).map_err(|_| bad())?;
    let since = time.duration_since(UNIX_EPOCH).map_err(|_| bad())?;
    i64::try_from(since.as_millis()).map_err(|_| bad())
}

fn timestamp_text(ms: i64) -> String {
    let time = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(time).to_string()
}

/// protobuf's JSON `Duration` (`"1.250s"`) as milliseconds.
fn duration_ms(text: &str) -> Result<i64, ApiError> {
    let bad = || ApiError::invalid(format!("'{text}' is not a duration like 1.250s"));
    let seconds = text.strip_suffix('s').ok_or_else(bad)?;
    let (whole, fraction) = seconds.split_once('.').unwrap_or((seconds, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let whole: i64 = whole.parse().map_err(|_| bad())?;
    let millis: i64 = format!("{fraction:0<3}")[..3].parse().map_err(|_| bad())?;
    whole
        .checked_mul(1000)
        .and_then(|w| w.checked_add(millis))
        .ok_or_else(bad)
}

fn duration_text(ms: i64) -> String {
    if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{}.{:03}s", ms / 1000, ms % 1000)
    }
}

fn check_pairs(what: &str, pairs: &BTreeMap<String, String>) -> Result<(), ApiError> {
    for (key, value) in pairs {
        if key.is_empty() || key.len() > 250 {
            return Err(ApiError::invalid(format!(
                "a trace {what} key must be 1 to 250 characters"
            )));
        }
        if value.len() > MAX_VALUE {
            return Err(ApiError::invalid(format!(
                "the trace {what} '{key}' is {} bytes; the limit is {MAX_VALUE}",
                value.len()
            )));
        }
    }
    Ok(())
}

fn trace_info_in(t: TraceInfoIn) -> Result<TraceInfo, ApiError> {
    check_pairs("tag", &t.tags)?;
    check_pairs("metadata", &t.trace_metadata)?;
    for preview in [&t.request_preview, &t.response_preview].into_iter().flatten() {
        if preview.len() > MAX_VALUE {
            return Err(ApiError::invalid(format!(
                "a trace preview may be at most {MAX_VALUE} bytes"
            )));
        }
    }
    Ok(TraceInfo {
        experiment_id: t.trace_location.experiment_id()?,
        trace_id: t.trace_id,
        client_request_id: t.client_request_id.filter(|c| !c.is_empty()),
        request_time: timestamp_ms(&t.request_time)?,
        execution_duration: t.execution_duration.as_deref().map(duration_ms).transpose()?,
        state: t.state.unwrap_or_else(|| "STATE_UNSPECIFIED".into()),
        request_preview: t.request_preview,
        response_preview: t.response_preview,
        metadata: t.trace_metadata,
        tags: t.tags,
    })
}

/// A trace info as the v3 API writes it (`TraceInfoV3`).
pub(crate) fn trace_info_json(t: &TraceInfo) -> Value {
    let mut out = json!({
        "trace_id": t.trace_id,
        "trace_location": {
            "type": "MLFLOW_EXPERIMENT",
            "mlflow_experiment": { "experiment_id": t.experiment_id.to_string() },
        },
        "request_time": timestamp_text(t.request_time),
        "state": t.state,
        "trace_metadata": t.metadata,
        "tags": t.tags,
    });
    if let Some(d) = t.execution_duration {
        out["execution_duration"] = json!(duration_text(d));
    }
    for (key, value) in [
        ("client_request_id", &t.client_request_id),
        ("request_preview", &t.request_preview),
        ("response_preview", &t.response_preview),
    ] {
        if let Some(v) = value {
            out[key] = json!(v);
        }
    }
    out
}

fn trace_not_found(trace_id: &str) -> ApiError {
    ApiError::not_found(
        "RESOURCE_DOES_NOT_EXIST",
        format!("Trace with ID '{trace_id}' not found."),
    )
}

fn trace_error(trace_id: &str) -> impl Fn(StoreError) -> ApiError + '_ {
    move |e| match e {
        StoreError::NotFound { what: "trace", .. } => trace_not_found(trace_id),
        other => store_error(other),
    }
}

// ----- handlers -----

async fn start_trace(State(s): State<AppState>, bytes: Bytes) -> Result<Json<Value>, ApiError> {
    let request: StartTraceRequest = typed(&bytes)?;
    let info = trace_info_in(request.trace.trace_info)?;
    let stored = s.store.start_trace(&info).await.map_err(store_error)?;
    Ok(Json(json!({ "trace": { "trace_info": trace_info_json(&stored) } })))
}

async fn get_trace_info(State(s): State<AppState>, Path(trace_id): Path<String>) -> Result<Json<Value>, ApiError> {
    let info = s.store.trace(&trace_id).await.map_err(trace_error(&trace_id))?;
    Ok(Json(json!({ "trace": { "trace_info": trace_info_json(&info) } })))
}

async fn batch_get_infos(State(s): State<AppState>, bytes: Bytes) -> Result<Json<Value>, ApiError> {
    let request: BatchRequest = typed(&bytes)?;
    if request.trace_ids.len() as i64 > MAX_RESULTS {
        return Err(ApiError::invalid(format!("at most {MAX_RESULTS} trace ids at once")));
    }
    let mut infos = s.store.traces(&request.trace_ids).await.map_err(store_error)?;
    if let Some(experiments) = request.experiment_ids {
        infos.retain(|t| experiments.contains(&t.experiment_id.to_string()));
    }
    Ok(Json(
        json!({ "trace_infos": infos.iter().map(trace_info_json).collect::<Vec<_>>() }),
    ))
}

async fn search_traces(State(s): State<AppState>, bytes: Bytes) -> Result<Json<Value>, ApiError> {
    let request: SearchRequest = typed(&bytes)?;
    let mut experiments = request
        .locations
        .iter()
        .map(TraceLocation::experiment_id)
        .collect::<Result<Vec<_>, _>>()?;
    for id in &request.experiment_ids {
        experiments.push(
            id.trim()
                .parse()
                .map_err(|_| ApiError::invalid(format!("'{id}' is not an experiment id")))?,
        );
    }
    if experiments.is_empty() {
        return Err(ApiError::invalid(
            "a trace search needs at least one experiment location",
        ));
    }
    let limit = page_size(&request.max_results, 100, MAX_RESULTS)?;
    let offset = page_token(request.page_token.as_deref())?;
    let filter = request.filter.as_deref().unwrap_or("").trim();
    if filter.len() > MAX_FILTER {
        return Err(ApiError::invalid(format!(
            "the filter is {} bytes; the limit is {MAX_FILTER}",
            filter.len()
        )));
    }
    let clauses = parse_trace_filter(filter).map_err(|e| ApiError::invalid(format!("invalid filter: {e}")))?;
    let order = parse_order_by(&request.order_by).map_err(|e| ApiError::invalid(format!("invalid order_by: {e}")))?;
    let traces = s
        .store
        .search_traces(&experiments, &clauses, &order, limit, offset)
        .await
        .map_err(store_error)?;
    let mut out = json!({ "traces": traces.iter().map(trace_info_json).collect::<Vec<_>>() });
    if let Some(next) = next_token(traces.len(), limit, offset) {
        out["next_page_token"] = json!(next);
    }
    Ok(Json(out))
}

async fn set_tag(
    State(s): State<AppState>,
    Path(trace_id): Path<String>,
    bytes: Bytes,
) -> Result<Json<Value>, ApiError> {
    let request: SetTagRequest = typed(&bytes)?;
    validate_key("tag", &request.key)?;
    if request.value.chars().count() > MAX_TAG_VALUE {
        return Err(ApiError::invalid(format!(
            "a trace tag value may be at most {MAX_TAG_VALUE} characters"
        )));
    }
    s.store
        .set_trace_tag(&trace_id, &request.key, &request.value)
        .await
        .map_err(trace_error(&trace_id))?;
    Ok(Json(json!({})))
}

async fn delete_tag(
    State(s): State<AppState>,
    Path(trace_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    bytes: Bytes,
) -> Result<Json<Value>, ApiError> {
    // The client sends the key in the body; a query string works too.
    let key = match query.get("key") {
        Some(key) => key.clone(),
        None => typed::<DeleteTagRequest>(&bytes)?.key,
    };
    match s.store.delete_trace_tag(&trace_id, &key).await {
        Ok(()) => Ok(Json(json!({}))),
        Err(StoreError::NotFound { what: "trace tag", .. }) => Err(ApiError::not_found(
            "RESOURCE_DOES_NOT_EXIST",
            format!("No trace tag with key '{key}' for trace with ID '{trace_id}'"),
        )),
        Err(e) => Err(trace_error(&trace_id)(e)),
    }
}

async fn delete_traces(State(s): State<AppState>, bytes: Bytes) -> Result<Json<Value>, ApiError> {
    let request: DeleteTracesRequest = typed(&bytes)?;
    let experiment_id = request.experiment_id.get("experiment_id")?;
    let mut ids = request.request_ids;
    ids.extend(request.trace_ids);
    let max_timestamp = request
        .max_timestamp_millis
        .map(|t| t.get("max_timestamp_millis"))
        .transpose()?;
    let max_traces = request.max_traces.map(|t| t.get("max_traces")).transpose()?;
    match (max_timestamp, ids.is_empty()) {
        (Some(_), false) => {
            return Err(ApiError::invalid(
                "give either max_timestamp_millis or request_ids, not both",
            ))
        }
        (None, true) => {
            return Err(ApiError::invalid("give either max_timestamp_millis or request_ids"));
        }
        _ => {}
    }
    if max_traces.is_some_and(|n| n <= 0) {
        return Err(ApiError::invalid("max_traces must be positive"));
    }
    if max_traces.is_some() && max_timestamp.is_none() {
        return Err(ApiError::invalid("max_traces goes with max_timestamp_millis"));
    }
    let location = s
        .store
        .experiment(experiment_id)
        .await
        .map_err(store_error)?
        .artifact_location;
    let deleted = s
        .store
        .delete_traces(experiment_id, max_timestamp, max_traces, &ids)
        .await
        .map_err(store_error)?;
    // Their span files too, where weft's artifact proxy holds them.
    if let Some(root) = location.strip_prefix("mlflow-artifacts:/") {
        for id in &deleted {
            let path = format!("{}/traces/{id}", root.trim_matches('/'));
            s.store.delete_run_artifacts(&path).await.map_err(store_error)?;
        }
    }
    Ok(Json(json!({ "traces_deleted": deleted.len() })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_travel_as_protobuf_json() {
        let ms = timestamp_ms("2026-12-01T07:19:20.418Z").unwrap();
        assert_eq!(timestamp_text(ms), "2026-12-01T07:19:20.418Z");
        assert_eq!(timestamp_ms("2026-12-01T07:19:20Z").unwrap() % 1000, 0);
        assert_eq!(timestamp_ms("2026-12-01T07:19:20.418999Z").unwrap(), ms);
        assert!(timestamp_ms("yesterday").is_err());
        assert_eq!(duration_ms("0.002s").unwrap(), 2);
        assert_eq!(duration_ms("1.25s").unwrap(), 1250);
        assert_eq!(duration_ms("3s").unwrap(), 3000);
        assert_eq!(duration_ms("0.000001s").unwrap(), 0);
        for bad in ["2", "s", "-1s", "1.2.3s", "99999999999999999999s"] {
            assert!(duration_ms(bad).is_err(), "{bad}");
        }
        assert_eq!(duration_text(2), "0.002s");
        assert_eq!(duration_text(40), "0.040s");
        assert_eq!(duration_text(3000), "3s");
    }
}

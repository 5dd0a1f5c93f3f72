//! The HTTP face of a served model: `/invocations` (the MLflow scoring
//! protocol), `/predict` (raw), `/ping`, `/health`, `/version`, `/model`
//! and Prometheus `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::{scoring, ServeError, Serving};

/// The response header naming the version that answered.
pub const VERSION_HEADER: &str = "x-weft-model-version";

/// Upper bounds (seconds) of the latency histogram's buckets.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 10.0,
];

/// Requests and their latency.
#[derive(Default)]
struct Metrics {
    by_status: Mutex<BTreeMap<u16, u64>>,
    buckets: [AtomicU64; BUCKETS.len()],
    micros: AtomicU64,
    count: AtomicU64,
    in_flight: AtomicU64,
}

impl Metrics {
    fn record(&self, status: StatusCode, started: Instant) {
        let seconds = started.elapsed().as_secs_f64();
        *self
            .by_status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(status.as_u16())
            .or_default() += 1;
        for (bucket, le) in self.buckets.iter().zip(BUCKETS) {
            if seconds <= le {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.micros.fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }
}

struct AppState {
    serving: Arc<Serving>,
    metrics: Metrics,
}

/// The routes serving `serving`, taking request bodies up to
/// `max_request_bytes`.
pub fn router(serving: Arc<Serving>, max_request_bytes: usize) -> Router {
    let state = Arc::new(AppState {
        serving,
        metrics: Metrics::default(),
    });
    Router::new()
        .route("/invocations", post(invocations))
        .route("/predict", post(predict))
        .route("/ping", get(ping))
        .route("/health", get(ping))
        .route("/version", get(|| async { env!("CARGO_PKG_VERSION") }))
        .route("/model", get(model))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(max_request_bytes))
        .with_state(state)
}

async fn ping() -> &'static str {
    "\n"
}

/// An answer in MLflow's error shape (`{"error_code", "message"}`).
pub(crate) fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error_code": code, "message": message.into() }))).into_response()
}

fn serve_error(e: &ServeError) -> Response {
    let (status, code) = match e {
        ServeError::BadRequest(_) => (StatusCode::BAD_REQUEST, "BAD_REQUEST"),
        ServeError::TimedOut(_) => (StatusCode::GATEWAY_TIMEOUT, "DEADLINE_EXCEEDED"),
        ServeError::MemoryLimit { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "RESOURCE_EXHAUSTED"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR"),
    };
    error(status, code, e.to_string())
}

/// The media type of a request, without parameters, lower case.
fn essence(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
}

/// Runs a request on the version serving now, counting it.
async fn answered(state: &AppState, f: impl AsyncFnOnce(&crate::Served) -> Response) -> Response {
    let started = Instant::now();
    state.metrics.in_flight.fetch_add(1, Ordering::Relaxed);
    let served = state.serving.current();
    let mut response = f(&served).await;
    state.metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
    state.metrics.record(response.status(), started);
    if let Ok(v) = HeaderValue::from_str(&served.version.version.to_string()) {
        response.headers_mut().insert(VERSION_HEADER, v);
    }
    response
}

async fn invocations(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    answered(&state, async |served| {
        let table = match essence(&headers).as_deref() {
            Some("application/json") => scoring::from_json(&body),
            Some("text/csv") => scoring::from_csv(&body),
            other => {
                return error(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "BAD_REQUEST",
                    format!(
                        "this server takes the content types ['text/csv', 'application/json'], not {:?}",
                        other.unwrap_or("none")
                    ),
                )
            }
        };
        let table = match table {
            Ok(table) => table,
            Err(message) => return error(StatusCode::BAD_REQUEST, "BAD_REQUEST", message),
        };
        let request = serde_json::to_vec(&table).unwrap_or_default();
        match served.pool.predict(&request, "application/json").await {
            Ok(prediction) => match serde_json::from_slice::<Value>(&prediction.body) {
                Ok(predictions) => Json(json!({ "predictions": predictions })).into_response(),
                Err(e) => error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "INTERNAL_ERROR",
                    format!("the model server answered {}, not JSON: {e}", prediction.media_type),
                ),
            },
            Err(e) => serve_error(&e),
        }
    })
    .await
}

async fn predict(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    answered(&state, async |served| {
        let media_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/octet-stream");
        match served.pool.predict(&body, media_type).await {
            Ok(prediction) => {
                let content_type = HeaderValue::from_str(&prediction.media_type)
                    .unwrap_or(HeaderValue::from_static("application/octet-stream"));
                ([(header::CONTENT_TYPE, content_type)], prediction.body).into_response()
            }
            Err(e) => serve_error(&e),
        }
    })
    .await
}

async fn model(State(state): State<Arc<AppState>>) -> Json<Value> {
    let served = state.serving.current();
    let limits = served.pool.limits();
    Json(json!({
        "reference": served.reference.to_string(),
        "name": served.version.name,
        "version": served.version.version,
        "model_digest": served.model_digest,
        "server_digest": served.server_digest,
        "instances": limits.instances,
        "memory_bytes": limits.memory_bytes,
        "timeout_ms": limits.timeout.as_millis() as u64,
    }))
}

async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let served = state.serving.current();
    let m = &state.metrics;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP weft_serve_requests_total Requests answered, by HTTP status."
    );
    let _ = writeln!(out, "# TYPE weft_serve_requests_total counter");
    for (code, n) in m.by_status.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        let _ = writeln!(out, "weft_serve_requests_total{{code=\"{code}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "# HELP weft_serve_request_duration_seconds Time to answer a request."
    );
    let _ = writeln!(out, "# TYPE weft_serve_request_duration_seconds histogram");
    for (bucket, le) in m.buckets.iter().zip(BUCKETS) {
        let _ = writeln!(
            out,
            "weft_serve_request_duration_seconds_bucket{{le=\"{le}\"}} {}",
            bucket.load(Ordering::Relaxed)
        );
    }
    let count = m.count.load(Ordering::Relaxed);
    let _ = writeln!(out, "weft_serve_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}");
    let _ = writeln!(
        out,
        "weft_serve_request_duration_seconds_sum {}",
        m.micros.load(Ordering::Relaxed) as f64 / 1e6
    );
    let _ = writeln!(out, "weft_serve_request_duration_seconds_count {count}");
    let _ = writeln!(out, "# HELP weft_serve_in_flight Requests being answered.");
    let _ = writeln!(out, "# TYPE weft_serve_in_flight gauge");
    let _ = writeln!(out, "weft_serve_in_flight {}", m.in_flight.load(Ordering::Relaxed));
    let _ = writeln!(out, "# HELP weft_serve_model_version The version being served.");
    let _ = writeln!(out, "# TYPE weft_serve_model_version gauge");
    let name = served.version.name.replace('\\', "\\\\").replace('"', "\\\"");
    let _ = writeln!(
        out,
        "weft_serve_model_version{{model=\"{name}\"}} {}",
        served.version.version
    );
    let _ = writeln!(
        out,
        "# HELP weft_serve_swaps_total Times another version was swapped in."
    );
    let _ = writeln!(out, "# TYPE weft_serve_swaps_total counter");
    let _ = writeln!(out, "weft_serve_swaps_total {}", state.serving.swaps());
    let _ = writeln!(out, "# HELP weft_serve_instances_replaced_total Instances of the version being served replaced after a failed call.");
    let _ = writeln!(out, "# TYPE weft_serve_instances_replaced_total counter");
    let _ = writeln!(out, "weft_serve_instances_replaced_total {}", served.pool.replaced());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}

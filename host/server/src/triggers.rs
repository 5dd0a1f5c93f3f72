//! Triggered and scheduled runs under `/api/v1`:
//!
//! - `POST /pipelines/{name}/runs` `{"params": {"step.param": value}}`
//!   starts a run of the registered pipeline on this server's stack and
//!   answers 202 with its id;
//! - `GET|POST /schedules`, `GET|DELETE /schedules/{name}`,
//!   `POST /schedules/{name}/pause|resume`: the cron schedules that
//!   `weft server` fires (see `weft-triggers`).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use weft_store::{Firing, NewSchedule, Schedule};
use weft_triggers::{check_new, next_after, now_ms, parse_cron};

use crate::requests::typed;
use crate::{ApiError, AppState};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/pipelines/{name}/runs", post(start_run))
        .route("/schedules", get(list_schedules).post(create_schedule))
        .route("/schedules/{name}", get(get_schedule).delete(delete_schedule))
        .route("/schedules/{name}/pause", post(pause_schedule))
        .route("/schedules/{name}/resume", post(resume_schedule))
}

/// The body of `POST /api/v1/pipelines/{name}/runs`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct StartRun {
    /// Param overrides, `{"step.param": value}`.
    #[serde(default)]
    #[schema(value_type = Object)]
    params: serde_json::Value,
}

/// A run that was started.
#[derive(Serialize, ToSchema)]
pub(crate) struct StartedRun {
    run_id: String,
    number: i64,
}

#[utoipa::path(post, path = "/api/v1/pipelines/{name}/runs", request_body = StartRun,
    params(("name" = String, Path, description = "a pipeline registered with `weft pipeline register`")),
    responses((status = 202, body = StartedRun), (status = 400, body = crate::native::ErrorBody),
        (status = 404, body = crate::native::ErrorBody), (status = 501, body = crate::native::ErrorBody), (status = 401, description = "a write without the server's token", body = crate::native::ErrorBody), (status = 403, description = "a wrong token or a cross-origin write", body = crate::native::ErrorBody)))]
pub(crate) async fn start_run(
    State(state): State<AppState>,
    Path(name): Path<String>,
    bytes: Bytes,
) -> Result<(StatusCode, Json<StartedRun>), ApiError> {
    let body: StartRun = typed(&bytes)?;
    if !matches!(body.params, serde_json::Value::Object(_) | serde_json::Value::Null) {
        return Err(invalid(weft_triggers::TriggerError::Params));
    }
    let launcher = state.launcher.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "NOT_IMPLEMENTED",
            "this server does not run pipelines",
        )
    })?;
    // A clear 404 before anything is materialized.
    state.store.latest_definition(&name).await?;
    let launched = launcher.launch(&name, &body.params).await.map_err(ApiError::invalid)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(StartedRun {
            run_id: launched.run_id,
            number: launched.number,
        }),
    ))
}

/// The body of `POST /api/v1/schedules`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateSchedule {
    name: String,
    /// A registered pipeline.
    pipeline: String,
    /// UTC; 5 fields, or 6 with seconds first.
    cron: String,
    /// Param overrides, `{"step.param": value}`.
    #[serde(default)]
    #[schema(value_type = Object)]
    params: serde_json::Value,
    /// `skip` (default) or `catch-up`.
    #[serde(default)]
    missed: Option<String>,
}

/// A schedule and its history, newest first.
#[derive(Serialize, ToSchema)]
pub(crate) struct ScheduleDetail {
    #[serde(flatten)]
    schedule: Schedule,
    firings: Vec<Firing>,
}

/// Every schedule.
#[derive(Serialize, ToSchema)]
pub(crate) struct ScheduleList {
    schedules: Vec<Schedule>,
}

fn invalid(e: weft_triggers::TriggerError) -> ApiError {
    match e {
        weft_triggers::TriggerError::Store(e) => e.into(),
        other => ApiError::invalid(other.to_string()),
    }
}

#[utoipa::path(post, path = "/api/v1/schedules", request_body = CreateSchedule,
    responses((status = 201, body = Schedule), (status = 400, body = crate::native::ErrorBody),
        (status = 404, description = "the pipeline is not registered", body = crate::native::ErrorBody), (status = 401, description = "a write without the server's token", body = crate::native::ErrorBody), (status = 403, description = "a wrong token or a cross-origin write", body = crate::native::ErrorBody)))]
pub(crate) async fn create_schedule(
    State(state): State<AppState>,
    bytes: Bytes,
) -> Result<(StatusCode, Json<Schedule>), ApiError> {
    let body: CreateSchedule = typed(&bytes)?;
    let missed = body.missed.as_deref().unwrap_or("skip");
    let next_due_at = check_new(&body.name, &body.cron, missed, &body.params).map_err(invalid)?;
    let params = if body.params.is_null() {
        serde_json::json!({})
    } else {
        body.params
    };
    let schedule = state
        .store
        .create_schedule(NewSchedule {
            name: &body.name,
            pipeline: &body.pipeline,
            cron: &body.cron,
            params: &params,
            missed,
            next_due_at,
        })
        .await?;
    Ok((StatusCode::CREATED, Json(schedule)))
}

#[utoipa::path(get, path = "/api/v1/schedules", responses((status = 200, body = ScheduleList)))]
pub(crate) async fn list_schedules(State(state): State<AppState>) -> Result<Json<ScheduleList>, ApiError> {
    Ok(Json(ScheduleList {
        schedules: state.store.schedules().await?,
    }))
}

#[utoipa::path(get, path = "/api/v1/schedules/{name}", params(("name" = String, Path)),
    responses((status = 200, body = ScheduleDetail), (status = 404, body = crate::native::ErrorBody)))]
pub(crate) async fn get_schedule(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<ScheduleDetail>, ApiError> {
    let schedule = state.store.schedule(&name).await?;
    let firings = state.store.firings(&schedule.id, 100).await?;
    Ok(Json(ScheduleDetail { schedule, firings }))
}

async fn set_paused(state: &AppState, name: &str, paused: bool) -> Result<Json<Schedule>, ApiError> {
    let schedule = state.store.schedule(name).await?;
    let cron = parse_cron(&schedule.cron).map_err(invalid)?;
    let next = next_after(&cron, now_ms()).map_err(ApiError::invalid)?;
    Ok(Json(state.store.set_schedule_paused(name, paused, next).await?))
}

#[utoipa::path(post, path = "/api/v1/schedules/{name}/pause", params(("name" = String, Path)),
    responses((status = 200, body = Schedule), (status = 404, body = crate::native::ErrorBody), (status = 401, description = "a write without the server's token", body = crate::native::ErrorBody), (status = 403, description = "a wrong token or a cross-origin write", body = crate::native::ErrorBody)))]
pub(crate) async fn pause_schedule(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Schedule>, ApiError> {
    set_paused(&state, &name, true).await
}

#[utoipa::path(post, path = "/api/v1/schedules/{name}/resume", params(("name" = String, Path)),
    responses((status = 200, body = Schedule), (status = 404, body = crate::native::ErrorBody), (status = 401, description = "a write without the server's token", body = crate::native::ErrorBody), (status = 403, description = "a wrong token or a cross-origin write", body = crate::native::ErrorBody)))]
pub(crate) async fn resume_schedule(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Schedule>, ApiError> {
    set_paused(&state, &name, false).await
}

#[utoipa::path(delete, path = "/api/v1/schedules/{name}", params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = crate::native::ErrorBody), (status = 401, description = "a write without the server's token", body = crate::native::ErrorBody), (status = 403, description = "a wrong token or a cross-origin write", body = crate::native::ErrorBody)))]
pub(crate) async fn delete_schedule(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.store.delete_schedule(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

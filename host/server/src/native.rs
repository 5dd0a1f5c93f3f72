//! The native API under `/api/v1`: read access to everything weft records.

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};
use weft_artifacts::ArtifactKind;
use weft_store::{
    Artifact, ArtifactLink, LineageNode, Metric, MetricSeries, MetricSummary, ModelVersion, Pipeline, RegisteredModel,
    RunDetail, RunQuery, RunSort, RunSummary, StepRun, Verification,
};

use crate::{ApiError, AppState};

/// The OpenAPI document of the native API, generated from the handlers.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "weft",
        description = "weft's native API: pipelines, runs, metrics, artifacts and lineage"
    ),
    paths(
        list_pipelines,
        list_runs,
        get_run,
        run_verifications,
        get_step,
        step_logs,
        metric_summaries,
        metric_history,
        metric_series,
        list_artifacts,
        get_artifact,
        artifact_content,
        artifact_lineage,
        list_models,
        get_model,
        get_tracked_run,
        crate::triggers::start_run,
        crate::triggers::list_schedules,
        crate::triggers::create_schedule,
        crate::triggers::get_schedule,
        crate::triggers::pause_schedule,
        crate::triggers::resume_schedule,
        crate::triggers::delete_schedule
    ),
    components(schemas(
        PipelineList,
        RunList,
        ArtifactList,
        ArtifactDetail,
        StepDetail,
        MetricHistory,
        MetricSeriesList,
        MetricSummaryList,
        ModelList,
        ModelDetail,
        TrackedRunDetail,
        crate::triggers::StartRun,
        crate::triggers::StartedRun,
        crate::triggers::CreateSchedule,
        crate::triggers::ScheduleDetail,
        crate::triggers::ScheduleList,
        weft_store::Schedule,
        weft_store::Firing,
        ErrorBody
    ))
)]
pub struct ApiDoc;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(|| async { Json(ApiDoc::openapi()) }))
        .route("/pipelines", get(list_pipelines))
        .route("/runs", get(list_runs))
        .route("/runs/{run}", get(get_run))
        .route("/runs/{run}/verifications", get(run_verifications))
        .route("/runs/{run}/steps/{step}", get(get_step))
        .route("/runs/{run}/steps/{step}/logs", get(step_logs))
        .route("/runs/{run}/metrics", get(metric_summaries))
        .route("/runs/{run}/metrics/{key}", get(metric_history))
        .route("/runs/{run}/series/{key}", get(metric_series))
        .route("/artifacts", get(list_artifacts))
        .route("/artifacts/{artifact}", get(get_artifact))
        .route("/artifacts/{artifact}/content", get(artifact_content))
        .route("/artifacts/{artifact}/lineage", get(artifact_lineage))
        .route("/models", get(list_models))
        .route("/models/{name}", get(get_model))
        .route("/tracking/runs/{run}", get(get_tracked_run))
}

/// The body of every error.
#[derive(Serialize, ToSchema)]
pub(crate) struct ErrorBody {
    error_code: String,
    message: String,
}

/// Paging of a list: `limit` (1-1000, default 100) rows after `offset`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct PageQuery {
    /// Rows per page (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// Rows to skip.
    #[param(minimum = 0)]
    offset: Option<i64>,
}

impl PageQuery {
    fn resolve(&self) -> Result<(i64, i64), ApiError> {
        let limit = self.limit.unwrap_or(100);
        let offset = self.offset.unwrap_or(0);
        if !(1..=1000).contains(&limit) {
            return Err(ApiError::invalid(format!("limit must be 1 to 1000, got {limit}")));
        }
        if offset < 0 {
            return Err(ApiError::invalid(format!("offset must be >= 0, got {offset}")));
        }
        Ok((limit, offset))
    }
}

/// The offset of the next page, when this one was full.
fn next_offset(len: usize, limit: i64, offset: i64) -> Option<i64> {
    (len as i64 == limit).then_some(offset + limit)
}

fn query<T>(q: Result<Query<T>, axum::extract::rejection::QueryRejection>) -> Result<T, ApiError> {
    Ok(q?.0)
}

#[derive(Serialize, ToSchema)]
struct PipelineList {
    pipelines: Vec<Pipeline>,
    next_offset: Option<i64>,
}

/// Pipelines, by name, with their number of runs.
#[utoipa::path(get, path = "/api/v1/pipelines", params(PageQuery),
    responses((status = 200, body = PipelineList), (status = 400, body = ErrorBody)))]
async fn list_pipelines(
    State(state): State<AppState>,
    q: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<PipelineList>, ApiError> {
    let (limit, offset) = query(q)?.resolve()?;
    let pipelines = state.store.pipelines(limit, offset).await?;
    Ok(Json(PipelineList {
        next_offset: next_offset(pipelines.len(), limit, offset),
        pipelines,
    }))
}

/// Filters, order and page of the runs list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct RunsQuery {
    /// Only runs of this pipeline.
    pipeline: Option<String>,
    /// Only runs with this status.
    #[param(pattern = "^(running|succeeded|failed|cancelled|crashed)$")]
    status: Option<String>,
    /// Only runs whose pipeline name contains this (any case) or whose id starts with it.
    q: Option<String>,
    /// started (default), duration, pipeline or status.
    #[param(pattern = "^(started|duration|pipeline|status)$")]
    sort: Option<String>,
    /// desc (default) or asc.
    #[param(pattern = "^(asc|desc)$")]
    order: Option<String>,
    /// Rows per page (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// Rows to skip.
    #[param(minimum = 0)]
    offset: Option<i64>,
}

#[derive(Serialize, ToSchema)]
struct RunList {
    runs: Vec<RunSummary>,
    /// Runs matching the filters, over all pages.
    total: i64,
    next_offset: Option<i64>,
}

const RUN_STATUSES: [&str; 5] = ["running", "succeeded", "failed", "cancelled", "crashed"];

/// Runs, newest first unless sorted otherwise, each with its duration and
/// step counts (cached, failed).
#[utoipa::path(get, path = "/api/v1/runs", params(RunsQuery),
    responses((status = 200, body = RunList), (status = 400, body = ErrorBody)))]
async fn list_runs(
    State(state): State<AppState>,
    q: Result<Query<RunsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<RunList>, ApiError> {
    let q = query(q)?;
    let (limit, offset) = PageQuery {
        limit: q.limit,
        offset: q.offset,
    }
    .resolve()?;
    if let Some(status) = &q.status {
        if !RUN_STATUSES.contains(&status.as_str()) {
            return Err(ApiError::invalid(format!(
                "status must be one of {}",
                RUN_STATUSES.join(", ")
            )));
        }
    }
    let sort = match q.sort.as_deref() {
        None => RunSort::default(),
        Some(text) => RunSort::parse(text).ok_or_else(|| {
            ApiError::invalid(format!(
                "sort must be started, duration, pipeline or status, got '{text}'"
            ))
        })?,
    };
    let descending = match q.order.as_deref() {
        None | Some("desc") => true,
        Some("asc") => false,
        Some(other) => return Err(ApiError::invalid(format!("order must be asc or desc, got '{other}'"))),
    };
    let page = state
        .store
        .run_page(&RunQuery {
            pipeline: q.pipeline,
            status: q.status,
            search: q.q,
            sort,
            descending,
            limit,
            offset,
        })
        .await?;
    Ok(Json(RunList {
        next_offset: (offset + limit < page.total).then_some(offset + limit),
        total: page.total,
        runs: page.runs,
    }))
}

/// What a run's detail includes.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct RunDetailQuery {
    /// all (default): every metric point; none: no points (see
    /// `/runs/{run}/metrics` for a summary per key).
    #[param(pattern = "^(all|none)$")]
    metrics: Option<String>,
}

/// A run with its pipeline, steps, inputs, params, metrics, tags and metadata.
#[utoipa::path(get, path = "/api/v1/runs/{run}",
    params(("run" = String, Path, description = "run id, id prefix, or `latest`"), RunDetailQuery),
    responses((status = 200, body = RunDetail), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, description = "the id prefix matches several", body = ErrorBody)))]
async fn get_run(
    State(state): State<AppState>,
    Path(run): Path<String>,
    q: Result<Query<RunDetailQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<RunDetail>, ApiError> {
    match query(q)?.metrics.as_deref() {
        None | Some("all") => Ok(Json(state.store.run_detail(&run).await?)),
        Some("none") => Ok(Json(state.store.run_overview(&run).await?)),
        Some(other) => Err(ApiError::invalid(format!("metrics must be all or none, got '{other}'"))),
    }
}

/// Re-executions of a run's step runs by `weft verify` (oldest first): for
/// each, whether every output came out with its recorded digest.
#[utoipa::path(get, path = "/api/v1/runs/{run}/verifications", params(("run" = String, Path, description = "run id, id prefix, or `latest`")),
    responses((status = 200, body = Vec<Verification>), (status = 404, body = ErrorBody), (status = 409, description = "the id prefix matches several", body = ErrorBody)))]
async fn run_verifications(
    State(state): State<AppState>,
    Path(run): Path<String>,
) -> Result<Json<Vec<Verification>>, ApiError> {
    let run = state.store.run(&run).await?;
    Ok(Json(state.store.verifications(&run.id).await?))
}

#[derive(Serialize, ToSchema)]
struct MetricSummaryList {
    run_id: String,
    metrics: Vec<MetricSummary>,
}

/// Every metric key of a run, per step, with its count, range and final value.
#[utoipa::path(get, path = "/api/v1/runs/{run}/metrics", params(("run" = String, Path)),
    responses((status = 200, body = MetricSummaryList), (status = 404, body = ErrorBody), (status = 409, description = "the id prefix matches several", body = ErrorBody)))]
async fn metric_summaries(
    State(state): State<AppState>,
    Path(run): Path<String>,
) -> Result<Json<MetricSummaryList>, ApiError> {
    let run = state.store.run(&run).await?;
    let metrics = state.store.metric_summaries(&run.id).await?;
    Ok(Json(MetricSummaryList {
        run_id: run.id,
        metrics,
    }))
}

#[derive(Serialize, ToSchema)]
struct StepDetail {
    step: StepRun,
    /// The artifacts it read.
    inputs: Vec<ArtifactLink>,
    /// The artifacts it wrote (for a cached step, new versions of the bytes
    /// of the step run it was served from).
    outputs: Vec<ArtifactLink>,
}

/// One step of a run with the artifacts it read and wrote.
#[utoipa::path(get, path = "/api/v1/runs/{run}/steps/{step}",
    params(("run" = String, Path), ("step" = String, Path)),
    responses((status = 200, body = StepDetail), (status = 404, body = ErrorBody), (status = 409, description = "the id prefix matches several", body = ErrorBody)))]
async fn get_step(
    State(state): State<AppState>,
    Path((run, step)): Path<(String, String)>,
) -> Result<Json<StepDetail>, ApiError> {
    let run = state.store.run(&run).await?;
    let step = state
        .store
        .step_runs(&run.id)
        .await?
        .into_iter()
        .find(|s| s.step_name == step)
        .ok_or_else(|| {
            ApiError::not_found(
                "RESOURCE_DOES_NOT_EXIST",
                format!("run {} has no step '{step}'", run.id),
            )
        })?;
    Ok(Json(StepDetail {
        inputs: state.store.step_run_inputs(&step.id).await?,
        outputs: state.store.step_run_outputs(&step.id).await?,
        step,
    }))
}

/// The captured stdout/stderr of a step run, as text.
#[utoipa::path(get, path = "/api/v1/runs/{run}/steps/{step}/logs",
    params(("run" = String, Path), ("step" = String, Path)),
    responses((status = 200, content_type = "text/plain", body = String), (status = 404, body = ErrorBody), (status = 409, description = "the id prefix matches several", body = ErrorBody)))]
async fn step_logs(
    State(state): State<AppState>,
    Path((run, step)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let run = state.store.run(&run).await?;
    let (_, logs) = state.store.step_logs(&run.id, &step).await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], logs).into_response())
}

#[derive(Serialize, ToSchema)]
struct MetricHistory {
    run_id: String,
    key: String,
    points: Vec<Metric>,
}

/// Every point of one metric of a run.
#[utoipa::path(get, path = "/api/v1/runs/{run}/metrics/{key}",
    params(("run" = String, Path), ("key" = String, Path)),
    responses((status = 200, body = MetricHistory), (status = 404, body = ErrorBody), (status = 409, description = "the id prefix matches several", body = ErrorBody)))]
async fn metric_history(
    State(state): State<AppState>,
    Path((run, key)): Path<(String, String)>,
) -> Result<Json<MetricHistory>, ApiError> {
    let run = state.store.run(&run).await?;
    let points = state.store.metric_history(&run.id, &key).await?;
    Ok(Json(MetricHistory {
        run_id: run.id,
        key,
        points,
    }))
}

/// How many points a chart gets.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct SeriesQuery {
    /// At most this many points per series (default 1000); longer
    /// histories keep each bucket's lowest and highest point.
    #[param(minimum = 2, maximum = 10000)]
    max_points: Option<usize>,
}

#[derive(Serialize, ToSchema)]
struct MetricSeriesList {
    run_id: String,
    key: String,
    series: Vec<MetricSeries>,
}

/// One metric of a run as chart series (one per step that logged it),
/// downsampled on the server.
#[utoipa::path(get, path = "/api/v1/runs/{run}/series/{key}",
    params(("run" = String, Path), ("key" = String, Path), SeriesQuery),
    responses((status = 200, body = MetricSeriesList), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, description = "the id prefix matches several", body = ErrorBody)))]
async fn metric_series(
    State(state): State<AppState>,
    Path((run, key)): Path<(String, String)>,
    q: Result<Query<SeriesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<MetricSeriesList>, ApiError> {
    let max_points = query(q)?.max_points.unwrap_or(1000);
    if !(2..=10_000).contains(&max_points) {
        return Err(ApiError::invalid(format!(
            "max_points must be 2 to 10000, got {max_points}"
        )));
    }
    let run = state.store.run(&run).await?;
    let series = state.store.metric_series(&run.id, &key, max_points).await?;
    Ok(Json(MetricSeriesList {
        run_id: run.id,
        key,
        series,
    }))
}

/// Filters of the artifacts list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ArtifactsQuery {
    /// Only names starting with this (e.g. `iris/train.`).
    prefix: Option<String>,
    /// Rows per page (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// Rows to skip.
    #[param(minimum = 0)]
    offset: Option<i64>,
}

#[derive(Serialize, ToSchema)]
struct ArtifactList {
    artifacts: Vec<Artifact>,
    next_offset: Option<i64>,
}

/// Artifacts, newest first.
#[utoipa::path(get, path = "/api/v1/artifacts", params(ArtifactsQuery),
    responses((status = 200, body = ArtifactList), (status = 400, body = ErrorBody)))]
async fn list_artifacts(
    State(state): State<AppState>,
    q: Result<Query<ArtifactsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ArtifactList>, ApiError> {
    let q = query(q)?;
    let (limit, offset) = PageQuery {
        limit: q.limit,
        offset: q.offset,
    }
    .resolve()?;
    let artifacts = state.store.artifacts(q.prefix.as_deref(), limit, offset).await?;
    Ok(Json(ArtifactList {
        next_offset: next_offset(artifacts.len(), limit, offset),
        artifacts,
    }))
}

#[derive(Serialize, ToSchema)]
struct ArtifactDetail {
    artifact: Artifact,
    /// The step run that produced it; null for external data.
    producer: Option<StepRun>,
    /// Whether its bytes are still in the artifact store.
    bytes_present: bool,
}

const ARTIFACT_PARAM: &str = "artifact id, id prefix, name (latest version) or name:version; URL-encode '/' as %2F";

/// One artifact and the step run that produced it.
#[utoipa::path(get, path = "/api/v1/artifacts/{artifact}", params(("artifact" = String, Path, description = ARTIFACT_PARAM)),
    responses((status = 200, body = ArtifactDetail), (status = 404, body = ErrorBody), (status = 409, description = "the id prefix matches several", body = ErrorBody)))]
async fn get_artifact(
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<Json<ArtifactDetail>, ApiError> {
    let artifact = state.store.artifact(&key).await?;
    let producer = match &artifact.producer_step_run_id {
        Some(id) => Some(state.store.step_run(id).await?),
        None => None,
    };
    let kind = ArtifactKind::parse(&artifact.kind).unwrap_or(ArtifactKind::File);
    let bytes_present = state.artifacts.contains(&artifact.digest, kind).await?;
    Ok(Json(ArtifactDetail {
        artifact,
        producer,
        bytes_present,
    }))
}

/// How the content is served.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ContentQuery {
    /// When true, served as an attachment named after the artifact.
    download: Option<bool>,
}

/// The bytes of a file artifact (a directory artifact: its listing as JSON).
#[utoipa::path(get, path = "/api/v1/artifacts/{artifact}/content",
    params(("artifact" = String, Path, description = ARTIFACT_PARAM), ContentQuery),
    responses((status = 200, description = "the artifact's bytes, with its media type"), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, description = "the id prefix matches several", body = ErrorBody)))]
async fn artifact_content(
    State(state): State<AppState>,
    Path(key): Path<String>,
    q: Result<Query<ContentQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let download = query(q)?.download.unwrap_or(false);
    let artifact = state.store.artifact(&key).await?;
    let mut response = match ArtifactKind::parse(&artifact.kind) {
        Some(ArtifactKind::Dir) => Json(state.artifacts.tree(&artifact.digest).await?).into_response(),
        _ => {
            // Streamed: memory bounded by a chunk, whatever the size.
            let (size, stream) = state.artifacts.get_stream(&artifact.digest).await?;
            let media_type = header::HeaderValue::from_str(&artifact.media_type)
                .unwrap_or(header::HeaderValue::from_static("application/octet-stream"));
            (
                [
                    (header::CONTENT_TYPE, media_type),
                    (header::CONTENT_LENGTH, size.into()),
                ],
                axum::body::Body::from_stream(stream),
            )
                .into_response()
        }
    };
    // Never let a browser run an artifact as a page of this origin.
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static("sandbox; default-src 'none'; img-src 'self'; style-src 'unsafe-inline'"),
    );
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    if download {
        let value = format!("attachment; filename=\"{}\"", download_name(&artifact));
        if let Ok(value) = header::HeaderValue::from_str(&value) {
            response.headers_mut().insert(header::CONTENT_DISPOSITION, value);
        }
    }
    Ok(response)
}

/// A safe file name for a download: the artifact name's last part, with
/// anything but letters, digits, '.', '-' and '_' replaced.
fn download_name(artifact: &Artifact) -> String {
    let base = artifact.name.rsplit('/').next().unwrap_or("artifact");
    let name: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let ext = match ArtifactKind::parse(&artifact.kind) {
        Some(ArtifactKind::Dir) => ".json",
        _ => "",
    };
    format!("{name}-v{}{ext}", artifact.version)
}

/// The lineage of an artifact, back to its source data.
#[utoipa::path(get, path = "/api/v1/artifacts/{artifact}/lineage", params(("artifact" = String, Path, description = ARTIFACT_PARAM)),
    responses((status = 200, body = LineageNode), (status = 404, body = ErrorBody), (status = 409, description = "the id prefix matches several", body = ErrorBody)))]
async fn artifact_lineage(
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<Json<LineageNode>, ApiError> {
    Ok(Json(state.store.lineage(&key).await?))
}

#[derive(Serialize, ToSchema)]
struct ModelList {
    models: Vec<RegisteredModel>,
    next_offset: Option<i64>,
}

/// Registered models, by name, with their newest version and aliases.
#[utoipa::path(get, path = "/api/v1/models", params(PageQuery),
    responses((status = 200, body = ModelList), (status = 400, body = ErrorBody)))]
async fn list_models(
    State(state): State<AppState>,
    q: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ModelList>, ApiError> {
    let (limit, offset) = query(q)?.resolve()?;
    let models = state.store.registered_models(None, limit, offset).await?;
    Ok(Json(ModelList {
        next_offset: next_offset(models.len(), limit, offset),
        models,
    }))
}

#[derive(Serialize, ToSchema)]
struct ModelDetail {
    model: RegisteredModel,
    /// Every version, newest first; `tags` trace each back to its run,
    /// step, component digest and artifact (`weft.*`).
    versions: Vec<ModelVersion>,
}

/// A registered model with all its versions.
#[utoipa::path(get, path = "/api/v1/models/{name}", params(("name" = String, Path)),
    responses((status = 200, body = ModelDetail), (status = 404, body = ErrorBody)))]
async fn get_model(State(state): State<AppState>, Path(name): Path<String>) -> Result<Json<ModelDetail>, ApiError> {
    let model = state.store.registered_model(&name).await?;
    let versions = state.store.model_versions(Some(&name), None, 10_000, 0).await?;
    Ok(Json(ModelDetail { model, versions }))
}

/// A run as the MLflow API serves it: one any MLflow client logged, a
/// pipeline run or a step run (all runs of one tracking model).
#[derive(Serialize, ToSchema)]
struct TrackedRunDetail {
    run_id: String,
    run_name: String,
    experiment_id: String,
    /// The experiment's name.
    experiment: String,
    user: String,
    /// RUNNING, SCHEDULED, FINISHED, FAILED or KILLED.
    status: String,
    /// Milliseconds since the epoch.
    start_time: i64,
    end_time: Option<i64>,
    /// active or deleted.
    lifecycle_stage: String,
    artifact_uri: String,
    params: std::collections::BTreeMap<String, String>,
    tags: std::collections::BTreeMap<String, String>,
    /// The latest value of each metric (full histories:
    /// `/api/2.0/mlflow/metrics/get-history`).
    metrics: Vec<TrackedMetric>,
    /// The datasets it used (`runs/log-inputs`).
    datasets: Vec<TrackedDataset>,
}

#[derive(Serialize, ToSchema)]
struct TrackedMetric {
    key: String,
    /// `null` when the value logged was NaN.
    value: Option<f64>,
    step: i64,
    timestamp: i64,
}

#[derive(Serialize, ToSchema)]
struct TrackedDataset {
    name: String,
    digest: String,
    source_type: String,
    source: String,
}

/// A run logged through the MLflow API (by any MLflow client), by its run
/// id or `latest` (the newest active one): its experiment, params, tags,
/// latest metrics and datasets. Pipeline runs and step runs are here too,
/// under the same ids as in `/runs/{run}`.
#[utoipa::path(get, path = "/api/v1/tracking/runs/{run}",
    params(("run" = String, Path, description = "MLflow run id, or `latest`")),
    responses((status = 200, body = TrackedRunDetail), (status = 404, body = ErrorBody)))]
async fn get_tracked_run(
    State(state): State<AppState>,
    Path(run): Path<String>,
) -> Result<Json<TrackedRunDetail>, ApiError> {
    let id = if run == "latest" {
        state.store.latest_tracked_run_id().await?
    } else {
        run
    };
    let run = state.store.tracked_run(&id).await?;
    let experiment = state.store.experiment(run.info.experiment_id).await?;
    Ok(Json(TrackedRunDetail {
        run_id: run.info.run_uuid,
        run_name: run.info.name,
        experiment_id: run.info.experiment_id.to_string(),
        experiment: experiment.name,
        user: run.info.user_id,
        status: run.info.status,
        start_time: run.info.start_time,
        end_time: run.info.end_time,
        lifecycle_stage: run.info.lifecycle_stage,
        artifact_uri: run.info.artifact_uri,
        params: run.params.into_iter().collect(),
        tags: run.tags.into_iter().collect(),
        metrics: run
            .metrics
            .into_iter()
            .map(|m| TrackedMetric {
                key: m.key,
                value: (!m.value.is_nan()).then_some(m.value),
                step: m.step,
                timestamp: m.timestamp,
            })
            .collect(),
        datasets: run
            .inputs
            .into_iter()
            .map(|d| TrackedDataset {
                name: d.name,
                digest: d.digest,
                source_type: d.source_type,
                source: d.source,
            })
            .collect(),
    }))
}

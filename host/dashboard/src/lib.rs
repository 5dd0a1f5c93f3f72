//! weft's web dashboard.
//!
//! The dashboard is a small single-page application written in plain
//! JavaScript modules (no framework, no bundler, no CDN): the files under
//! `assets/` are the sources, and they are embedded in the binary as they
//! are, so the dashboard works offline. It reads everything through the
//! native API (`/api/v1`); [`routes`] serves `/` and the files under
//! `/ui/`.
//!
//! Pages (`#/...` routes in `assets/app.js`): runs (filter, sort, pages),
//! a run (its DAG with each step's state, logs, params, metrics, charts;
//! refreshed while the run goes on), comparison of runs, artifacts (preview,
//! download, lineage), models (versions, aliases, lineage), schedules
//! (next due time, what each fired, with links to its runs) and experiments
//! (any MLflow client's runs: params, metric charts, tags, datasets,
//! artifacts; deleted experiments and runs shown on request and restorable;
//! any runs compared side by side, client-logged, pipeline or step runs;
//! MLflow traces as a span tree with timings; read through the MLflow API).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// One embedded file.
struct Asset {
    path: &'static str,
    media_type: &'static str,
    body: &'static str,
}

macro_rules! assets {
    ($($path:literal => $media_type:literal),* $(,)?) => {
        &[$(Asset { path: $path, media_type: $media_type, body: include_str!(concat!("../assets/", $path)) }),*]
    };
}

/// Every file of the dashboard.
const ASSETS: &[Asset] = assets! {
    "index.html" => "text/html; charset=utf-8",
    "style.css" => "text/css; charset=utf-8",
    "favicon.svg" => "image/svg+xml",
    "app.js" => "text/javascript; charset=utf-8",
    "api.js" => "text/javascript; charset=utf-8",
    "dom.js" => "text/javascript; charset=utf-8",
    "nav.js" => "text/javascript; charset=utf-8",
    "chart.js" => "text/javascript; charset=utf-8",
    "graph.js" => "text/javascript; charset=utf-8",
    "pages/runs.js" => "text/javascript; charset=utf-8",
    "pages/run.js" => "text/javascript; charset=utf-8",
    "pages/compare.js" => "text/javascript; charset=utf-8",
    "pages/artifacts.js" => "text/javascript; charset=utf-8",
    "pages/models.js" => "text/javascript; charset=utf-8",
    "pages/schedules.js" => "text/javascript; charset=utf-8",
    "pages/experiments.js" => "text/javascript; charset=utf-8",
    "pages/traces.js" => "text/javascript; charset=utf-8",
    "pages/tracked_compare.js" => "text/javascript; charset=utf-8",
};

/// Scripts and styles come from this origin only; nothing inline, nothing
/// remote, no frames.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' blob: data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// The dashboard's routes: `/` and `/ui/{file}`.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/", get(|| async { serve("index.html") })).route(
        "/ui/{*path}",
        get(|axum::extract::Path(path): axum::extract::Path<String>| async move { serve(&path) }),
    )
}

fn serve(path: &str) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.path == path) else {
        return (StatusCode::NOT_FOUND, "no such dashboard file").into_response();
    };
    let mut response = (
        [(header::CONTENT_TYPE, HeaderValue::from_static(asset.media_type))],
        asset.body,
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    // The files change only with the binary; revalidating them is cheap.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_the_pages_import_is_embedded() {
        for asset in ASSETS.iter().filter(|a| a.path.ends_with(".js")) {
            for line in asset.body.lines().filter(|l| l.starts_with("import ")) {
                let Some(from) = line.split('"').nth(1) else { continue };
                let base = asset.path.rsplit_once('/').map(|(dir, _)| dir).unwrap_or("");
                let mut parts: Vec<&str> = base.split('/').filter(|p| !p.is_empty()).collect();
                for part in from.split('/') {
                    match part {
                        "." => {}
                        ".." => {
                            parts.pop();
                        }
                        p => parts.push(p),
                    }
                }
                let target = parts.join("/");
                assert!(
                    ASSETS.iter().any(|a| a.path == target),
                    "{} imports {from} ({target}), which is not embedded",
                    asset.path
                );
            }
        }
    }
}

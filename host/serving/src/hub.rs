//! Many registered models behind one router, each loaded on its first
//! request: what `weft server --serve-models` mounts under
//! `/serve/models/`.
//!
//! The path names the model as its URI does, then the route of
//! [`router`](crate::router): `/serve/models/iris@champion/invocations`
//! is `models:/iris@champion` answering `/invocations`;
//! `/serve/models/iris/3/model` is `models:/iris/3` answering `/model`.
//! A loaded model keeps its pool and follows its alias as `weft serve`
//! does. At most [`Hub::max_models`] stay loaded: loading one more unloads
//! the one used least recently (requests it is answering finish first).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use axum::routing::any;
use axum::Router;
use tokio::sync::OnceCell;
use tokio::task::JoinHandle;
use tower::ServiceExt;

use crate::http::error;
use crate::{ModelRef, ServeError, Served, Serving, Sources};

/// The routes of one model that the hub passes requests on to.
const ROUTES: [&str; 7] = [
    "invocations",
    "predict",
    "ping",
    "health",
    "version",
    "model",
    "metrics",
];

/// Registered models, loaded on demand.
pub struct Hub {
    sources: Sources,
    poll: Duration,
    max_request_bytes: usize,
    max_models: usize,
    started: Instant,
    loaded: Mutex<HashMap<String, Arc<Slot>>>,
}

/// One model: loaded once, by whichever request comes first.
#[derive(Default)]
struct Slot {
    model: OnceCell<Loaded>,
    /// Milliseconds since the hub started, at its last request.
    last_used: AtomicU64,
}

struct Loaded {
    router: Router,
    follower: JoinHandle<()>,
}

impl Drop for Loaded {
    fn drop(&mut self) {
        self.follower.abort();
    }
}

impl Hub {
    /// A hub loading models from `sources`, following aliases every
    /// `poll`, with at most `max_models` loaded at once.
    pub fn new(sources: Sources, poll: Duration, max_request_bytes: usize, max_models: usize) -> Arc<Self> {
        Arc::new(Hub {
            sources,
            poll,
            max_request_bytes,
            max_models: max_models.max(1),
            started: Instant::now(),
            loaded: Mutex::new(HashMap::new()),
        })
    }

    /// How many models may be loaded at once.
    pub fn max_models(&self) -> usize {
        self.max_models
    }

    /// The router of `reference`, loading it first if needed.
    async fn model(&self, reference: &ModelRef) -> Result<Router, ServeError> {
        let key = reference.to_string();
        let slot = {
            let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
            loaded.entry(key.clone()).or_default().clone()
        };
        slot.last_used
            .store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
        let result = slot
            .model
            .get_or_try_init(|| async {
                let served = Served::load(&self.sources, reference).await?;
                let serving = Serving::new(served);
                let follower = tokio::spawn(serving.clone().follow(self.sources.clone(), self.poll));
                Ok::<_, ServeError>(Loaded {
                    router: crate::router(serving, self.max_request_bytes),
                    follower,
                })
            })
            .await;
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(model) => {
                let router = model.router.clone();
                self.unload_beyond_limit(&mut loaded, &key);
                Ok(router)
            }
            Err(e) => {
                // Not kept: the next request tries again (the model may be
                // registered by then).
                if loaded.get(&key).is_some_and(|s| Arc::ptr_eq(s, &slot)) {
                    loaded.remove(&key);
                }
                Err(e)
            }
        }
    }

    /// Unloads the least recently used loaded models (never `keep`) until
    /// at most `max_models` remain.
    fn unload_beyond_limit(&self, loaded: &mut HashMap<String, Arc<Slot>>, keep: &str) {
        while loaded.values().filter(|s| s.model.initialized()).count() > self.max_models {
            let oldest = loaded
                .iter()
                .filter(|(k, s)| k.as_str() != keep && s.model.initialized())
                .min_by_key(|(_, s)| s.last_used.load(Ordering::Relaxed))
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => {
                    tracing::info!("unloading {k}: more than {} models loaded", self.max_models);
                    loaded.remove(&k);
                }
                None => break,
            }
        }
    }
}

/// The routes of `hub`, to mount under `/serve/models`.
pub fn hub_router(hub: Arc<Hub>) -> Router {
    Router::new().route("/{*path}", any(dispatch)).with_state(hub)
}

async fn dispatch(State(hub): State<Arc<Hub>>, Path(path): Path<String>, request: Request) -> Response {
    let Some((model, route)) = path.rsplit_once('/').filter(|(_, r)| ROUTES.contains(r)) else {
        return error(
            StatusCode::NOT_FOUND,
            "ENDPOINT_NOT_FOUND",
            format!(
                "no such endpoint: use /serve/models/NAME@ALIAS/ROUTE (or NAME/VERSION, NAME/latest), \
                 ROUTE one of {}",
                ROUTES.join(", ")
            ),
        );
    };
    let reference = match ModelRef::parse(&format!("models:/{model}")) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", e.to_string()),
    };
    let router = match hub.model(&reference).await {
        Ok(router) => router,
        Err(e @ ServeError::NotFound(_)) => {
            return error(StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST", e.to_string())
        }
        Err(e @ ServeError::NoServer { .. }) => return error(StatusCode::CONFLICT, "INVALID_STATE", e.to_string()),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR", e.to_string()),
    };
    let (mut parts, body) = request.into_parts();
    let query = parts.uri.query().map(|q| format!("?{q}")).unwrap_or_default();
    parts.uri = match format!("/{route}{query}").parse::<Uri>() {
        Ok(uri) => uri,
        Err(e) => return error(StatusCode::BAD_REQUEST, "BAD_REQUEST", e.to_string()),
    };
    match router.oneshot(Request::from_parts(parts, Body::new(body))).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

//! `weft serve models:/NAME@ALIAS`: a registered model answered over HTTP
//! by its sandboxed model server (see the weft-serving crate).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use weft_serving::{ModelRef, PoolLimits, Served, Serving, Sources};

use crate::context::{CliError, CliResult, Stack, Stores};
use crate::exit;

/// What `weft serve` was asked.
pub struct ServeArgs<'a> {
    pub state: &'a Path,
    pub stack: &'a Stack,
    pub model: &'a str,
    pub addr: SocketAddr,
    pub limits: PoolLimits,
    pub poll: Duration,
    pub max_request_bytes: u64,
    pub component: Option<PathBuf>,
}

pub async fn serve(args: ServeArgs<'_>) -> CliResult<u8> {
    let reference = ModelRef::parse(args.model).map_err(|e| CliError::usage(e.to_string()))?;
    if args.limits.instances == 0 {
        return Err(CliError::usage("--instances must be at least 1"));
    }
    if args.poll.is_zero() {
        return Err(CliError::usage("--poll must be longer than 0s"));
    }
    let max_request_bytes = usize::try_from(args.max_request_bytes)
        .map_err(|_| CliError::usage("--max-request is larger than this machine can hold"))?;
    let stores = Stores::open(args.state, args.stack).await?;
    let sources = Sources {
        runtime: crate::commands::open_runtime(args.state)?,
        store: stores.store.clone(),
        artifacts: stores.artifacts.clone(),
        component: args.component,
        limits: args.limits,
    };
    let served = Served::load(&sources, &reference)
        .await
        .map_err(|e| CliError::usage(e.to_string()))?;
    let version = served.version.version;
    let serving = Serving::new(served);
    let follower = tokio::spawn(serving.clone().follow(sources, args.poll));
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .map_err(|e| CliError::usage(format!("cannot listen on {}: {e}", args.addr)))?;
    let local = listener.local_addr().map_err(|e| CliError::usage(e.to_string()))?;
    eprintln!(
        "serving {reference} (version {version}) on http://{local} with {} instance(s), {} and {:?} per request",
        args.limits.instances,
        bytesize::ByteSize::b(args.limits.memory_bytes).display().iec(),
        args.limits.timeout,
    );
    let app = weft_serving::router(serving, max_request_bytes);
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
    follower.abort();
    served.map_err(|e| CliError::usage(format!("server error: {e}")))?;
    Ok(exit::OK)
}

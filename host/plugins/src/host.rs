//! Calling plugins: a fresh sandboxed instance per call.

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::uri::Scheme;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::Store;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{
    Error as HttpError, RequestOptions, WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView,
};
use weft_runtime::{Cancel, Guard, Guarded, Interrupt, Runtime};

use crate::bindings::{types, Alerter, DataValidator, Materializer, TrackerSink};
use crate::home::expect_kind;
use crate::{
    Artifact, Event, Grant, InstalledPlugin, Kind, Manifest, PluginError, TrackedRun, Validation, MAX_ARTIFACT_BYTES,
};

/// Memory a plugin instance may use (all its memories and tables).
const MEMORY_LIMIT: u64 = 256 << 20;
/// How long one call may take, network included.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// How a plugin call went.
#[derive(Debug)]
pub struct CallReport<T> {
    /// The plugin's answer, or why there is none (its own error, a trap, a
    /// timeout), as a message for the user.
    pub result: Result<T, String>,
    /// HTTP requests the host refused because their host was not granted,
    /// e.g. `POST http://10.0.0.1:9/x: 10.0.0.1:9 is not granted`.
    pub refused: Vec<String>,
    pub duration: Duration,
}

/// Runs plugins on the process's runtime (its engine, epoch ticker and
/// compiled cache).
#[derive(Clone)]
pub struct PluginHost {
    runtime: Runtime,
    engine: wasmtime::Engine,
    linker: Arc<Linker<PluginState>>,
    /// Installed plugins compiled so far, by digest: a run calls the same
    /// gate or hook many times.
    compiled: Arc<Mutex<HashMap<String, Component>>>,
}

struct PluginState {
    wasi: WasiCtx,
    table: ResourceTable,
    http: WasiHttpCtx,
    gate: HttpGate,
    guard: Guard,
}

impl Guarded for PluginState {
    fn guard(&mut self) -> &mut Guard {
        &mut self.guard
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for PluginState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.gate,
        }
    }
}

/// Lets a request out only to a granted host; notes every refusal.
struct HttpGate {
    grant: Grant,
    refused: Arc<Mutex<Vec<String>>>,
}

type Sent = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
                ),
                HttpError,
            >,
        > + Send,
>;

impl WasiHttpHooks for HttpGate {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Sent {
        _ = fut;
        let uri = request.uri();
        let https = uri.scheme() == Some(&Scheme::HTTPS);
        let granted = uri
            .host()
            .is_some_and(|host| self.grant.allows(host, uri.port_u16(), https));
        if !granted {
            let authority = uri.authority().map(|a| a.to_string()).unwrap_or_default();
            let line = format!("{} {uri}: {authority} is not granted", request.method());
            // The log names the host only: a URL's path or query may hold
            // a secret from the plugin's configuration (the refusal itself
            // is recorded with the call, masked).
            tracing::warn!(
                "plugin request refused: {} to {authority} is not granted",
                request.method()
            );
            self.refused.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        }
        Box::new(async move {
            use http_body_util::BodyExt;
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = Result<(), HttpError>> + Send>,
            ))
        })
    }
}

impl PluginHost {
    /// A host on `runtime`'s engine, with WASI (nothing preopened, no
    /// sockets, no environment) and `wasi:http` behind the grant.
    pub fn new(runtime: Runtime) -> Result<Self, PluginError> {
        let engine = runtime.engine().map_err(PluginError::Runtime)?.clone();
        let mut linker = Linker::<PluginState>::new(&engine);
        let engine_err =
            |e: wasmtime::Error| PluginError::Runtime(weft_runtime::RuntimeError::Engine(format!("{e:#}")));
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(engine_err)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(engine_err)?;
        Ok(Self {
            runtime,
            engine,
            linker: Arc::new(linker),
            compiled: Arc::default(),
        })
    }

    /// A fresh store with the plugin's grant, its memory limit and its
    /// deadline (the same guard steps run under), and its watchdog.
    fn store(&self, grant: Grant) -> (Store<PluginState>, weft_runtime::Watchdog, Arc<Mutex<Vec<String>>>) {
        let refused = Arc::new(Mutex::new(Vec::new()));
        let wasi = weft_runtime::sandbox_wasi().build();
        let guard = Guard::new(MEMORY_LIMIT, CALL_TIMEOUT, Cancel::default());
        let watchdog = guard.watchdog();
        let state = PluginState {
            wasi,
            table: ResourceTable::new(),
            http: WasiHttpCtx::new(),
            gate: HttpGate {
                grant,
                refused: refused.clone(),
            },
            guard,
        };
        let mut store = Store::new(&self.engine, state);
        Guard::install(&mut store);
        (store, watchdog, refused)
    }

    /// An installed plugin's component, compiled once per process.
    async fn installed(&self, plugin: &InstalledPlugin) -> Result<Component, PluginError> {
        let cached = self
            .compiled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&plugin.digest)
            .cloned();
        if let Some(component) = cached {
            return Ok(component);
        }
        let component = self.component(&plugin.component).await?;
        self.compiled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(plugin.digest.clone(), component.clone());
        Ok(component)
    }

    async fn component(&self, path: &Path) -> Result<Component, PluginError> {
        let runtime = self.runtime.clone();
        let owned = path.to_owned();
        tokio::task::spawn_blocking(move || runtime.component(&owned))
            .await
            .map_err(|e| PluginError::NotAPlugin {
                path: path.to_owned(),
                message: e.to_string(),
            })?
            .map_err(|e| PluginError::NotAPlugin {
                path: path.to_owned(),
                message: e.to_string(),
            })
    }

    /// The manifest of the plugin at `path`, from its `describe` export,
    /// called with nothing granted.
    pub async fn describe(&self, path: &Path) -> Result<Manifest, PluginError> {
        let component = self.component(path).await?;
        let not_plugin = |e: wasmtime::Error| PluginError::NotAPlugin {
            path: path.to_owned(),
            message: format!("{e:#}"),
        };
        let (mut store, watchdog, _) = self.store(Grant::default());
        let call = async {
            let instance = self.linker.instantiate_async(&mut store, &component).await?;
            let describe = instance.get_typed_func::<(), (Manifest,)>(&mut store, "describe")?;
            let (manifest,) = describe.call_async(&mut store, ()).await?;
            Ok::<_, wasmtime::Error>(manifest)
        };
        let manifest = watchdog
            .watch(call)
            .await
            .map_err(|_| not_plugin(wasmtime::Error::msg("describe did not answer in time")))?
            .map_err(not_plugin)?;
        Ok(manifest)
    }

    /// Tells an alerter of an event.
    pub async fn notify(
        &self,
        plugin: &InstalledPlugin,
        config: &str,
        event: &Event,
    ) -> Result<CallReport<()>, PluginError> {
        expect_kind(plugin, Kind::Alerter)?;
        let component = self.installed(plugin).await?;
        Ok(self
            .call(plugin, |linker, mut store| async move {
                let p = Alerter::instantiate_async(&mut store, &component, linker).await?;
                p.call_notify(&mut store, config, event).await
            })
            .await)
    }

    /// Hands a finished run to a tracker sink.
    pub async fn publish(
        &self,
        plugin: &InstalledPlugin,
        config: &str,
        run: &TrackedRun,
    ) -> Result<CallReport<()>, PluginError> {
        expect_kind(plugin, Kind::TrackerSink)?;
        let component = self.installed(plugin).await?;
        Ok(self
            .call(plugin, |linker, mut store| async move {
                let p = TrackerSink::instantiate_async(&mut store, &component, linker).await?;
                p.call_publish(&mut store, config, run).await
            })
            .await)
    }

    /// Asks a data validator about an artifact.
    pub async fn validate(
        &self,
        plugin: &InstalledPlugin,
        config: &str,
        artifact: &Artifact,
    ) -> Result<CallReport<Validation>, PluginError> {
        expect_kind(plugin, Kind::DataValidator)?;
        check_size(artifact)?;
        let component = self.installed(plugin).await?;
        Ok(self
            .call(plugin, |linker, mut store| async move {
                let p = DataValidator::instantiate_async(&mut store, &component, linker).await?;
                p.call_validate(&mut store, config, artifact).await
            })
            .await)
    }

    /// Asks a materializer to convert an artifact to media type `to`.
    pub async fn convert(
        &self,
        plugin: &InstalledPlugin,
        config: &str,
        artifact: &Artifact,
        to: &str,
    ) -> Result<CallReport<Vec<u8>>, PluginError> {
        expect_kind(plugin, Kind::Materializer)?;
        check_size(artifact)?;
        let component = self.installed(plugin).await?;
        let report = self
            .call(plugin, |linker, mut store| async move {
                let p = Materializer::instantiate_async(&mut store, &component, linker).await?;
                p.call_convert(&mut store, config, artifact, to).await
            })
            .await;
        Ok(match report.result {
            Ok(bytes) if bytes.len() > MAX_ARTIFACT_BYTES => CallReport {
                result: Err(format!("the converted artifact is over {MAX_ARTIFACT_BYTES} bytes")),
                ..report
            },
            _ => report,
        })
    }

    /// One call in a fresh store with the plugin's grant; never fails the
    /// host.
    async fn call<'a, T, F, Fut>(&'a self, plugin: &InstalledPlugin, f: F) -> CallReport<T>
    where
        F: FnOnce(&'a Linker<PluginState>, Store<PluginState>) -> Fut,
        Fut: Future<Output = wasmtime::Result<Result<T, types::PluginError>>>,
    {
        let started = Instant::now();
        let (store, watchdog, refused) = self.store(plugin.grant.clone());
        let result = match watchdog.watch(f(&self.linker, store)).await {
            Err(Interrupt::Timeout) => Err(format!("no answer within {} s", CALL_TIMEOUT.as_secs())),
            Err(Interrupt::Cancelled) => Err("cancelled".into()),
            Ok(Err(trap)) if trap.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt) => {
                Err(format!("no answer within {} s", CALL_TIMEOUT.as_secs()))
            }
            Ok(Err(trap)) => Err(format!("the plugin crashed: {trap:#}")),
            Ok(Ok(Err(types::PluginError::InvalidConfig(m)))) => Err(format!("invalid configuration: {m}")),
            Ok(Ok(Err(types::PluginError::Failed(m)))) => Err(m),
            Ok(Ok(Ok(value))) => Ok(value),
        };
        let refused = std::mem::take(&mut *refused.lock().unwrap_or_else(|p| p.into_inner()));
        CallReport {
            result,
            refused,
            duration: started.elapsed(),
        }
    }
}

fn check_size(artifact: &Artifact) -> Result<(), PluginError> {
    if artifact.data.len() > MAX_ARTIFACT_BYTES {
        return Err(PluginError::BadConfig(format!(
            "{} is {} bytes; plugins take artifacts of at most {MAX_ARTIFACT_BYTES}",
            artifact.name,
            artifact.data.len()
        )));
    }
    Ok(())
}

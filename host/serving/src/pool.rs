//! A pool of model server instances: each loads the model once, then
//! answers one request at a time under its limits.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use weft_runtime::{Cancel, Guard, Guarded, LogPipe, Runtime, RuntimeError};

use crate::ServeError;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit/inference",
        world: "model",
        imports: { default: trappable },
        exports: { default: async },
    });
}

use bindings::weft::inference::types::InferenceError;
use bindings::{Model, ModelPre};

/// Most resources (streams, ...) an instance may hold at once.
const MAX_RESOURCES: usize = 1000;

/// The limits of a pool.
#[derive(Debug, Clone, Copy)]
pub struct PoolLimits {
    /// Instances, and so requests answered at once; more wait their turn.
    pub instances: usize,
    /// Everything one instance may hold: its memories and tables, the
    /// loaded model included.
    pub memory_bytes: u64,
    /// The longest one request may compute.
    pub timeout: Duration,
    /// The longest loading the model into an instance may take.
    pub load_timeout: Duration,
}

impl Default for PoolLimits {
    fn default() -> Self {
        Self {
            instances: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
            memory_bytes: 512 << 20,
            timeout: Duration::from_secs(10),
            load_timeout: Duration::from_secs(60),
        }
    }
}

/// A model server's answer.
#[derive(Debug, Clone)]
pub struct Prediction {
    pub media_type: String,
    pub body: Vec<u8>,
}

/// Per-instance state: WASI with nothing granted, and the guard.
struct ModelState {
    wasi: WasiCtx,
    table: ResourceTable,
    guard: Guard,
}

impl WasiView for ModelState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl Guarded for ModelState {
    fn guard(&mut self) -> &mut Guard {
        &mut self.guard
    }
}

impl bindings::weft::inference::types::Host for ModelState {}

/// One instance with the model loaded.
struct Instance {
    store: Store<ModelState>,
    model: Model,
    /// What the server prints to stderr during one call (a panic's
    /// message, say): told to the client when the call fails.
    stderr: LogPipe,
}

/// Bytes of a model server's stderr kept per call.
const STDERR_BYTES: usize = 4096;

/// Instances of one model server with one model loaded.
pub struct Pool {
    /// Held so that the runtime's epoch ticker, which enforces the time
    /// limit, runs as long as the pool does.
    _runtime: Runtime,
    pre: ModelPre<ModelState>,
    engine: Engine,
    model: Bytes,
    limits: PoolLimits,
    idle: Mutex<Vec<Instance>>,
    slots: tokio::sync::Semaphore,
    replaced: AtomicU64,
}

impl Pool {
    /// Starts `limits.instances` instances of `component`, each loading
    /// `model`. Fails (naming `what`) if the component is not a model
    /// server or does not load the model.
    pub async fn start(
        runtime: &Runtime,
        component: &Component,
        model: Bytes,
        what: &str,
        limits: PoolLimits,
    ) -> Result<Self, ServeError> {
        let engine = runtime.engine()?.clone();
        let engine_err = |e: wasmtime::Error| ServeError::Runtime(RuntimeError::Engine(format!("{e:#}")));
        let mut linker = Linker::<ModelState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(engine_err)?;
        Model::add_to_linker::<ModelState, HasSelf<ModelState>>(&mut linker, |s| s).map_err(engine_err)?;
        let not_server = |e: wasmtime::Error| ServeError::Load {
            what: what.to_string(),
            message: format!("the component is not a model server (the `model` world of wit/inference): {e:#}"),
        };
        let pre = linker.instantiate_pre(component).map_err(not_server)?;
        let pre = ModelPre::new(pre).map_err(not_server)?;
        let instances = limits.instances.max(1);
        let pool = Pool {
            _runtime: runtime.clone(),
            pre,
            engine,
            model,
            limits,
            idle: Mutex::new(Vec::with_capacity(instances)),
            slots: tokio::sync::Semaphore::new(instances),
            replaced: AtomicU64::new(0),
        };
        let mut warm = Vec::with_capacity(instances);
        for _ in 0..instances {
            warm.push(pool.instantiate().await.map_err(|message| ServeError::Load {
                what: what.to_string(),
                message,
            })?);
        }
        *pool.lock_idle() = warm;
        Ok(pool)
    }

    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<Instance>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A fresh instance with the model loaded, or why not.
    async fn instantiate(&self) -> Result<Instance, String> {
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_RESOURCES);
        let guard = Guard::new(self.limits.memory_bytes, self.limits.load_timeout, Cancel::default());
        let watchdog = guard.watchdog();
        let stderr = LogPipe::new(STDERR_BYTES);
        let state = ModelState {
            wasi: weft_runtime::sandbox_wasi().stderr(stderr.clone()).build(),
            table,
            guard,
        };
        let mut store = Store::new(&self.engine, state);
        Guard::install(&mut store);
        let outcome = watchdog
            .watch(async {
                let model = self.pre.instantiate_async(&mut store).await?;
                let loaded = model.call_load(&mut store, &self.model).await?;
                Ok::<_, wasmtime::Error>((model, loaded))
            })
            .await;
        match outcome {
            // What loading printed is cleared before the first call.
            Ok(Ok((model, Ok(())))) => Ok(Instance { store, model, stderr }),
            Ok(Ok((_, Err(e)))) => Err(inference_error(e)),
            Ok(Err(trap)) => Err(failure(trap, &store.data().guard, self.limits.load_timeout, &stderr).to_string()),
            Err(_) => Err(format!("loading took longer than {:?}", self.limits.load_timeout)),
        }
    }

    /// Answers one request on an idle instance (waiting for one when all
    /// are busy). A call that traps or breaks a limit loses its instance,
    /// which a fresh one replaces.
    pub async fn predict(&self, body: &[u8], media_type: &str) -> Result<Prediction, ServeError> {
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| ServeError::Failed("the pool is closed".into()))?;
        let idle = self.lock_idle().pop();
        let mut instance = match idle {
            Some(instance) => instance,
            None => self
                .instantiate()
                .await
                .map_err(|m| ServeError::Failed(format!("a fresh instance could not load the model: {m}")))?,
        };
        instance.stderr.clear();
        let watchdog = instance.store.data_mut().guard.rearm(self.limits.timeout);
        let outcome = watchdog
            .watch(instance.model.call_predict(&mut instance.store, body, media_type))
            .await;
        let result = match outcome {
            Ok(Ok(answer)) => {
                self.lock_idle().push(instance);
                return match answer {
                    Ok(response) => Ok(Prediction {
                        media_type: response.media_type,
                        body: response.body,
                    }),
                    Err(InferenceError::InvalidRequest(m)) => Err(ServeError::BadRequest(m)),
                    Err(e) => Err(ServeError::Failed(inference_error(e))),
                };
            }
            Ok(Err(trap)) => failure(
                trap,
                &instance.store.data().guard,
                self.limits.timeout,
                &instance.stderr,
            ),
            Err(_) => ServeError::TimedOut(self.limits.timeout),
        };
        // The instance may be left mid-call: it is dropped, and the next
        // request on this slot starts a fresh one.
        drop(instance);
        self.replaced.fetch_add(1, Ordering::Relaxed);
        Err(result)
    }

    /// Instances thrown away after a failed call.
    pub fn replaced(&self) -> u64 {
        self.replaced.load(Ordering::Relaxed)
    }

    /// The pool's limits.
    pub fn limits(&self) -> &PoolLimits {
        &self.limits
    }
}

fn inference_error(e: InferenceError) -> String {
    match e {
        InferenceError::InvalidModel(m) => format!("invalid model: {m}"),
        InferenceError::InvalidRequest(m) => format!("invalid request: {m}"),
        InferenceError::Failed(m) => m,
    }
}

/// What a trapped call means for the user, with the end of what the
/// server printed to stderr during the call (a Rust panic prints its
/// message there before it traps).
fn failure(trap: wasmtime::Error, guard: &Guard, timeout: Duration, stderr: &LogPipe) -> ServeError {
    if guard.interrupted().is_some() {
        return ServeError::TimedOut(timeout);
    }
    if let Some(requested) = guard.memory_exceeded() {
        return ServeError::MemoryLimit {
            requested,
            limit: guard.memory_limit(),
        };
    }
    let root = trap.root_cause().to_string();
    let message = root.strip_prefix("wasm trap: ").unwrap_or(&root);
    let mut message = message.lines().next().unwrap_or_default().to_string();
    let printed = stderr.text();
    let printed = printed.trim();
    if !printed.is_empty() {
        message.push_str("; it printed: ");
        message.push_str(printed);
    }
    ServeError::Failed(message)
}

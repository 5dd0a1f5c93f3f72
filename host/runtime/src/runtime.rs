//! The engine, the linker, the compiled-component cache and the epoch
//! ticker, shared by every step run of a process.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::cache::{engine_hash, CompiledCache};
use crate::compile::{compile_in_child, Compiler, Shape};
use crate::determinism::{Virtual, VirtualView};
use crate::logs::LogPipe;
use crate::sandbox::{panic_message, Guard, Guarded, Interrupt, EPOCH_TICK};
use crate::tracker::Tracker;
use crate::{
    component_digest, Cancel, ComponentBytes, Determinism, Limits, RuntimeError, SandboxDirs, StepFailure, StepOutcome,
};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit/step",
        world: "step",
        imports: { default: trappable },
        exports: { default: async },
    });
}

use bindings::weft::step::types::StepError;
use bindings::StepPre;

/// Largest component file accepted.
pub const MAX_COMPONENT_BYTES: u64 = 512 * 1024 * 1024;

/// The engine configuration. With `pooling`, instance and memory slots are
/// reserved once and reused, which makes instantiating a small step several
/// times faster; memory limits are still enforced per store.
///
/// NaN canonicalization and deterministic relaxed SIMD make floating point
/// the same on every CPU: a step's outputs must not depend on the machine.
/// Both are part of the engine's compatibility hash, so compiled components
/// cached under other settings are not reused.
pub(crate) fn engine_config(pooling: bool) -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.cranelift_nan_canonicalization(true);
    config.relaxed_simd_deterministic(true);
    if pooling {
        let mut pool = wasmtime::PoolingAllocationConfig::default();
        // Per-memory and per-table caps are wide: what bounds a step is its
        // memory budget, summed over all its memories and tables (see
        // `Guard`), not how its component happens to be split.
        pool.total_component_instances(256)
            .total_core_instances(2048)
            .total_memories(1024)
            .total_tables(1024)
            .max_memories_per_module(4)
            .max_tables_per_module(4)
            .table_elements(1_000_000)
            .total_stacks(256)
            .max_memories_per_component(32)
            .max_tables_per_component(64)
            .max_core_instances_per_component(64)
            .max_component_instance_size(4 << 20)
            .max_core_instance_size(4 << 20)
            .max_memory_size(4 << 30)
            // A step's memories and tables go back to the pool zeroed with
            // memset (only the pages it dirtied, found with PAGEMAP_SCAN
            // where the kernel has it) instead of madvise, which unmaps
            // pages and interrupts every core to flush their TLBs: most of
            // the cost of a short step.
            .linear_memory_keep_resident(2 << 20)
            .table_keep_resident(64 << 10)
            .pagemap_scan(wasmtime::Enabled::Auto)
            .decommit_batch_size(32);
        config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

/// Settings of a [`Runtime`].
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// Where compiled components are cached.
    pub cache_dir: PathBuf,
    /// How components are compiled (in a bounded child process, or here).
    pub compiler: Compiler,
    /// The largest shape a component may have to be compiled at all.
    pub shape_limits: Shape,
}

impl RuntimeOptions {
    /// Compiled components cached in `cache_dir`, compiled in this process
    /// (tools and tests; `weft` itself compiles in a bounded child).
    pub fn in_process(cache_dir: PathBuf) -> Self {
        Self {
            cache_dir,
            compiler: Compiler::InProcess,
            shape_limits: Shape::LIMITS,
        }
    }
}

/// The WebAssembly host of one process. Cheap to clone.
///
/// The engine, its linker and its epoch ticker start on first use: a run
/// served entirely from the cache never needs them.
#[derive(Clone)]
pub struct Runtime {
    lazy: Arc<Lazy>,
}

struct Lazy {
    options: RuntimeOptions,
    started: std::sync::OnceLock<Result<Inner, String>>,
}

struct Inner {
    engine: Engine,
    linker: Linker<StepState>,
    cache: CompiledCache,
    engine_hash: String,
    loaded: Mutex<HashMap<String, LoadedStep>>,
    compiling: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    stop_ticker: Arc<AtomicBool>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::SeqCst);
    }
}

impl Inner {
    /// Creates the engine and starts its epoch ticker.
    fn start(options: &RuntimeOptions) -> Result<Self, RuntimeError> {
        let engine = match Engine::new(&engine_config(true)) {
            Ok(engine) => engine,
            // Pooling reserves address space up front; where that is not
            // allowed (a low `ulimit -v`), fall back to on-demand allocation.
            Err(e) => {
                tracing::warn!("pooling allocator unavailable ({e:#}); using on-demand allocation");
                Engine::new(&engine_config(false)).map_err(|e| RuntimeError::Engine(format!("{e:#}")))?
            }
        };

        let mut linker = Linker::<StepState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        crate::determinism::add_overrides(&mut linker).map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        bindings::Step::add_to_linker::<StepState, HasSelf<StepState>>(&mut linker, |s| s)
            .map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;

        let cache = CompiledCache::open(options.cache_dir.clone())?;
        let stop_ticker = Arc::new(AtomicBool::new(false));
        {
            let engine = engine.clone();
            let stop = stop_ticker.clone();
            std::thread::Builder::new()
                .name("weft-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::SeqCst) {
                        std::thread::sleep(EPOCH_TICK);
                        engine.increment_epoch();
                    }
                })
                .map_err(|e| RuntimeError::Engine(format!("cannot start the epoch ticker: {e}")))?;
        }
        Ok(Inner {
            engine_hash: engine_hash(&engine),
            engine,
            linker,
            cache,
            loaded: Mutex::new(HashMap::new()),
            compiling: Mutex::new(HashMap::new()),
            stop_ticker,
        })
    }
}

impl Runtime {
    /// A runtime whose engine starts on first use.
    pub fn new(options: RuntimeOptions) -> Result<Self, RuntimeError> {
        Ok(Self {
            lazy: Arc::new(Lazy {
                options,
                started: std::sync::OnceLock::new(),
            }),
        })
    }

    /// Starts the engine on a thread of its own, so that it is ready (or
    /// nearly) when the first step needs it, while the caller opens its
    /// stores and records the run; then, on the same thread, loads
    /// `first` (the component of the step that runs first) if it is
    /// already compiled. A component that would need compiling, or whose
    /// compiled copy does not verify, is left to its step, which may be a
    /// cache hit. The first use waits for either to finish; an error shows
    /// there. A run that never needs the engine pays only the thread's CPU
    /// time.
    pub fn start_in_background(&self, first: Option<PathBuf>) {
        if self.lazy.started.get().is_some() && first.is_none() {
            return;
        }
        let runtime = self.clone();
        let spawned = std::thread::Builder::new()
            .name("weft-engine-start".into())
            .spawn(move || {
                if runtime.inner().is_err() {
                    return;
                }
                if let Some(path) = first {
                    if let Ok(component) = ComponentBytes::read(&path) {
                        let _ = runtime.load_with(&path, component.bytes(), component.digest(), false);
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::debug!("engine not started in the background: {e}");
        }
    }

    /// The engine and everything around it, started on first use.
    fn inner(&self) -> Result<&Inner, RuntimeError> {
        self.lazy
            .started
            .get_or_init(|| Inner::start(&self.lazy.options).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| RuntimeError::Engine(e.clone()))
    }

    /// Reads, compiles (or loads from the compiled cache) and
    /// pre-instantiates a step component. Loading the same bytes twice
    /// returns the same [`LoadedStep`]. This is CPU-bound: call it from a
    /// blocking context.
    pub fn load(&self, path: &Path) -> Result<LoadedStep, RuntimeError> {
        self.load_component(path, &ComponentBytes::read(path)?)
    }

    /// Like [`Runtime::load`], from a component already in memory (its
    /// digest computed when it was read); `path` only names it in errors.
    pub fn load_component(&self, path: &Path, component: &ComponentBytes) -> Result<LoadedStep, RuntimeError> {
        self.load_with(path, component.bytes(), component.digest(), true)?
            .ok_or_else(|| RuntimeError::Engine("the component was neither compiled nor loaded".into()))
    }

    /// [`Runtime::load_component`] of `bytes`, whose digest is `digest`,
    /// or with `compile` false only from the compiled cache (`None` when
    /// it is not there or does not verify).
    fn load_with(
        &self,
        path: &Path,
        bytes: &[u8],
        digest: &str,
        compile: bool,
    ) -> Result<Option<LoadedStep>, RuntimeError> {
        let inner = self.inner()?;
        let digest = digest.to_string();
        if let Some(step) = self.loaded(&digest) {
            return Ok(Some(step));
        }
        // One compilation per component: a second caller waits for the
        // first and then finds the component loaded.
        let gate = {
            let mut gates = inner.compiling.lock().unwrap_or_else(|p| p.into_inner());
            gates.entry(digest.clone()).or_default().clone()
        };
        let _compiling = gate.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(step) = self.loaded(&digest) {
            return Ok(Some(step));
        }
        let started = Instant::now();
        let (component, from_cache) = match self.cached(&digest)? {
            Some(component) => (component, true),
            None if compile => (self.compile_and_cache(path, bytes, &digest)?, false),
            None => return Ok(None),
        };
        let incompatible = |e: wasmtime::Error| RuntimeError::Incompatible {
            path: path.to_owned(),
            message: format!("{e:#}"),
        };
        let pre = inner.linker.instantiate_pre(&component).map_err(incompatible)?;
        let pre = StepPre::new(pre).map_err(incompatible)?;
        let step = LoadedStep {
            digest: digest.clone(),
            compiled_from_cache: from_cache,
            load_time: started.elapsed(),
            pre,
            engine: inner.engine.clone(),
        };
        self.lock_loaded(inner).insert(digest, step.clone());
        Ok(Some(step))
    }

    /// The engine every component of this process runs on (steps and
    /// plugins share it, its epoch ticker and its compiled cache).
    pub fn engine(&self) -> Result<&Engine, RuntimeError> {
        Ok(&self.inner()?.engine)
    }

    /// Reads and compiles a component (or loads it from the compiled
    /// cache), for a host other than the step host to instantiate with its
    /// own linker. CPU-bound: call it from a blocking context.
    pub fn component(&self, path: &Path) -> Result<Component, RuntimeError> {
        let bytes = read_component(path)?;
        self.component_from_bytes(path, &bytes)
    }

    /// Like [`Runtime::component`], from bytes already in memory (an
    /// archived component); `name` only names it in errors.
    pub fn component_from_bytes(&self, name: &Path, bytes: &[u8]) -> Result<Component, RuntimeError> {
        Ok(self.compile(name, bytes, &component_digest(bytes))?.0)
    }

    /// Compiles `bytes`, or loads them compiled from the sealed cache;
    /// whether they came from the cache.
    fn compile(&self, path: &Path, bytes: &[u8], digest: &str) -> Result<(Component, bool), RuntimeError> {
        match self.cached(digest)? {
            Some(component) => Ok((component, true)),
            None => Ok((self.compile_and_cache(path, bytes, digest)?, false)),
        }
    }

    /// The component from the sealed compiled cache, if it is there and
    /// verifies (a bad entry is removed).
    fn cached(&self, digest: &str) -> Result<Option<Component>, RuntimeError> {
        let inner = self.inner()?;
        let entry = inner.cache.entry_path(digest, &inner.engine_hash);
        Ok(inner.cache.get(&entry).and_then(|compiled| {
            // SAFETY: the bytes carry a MAC made with this host's private key,
            // so they were written by this host's own `precompile_component`
            // for an engine with the same compatibility hash.
            unsafe { Component::deserialize(&inner.engine, &compiled) }.ok()
        }))
    }

    /// Compiles `bytes` (within the shape and compile limits) and keeps the
    /// result in the compiled cache.
    fn compile_and_cache(&self, path: &Path, bytes: &[u8], digest: &str) -> Result<Component, RuntimeError> {
        let inner = self.inner()?;
        let entry = inner.cache.entry_path(digest, &inner.engine_hash);
        let invalid = |e: wasmtime::Error| RuntimeError::InvalidComponent {
            path: path.to_owned(),
            message: format!("{e:#}"),
        };
        if !bytes.starts_with(b"\0asm") {
            return Err(RuntimeError::InvalidComponent {
                path: path.to_owned(),
                message: "it does not start with the WebAssembly magic bytes".into(),
            });
        }
        let shape =
            Shape::measure(bytes, &self.lazy.options.shape_limits).map_err(|message| RuntimeError::CompileLimit {
                path: path.to_owned(),
                message,
            })?;
        tracing::debug!(?shape, "compiling {}", path.display());
        let compiled = match &self.lazy.options.compiler {
            Compiler::InProcess => inner.engine.precompile_component(bytes).map_err(invalid)?,
            Compiler::Child { exe, budget } => {
                compile_in_child(exe, budget, bytes).map_err(|message| RuntimeError::CompileLimit {
                    path: path.to_owned(),
                    message,
                })?
            }
        };
        if let Err(e) = inner.cache.put(&entry, &compiled) {
            tracing::warn!("not caching the compiled component: {e}");
        }
        // SAFETY: `compiled` was produced just now by this engine.
        unsafe { Component::deserialize(&inner.engine, &compiled) }.map_err(invalid)
    }

    /// The step with this digest if this process has loaded it already:
    /// no I/O, no compilation, safe to call from async code.
    pub fn loaded(&self, digest: &str) -> Option<LoadedStep> {
        let inner = self.lazy.started.get()?.as_ref().ok()?;
        let mut step = self.lock_loaded(inner).get(digest)?.clone();
        step.compiled_from_cache = true;
        step.load_time = Duration::ZERO;
        Some(step)
    }

    fn lock_loaded<'a>(&self, inner: &'a Inner) -> std::sync::MutexGuard<'a, HashMap<String, LoadedStep>> {
        match inner.loaded.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// A compiled, pre-instantiated step component.
#[derive(Clone)]
pub struct LoadedStep {
    digest: String,
    compiled_from_cache: bool,
    load_time: Duration,
    pre: StepPre<StepState>,
    engine: Engine,
}

impl std::fmt::Debug for LoadedStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedStep")
            .field("digest", &self.digest)
            .finish_non_exhaustive()
    }
}

impl LoadedStep {
    /// Hex blake3 digest of the component bytes.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Whether the compiled code came from the on-disk cache.
    pub fn compiled_from_cache(&self) -> bool {
        self.compiled_from_cache
    }

    /// Time spent compiling or loading the component.
    pub fn load_time(&self) -> Duration {
        self.load_time
    }

    /// Runs the step once in a fresh sandbox. Never panics and never fails
    /// the host: every failure is in the outcome.
    pub async fn run(&self, call: &StepCall<'_>) -> StepOutcome {
        let started = Instant::now();
        let limits = call.limits;
        let logs = LogPipe::new(limits.max_log_bytes);
        let finish = |result, events| StepOutcome {
            result,
            logs: logs.text(),
            events,
            duration: started.elapsed(),
        };

        let mut wasi = sandbox_wasi();
        wasi.stdout(logs.clone()).stderr(logs.clone()).arg("step");
        for (key, value) in call.env {
            wasi.env(key, value);
        }
        let dirs = call.dirs;
        for (host, guest, perms) in [
            (&dirs.inputs, "/inputs", FsPerms::ReadOnly),
            (&dirs.outputs, "/outputs", FsPerms::ReadWrite),
            (&dirs.tmp, "/tmp", FsPerms::ReadWrite),
        ] {
            if let Err(e) = wasi.preopened_dir(host, guest, perms) {
                let message = format!("weft could not mount {guest}: {}", e.root_cause());
                return finish(Err(StepFailure::Host(message)), Vec::new());
            }
        }
        let virtual_state = call.determinism.configure(&mut wasi);
        let mut table = ResourceTable::new();
        table.set_max_capacity(limits.max_resources);
        let guard = Guard::new(limits.memory_bytes, limits.timeout, call.cancel.clone());
        let watchdog = guard.watchdog();
        let state = StepState {
            wasi: wasi.build(),
            table,
            tracker: Tracker::default(),
            guard,
            virtual_state,
        };
        let mut store = Store::new(&self.engine, state);
        Guard::install(&mut store);
        let outcome = watchdog
            .watch(async {
                let step = self.pre.instantiate_async(&mut store).await?;
                step.call_run(&mut store, call.params).await
            })
            .await;
        let state = store.data_mut();
        let events = std::mem::take(&mut state.tracker.events);
        let result = match outcome {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(StepError::InvalidParams(m)))) => Err(StepFailure::InvalidParams(guest_text(&m))),
            Ok(Ok(Err(StepError::Failed(m)))) => Err(StepFailure::Failed(guest_text(&m))),
            Ok(Err(error)) => Err(classify(error, &state.guard, limits, &logs.text())),
            Err(Interrupt::Timeout) => Err(StepFailure::TimedOut(limits.timeout)),
            Err(Interrupt::Cancelled) => Err(StepFailure::Cancelled),
        };
        finish(result, events)
    }
}

/// What one step run is given.
#[derive(Debug, Clone, Copy)]
pub struct StepCall<'a> {
    /// The step's params, a JSON object.
    pub params: &'a str,
    /// The directories behind `/inputs`, `/outputs` and `/tmp`.
    pub dirs: &'a SandboxDirs,
    pub limits: &'a Limits,
    pub cancel: &'a Cancel,
    /// Environment variables granted to the step (none by default).
    pub env: &'a [(String, String)],
    /// Virtual or real time and randomness.
    pub determinism: Determinism,
}

/// A WASI context with nothing in it: no environment, no arguments, no
/// preopened directory, no sockets, no name lookups. Steps and plugins
/// start from this and add only what they are granted.
pub fn sandbox_wasi() -> WasiCtxBuilder {
    let mut wasi = WasiCtxBuilder::new();
    // File operations on a small sandbox run inline instead of hopping to
    // tokio's blocking pool for every call.
    wasi.allow_blocking_current_thread(true)
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .socket_addr_check(|_, _| Box::pin(async { false }));
    wasi
}

/// Per-store state of a step run, dropped afterwards.
pub(crate) struct StepState {
    wasi: WasiCtx,
    table: ResourceTable,
    tracker: Tracker,
    guard: Guard,
    virtual_state: Option<Virtual>,
}

impl WasiView for StepState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl Guarded for StepState {
    fn guard(&mut self) -> &mut Guard {
        &mut self.guard
    }
}

impl VirtualView for StepState {
    fn virtual_state(&mut self) -> Option<&mut Virtual> {
        self.virtual_state.as_mut()
    }
}

/// Turns a wasmtime error from a guest call into the reason a user can act on.
fn classify(error: wasmtime::Error, guard: &Guard, limits: &Limits, logs: &str) -> StepFailure {
    match guard.interrupted() {
        Some(Interrupt::Timeout) => return StepFailure::TimedOut(limits.timeout),
        Some(Interrupt::Cancelled) => return StepFailure::Cancelled,
        None => {}
    }
    if let Some(requested) = guard.memory_exceeded() {
        return StepFailure::MemoryLimit {
            requested,
            limit: guard.memory_limit(),
        };
    }
    if let Some(exit) = error.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return if exit.0 == 0 {
            StepFailure::Failed("the step called exit(0) instead of returning from run".into())
        } else {
            StepFailure::Exited(exit.0)
        };
    }
    if let Some(message) = panic_message(logs) {
        return StepFailure::Panicked(guest_text(&message));
    }
    // The root cause is the trap itself ("call stack exhausted") or the
    // host's reason (a refused tracker call); the context above it is the
    // guest backtrace.
    let root = error.root_cause().to_string();
    let message = root
        .strip_prefix("wasm trap: ")
        .unwrap_or(&root)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    if message.contains("resource table has no free keys") {
        return StepFailure::Failed(format!(
            "the step held more than {} resources (open files, streams) at once, the limit",
            limits.max_resources
        ));
    }
    StepFailure::Trapped(message)
}

impl bindings::weft::step::types::Host for StepState {}

/// Longest message from a guest kept as a step's error.
pub const MAX_ERROR_BYTES: usize = 16 * 1024;

/// A message a guest wrote, as weft keeps and shows it: at most
/// [`MAX_ERROR_BYTES`], with control characters other than newlines and
/// tabs escaped (they would rewrite the user's terminal).
pub(crate) fn guest_text(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(MAX_ERROR_BYTES) + 64);
    for (i, c) in message.char_indices() {
        if out.len() >= MAX_ERROR_BYTES {
            out.push_str(&format!("… [{} more bytes]", message.len() - i));
            break;
        }
        if c.is_control() && c != '\n' && c != '\t' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// A tracker call that breaks a rule traps the guest with the reason: the
/// step fails with a message that names the key.
impl bindings::weft::step::tracker::Host for StepState {
    fn log_metric(&mut self, key: String, value: f64, step: Option<u64>) -> wasmtime::Result<()> {
        let guard = &mut self.guard;
        self.tracker
            .log_metric(key, value, step, &mut |bytes| guard.charge(bytes))
            .map_err(wasmtime::Error::msg)
    }
    fn log_param(&mut self, key: String, value: String) -> wasmtime::Result<()> {
        let guard = &mut self.guard;
        self.tracker
            .log_param(key, value, &mut |bytes| guard.charge(bytes))
            .map_err(wasmtime::Error::msg)
    }
    fn set_tag(&mut self, key: String, value: String) -> wasmtime::Result<()> {
        let guard = &mut self.guard;
        self.tracker
            .set_tag(key, value, &mut |bytes| guard.charge(bytes))
            .map_err(wasmtime::Error::msg)
    }
    fn log_metadata(&mut self, key: String, json: String) -> wasmtime::Result<()> {
        let guard = &mut self.guard;
        self.tracker
            .log_metadata(key, json, &mut |bytes| guard.charge(bytes))
            .map_err(wasmtime::Error::msg)
    }
}

/// A component file's bytes, refused (before reading) above
/// [`MAX_COMPONENT_BYTES`].
pub fn read_component(path: &Path) -> Result<Vec<u8>, RuntimeError> {
    let read_err = |source| RuntimeError::ReadComponent {
        path: path.to_owned(),
        source,
    };
    let size = std::fs::metadata(path).map_err(read_err)?.len();
    if size > MAX_COMPONENT_BYTES {
        return Err(RuntimeError::InvalidComponent {
            path: path.to_owned(),
            message: format!("it is {size} bytes; the limit is {MAX_COMPONENT_BYTES}"),
        });
    }
    std::fs::read(path).map_err(read_err)
}

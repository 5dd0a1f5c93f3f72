//! weft's WebAssembly runtime.
//!
//! This crate owns everything that touches wasmtime: one [`Runtime`] holds
//! the engine, the linker with exactly the imports a step may use, an
//! on-disk cache of compiled components, and an epoch ticker that enforces
//! timeouts. [`Runtime::load`] turns a `.wasm` file into a [`LoadedStep`]
//! (compiled once, pre-instantiated once); [`LoadedStep::run`] executes it
//! in a fresh sandbox per call:
//!
//! - `/inputs` read-only, `/outputs` writable, `/tmp` private scratch, and no
//!   other path;
//! - no environment variables, no sockets, no name lookups;
//! - stdout and stderr captured up to a cap;
//! - a memory limit, a wall-clock timeout and cancellation;
//! - tracker calls (`log-metric`, ...) validated and collected in memory.
//!
//! Every way a guest can fail (trap, panic, timeout, memory limit, bad
//! tracker call, its own `step-error`) becomes a [`StepFailure`]; none of
//! them can take the host down.

mod cache;
pub mod compile;
mod determinism;
mod error;
mod logs;
mod runtime;
mod sandbox;
mod tracker;

pub use cache::CompiledCache;
pub use compile::{compile_child_main, CompileBudget, Compiler, Shape, COMPILE_ARG};
pub use determinism::{Determinism, VIRTUAL_EPOCH_SECONDS, VIRTUAL_SANDBOX, VIRTUAL_TICK};
pub use error::RuntimeError;
pub use logs::LogPipe;
pub use runtime::{read_component, sandbox_wasi, LoadedStep, Runtime, RuntimeOptions, StepCall, MAX_COMPONENT_BYTES};
pub use sandbox::{Cancel, Guard, Guarded, Interrupt, Limits, SandboxDirs, StepFailure, StepOutcome, Watchdog};
pub use tracker::TrackerEvent;

/// The version of the `weft:step` WIT package this host implements.
pub const STEP_WIT_VERSION: &str = "weft:step@0.1.0";

/// The host-semantics version: a blake3 digest of the `wit/step` sources
/// this host was built from (see `build.rs`). It is part of every cache key.
pub const STEP_WIT_DIGEST: &str = env!("WEFT_STEP_WIT_DIGEST");

/// Hex-encoded blake3 digest of a component's bytes.
pub fn component_digest(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

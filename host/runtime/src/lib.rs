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
    let mut hasher = blake3::Hasher::new();
    hash_into(&mut hasher, bytes);
    hasher.finalize().to_hex().to_string()
}

/// A component's bytes and their digest ([`component_digest`]), hashed
/// once where the bytes were read: loading and archiving the component
/// use this digest instead of hashing tens of megabytes again.
#[derive(Clone)]
pub struct ComponentBytes {
    bytes: bytes::Bytes,
    digest: String,
}

impl ComponentBytes {
    /// The bytes, hashed.
    pub fn new(bytes: impl Into<bytes::Bytes>) -> Self {
        let bytes = bytes.into();
        let digest = component_digest(&bytes);
        Self { bytes, digest }
    }

    /// A component file, read (see [`read_component`]) and hashed.
    pub fn read(path: &std::path::Path) -> Result<Self, RuntimeError> {
        Ok(Self::new(read_component(path)?))
    }

    /// The hex blake3 digest of the bytes.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The bytes (a cheap clone).
    pub fn bytes(&self) -> &bytes::Bytes {
        &self.bytes
    }
}

impl std::fmt::Debug for ComponentBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComponentBytes")
            .field("digest", &self.digest)
            .field("len", &self.bytes.len())
            .finish()
    }
}

/// Bytes from which blake3 hashes faster on all cores than on one (an
/// interpreter component or its compiled code: tens of megabytes).
const PARALLEL_HASH_BYTES: usize = 1 << 20;

/// Feeds `bytes` to `hasher`, on all cores when they are many: the digest
/// is the same either way.
pub(crate) fn hash_into(hasher: &mut blake3::Hasher, bytes: &[u8]) {
    if bytes.len() >= PARALLEL_HASH_BYTES {
        hasher.update_rayon(bytes);
    } else {
        hasher.update(bytes);
    }
}

#[cfg(test)]
mod tests {
    /// Hashed on all cores or on one, a digest is blake3's of the bytes.
    #[test]
    fn digests_are_blake3_at_every_size() {
        for size in [
            0,
            1,
            super::PARALLEL_HASH_BYTES - 1,
            super::PARALLEL_HASH_BYTES,
            5 << 20,
        ] {
            let bytes: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
            assert_eq!(
                super::component_digest(&bytes),
                blake3::hash(&bytes).to_hex().to_string(),
                "size {size}"
            );
        }
    }
}

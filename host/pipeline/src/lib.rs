//! weft pipelines: the `weft.toml` manifest, its validation, cache keys,
//! and the local executor that runs a pipeline's steps as sandboxed
//! components.
//!
//! ```text
//! Manifest::load ──► validate (names, wiring, cycles, components, params)
//!       │
//!       ▼
//! Executor::run ──► ingest external inputs ──► for each ready step:
//!        cache key = blake3(component, params, input digests, outputs, WIT)
//!        hit  → record a cached step run pointing at the original
//!        miss → stage /inputs, run in the sandbox, ingest /outputs,
//!               record everything in one transaction
//! ```

mod build;
mod cache_key;
mod executor;
mod integrations;
mod manifest;
mod sandbox;

pub use build::{build_steps, BuildError, STEP_WIT};
pub use cache_key::{cache_key, canonical_json};
pub use executor::{Event, ExecError, Executor, ExecutorOptions, RunOptions, RunOutcome, StepOutcomeSummary};
pub use integrations::Plugins;
pub use manifest::{
    valid_name, BuildSpec, Gate, Hooks, InputSource, Manifest, ManifestError, OutputSpec, ParamOverride, Retry, Step,
    StepLimits,
};

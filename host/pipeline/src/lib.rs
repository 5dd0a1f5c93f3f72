//! weft pipelines: the `weft.toml` manifest, its validation, cache keys,
//! and the local executor that runs a pipeline's steps as sandboxed
//! components.
//!
//! ```text
//! Manifest::load ──► validate (names, wiring, cycles, components, params)
//!       │
//!       ▼
//! Executor::run ──► ingest external inputs ──► Scheduler: for each ready step,
//!   runner:  StepSpec (component, params, inputs, outputs, grants, determinism)
//!            cache key = hash of the spec (cache_key.rs)
//!            hit  → a step run of this run: new output versions, same bytes
//!            miss → stage /inputs, run in the sandbox, recorder: /outputs
//!                   become artifacts, everything in one transaction
//!   hooks:   gates, plugin hooks and sinks, [models]
//! ```
//!
//! `weft verify` ([`Verifier`]) runs the same sandbox again from the
//! recorded spec and compares output digests.

mod build;
pub mod bundle;
mod cache_key;
mod deferred;
mod error;
mod executor;
mod hooks;
mod integrations;
mod ledger;
mod manifest;
mod models;
mod recorder;
pub mod registered;
mod resources;
mod runner;
mod sandbox;
pub mod scheduler;
mod verify;
mod worker;

pub use build::{build_steps, BuildError, STEP_WIT};
pub use cache_key::{canonical_json, SpecInput, SpecLimits, SpecOutput, StepSpec};
pub use error::ExecError;
pub use executor::{hostname, Event, Executor, ExecutorOptions, RunOptions, RunOutcome, StepOutcomeSummary};
pub use hooks::{HookContext, RunHook};
pub use integrations::{check as check_plugins, PluginHooks, Plugins};
pub use manifest::{
    library_model_server, valid_name, BuildSpec, Gate, Hooks, InputSource, Manifest, ManifestError, ModelOutput,
    OutputSpec, ParamOverride, Retry, Step, StepLimits,
};
pub use models::{register_model, register_model_file, ModelRegistration};
pub use resources::{is_dns_label, is_dns_subdomain, Resources, Toleration};
pub use verify::{StepVerification, Verifier, SKIPPED as VERIFY_SKIPPED};
pub use worker::{Dispatcher, Dispatchers, Flight, Reporter, StepJob, Worker, WorkerOutcome, WORKER_TAG};

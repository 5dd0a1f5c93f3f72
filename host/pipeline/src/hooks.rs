//! What attaches to a run without being part of running steps: gates
//! (data validators), plugin hooks and tracker sinks, `[models]`
//! registration. (A run's tracking runs are not a hook: the store writes
//! them with the run's own rows.) Each is a [`RunHook`]; the executor calls
//! every hook of a run at the same points and knows nothing else of them.

use futures::future::BoxFuture;
use weft_artifacts::ArtifactStore;
use weft_store::Store;

use crate::executor::{Event, RunOutcome};
use crate::manifest::{InputSource, Manifest};
use crate::ExecError;

/// The run a hook is called for.
#[derive(Clone, Copy)]
pub struct HookContext<'a> {
    pub run_id: &'a str,
    pub manifest: &'a Manifest,
    pub store: &'a Store,
    pub artifacts: &'a ArtifactStore,
    /// For progress displays (plugin calls are reported through it).
    pub on_event: &'a (dyn Fn(Event) + Send + Sync),
}

/// Something attached to every run. Every method has a default that does
/// nothing.
pub trait RunHook: Send + Sync {
    /// Before anything reads an artifact (`source` is the external input or
    /// the step output it is): `Some(report)` rejects it, which stops what
    /// would read it and becomes the run's error.
    fn check<'a>(
        &'a self,
        _run: &'a HookContext<'a>,
        _source: &'a InputSource,
        _artifact_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, ExecError>> {
        Box::pin(async { Ok(None) })
    }

    /// The run is recorded and about to start its steps.
    fn run_started<'a>(&'a self, _run: &'a HookContext<'a>) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }

    /// A step run reached its final status.
    fn step_finished<'a>(&'a self, _run: &'a HookContext<'a>, _step_run_id: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }

    /// The run ended and its status is recorded. A hook cannot change how
    /// it went; it reports its own failures itself.
    fn run_finished<'a>(&'a self, _run: &'a HookContext<'a>, _outcome: &'a RunOutcome) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
}

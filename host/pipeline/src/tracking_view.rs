//! The MLflow view of a pipeline run (experiment = pipeline, run = run,
//! nested runs = step runs), written as the run goes: the run when it
//! starts, finished steps at most a second late, everything when it ends.
//! A failure here is logged and does not change how the run went.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use weft_store::{MirrorScope, Store};

use crate::executor::RunOutcome;
use crate::hooks::{HookContext, RunHook};

/// How often finished steps are written to the view while a run goes:
/// writing after every step would cost more than a short step.
const EVERY: Duration = Duration::from_secs(1);

/// Writes the MLflow view of each run it is attached to.
#[derive(Default)]
pub struct TrackingView {
    /// Finished step runs not written yet.
    pending: Arc<Mutex<Vec<String>>>,
    /// The task writing `pending` every second while the run goes.
    flusher: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

async fn mirror(store: &Store, run_id: &str, scope: MirrorScope<'_>) {
    if let Err(e) = store.mirror_run_to_tracking(run_id, scope).await {
        tracing::warn!("could not record the MLflow view of run {run_id}: {e}");
    }
}

async fn flush(store: &Store, run_id: &str, pending: &Mutex<Vec<String>>) {
    let ids = std::mem::take(&mut *pending.lock().unwrap_or_else(|p| p.into_inner()));
    if !ids.is_empty() {
        mirror(store, run_id, MirrorScope::Steps(&ids)).await;
    }
}

impl RunHook for TrackingView {
    fn run_started<'a>(&'a self, run: &'a HookContext<'a>) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            mirror(run.store, run.run_id, MirrorScope::Run).await;
            let (store, run_id, pending) = (run.store.clone(), run.run_id.to_string(), self.pending.clone());
            let task = tokio::spawn(async move {
                loop {
                    tokio::time::sleep(EVERY).await;
                    flush(&store, &run_id, &pending).await;
                }
            });
            if let Some(old) = self.flusher.lock().unwrap_or_else(|p| p.into_inner()).replace(task) {
                old.abort();
            }
        })
    }

    fn step_finished<'a>(&'a self, _run: &'a HookContext<'a>, step_run_id: &'a str) -> BoxFuture<'a, ()> {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(step_run_id.to_string());
        Box::pin(async {})
    }

    fn run_finished<'a>(&'a self, run: &'a HookContext<'a>, _outcome: &'a RunOutcome) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if let Some(task) = self.flusher.lock().unwrap_or_else(|p| p.into_inner()).take() {
                task.abort();
            }
            self.pending.lock().unwrap_or_else(|p| p.into_inner()).clear();
            mirror(run.store, run.run_id, MirrorScope::All).await;
        })
    }
}

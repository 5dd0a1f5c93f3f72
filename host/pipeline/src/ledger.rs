//! The write-behind ledger of a run: what its step runs did, written in
//! the background while the next steps go.
//!
//! A finished step hands its record (with the ids of its output artifacts,
//! chosen before anything is written) to the ledger and returns at once:
//! downstream steps need the ids and the bytes, not the rows. A background
//! task waits [`BATCH_WINDOW`] and writes what piled up, in order, in one
//! transaction (which also writes their tracking runs), so a chain of short
//! steps commits a batch every so often instead of one transaction per
//! step, off the steps' path. Cache hits wait
//! for a flush or a full batch, as nothing reads their rows sooner.
//!
//! Anything that reads the rows (a gate, the end of the run, a step record
//! written directly) flushes first: [`Ledger::flush`] returns once every
//! write queued before it is committed, with the first error a background
//! write met. A run killed before a flush leaves its step runs pending,
//! and the next run marks them crashed, like any step that did not finish.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use weft_store::{CacheHit, LedgerWrite, StepRunRecord, Store, StoreError};

use crate::ExecError;

/// How long a finished step's record waits for others to share its
/// transaction: a chain of short steps commits a batch every so often
/// instead of one transaction per step.
const BATCH_WINDOW: std::time::Duration = std::time::Duration::from_millis(20);

/// Cache hits queued at most before they are written.
const HITS_PER_BATCH: usize = 256;

/// See the module documentation.
pub(crate) struct Ledger {
    store: Store,
    queue: Mutex<Vec<LedgerWrite>>,
    /// Held while a batch is written: a flush returns only once every
    /// write queued before it is committed.
    writing: tokio::sync::Mutex<()>,
    /// A background write is on its way.
    scheduled: AtomicBool,
    /// The first error of a background write, for the next flush.
    failed: Mutex<Option<StoreError>>,
}

impl Ledger {
    pub(crate) fn new(store: Store) -> Arc<Self> {
        Arc::new(Self {
            store,
            queue: Mutex::default(),
            writing: tokio::sync::Mutex::new(()),
            scheduled: AtomicBool::new(false),
            failed: Mutex::default(),
        })
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Vec<LedgerWrite>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a cache hit; true when enough are queued to write them.
    pub(crate) fn push_hit(&self, hit: CacheHit) -> bool {
        let mut queue = self.queue();
        queue.push(LedgerWrite::Hit(hit));
        queue.len() >= HITS_PER_BATCH
    }

    /// Queues the record of a finished step run and has it written in the
    /// background. Its `output_ids` must be set: they are what downstream
    /// steps refer to.
    pub(crate) fn push_finished(self: &Arc<Self>, run_id: &str, id: &str, record: StepRunRecord) {
        debug_assert_eq!(record.outputs.len(), record.output_ids.len());
        self.queue().push(LedgerWrite::Finished {
            run_id: run_id.to_string(),
            id: id.to_string(),
            record,
        });
        if !self.scheduled.swap(true, Ordering::SeqCst) {
            let ledger = self.clone();
            tokio::spawn(async move {
                // Records that arrive meanwhile go in the same transaction
                // (each transaction also rewrites their tracking runs).
                tokio::time::sleep(BATCH_WINDOW).await;
                // Cleared before the queue is taken: whatever is queued
                // after that schedules a write of its own.
                ledger.scheduled.store(false, Ordering::SeqCst);
                if let Err(e) = ledger.write_queued().await {
                    ledger.failed.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
                }
            });
        }
    }

    /// Writes everything queued so far and returns the first error any
    /// write met since the last flush.
    pub(crate) async fn flush(&self) -> Result<(), ExecError> {
        let written = self.write_queued().await;
        if let Some(e) = self.failed.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Err(e.into());
        }
        Ok(written?)
    }

    async fn write_queued(&self) -> Result<(), StoreError> {
        let _writing = self.writing.lock().await;
        let batch = std::mem::take(&mut *self.queue());
        self.store.record_step_runs(&batch).await
    }
}

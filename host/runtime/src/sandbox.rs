//! What one step run is given, and how it can end.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::ResourceLimiter;

use crate::tracker::TrackerEvent;

/// Resource limits of one step run.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Memory the step may use in all: every linear memory and table of
    /// every instance in its component, together, in bytes.
    pub memory_bytes: u64,
    /// Wall-clock time the step may run.
    pub timeout: Duration,
    /// Captured stdout+stderr kept, in bytes; the rest is counted and dropped.
    pub max_log_bytes: usize,
    /// Most resources (files, streams, ...) the guest may hold at once.
    pub max_resources: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: 512 * 1024 * 1024,
            timeout: Duration::from_secs(600),
            max_log_bytes: 1024 * 1024,
            max_resources: 10_000,
        }
    }
}

/// The host directories behind the guest's `/inputs`, `/outputs` and `/tmp`.
/// The caller creates them, and removes them afterwards.
#[derive(Debug, Clone)]
pub struct SandboxDirs {
    /// Mounted read-only at `/inputs`.
    pub inputs: PathBuf,
    /// Mounted read-write at `/outputs`.
    pub outputs: PathBuf,
    /// Mounted read-write at `/tmp`.
    pub tmp: PathBuf,
}

/// A cancellation flag shared between the caller and running steps. Once
/// set, every running step is interrupted within one epoch tick.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// Asks every step holding this flag to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    /// Whether [`Cancel::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Why a step run did not succeed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StepFailure {
    /// The step rejected its params (`step-error::invalid-params`).
    #[error("invalid params: {0}")]
    InvalidParams(String),
    /// The step returned `step-error::failed`.
    #[error("{0}")]
    Failed(String),
    /// The guest panicked; the message comes from its panic output.
    #[error("panicked: {0}")]
    Panicked(String),
    /// The guest trapped (unreachable, out-of-bounds access, stack overflow,
    /// a denied tracker call, ...).
    #[error("trapped: {0}")]
    Trapped(String),
    /// The guest called `exit` with a non-zero code.
    #[error("exited with code {0}")]
    Exited(i32),
    /// The wall-clock limit ran out.
    #[error("timed out after {}", humanize(*.0))]
    TimedOut(Duration),
    /// The guest tried to grow its memories and tables (and what the host
    /// holds for it) past the limit.
    #[error("memory limit exceeded: the step's memories, tables and logged data would take {requested} bytes, the limit is {limit} bytes")]
    MemoryLimit { requested: u64, limit: u64 },
    /// The run was cancelled.
    #[error("cancelled")]
    Cancelled,
    /// weft itself failed around the step (staging its inputs, storing its
    /// outputs): nothing the step did.
    #[error("{0}")]
    Host(String),
}

impl StepFailure {
    /// Whether running the step again might end differently. A step with
    /// virtual time and randomness (`nondeterministic` false) is a pure
    /// function of its inputs: only a timeout (wall-clock time depends on
    /// the machine's load) or a failure of weft itself can change. A
    /// nondeterministic step may also fail differently by itself. A trap, a
    /// memory-limit failure, a panic or invalid params are never retried.
    pub fn may_change_on_retry(&self, nondeterministic: bool) -> bool {
        match self {
            StepFailure::TimedOut(_) | StepFailure::Host(_) => true,
            StepFailure::Failed(_) | StepFailure::Exited(_) => nondeterministic,
            StepFailure::InvalidParams(_)
            | StepFailure::Panicked(_)
            | StepFailure::Trapped(_)
            | StepFailure::MemoryLimit { .. }
            | StepFailure::Cancelled => false,
        }
    }
}

fn humanize(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// What a step run produced.
#[derive(Debug)]
pub struct StepOutcome {
    /// `Ok` when `run` returned `ok`.
    pub result: Result<(), StepFailure>,
    /// Captured stdout and stderr, interleaved, capped.
    pub logs: String,
    /// What the step logged through the tracker, in order.
    pub events: Vec<TrackerEvent>,
    /// Time spent instantiating and running the guest.
    pub duration: Duration,
}

/// Why a guarded store was interrupted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interrupt {
    /// The deadline passed.
    Timeout,
    /// The [`Cancel`] flag was set.
    Cancelled,
}

/// How often the epoch ticks; timeouts and cancellation act within one tick.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The limits of one store, the same for steps and plugins: one memory
/// budget for all the memories and tables of every instance in the store
/// together, one deadline and a cancellation flag. [`Guard::install`] puts
/// it on a store; its [`Watchdog`] stops a guest blocked in a host call.
#[derive(Debug)]
pub struct Guard {
    limiter: MemoryLimiter,
    deadline: Instant,
    timeout: Duration,
    cancel: Cancel,
    interrupted: Option<Interrupt>,
}

/// Store state that holds a [`Guard`].
pub trait Guarded: Send + 'static {
    /// The store's guard.
    fn guard(&mut self) -> &mut Guard;
}

impl Guard {
    /// A guard allowing `memory_bytes` in all and `timeout` from now.
    pub fn new(memory_bytes: u64, timeout: Duration, cancel: Cancel) -> Self {
        Self {
            limiter: MemoryLimiter {
                limit: memory_bytes,
                used: 0,
                exceeded: None,
            },
            deadline: Instant::now() + timeout,
            timeout,
            cancel,
            interrupted: None,
        }
    }

    /// Puts the memory limiter and the epoch deadline on `store`: a guest
    /// that computes past the deadline (or after cancellation) is
    /// interrupted within one epoch tick.
    pub fn install<T: Guarded>(store: &mut wasmtime::Store<T>) {
        store.limiter(|s| &mut s.guard().limiter);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|mut ctx| {
            let guard = ctx.data_mut().guard();
            if guard.cancel.is_cancelled() {
                guard.interrupted = Some(Interrupt::Cancelled);
                return Ok(wasmtime::UpdateDeadline::Interrupt);
            }
            if Instant::now() >= guard.deadline {
                guard.interrupted = Some(Interrupt::Timeout);
                return Ok(wasmtime::UpdateDeadline::Interrupt);
            }
            Ok(wasmtime::UpdateDeadline::Yield(1))
        });
    }

    /// Starts a new call on a store that is kept between calls (a served
    /// model's instance): the deadline becomes `timeout` from now and the
    /// last interruption is forgotten. The memory budget goes on counting
    /// what the store already holds. Returns the call's watchdog.
    pub fn rearm(&mut self, timeout: Duration) -> Watchdog {
        self.deadline = Instant::now() + timeout;
        self.timeout = timeout;
        self.interrupted = None;
        self.watchdog()
    }

    /// The watchdog of this guard, to hold while the store is in use.
    pub fn watchdog(&self) -> Watchdog {
        Watchdog {
            deadline: self.deadline,
            cancel: self.cancel.clone(),
        }
    }

    /// Why the epoch callback interrupted the guest, if it did.
    pub fn interrupted(&self) -> Option<Interrupt> {
        self.interrupted
    }

    /// Counts `bytes` the host keeps on the guest's behalf (what it logged)
    /// against the memory budget, before they are kept.
    pub fn charge(&mut self, bytes: usize) -> Result<(), String> {
        let used = self.limiter.used;
        self.limiter
            .grow(used, used.saturating_add(bytes as u64))
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// The total memory the guest asked for when it went over its budget.
    pub fn memory_exceeded(&self) -> Option<u64> {
        self.limiter.exceeded
    }

    /// The memory budget.
    pub fn memory_limit(&self) -> u64 {
        self.limiter.limit
    }

    /// The time budget.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

/// Stops a guest blocked in a host call (sleeping, waiting on I/O), which
/// the epoch callback of its [`Guard`] cannot reach.
#[derive(Debug, Clone)]
pub struct Watchdog {
    deadline: Instant,
    cancel: Cancel,
}

impl Watchdog {
    /// Runs `call` to its end, or until shortly after the deadline or a
    /// cancellation.
    pub async fn watch<F: std::future::Future>(&self, call: F) -> Result<F::Output, Interrupt> {
        let deadline = self.deadline;
        let cancel = self.cancel.clone();
        let watchdog = async move {
            loop {
                tokio::time::sleep(EPOCH_TICK * 2).await;
                if cancel.is_cancelled() {
                    return Interrupt::Cancelled;
                }
                if Instant::now() >= deadline + EPOCH_TICK * 10 {
                    return Interrupt::Timeout;
                }
            }
        };
        tokio::select! {
            output = call => Ok(output),
            why = watchdog => Err(why),
        }
    }
}

/// Keeps the sum of every linear memory and table of a store under one
/// budget, and remembers when it was hit so the failure can say so plainly.
#[derive(Debug)]
struct MemoryLimiter {
    limit: u64,
    used: u64,
    exceeded: Option<u64>,
}

/// What a table element costs the host, for the budget.
const TABLE_ELEMENT_BYTES: u64 = 16;
/// Most instances, memories and tables one store may create.
const MAX_STORE_ITEMS: usize = 1000;

impl MemoryLimiter {
    fn grow(&mut self, current: u64, desired: u64) -> wasmtime::Result<bool> {
        let total = self.used.saturating_sub(current).saturating_add(desired);
        if total > self.limit {
            self.exceeded = Some(total);
            return Err(wasmtime::format_err!(
                "memory limit exceeded: the step's memories, tables and logged data would take {total} bytes, the limit is {} bytes",
                self.limit
            ));
        }
        self.used = total;
        Ok(true)
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.grow(current as u64, desired as u64)
    }

    fn table_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.grow(
            (current as u64).saturating_mul(TABLE_ELEMENT_BYTES),
            (desired as u64).saturating_mul(TABLE_ELEMENT_BYTES),
        )
    }

    fn instances(&self) -> usize {
        MAX_STORE_ITEMS
    }
    fn tables(&self) -> usize {
        MAX_STORE_ITEMS
    }
    fn memories(&self) -> usize {
        MAX_STORE_ITEMS
    }
}

/// Pulls the message out of a Rust guest's panic output
/// (`thread '…' panicked at src/lib.rs:3:5:\nmessage`).
pub(crate) fn panic_message(logs: &str) -> Option<String> {
    let start = logs.rfind("panicked at ")?;
    let rest = &logs[start + "panicked at ".len()..];
    let (location, message) = match rest.split_once(":\n") {
        Some((location, message)) => (location, message),
        None => (rest.lines().next().unwrap_or(""), ""),
    };
    let message: Vec<&str> = message
        .lines()
        .take_while(|l| !l.starts_with("note: ") && !l.starts_with("stack backtrace"))
        .collect();
    let message = message.join("\n");
    Some(if message.is_empty() {
        location.trim().to_string()
    } else {
        format!("{} (at {})", message.trim(), location.trim())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_panic_message() {
        let logs = "starting\nthread '<unnamed>' panicked at src/lib.rs:7:5:\nboom: bad row 3\nnote: run with `RUST_BACKTRACE=1`\n";
        assert_eq!(panic_message(logs).unwrap(), "boom: bad row 3 (at src/lib.rs:7:5)");
        assert_eq!(panic_message("no panic here"), None);
    }
}

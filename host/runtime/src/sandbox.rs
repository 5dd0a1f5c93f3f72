//! What one step run is given, and how it can end.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime::ResourceLimiter;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::tracker::{Tracker, TrackerEvent};

/// Resource limits of one step run.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest linear memory (each memory) the guest may grow to, in bytes.
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
    /// The guest tried to grow its memory past the limit.
    #[error("memory limit exceeded: tried to grow memory to {requested} bytes, the limit is {limit} bytes")]
    MemoryLimit { requested: u64, limit: u64 },
    /// The run was cancelled.
    #[error("cancelled")]
    Cancelled,
}

impl StepFailure {
    /// Whether running the step again might succeed (used by retries).
    pub fn is_retryable(&self) -> bool {
        !matches!(self, StepFailure::InvalidParams(_) | StepFailure::Cancelled)
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

/// Why the epoch callback interrupted the guest.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Interrupt {
    Timeout,
    Cancelled,
}

/// Per-store state: one per step run, dropped afterwards.
pub(crate) struct StepState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) tracker: Tracker,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) deadline: Instant,
    pub(crate) cancel: Cancel,
    pub(crate) interrupted: Option<Interrupt>,
}

impl WasiView for StepState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Enforces the memory limit, and remembers when it was hit so the failure
/// can say so plainly.
pub(crate) struct MemoryLimiter {
    pub(crate) limit: u64,
    pub(crate) exceeded: Option<u64>,
}

/// Most table elements a guest may have (function tables hold a few hundred).
const MAX_TABLE_ELEMENTS: usize = 100_000;

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired as u64 > self.limit {
            self.exceeded = Some(desired as u64);
            return Err(wasmtime::format_err!(
                "memory limit exceeded: tried to grow memory to {desired} bytes, the limit is {} bytes",
                self.limit
            ));
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        100
    }
    fn tables(&self) -> usize {
        100
    }
    fn memories(&self) -> usize {
        100
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

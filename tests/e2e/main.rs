//! End-to-end tests: the real `weft` binary, real components, a real SQLite
//! database and artifact store in a temporary directory.
//!
//! Guest components (tests/guests and examples/iris) are built once per test
//! process, with cargo, for wasm32-wasip2.

mod bundle;
mod cache;
mod concurrency;
mod dashboard;
mod fake_kubernetes;
mod faults;
mod harness;
mod hermetic;
mod iris;
mod kubernetes;
mod library;
mod limits;
mod manifests;
mod musl;
mod plugins;
mod polyglot;
mod recovery;
mod remote;
mod sandbox;
mod schedules;
mod secrets;
mod serve;
mod server;
mod slurm;
mod stacks;
mod workers;

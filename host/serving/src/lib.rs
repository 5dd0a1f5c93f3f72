//! Serving registered models.
//!
//! A registered model version names the component that serves it (the
//! `model` world of `wit/inference`, recorded in the version's
//! `weft.served_by` tag). [`Served::load`] compiles that component and
//! starts a [`Pool`] of its instances, each given the version's bytes once;
//! [`router`] answers HTTP with it: the MLflow scoring protocol on
//! `/invocations` (see [`scoring`]), raw requests on `/predict`, `/ping`,
//! `/version` and Prometheus `/metrics`. [`Serving`] holds the version
//! being served and swaps in another (when an alias moves) while requests
//! already started finish on the old one.
//!
//! [`Hub`] serves many registered models, each loaded on first use
//! (`weft server --serve-models`).
//!
//! Every instance runs sandboxed (no files, environment, sockets or name
//! lookups) under a memory budget for all it holds and a time limit per
//! call; a call that breaks either, or traps, fails alone and its instance
//! is replaced.

mod error;
mod http;
mod hub;
mod pool;
mod reference;
pub mod scoring;
mod serving;

pub use error::ServeError;
pub use http::router;
pub use hub::{hub_router, Hub};
pub use pool::{Pool, PoolLimits, Prediction};
pub use reference::ModelRef;
pub use serving::{Served, Serving, Sources};

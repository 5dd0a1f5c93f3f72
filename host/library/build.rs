//! Builds weft's step library (the guest workspace in `steps/`) for
//! wasm32-wasip2 and copies each component into OUT_DIR, where `lib.rs`
//! embeds it: the `weft` binary carries its library, and a user needs no
//! toolchain to use it.
//!
//! The guest build has a target directory of its own (`steps/target`):
//! the outer cargo holds its own while build scripts run.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Each library step's crate artifact (`<stem>.wasm`). Keep in step with
/// `STEPS` in lib.rs and the members of steps/Cargo.toml.
const COMPONENTS: &[&str] = &[
    "ml_read_csv",
    "ml_read_parquet",
    "ml_split",
    "ml_standardize",
    "ml_one_hot",
    "ml_logistic_regression",
    "ml_random_forest",
    "ml_k_nearest_neighbours",
    "ml_k_means",
    "ml_evaluate",
    "ml_predict",
    "ml_choose",
    "ml_model_server",
];

fn main() {
    let here = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let repo = here.join("../..");
    let steps = repo.join("steps");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    for watched in [
        "steps/ml",
        "steps/Cargo.toml",
        "steps/Cargo.lock",
        "sdk/rust/src",
        "sdk/rust/Cargo.toml",
        "sdk/rust-model/src",
        "sdk/rust-model/Cargo.toml",
        "wit/step",
        "wit/inference",
    ] {
        println!("cargo:rerun-if-changed={}", repo.join(watched).display());
    }
    let target_dir = steps.join("target");
    // The model server builds on its own: in one build with the steps,
    // cargo would unify ml-common's features and link the step SDK into it.
    build(&steps, &target_dir, &["--workspace", "--exclude", "ml-model-server"]);
    build(&steps, &target_dir, &["-p", "ml-model-server"]);
    let built = target_dir.join("wasm32-wasip2/release");
    for stem in COMPONENTS {
        copy(&built.join(format!("{stem}.wasm")), &out.join(format!("{stem}.wasm")));
    }
}

fn build(steps: &Path, target_dir: &Path, which: &[&str]) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .args([
            "build",
            "--release",
            "--quiet",
            "--target",
            "wasm32-wasip2",
            "--manifest-path",
        ])
        .arg(steps.join("Cargo.toml"))
        .args(which)
        .env("CARGO_TARGET_DIR", target_dir);
    // The outer build's settings are for the host, not for guests.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_TARGET",
        "CARGO_BUILD_RUSTFLAGS",
    ] {
        build.env_remove(var);
    }
    let status = build
        .status()
        .expect("cannot run cargo to build the step library (steps/)");
    if !status.success() {
        panic!(
            "building weft's step library (steps/) for wasm32-wasip2 failed (above); \
             if the target is missing: rustup target add wasm32-wasip2"
        );
    }
}

fn copy(from: &Path, to: &Path) {
    if let Err(e) = std::fs::copy(from, to) {
        panic!("cannot copy {} to {}: {e}", from.display(), to.display());
    }
}

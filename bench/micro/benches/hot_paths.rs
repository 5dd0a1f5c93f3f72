//! weft's hot paths, each against its floor:
//!
//! - `cache_key`: the key of a step run (component digest, params, inputs,
//!   outputs, grants), computed for every step of every run;
//! - `artifact`: storing a step's output (hash + place in the store) for
//!   1 MiB and 64 MiB, beside raw `blake3::hash` of the same bytes;
//! - `invoke`: instantiate + call of a compiled Rust step (tests/guests
//!   echo, built by `python3 bench/all.py` or `cargo build --release
//!   --target wasm32-wasip2` in tests/guests).

use std::path::Path;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde_json::json;
use weft_artifacts::ArtifactStore;
use weft_runtime::{Cancel, Limits, Runtime, RuntimeOptions, SandboxDirs};

fn cache_key(c: &mut Criterion) {
    let digest = "a".repeat(64);
    let params = json!({ "learning_rate": 0.5, "epochs": 300, "l2": 0.001, "layers": [64, 32], "name": "softmax" });
    let inputs: Vec<(String, String)> = (0..4).map(|i| (format!("in{i}"), format!("{i}").repeat(64))).collect();
    let outputs = vec!["model".to_string(), "report".to_string()];
    let grants = json!({});
    c.bench_function("cache_key/4 inputs", |b| {
        b.iter(|| weft_pipeline::cache_key(&digest, &params, &inputs, &outputs, &grants))
    });
}

fn artifact(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("artifact");
    for mib in [1usize, 64] {
        let bytes: Vec<u8> = (0..mib << 20)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_with_input(BenchmarkId::new("raw blake3", mib), &bytes, |b, bytes| {
            b.iter(|| blake3::hash(bytes))
        });

        // A step's output: a file in the sandbox, stored (hashed, placed
        // in the content-addressed store). Every iteration stores new
        // content (one byte differs), so nothing is deduplicated.
        let work = tempfile::tempdir().unwrap();
        let store = ArtifactStore::local(&work.path().join("store")).unwrap();
        let mut n = 0u64;
        group.bench_with_input(BenchmarkId::new("store a step output", mib), &bytes, |b, bytes| {
            b.iter_batched(
                || {
                    n += 1;
                    let path = work.path().join(format!("out-{n}"));
                    let mut content = bytes.clone();
                    content[..8].copy_from_slice(&n.to_le_bytes());
                    std::fs::write(&path, &content).unwrap();
                    path
                },
                |path| rt.block_on(store.adopt(&path, u64::MAX)).unwrap(),
                criterion::BatchSize::PerIteration,
            )
        });
        group.bench_with_input(BenchmarkId::new("ingest a user's file", mib), &bytes, |b, bytes| {
            b.iter_batched(
                || {
                    n += 1;
                    let path = work.path().join(format!("in-{n}"));
                    let mut content = bytes.clone();
                    content[..8].copy_from_slice(&n.to_le_bytes());
                    std::fs::write(&path, &content).unwrap();
                    path
                },
                |path| rt.block_on(store.ingest(&path, u64::MAX)).unwrap(),
                criterion::BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

fn invoke(c: &mut Criterion) {
    let echo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/guests/target/wasm32-wasip2/release/echo.wasm");
    if !echo.exists() {
        eprintln!(
            "skipping invoke: build tests/guests first ({} is missing)",
            echo.display()
        );
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(RuntimeOptions::in_process(work.path().join("compiled"))).unwrap();
    let step = runtime.load(&echo).unwrap();
    let dirs = SandboxDirs {
        inputs: work.path().join("inputs"),
        outputs: work.path().join("outputs"),
        tmp: work.path().join("tmp"),
    };
    for dir in [&dirs.inputs, &dirs.outputs, &dirs.tmp] {
        std::fs::create_dir_all(dir).unwrap();
    }
    let limits = Limits::default();
    let cancel = Cancel::default();
    c.bench_function("invoke/instantiate + call (Rust echo)", |b| {
        b.iter(|| {
            let outcome = rt.block_on(step.run(r#"{"prefix":"x"}"#, &dirs, &limits, &cancel));
            assert!(outcome.result.is_ok());
        })
    });
}

criterion_group!(benches, cache_key, artifact, invoke);
criterion_main!(benches);

//! weft's hot paths, each against its floor:
//!
//! - `cache_key`: the key of a step run (the hash of its sandbox spec:
//!   component digest, params, inputs, outputs, grants, determinism),
//!   computed for every step of every run;
//! - `artifact`: storing a step's output (hash + place in the store) for
//!   1 MiB and 64 MiB, beside raw `blake3::hash` of the same bytes;
//! - `invoke`: instantiate + call of a compiled Rust step (tests/guests
//!   echo, built by `python3 bench/all.py` or `cargo build --release
//!   --target wasm32-wasip2` in tests/guests).

use std::path::Path;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde_json::json;
use weft_artifacts::ArtifactKind;
use weft_artifacts::ArtifactStore;
use weft_pipeline::{SpecInput, SpecLimits, SpecOutput, StepSpec};
use weft_runtime::{Cancel, Determinism, Limits, Runtime, RuntimeOptions, SandboxDirs, StepCall};

fn cache_key(c: &mut Criterion) {
    let spec = StepSpec {
        component: "a".repeat(64),
        params: json!({ "learning_rate": 0.5, "epochs": 300, "l2": 0.001, "layers": [64, 32], "name": "softmax" }),
        inputs: (0..4)
            .map(|i| SpecInput {
                name: format!("in{i}"),
                kind: ArtifactKind::File,
                digest: format!("{i}").repeat(64),
            })
            .collect(),
        outputs: ["model", "report"]
            .iter()
            .map(|name| SpecOutput {
                name: name.to_string(),
                media_type: Some("application/json".into()),
            })
            .collect(),
        env: vec![],
        nondeterministic: false,
        host: weft_runtime::STEP_WIT_DIGEST.into(),
        limits: SpecLimits {
            memory_bytes: 1 << 29,
            timeout_ms: 600_000,
            max_log_bytes: 1 << 20,
            max_resources: 10_000,
            max_output_bytes: 10 << 30,
            max_tmp_bytes: 10 << 30,
        },
    };
    c.bench_function("cache_key/4 inputs", |b| b.iter(|| spec.key()));
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
    // Each call starts with empty outputs, as in a pipeline (weft moves what
    // a step wrote into the artifact store); emptying is not timed.
    c.bench_function("invoke/instantiate + call (Rust echo)", |b| {
        b.iter_batched(
            || {
                for entry in std::fs::read_dir(&dirs.outputs).unwrap().flatten() {
                    let _ = std::fs::remove_file(entry.path());
                }
            },
            |()| {
                let call = StepCall {
                    params: r#"{"prefix":"x"}"#,
                    dirs: &dirs,
                    limits: &limits,
                    cancel: &cancel,
                    env: &[],
                    determinism: Determinism::seeded_from("bench"),
                };
                let outcome = rt.block_on(step.run(&call));
                assert!(outcome.result.is_ok());
            },
            criterion::BatchSize::PerIteration,
        )
    });
}

criterion_group!(benches, cache_key, artifact, invoke);
criterion_main!(benches);

//! Instantiate + call cost of one compiled step component, without the
//! rest of a pipeline run (no database, no output hashing):
//!
//!     cargo run --release -p weft-runtime --example invoke -- STEP.wasm ['{"params":1}'] [N]
//!
//! Compiles (or loads from a fresh compiled cache) once, then runs the step
//! N times (default 200) in one sandbox and prints the median and the 90th
//! percentile. `bench/languages.py` runs it for each language.

use std::time::Duration;

use weft_runtime::{Cancel, Determinism, Limits, Runtime, RuntimeOptions, SandboxDirs, StepCall};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(path) = args.get(1) else {
        eprintln!("usage: invoke STEP.wasm [PARAMS_JSON] [N]");
        std::process::exit(2);
    };
    let params = args.get(2).cloned().unwrap_or_else(|| "{}".into());
    let n: usize = args.get(3).and_then(|n| n.parse().ok()).unwrap_or(200);
    let work = tempfile::tempdir().expect("a temporary folder");
    let runtime = Runtime::new(RuntimeOptions::in_process(work.path().join("compiled"))).expect("a runtime");
    let step = runtime.load(std::path::Path::new(path)).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1);
    });
    let dirs = SandboxDirs {
        inputs: work.path().join("inputs"),
        outputs: work.path().join("outputs"),
        tmp: work.path().join("tmp"),
    };
    for dir in [&dirs.inputs, &dirs.outputs, &dirs.tmp] {
        std::fs::create_dir_all(dir).expect("sandbox folders");
    }
    let limits = Limits::default();
    let cancel = Cancel::default();
    let mut times: Vec<Duration> = Vec::with_capacity(n);
    for i in 0..n + 5 {
        // Each step run starts with empty outputs, as in a pipeline (weft
        // moves what a step wrote into the artifact store).
        for entry in std::fs::read_dir(&dirs.outputs).expect("the outputs folder").flatten() {
            let _ = std::fs::remove_file(entry.path());
        }
        let call = StepCall {
            params: &params,
            dirs: &dirs,
            limits: &limits,
            cancel: &cancel,
            env: &[],
            determinism: Determinism::seeded_from("invoke"),
        };
        let outcome = step.run(&call).await;
        if let Err(e) = &outcome.result {
            eprintln!("the step failed: {e}");
            std::process::exit(1);
        }
        if i >= 5 {
            times.push(outcome.duration);
        }
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{path}: instantiate + call, median {:.3} ms, p90 {:.3} ms over {n} runs",
        ms(times[n / 2]),
        ms(times[n * 9 / 10])
    );
}

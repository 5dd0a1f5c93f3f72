//! Fills a store with synthetic runs, for benchmarks of what reads it (the
//! dashboard, the native API):
//!
//! ```text
//! cargo run --release -p weft-store --example seed -- sqlite:///tmp/s/weft.db 10000 100000
//! ```
//!
//! writes RUNS runs of a three-step pipeline `synthetic` (a third of them
//! served partly from the cache, one in fifty failed), then one run of
//! `long-history` whose `train` step logged POINTS points of `loss`. Prints
//! the id of that last run.

use std::time::Instant;

use weft_store::{status, StepRunRecord, Store};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, runs, points] = args.as_slice() else {
        return Err("usage: seed DATABASE_URL RUNS POINTS".into());
    };
    let (runs, points): (usize, i64) = (runs.parse()?, points.parse()?);
    let store = Store::open(url).await?;
    let started = Instant::now();

    let pipeline = store.ensure_pipeline("synthetic").await?;
    let mut first_ids: Vec<String> = Vec::new();
    for i in 0..runs {
        let run = store.create_run(&pipeline, "{}", "bench", 1).await?;
        let names = [
            ("load".to_string(), "{}".to_string()),
            ("train".into(), "{}".into()),
            ("evaluate".into(), "{}".into()),
        ];
        let ids = store.create_step_runs(&run.id, &names).await?;
        let failed = i % 50 == 49;
        for (n, id) in ids.iter().enumerate() {
            if i % 3 == 1 && n == 0 && !first_ids.is_empty() {
                store
                    .record_cache_hits(&[weft_store::CacheHit {
                        step_run_id: id.clone(),
                        run_id: run.id.clone(),
                        step_name: names[n].0.clone(),
                        params: "{}".into(),
                        original: first_ids[0].clone(),
                        component_digest: "d".into(),
                        cache_key: "k".into(),
                        sandbox: "{}".into(),
                        determinism: "virtual".into(),
                        inputs: vec![],
                        outputs: vec![],
                    }])
                    .await?;
                continue;
            }
            store
                .start_step_run(id, "d", &format!("k{i}-{n}"), "{}", "virtual")
                .await?;
            let record = StepRunRecord {
                status: if failed && n == 2 {
                    status::FAILED
                } else {
                    status::SUCCEEDED
                }
                .into(),
                attempts: 1,
                metrics: vec![("accuracy".into(), 0.9 + (i % 10) as f64 / 100.0, None, 1)],
                params: vec![("seed".into(), i.to_string())],
                ..Default::default()
            };
            store.complete_step_run(&run.id, id, &record).await?;
        }
        if first_ids.is_empty() {
            first_ids = ids;
        }
        let outcome = if failed { status::FAILED } else { status::SUCCEEDED };
        store
            .finish_run(&run.id, outcome, failed.then_some("one or more steps failed"))
            .await?;
    }
    eprintln!("{runs} runs in {:.1} s", started.elapsed().as_secs_f64());

    let long = store.ensure_pipeline("long-history").await?;
    let run = store.create_run(&long, "{}", "bench", 1).await?;
    let ids = store
        .create_step_runs(&run.id, &[("train".into(), "{}".into())])
        .await?;
    store.start_step_run(&ids[0], "d", "long", "{}", "virtual").await?;
    let metrics = (0..points)
        .map(|i| {
            let x = i as f64;
            let loss = 2.0 / (1.0 + x / 500.0) + 0.05 * (x / 37.0).sin();
            ("loss".to_string(), loss, Some(i), 1_000 + i)
        })
        .collect();
    let record = StepRunRecord {
        status: status::SUCCEEDED.into(),
        attempts: 1,
        metrics,
        ..Default::default()
    };
    store.complete_step_run(&run.id, &ids[0], &record).await?;
    store.finish_run(&run.id, status::SUCCEEDED, None).await?;
    println!("{}", run.id);
    Ok(())
}

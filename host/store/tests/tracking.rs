//! Experiment tracking in the store: the rules MLflow clients rely on.

mod common;

use weft_store::search::{parse_filter, parse_order_by};
use weft_store::{MetricPoint, Store, StoreError};

fn point(key: &str, value: f64, timestamp: i64, step: i64) -> MetricPoint {
    MetricPoint {
        key: key.into(),
        value,
        timestamp,
        step,
    }
}

#[tokio::test]
async fn params_are_immutable_duplicates_are_dropped_and_latest_is_the_highest_step() {
    for t in common::stores().await {
        eprintln!("backend: {}", t.backend);
        params_are_immutable_duplicates_are_dropped_and_latest_is_the_highest_step_on(&t.store).await;
    }
}

async fn params_are_immutable_duplicates_are_dropped_and_latest_is_the_highest_step_on(store: &Store) {
    assert_eq!(store.experiment(0).await.unwrap().name, "Default");
    let exp = store.create_experiment("e", None, &[]).await.unwrap();
    assert!(matches!(
        store.create_experiment("e", None, &[]).await,
        Err(StoreError::AlreadyExists(_))
    ));
    let run = store
        .create_tracked_run(exp, "r", "me", None, &[])
        .await
        .unwrap()
        .run_uuid;

    store
        .log_batch(&run, &[], &[("lr".into(), "0.1".into())], &[])
        .await
        .unwrap();
    store
        .log_batch(&run, &[], &[("lr".into(), "0.1".into())], &[])
        .await
        .unwrap();
    let err = store
        .log_batch(&run, &[], &[("lr".into(), "0.2".into())], &[])
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Invalid(ref m) if m.contains("immutable")),
        "{err}"
    );

    // Out of order, with an exact duplicate: history keeps each point once,
    // and the latest is the highest step whatever the arrival order.
    let points = [
        point("loss", 0.5, 10, 2),
        point("loss", 0.9, 11, 0),
        point("loss", 0.5, 10, 2),
    ];
    store.log_batch(&run, &points, &[], &[]).await.unwrap();
    store
        .log_batch(&run, &[point("loss", 0.7, 12, 1)], &[], &[])
        .await
        .unwrap();
    let history = store.tracked_metric_history(&run, "loss", 100, 0).await.unwrap();
    // In MLflow's order: by time, then step, then value.
    assert_eq!(history.iter().map(|p| p.step).collect::<Vec<_>>(), [2, 0, 1]);
    assert!(store
        .tracked_metric_history("no-such-run", "loss", 100, 0)
        .await
        .unwrap()
        .is_empty());
    let tracked = store.tracked_run(&run).await.unwrap();
    assert_eq!(tracked.metrics, [point("loss", 0.5, 10, 2)]);
    assert_eq!(tracked.params, [("lr".to_string(), "0.1".to_string())]);

    // Deleted runs refuse writes.
    store.set_run_lifecycle(&run, "deleted").await.unwrap();
    assert!(matches!(
        store.log_batch(&run, &[], &[], &[("t".into(), "v".into())]).await,
        Err(StoreError::Invalid(_))
    ));
}

#[tokio::test]
async fn search_filters_and_orders_with_bound_values_only() {
    for t in common::stores().await {
        eprintln!("backend: {}", t.backend);
        search_filters_and_orders_with_bound_values_only_on(&t.store).await;
    }
}

async fn search_filters_and_orders_with_bound_values_only_on(store: &Store) {
    let exp = store.create_experiment("s", None, &[]).await.unwrap();
    for (name, acc, model) in [
        ("a", 0.7, "cnn"),
        ("b", 0.9, "cnn"),
        ("c", 0.95, "mlp"),
        ("d", 0.8, "Cnn"),
    ] {
        let run = store
            .create_tracked_run(exp, name, "me", None, &[])
            .await
            .unwrap()
            .run_uuid;
        store
            .log_batch(
                &run,
                &[point("acc", acc, 1, 0)],
                &[("model".into(), model.into())],
                &[("owner".into(), name.into())],
            )
            .await
            .unwrap();
    }
    let names = |filter: &str, order: &[&str]| {
        let clauses = parse_filter(filter).unwrap();
        let order = parse_order_by(&order.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        let store = store.clone();
        async move {
            store
                .search_tracked_runs(&[exp], Some("active"), &clauses, &order, 100, 0)
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.info.name)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        names("metrics.acc > 0.75", &["metrics.acc DESC"]).await,
        ["c", "b", "d"]
    );
    assert_eq!(names("params.model = 'cnn'", &["run_name"]).await, ["a", "b"]);
    // LIKE is case-sensitive, ILIKE is not.
    assert_eq!(names("params.model LIKE 'c%'", &["run_name"]).await, ["a", "b"]);
    assert_eq!(names("params.model ILIKE 'c%'", &["run_name"]).await, ["a", "b", "d"]);
    assert_eq!(
        names("tags.owner != 'a' and metrics.acc <= 0.9", &["run_name ASC"]).await,
        ["b", "d"]
    );
    assert_eq!(
        names("params.missing IS NULL", &["metrics.acc"]).await,
        ["a", "d", "b", "c"]
    );
    // A value that looks like SQL is just a value.
    assert!(names("params.model = 'x'' OR ''1''=''1'", &[]).await.is_empty());
}

#[tokio::test]
async fn metric_values_come_back_bit_for_bit() {
    for t in common::stores().await {
        eprintln!("backend: {}", t.backend);
        metric_values_come_back_bit_for_bit_on(&t.store).await;
    }
}

async fn metric_values_come_back_bit_for_bit_on(store: &Store) {
    let exp = store.create_experiment("exact", None, &[]).await.unwrap();
    let values = [
        0.1 + 0.2,
        1.0 / 3.0,
        std::f64::consts::PI,
        -2.5e-300,
        f64::from_bits(1), // the smallest subnormal
        f64::MAX,
        f64::MIN,
        123456789012345680.0,
        0.5,
        f64::INFINITY, // stored as the largest finite value
    ];
    let mut runs = Vec::new();
    for (i, v) in values.iter().enumerate() {
        let run = store
            .create_tracked_run(exp, &format!("r{i}"), "me", Some(i as i64), &[])
            .await
            .unwrap()
            .run_uuid;
        store.log_batch(&run, &[point("m", *v, 1, 0)], &[], &[]).await.unwrap();
        runs.push(run);
    }
    let expected = |v: f64| v.clamp(f64::MIN, f64::MAX).to_bits();
    for (run, v) in runs.iter().zip(values) {
        let got = store.tracked_run(run).await.unwrap().metrics[0].value;
        assert_eq!(got.to_bits(), expected(v), "{v:e} came back as {got:e}");
    }
    let found = store
        .search_tracked_runs(
            &[exp],
            None,
            &[],
            &parse_order_by(&["attributes.start_time ASC".to_string()]).unwrap(),
            100,
            0,
        )
        .await
        .unwrap();
    let got: Vec<u64> = found.iter().map(|r| r.metrics[0].value.to_bits()).collect();
    assert_eq!(got, values.map(expected));
}

/// Many writers at once (on PostgreSQL each run's writers share a lock of
/// their own, beside writers that lock everything): nothing is lost, the
/// latest value is the highest step, and no two writers wait for each other
/// forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_of_many_runs_lose_nothing() {
    for t in common::stores().await {
        eprintln!("backend: {}", t.backend);
        concurrent_writers_of_many_runs_lose_nothing_on(&t.store).await;
    }
}

async fn concurrent_writers_of_many_runs_lose_nothing_on(store: &Store) {
    let exp = store.create_experiment("concurrent", None, &[]).await.unwrap();
    let mut runs = Vec::new();
    for i in 0..4 {
        let run = store
            .create_tracked_run(exp, &format!("run-{i}"), "u", None, &[])
            .await
            .unwrap();
        runs.push(run.run_uuid);
    }
    let mut tasks = tokio::task::JoinSet::new();
    // Four writers per run, each logging 50 batches of 20 points of its own
    // steps, the same param and a tag of its own.
    for run in &runs {
        for writer in 0..4i64 {
            let store = store.clone();
            let run = run.clone();
            tasks.spawn(async move {
                for batch in 0..50i64 {
                    let points: Vec<MetricPoint> = (0..20)
                        .map(|i| {
                            let step = (batch * 20 + i) * 4 + writer;
                            point("loss", step as f64, 1_000 + step, step)
                        })
                        .collect();
                    store
                        .log_batch(
                            &run,
                            &points,
                            &[("lr".into(), "0.1".into())],
                            &[(format!("writer-{writer}"), batch.to_string())],
                        )
                        .await
                        .unwrap();
                }
            });
        }
    }
    // Meanwhile, writers that take the whole store: new experiments.
    for i in 0..10 {
        let store = store.clone();
        tasks.spawn(async move {
            store
                .create_experiment(&format!("beside-{i}"), None, &[])
                .await
                .unwrap();
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    for run in &runs {
        let history = store.tracked_metric_history(run, "loss", 1_000_000, 0).await.unwrap();
        assert_eq!(history.len(), 4 * 50 * 20, "every point of every writer");
        let tracked = store.tracked_run(run).await.unwrap();
        let latest = tracked.metrics.iter().find(|m| m.key == "loss").unwrap();
        assert_eq!(latest.step, 4 * 50 * 20 - 1, "the latest point is the highest step");
        assert_eq!(tracked.params, vec![("lr".to_string(), "0.1".to_string())]);
        for writer in 0..4 {
            let tag = tracked.tags.iter().find(|(k, _)| *k == format!("writer-{writer}"));
            assert_eq!(tag.map(|(_, v)| v.as_str()), Some("49"), "each writer's last tag");
        }
    }
}

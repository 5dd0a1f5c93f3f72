//! What the dashboard asks of the store: the runs list (filtered, sorted,
//! counted, paged), metric summaries and downsampled series, on SQLite and
//! PostgreSQL.

mod common;

use weft_store::{status, RunQuery, RunSort, StepRunRecord, Store};

/// Three pipelines' runs: "iris" (one cached step of two, succeeded),
/// "wine" (failed), "iris-big" (running, a long loss history).
async fn fill(store: &Store) -> [String; 3] {
    let iris = store.ensure_pipeline("iris").await.unwrap();
    let wine = store.ensure_pipeline("wine").await.unwrap();
    let big = store.ensure_pipeline("iris-big").await.unwrap();

    let first = store.create_run(&iris, "{}", "host", 1).await.unwrap();
    let ids = store
        .create_step_runs(
            &first.id,
            &[("prep".into(), "{}".into()), ("train".into(), "{}".into())],
        )
        .await
        .unwrap();
    for id in &ids {
        store
            .start_step_run(id, "d", &format!("key-{id}"), "{}", "virtual")
            .await
            .unwrap();
        let record = StepRunRecord {
            status: status::SUCCEEDED.into(),
            attempts: 1,
            metrics: vec![("acc".into(), 0.5, None, 1)],
            ..Default::default()
        };
        store.complete_step_run(&first.id, id, &record).await.unwrap();
    }
    store.finish_run(&first.id, status::SUCCEEDED, None).await.unwrap();

    let cached = store.create_run(&iris, "{}", "host", 1).await.unwrap();
    let ids2 = store
        .create_step_runs(
            &cached.id,
            &[("prep".into(), "{}".into()), ("train".into(), "{}".into())],
        )
        .await
        .unwrap();
    store
        .record_cache_hits(&[weft_store::CacheHit {
            step_run_id: ids2[0].clone(),
            run_id: cached.id.clone(),
            step_name: "prep".into(),
            params: "{}".into(),
            original: ids[0].clone(),
            component_digest: "d".into(),
            cache_key: "k".into(),
            sandbox: "{}".into(),
            determinism: "virtual".into(),
            inputs: vec![],
            outputs: vec![],
        }])
        .await
        .unwrap();
    store
        .start_step_run(&ids2[1], "d", "k2", "{}", "virtual")
        .await
        .unwrap();
    let record = StepRunRecord {
        status: status::SUCCEEDED.into(),
        attempts: 1,
        metrics: vec![("acc".into(), 0.75, None, 1)],
        ..Default::default()
    };
    store.complete_step_run(&cached.id, &ids2[1], &record).await.unwrap();
    store.finish_run(&cached.id, status::SUCCEEDED, None).await.unwrap();

    let failed = store.create_run(&wine, "{}", "host", 1).await.unwrap();
    let fid = store
        .create_step_runs(&failed.id, &[("load".into(), "{}".into())])
        .await
        .unwrap();
    store.start_step_run(&fid[0], "d", "k3", "{}", "virtual").await.unwrap();
    let record = StepRunRecord {
        status: status::FAILED.into(),
        attempts: 1,
        error: Some("boom".into()),
        ..Default::default()
    };
    store.complete_step_run(&failed.id, &fid[0], &record).await.unwrap();
    store
        .finish_run(&failed.id, status::FAILED, Some("one or more steps failed"))
        .await
        .unwrap();

    let running = store.create_run(&big, "{}", "host", 1).await.unwrap();
    let bid = store
        .create_step_runs(&running.id, &[("train".into(), "{}".into())])
        .await
        .unwrap();
    store.start_step_run(&bid[0], "d", "k4", "{}", "virtual").await.unwrap();
    // 5,000 points of a loss that falls, with one spike at step 2,500.
    let metrics = (0..5_000i64)
        .map(|i| {
            let value = if i == 2_500 { 100.0 } else { 1.0 / (1.0 + i as f64) };
            ("loss".to_string(), value, Some(i), 1_000 + i)
        })
        .collect();
    let record = StepRunRecord {
        status: status::SUCCEEDED.into(),
        attempts: 1,
        metrics,
        ..Default::default()
    };
    store.complete_step_run(&running.id, &bid[0], &record).await.unwrap();
    [cached.id, failed.id, running.id]
}

fn query(f: impl FnOnce(&mut RunQuery)) -> RunQuery {
    let mut q = RunQuery {
        descending: true,
        limit: 100,
        ..Default::default()
    };
    f(&mut q);
    q
}

#[tokio::test]
async fn the_runs_list_filters_sorts_counts_and_pages_in_the_database() {
    for t in common::stores().await {
        eprintln!("backend: {}", t.backend);
        let store = &t.store;
        let [cached, failed, running] = fill(store).await;

        let all = store.run_page(&query(|_| {})).await.unwrap();
        assert_eq!(all.total, 4);
        assert_eq!(all.runs[0].run.id, running, "newest first");
        let c = all.runs.iter().find(|r| r.run.id == cached).unwrap();
        assert_eq!((c.steps, c.cached, c.failed), (2, 1, 0));
        let f = all.runs.iter().find(|r| r.run.id == failed).unwrap();
        assert_eq!(
            (f.steps, f.cached, f.failed, f.run.status.as_str()),
            (1, 0, 1, "failed")
        );
        assert!(all.runs.iter().all(|r| r.duration_ms >= 0));

        // Search: pipeline name in any case, or an id prefix.
        let iris = store
            .run_page(&query(|q| q.search = Some("IRIS".into())))
            .await
            .unwrap();
        assert_eq!(iris.total, 3, "iris and iris-big");
        let by_id = store
            .run_page(&query(|q| q.search = Some(failed[..failed.len() - 1].into())))
            .await
            .unwrap();
        assert_eq!(by_id.runs.iter().map(|r| &r.run.id).collect::<Vec<_>>(), [&failed]);
        // LIKE wildcards in the search are literal.
        assert_eq!(
            store
                .run_page(&query(|q| q.search = Some("%".into())))
                .await
                .unwrap()
                .total,
            0
        );

        let exact = store
            .run_page(&query(|q| q.pipeline = Some("iris".into())))
            .await
            .unwrap();
        assert_eq!(exact.total, 2);
        let failures = store
            .run_page(&query(|q| q.status = Some("failed".into())))
            .await
            .unwrap();
        assert_eq!(failures.total, 1);

        // Sorting and paging: pages of one, by pipeline name ascending.
        let mut names = Vec::new();
        for offset in 0..4 {
            let page = store
                .run_page(&query(|q| {
                    q.sort = RunSort::Pipeline;
                    q.descending = false;
                    q.limit = 1;
                    q.offset = offset;
                }))
                .await
                .unwrap();
            assert_eq!(page.total, 4);
            assert_eq!(page.runs.len(), 1);
            names.push((page.runs[0].run.pipeline.clone(), page.runs[0].run.number));
        }
        assert_eq!(
            names,
            [
                ("iris".into(), 1),
                ("iris".into(), 2),
                ("iris-big".into(), 1),
                ("wine".into(), 1)
            ]
        );
        let by_duration = store.run_page(&query(|q| q.sort = RunSort::Duration)).await.unwrap();
        assert!(by_duration
            .runs
            .windows(2)
            .all(|w| w[0].duration_ms >= w[1].duration_ms));
        let by_status = store
            .run_page(&query(|q| {
                q.sort = RunSort::Status;
                q.descending = false;
            }))
            .await
            .unwrap();
        let statuses: Vec<&str> = by_status.runs.iter().map(|r| r.run.status.as_str()).collect();
        assert_eq!(statuses, ["failed", "running", "succeeded", "succeeded"]);
    }
}

#[tokio::test]
async fn metric_series_are_downsampled_keeping_spikes_and_summaries_give_final_values() {
    for t in common::stores().await {
        eprintln!("backend: {}", t.backend);
        let store = &t.store;
        let [cached, _, running] = fill(store).await;

        let series = store.metric_series(&running, "loss", 500).await.unwrap();
        assert_eq!(series.len(), 1);
        assert_eq!(series[0].step, "train");
        assert_eq!(series[0].total, 5_000);
        assert!(series[0].points.len() <= 500, "{}", series[0].points.len());
        assert!(series[0].points.iter().any(|p| p.1 == Some(100.0)), "the spike is kept");
        assert_eq!(series[0].points.first().unwrap().0, 0.0);
        let full = store.metric_series(&running, "loss", 10_000).await.unwrap();
        assert_eq!(full[0].points.len(), 5_000);
        assert_eq!(full[0].points[4_999], (4_999.0, Some(1.0 / 5_000.0)));

        let summary = store.metric_summaries(&running).await.unwrap();
        assert_eq!(summary.len(), 1);
        assert_eq!(
            (summary[0].count, summary[0].last, summary[0].max),
            (5_000, 1.0 / 5_000.0, 100.0)
        );
        // A cached step's metrics are those of the run it was served from.
        let summary = store.metric_summaries(&cached).await.unwrap();
        let acc: Vec<(&str, f64)> = summary.iter().map(|m| (m.step.as_str(), m.last)).collect();
        assert_eq!(acc, [("prep", 0.5), ("train", 0.75)]);
        assert!(store.metric_series(&cached, "nope", 100).await.unwrap().is_empty());
    }
}

//! The metadata store against a real SQLite file and a real PostgreSQL
//! database.

mod common;

use weft_store::{status, verification, CacheHit, NewArtifact, StepRunRecord, Store};

fn artifact(name: &str, digest: char) -> NewArtifact {
    NewArtifact {
        name: name.into(),
        digest: digest.to_string().repeat(64),
        kind: "file".into(),
        media_type: "text/csv".into(),
        size: 10,
        source_uri: None,
    }
}

#[tokio::test]
async fn a_run_records_lineage_cache_candidates_and_recovers_from_crashes() {
    for t in common::stores().await {
        eprintln!("backend: {}", t.backend);
        lineage_cache_and_recovery(&t.store).await;
    }
}

async fn lineage_cache_and_recovery(store: &Store) {
    let pipeline = store.ensure_pipeline("iris").await.unwrap();
    assert_eq!(store.ensure_pipeline("iris").await.unwrap(), pipeline);

    let run = store.create_run(&pipeline, "{}", "host", 1).await.unwrap();
    assert_eq!(run.number, 1);
    let input = store
        .record_run_input(&run.id, "data", &artifact("iris/inputs.data", 'a'))
        .await
        .unwrap();
    assert_eq!(input.version, 1);
    let ids = store
        .create_step_runs(&run.id, &[("split".into(), "{}".into()), ("train".into(), "{}".into())])
        .await
        .unwrap();
    store
        .start_step_run(&ids[0], "digest", "key-split", "{}", "virtual")
        .await
        .unwrap();
    let record = StepRunRecord {
        status: status::SUCCEEDED.into(),
        logs: "hello".into(),
        attempts: 1,
        inputs: vec![("data".into(), input.id.clone())],
        outputs: vec![("train".into(), artifact("iris/split.train", 'b'))],
        metrics: vec![("rows".into(), 150.0, None, 1), ("loss".into(), 0.5, Some(1), 2)],
        params: vec![("seed".into(), "7".into())],
        ..Default::default()
    };
    let outputs = store.complete_step_run(&run.id, &ids[0], &record).await.unwrap();
    assert_eq!(outputs.len(), 1);

    let candidates = store.cache_candidates("key-split", false).await.unwrap();
    assert_eq!(candidates.len(), 1);
    assert_eq!(candidates[0].0, ids[0]);
    assert_eq!(candidates[0].1[0].slot, "train");
    assert!(store.cache_candidates("other", false).await.unwrap().is_empty());

    // A cache hit in a later run is a step run of its own: new versions of
    // the outputs under its names, produced by it, read from its inputs.
    let hit_run = store.create_run(&pipeline, "{}", "host", 1).await.unwrap();
    let hit_ids = store
        .create_step_runs(&hit_run.id, &[("split".into(), "{}".into())])
        .await
        .unwrap();
    let served_id = weft_store::new_id();
    store
        .record_cache_hits(&[CacheHit {
            step_run_id: hit_ids[0].clone(),
            run_id: hit_run.id.clone(),
            step_name: "split".into(),
            params: "{}".into(),
            original: ids[0].clone(),
            component_digest: "digest".into(),
            cache_key: "key-split".into(),
            sandbox: "{}".into(),
            determinism: "virtual".into(),
            inputs: vec![("data".to_string(), input.id.clone())],
            outputs: vec![(
                "train".to_string(),
                served_id.clone(),
                artifact("iris/split.train", 'b'),
            )],
        }])
        .await
        .unwrap();
    let served = store.artifact(&served_id).await.unwrap();
    assert_eq!((served.name.as_str(), served.version), ("iris/split.train", 2));
    assert_eq!(served.producer_step_run_id.as_deref(), Some(hit_ids[0].as_str()));
    let outputs = store.step_run_outputs(&hit_ids[0]).await.unwrap();
    assert_eq!(outputs[0].artifact.id, served.id);
    let inputs = store.step_run_inputs(&hit_ids[0]).await.unwrap();
    assert_eq!(inputs[0].artifact.id, input.id);
    let hit = store.step_run(&hit_ids[0]).await.unwrap();
    assert_eq!(hit.status, status::CACHED);
    assert_eq!(hit.cached_from.as_deref(), Some(ids[0].as_str()));
    store.finish_run(&hit_run.id, status::SUCCEEDED, None).await.unwrap();

    // Lineage: split.train <- split <- inputs.data
    let lineage = store.lineage("iris/split.train").await.unwrap();
    assert_eq!(lineage.producer.as_ref().unwrap().step_name, "split");
    assert_eq!(lineage.inputs[0].1.artifact.name, "iris/inputs.data");
    assert!(lineage.inputs[0].1.producer.is_none());

    // The same input content is not a new version; new content is.
    let run2 = store.create_run(&pipeline, "{}", "host", 999_999).await.unwrap();
    assert_eq!(run2.number, 3);
    assert_eq!(
        store
            .record_run_input(&run2.id, "data", &artifact("iris/inputs.data", 'a'))
            .await
            .unwrap()
            .version,
        1
    );
    assert_eq!(
        store
            .record_run_input(&run2.id, "data2", &artifact("iris/inputs.data", 'c'))
            .await
            .unwrap()
            .version,
        2
    );

    // run2's process is dead: recovery marks it crashed; runs of pid 1
    // (alive) stay.
    let recovered = store.recover_crashed("host", |pid| pid == 1).await.unwrap();
    assert_eq!(recovered, std::slice::from_ref(&run2.id));
    assert_eq!(store.run(&run2.id).await.unwrap().status, status::CRASHED);
    assert_eq!(store.run(&run.id).await.unwrap().status, status::RUNNING);

    let detail = store.run_detail(&run.id).await.unwrap();
    assert_eq!(detail.metrics.len(), 2);
    assert_eq!(detail.params[0].key, "seed");
    assert_eq!(detail.inputs[0].artifact.name, "iris/inputs.data");
    assert!(store.check_integrity().await.unwrap().is_empty());
    assert_eq!(store.run("latest").await.unwrap().id, run2.id);
    assert!(store.run("zzz").await.is_err());
}

#[tokio::test]
async fn imported_step_runs_serve_the_cache_only_once_verified_and_a_mismatch_never_serves() {
    let here = common::stores().await;
    let there = common::stores().await;
    for (local, remote) in here.iter().zip(&there) {
        eprintln!("backend: {}", local.backend);
        imported_trust(&local.store, &remote.store).await;
    }
}

/// How many step runs may serve the cache key `key`, by the per-key
/// lookup; the lookup of the previous run's candidates must agree on
/// whether one may (a rerun asks that one first).
async fn serving(store: &Store, trusted: bool) -> usize {
    let by_key = store.cache_candidates("key", trusted).await.unwrap();
    let previous = store.previous_run_candidates("p", "", trusted).await.unwrap();
    assert_eq!(
        by_key.first().map(|(id, _)| id),
        previous.get("key").map(|(id, _)| id),
        "both lookups serve the same step run"
    );
    by_key.len()
}

async fn imported_trust(local: &Store, remote: &Store) {
    // A run made elsewhere...
    let pipeline = remote.ensure_pipeline("p").await.unwrap();
    let run = remote.create_run(&pipeline, "{}", "elsewhere", 1).await.unwrap();
    let ids = remote
        .create_step_runs(&run.id, &[("s".into(), "{}".into())])
        .await
        .unwrap();
    remote
        .start_step_run(&ids[0], "digest", "key", "{\"spec\":1}", "virtual")
        .await
        .unwrap();
    let record = StepRunRecord {
        status: status::SUCCEEDED.into(),
        attempts: 1,
        outputs: vec![("out".into(), artifact("p/s.out", 'e'))],
        ..Default::default()
    };
    remote.complete_step_run(&run.id, &ids[0], &record).await.unwrap();
    remote.finish_run(&run.id, status::SUCCEEDED, None).await.unwrap();
    assert_eq!(serving(remote, false).await, 1, "trusted where it ran");

    // ... imported here: recorded as imported, with its sandbox.
    let export = remote.export_run(&run.id).await.unwrap();
    local.import_run(&export).await.unwrap();
    let imported = local.step_run(&ids[0]).await.unwrap();
    assert_eq!(imported.origin, "imported");
    assert_eq!(
        local.step_run_sandbox(&ids[0]).await.unwrap().as_deref(),
        Some("{\"spec\":1}")
    );
    assert!(serving(local, false).await == 0, "not trusted unverified");
    assert_eq!(serving(local, true).await, 1, "unless the stack trusts imports");

    local
        .record_verification(&ids[0], verification::MATCH, None, &[], "here")
        .await
        .unwrap();
    assert_eq!(serving(local, false).await, 1, "trusted once verified");
    let recorded = local.verifications(&run.id).await.unwrap();
    assert_eq!(recorded.len(), 1);
    assert_eq!(
        (recorded[0].step.as_str(), recorded[0].outcome.as_str()),
        ("s", "match")
    );

    // Re-importing (the run updated) keeps it imported.
    local.import_run(&export).await.unwrap();
    assert_eq!(local.step_run(&ids[0]).await.unwrap().origin, "imported");

    // A mismatch found later: it never serves again, trusted or not.
    local
        .record_verification(&ids[0], verification::MISMATCH, Some("out differs"), &[], "here")
        .await
        .unwrap();
    assert!(serving(local, false).await == 0);
    assert!(serving(local, true).await == 0);
    assert!(local.check_integrity().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_step_run_is_one_tracking_run_that_both_apis_read() {
    for t in common::stores().await {
        eprintln!("backend: {}", t.backend);
        one_tracking_model(&t.store).await;
    }
}

/// What a step logs is kept once, in its tracking run: the MLflow API and
/// weft's own read the same rows, so a point an MLflow client adds to the
/// step's run shows in both, and a cache hit holds its own copy.
async fn one_tracking_model(store: &Store) {
    let pipeline = store.ensure_pipeline("one-model").await.unwrap();
    let run = store.create_run(&pipeline, "{}", "host", 1).await.unwrap();
    let ids = store
        .create_step_runs(&run.id, &[("train".into(), r#"{"lr":0.1}"#.into())])
        .await
        .unwrap();
    let record = StepRunRecord {
        status: status::SUCCEEDED.into(),
        attempts: 1,
        cache_key: Some("key-train".into()),
        component_digest: Some("digest".into()),
        metrics: vec![("loss".into(), 0.5, None, 1), ("loss".into(), 0.25, Some(2), 2)],
        params: vec![("seed".into(), "7".into())],
        tags: vec![("team".into(), "ml".into()), ("weft.status".into(), "forged".into())],
        ..Default::default()
    };
    store.complete_step_run(&run.id, &ids[0], &record).await.unwrap();

    // The MLflow view of the step run: its configured and logged params,
    // weft's tags (a logged tag cannot forge one) and its own.
    let tracked = store.tracked_run(&ids[0]).await.unwrap();
    let param =
        |run: &weft_store::TrackedRun, key: &str| run.params.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    let tag = |run: &weft_store::TrackedRun, key: &str| run.tags.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    assert_eq!(param(&tracked, "lr").as_deref(), Some("0.1"));
    assert_eq!(param(&tracked, "seed").as_deref(), Some("7"));
    assert_eq!(tag(&tracked, "team").as_deref(), Some("ml"));
    assert_eq!(tag(&tracked, "weft.status").as_deref(), Some(status::SUCCEEDED));
    assert_eq!(tracked.metrics.len(), 1);
    assert_eq!((tracked.metrics[0].value, tracked.metrics[0].step), (0.25, 2));

    // An MLflow client logs one more point to the step's run.
    let point = weft_store::MetricPoint {
        key: "loss".into(),
        value: 0.125,
        timestamp: 3,
        step: 3,
    };
    store.log_batch(&ids[0], &[point], &[], &[]).await.unwrap();

    // weft's own API reads the same rows: three points, the first without a
    // step index; the logged params without the configured ones.
    let detail = store.run_detail(&run.id).await.unwrap();
    let points: Vec<(Option<i64>, f64)> = detail.metrics.iter().map(|m| (m.step, m.value)).collect();
    assert_eq!(points, [(None, 0.5), (Some(2), 0.25), (Some(3), 0.125)]);
    let params: Vec<(&str, &str)> = detail
        .params
        .iter()
        .map(|p| (p.key.as_str(), p.value.as_str()))
        .collect();
    assert_eq!(params, [("seed", "7")]);
    let tags: Vec<&str> = detail.tags.iter().map(|t| t.key.as_str()).collect();
    assert_eq!(tags, ["team"]);
    let summary = store.metric_summaries(&run.id).await.unwrap();
    assert_eq!((summary[0].count, summary[0].last), (3, 0.125));
    assert_eq!(store.metric_history(&run.id, "loss").await.unwrap().len(), 3);

    // A cache hit in a second run: its own copy of what the original holds.
    let run2 = store.create_run(&pipeline, "{}", "host", 1).await.unwrap();
    let hit_ids = store
        .create_step_runs(&run2.id, &[("train".into(), r#"{"lr":0.1}"#.into())])
        .await
        .unwrap();
    store
        .record_cache_hits(&[CacheHit {
            step_run_id: hit_ids[0].clone(),
            run_id: run2.id.clone(),
            step_name: "train".into(),
            params: r#"{"lr":0.1}"#.into(),
            original: ids[0].clone(),
            component_digest: "digest".into(),
            cache_key: "key-train".into(),
            sandbox: "{}".into(),
            determinism: "virtual".into(),
            inputs: Vec::new(),
            outputs: Vec::new(),
        }])
        .await
        .unwrap();
    let hit = store.tracked_run(&hit_ids[0]).await.unwrap();
    assert_eq!(param(&hit, "seed").as_deref(), Some("7"));
    assert_eq!(tag(&hit, "team").as_deref(), Some("ml"));
    assert_eq!(tag(&hit, "weft.status").as_deref(), Some(status::CACHED));
    assert_eq!(tag(&hit, "weft.cached_from").as_deref(), Some(ids[0].as_str()));
    assert_eq!((hit.metrics[0].value, hit.metrics[0].step), (0.125, 3));
    let detail = store.run_detail(&run2.id).await.unwrap();
    assert_eq!(detail.metrics.len(), 3, "the hit shows its original's points");
}

#[tokio::test]
async fn a_deferred_step_run_is_claimed_completed_by_its_worker_and_served_from_the_cache_once() {
    for t in common::stores().await {
        eprintln!("backend: {}", t.backend);
        deferred_lifecycle(&t.store).await;
    }
}

async fn deferred_lifecycle(store: &Store) {
    use weft_store::Claim;
    let pipeline = store.ensure_pipeline("chain").await.unwrap();
    let run = store.create_run(&pipeline, "{}", "host", 1).await.unwrap();
    let ids = store
        .create_step_runs(
            &run.id,
            &[("first".into(), "{}".into()), ("second".into(), "{}".into())],
        )
        .await
        .unwrap();
    // An earlier step run with the key the worker will compute.
    let earlier = store.create_run(&pipeline, "{}", "host", 1).await.unwrap();
    let old = store
        .create_step_runs(&earlier.id, &[("second".into(), "{}".into())])
        .await
        .unwrap();
    store
        .start_step_run(&old[0], "d", "key-second", "{}", "virtual")
        .await
        .unwrap();
    let done = StepRunRecord {
        status: status::SUCCEEDED.into(),
        attempts: 1,
        outputs: vec![("out".into(), artifact("chain/second.out", 'c'))],
        ..Default::default()
    };
    store.complete_step_run(&earlier.id, &old[0], &done).await.unwrap();

    // Not claimable before it is prepared; deferred once, not twice.
    assert_eq!(store.claim_step_run(&ids[1]).await.unwrap(), Claim::NotPrepared);
    store.prepare_deferred_step_run(&ids[1], "{\"spec\":1}").await.unwrap();
    assert!(store.prepare_deferred_step_run(&ids[1], "{}").await.is_err());
    assert!(store
        .prepare_step_run(&ids[1], "d", "k", "{}", "virtual", &[])
        .await
        .is_err());
    assert_eq!(
        store.step_run_deferred(&ids[1]).await.unwrap().as_deref(),
        Some("{\"spec\":1}")
    );

    // Its worker claims it and records the completed spec and inputs.
    let Claim::Claimed(claim) = store.claim_step_run(&ids[1]).await.unwrap() else {
        panic!("a deferred step run is claimable");
    };
    assert!(!store
        .resolve_deferred_step_run(&ids[1], "not-the-claim", "d", "key-second", "{}", "virtual", &[])
        .await
        .unwrap());
    let input = store
        .record_run_input(&run.id, "raw", &artifact("chain/inputs.raw", 'a'))
        .await
        .unwrap();
    let inputs = vec![("in".to_string(), input.id.clone())];
    assert!(store
        .resolve_deferred_step_run(
            &ids[1],
            &claim,
            "d",
            "key-second",
            "{\"resolved\":true}",
            "virtual",
            &inputs
        )
        .await
        .unwrap());
    assert_eq!(store.step_run_deferred(&ids[1]).await.unwrap(), None, "resolved");
    assert_eq!(
        store.step_run_sandbox(&ids[1]).await.unwrap().as_deref(),
        Some("{\"resolved\":true}")
    );

    // A cache hit recorded under the claim, once.
    let (original, links) = store.cache_candidates("key-second", false).await.unwrap().remove(0);
    assert_eq!(original, old[0]);
    let hit = CacheHit {
        step_run_id: ids[1].clone(),
        run_id: run.id.clone(),
        step_name: "second".into(),
        params: "{}".into(),
        original: original.clone(),
        component_digest: "d".into(),
        cache_key: "key-second".into(),
        sandbox: "{\"resolved\":true}".into(),
        determinism: "virtual".into(),
        inputs: Vec::new(),
        outputs: vec![(
            "out".into(),
            weft_store::new_id(),
            artifact("chain/second.out", links[0].artifact.digest.chars().next().unwrap()),
        )],
    };
    assert!(!store.finish_claimed_as_hit("not-the-claim", &hit).await.unwrap());
    assert!(store.finish_claimed_as_hit(&claim, &hit).await.unwrap());
    assert!(!store.finish_claimed_as_hit(&claim, &hit).await.unwrap(), "once");
    let now = store.step_run(&ids[1]).await.unwrap();
    assert_eq!(now.status, status::CACHED);
    assert_eq!(now.cached_from.as_deref(), Some(original.as_str()));
    assert_eq!(now.cache_key.as_deref(), Some("key-second"));
    let read = store.step_run_inputs(&ids[1]).await.unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].artifact.id, input.id);
    let out = store.step_run_outputs(&ids[1]).await.unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].artifact.name, "chain/second.out");
    assert_eq!(out[0].artifact.version, 2, "a version of its own, the same bytes");
    assert_eq!(out[0].artifact.digest, links[0].artifact.digest);
}

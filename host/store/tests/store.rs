//! The metadata store against a real SQLite file and a real PostgreSQL
//! database.

mod common;

use weft_store::{status, NewArtifact, StepRunRecord, Store};

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
    store.start_step_run(&ids[0], "digest", "key-split").await.unwrap();
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

    let candidates = store.cache_candidates("key-split").await.unwrap();
    assert_eq!(candidates.len(), 1);
    assert_eq!(candidates[0].0, ids[0]);
    assert_eq!(candidates[0].1[0].slot, "train");
    assert!(store.cache_candidates("other").await.unwrap().is_empty());

    // Lineage: split.train <- split <- inputs.data
    let lineage = store.lineage("iris/split.train").await.unwrap();
    assert_eq!(lineage.producer.as_ref().unwrap().step_name, "split");
    assert_eq!(lineage.inputs[0].1.artifact.name, "iris/inputs.data");
    assert!(lineage.inputs[0].1.producer.is_none());

    // The same input content is not a new version; new content is.
    let run2 = store.create_run(&pipeline, "{}", "host", 999_999).await.unwrap();
    assert_eq!(run2.number, 2);
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

    // run2's process is dead: recovery marks it crashed; run 1 (alive) stays.
    let recovered = store.recover_crashed("host", |pid| pid == 1).await.unwrap();
    assert_eq!(recovered, [run2.id.clone()]);
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

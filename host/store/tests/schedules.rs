//! Registered pipelines and schedules against a real SQLite file and a
//! real PostgreSQL database.

mod common;

use weft_store::{firing, NewSchedule, Store, StoreError};

#[tokio::test]
async fn definitions_are_versioned_and_a_due_time_is_taken_and_recorded_once() {
    for t in common::stores().await {
        eprintln!("backend: {}", t.backend);
        definitions_and_schedules(&t.store).await;
    }
}

async fn definitions_and_schedules(store: &Store) {
    assert!(matches!(
        store.latest_definition("iris").await,
        Err(StoreError::NotFound { .. })
    ));
    let params = serde_json::json!({"train.epochs": 5});
    let new = |name: &'static str, due: i64| NewSchedule {
        name,
        pipeline: "iris",
        cron: "* * * * * *",
        params: &params,
        missed: "skip",
        next_due_at: due,
    };
    // A schedule needs a registered pipeline.
    assert!(matches!(
        store.create_schedule(new("nightly", 1_000)).await,
        Err(StoreError::NotFound { .. })
    ));
    let v1 = store
        .register_definition("iris", "[pipeline]\nname = \"iris\"", "{}")
        .await
        .unwrap();
    let v2 = store
        .register_definition("iris", "[pipeline]\nname = \"iris\"\n# 2", "{\"a\":1}")
        .await
        .unwrap();
    assert_eq!((v1.version, v2.version), (1, 2));
    let latest = store.latest_definition("iris").await.unwrap();
    assert_eq!((latest.id, latest.pins), (v2.id, "{\"a\":1}".to_string()));

    let created = store.create_schedule(new("nightly", 1_000)).await.unwrap();
    assert_eq!(created.pipeline, "iris");
    assert_eq!(created.params, params);
    assert!(!created.paused && created.last.is_none());
    assert!(matches!(
        store.create_schedule(new("nightly", 1_000)).await,
        Err(StoreError::AlreadyExists(_))
    ));
    assert_eq!(store.next_due().await.unwrap(), Some(1_000));
    assert_eq!(store.due_schedules(999).await.unwrap().len(), 0);
    assert_eq!(store.due_schedules(1_000).await.unwrap().len(), 1);

    // Many claimants of one due time (two servers, many ticks): one wins.
    let claims = futures::future::join_all((0..16).map(|_| store.claim_due(&created.id, 1_000, 2_000))).await;
    assert_eq!(claims.into_iter().filter(|c| *c.as_ref().unwrap()).count(), 1);
    assert!(!store.claim_due(&created.id, 1_000, 2_000).await.unwrap());
    // One record per due time.
    let id = store
        .record_firing(&created.id, 1_000, firing::FIRED, 0, "a")
        .await
        .unwrap()
        .expect("the first record");
    assert!(store
        .record_firing(&created.id, 1_000, firing::FIRED, 0, "b")
        .await
        .unwrap()
        .is_none());
    store.finish_firing(&id, None, Some("no such step")).await.unwrap();
    let shown = store.schedule("nightly").await.unwrap();
    assert_eq!(shown.next_due_at, 2_000);
    let last = shown.last.expect("its last firing");
    assert_eq!(
        (last.outcome.as_str(), last.error.as_deref()),
        (firing::FAILED, Some("no such step"))
    );

    // Paused: never due, and not claimable; resumed: due at the given time.
    store.set_schedule_paused("nightly", true, 0).await.unwrap();
    assert_eq!(store.due_schedules(i64::MAX).await.unwrap().len(), 0);
    assert_eq!(store.next_due().await.unwrap(), None);
    assert!(!store.claim_due(&created.id, 2_000, 3_000).await.unwrap());
    let resumed = store.set_schedule_paused("nightly", false, 9_000).await.unwrap();
    assert!(!resumed.paused);
    assert_eq!(resumed.next_due_at, 9_000);

    store.delete_schedule("nightly").await.unwrap();
    assert!(store.schedules().await.unwrap().is_empty());
    assert!(matches!(
        store.delete_schedule("nightly").await,
        Err(StoreError::NotFound { .. })
    ));
}

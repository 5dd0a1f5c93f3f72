//! The stores every test runs against: a fresh SQLite file always, and a
//! fresh PostgreSQL database when `WEFT_TEST_POSTGRES` names a server
//! (`tests/run.sh` starts one).

use weft_store::Store;

/// A store to test, with what keeps it alive.
pub struct TestStore {
    pub store: Store,
    pub backend: &'static str,
    _dir: Option<tempfile::TempDir>,
}

/// A fresh store per backend available here.
pub async fn stores() -> Vec<TestStore> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Store::open(&format!("sqlite://{}", dir.path().join("weft.db").display()))
        .await
        .unwrap();
    let mut out = vec![TestStore {
        store: sqlite,
        backend: "sqlite",
        _dir: Some(dir),
    }];
    let Ok(server) = std::env::var("WEFT_TEST_POSTGRES") else {
        skip_postgres();
        return out;
    };
    let name = format!("weft_test_{}", uuid_like());
    let store = Store::open(&format!("{}/{name}", server.trim_end_matches('/')))
        .await
        .unwrap();
    out.push(TestStore {
        store,
        backend: "postgres",
        _dir: None,
    });
    out
}

/// Reports the PostgreSQL half of the calling test as skipped (see
/// `tests/run.sh`, which reads `WEFT_SKIP_LOG`), instead of letting it pass.
fn skip_postgres() {
    let test = std::thread::current().name().unwrap_or("a store test").to_string();
    let line = format!("{test} on PostgreSQL: WEFT_TEST_POSTGRES is not set (tests/run.sh starts a server)\n");
    eprint!("skipped: {line}");
    if let Ok(log) = std::env::var("WEFT_SKIP_LOG") {
        use std::io::Write;
        let file = std::fs::OpenOptions::new().append(true).create(true).open(log);
        file.and_then(|mut f| f.write_all(line.as_bytes()))
            .expect("the skip log");
    }
}

fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{}_{nanos}", std::process::id())
}

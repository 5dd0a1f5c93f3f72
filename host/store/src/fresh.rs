//! A new SQLite database starts as a copy of `schema/fresh.sqlite`: the
//! database the embedded migrations make from nothing, saved.
//!
//! Running the migrations statement by statement costs about 10 ms, a
//! third of a fresh state's whole first run; writing the copy costs a
//! fraction of a millisecond. The copy is sound by construction:
//! - it carries the `_sqlx_migrations` rows (versions and checksums) of
//!   the migrations that made it, so a migration added after it was saved
//!   applies on top as usual: a stale copy is slower, never wrong;
//! - the unit test below fails when the copy no longer equals what the
//!   migrations make (schema, rows, migration checksums), and says how to
//!   save it again;
//! - it appears under its name complete or not at all (written aside, then
//!   hard-linked into place), so a process opening the same path at the
//!   same moment never sees half of it; where hard links are not
//!   available, the database is made by the migrations as before.

use std::path::Path;

/// The saved database (see the module documentation).
const IMAGE: &[u8] = include_bytes!("../schema/fresh.sqlite");

/// Creates the SQLite database at `path` from the saved copy, unless a
/// file is there already. `Ok(false)`: nothing was written (the file
/// exists, or this file system cannot link), and opening the database
/// goes on as usual.
pub(crate) fn create(path: &Path) -> std::io::Result<bool> {
    if path.exists() {
        return Ok(false);
    }
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return Ok(false);
    };
    let aside = path.with_file_name(format!(".{name}.{}.{}.new", std::process::id(), crate::new_id()));
    std::fs::write(&aside, IMAGE)?;
    let linked = std::fs::hard_link(&aside, path);
    let _ = std::fs::remove_file(&aside);
    match linked {
        Ok(()) => Ok(true),
        // Another process created it first, or links are not available.
        Err(_) => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use sqlx::any::AnyPoolOptions;
    use sqlx::{AnyPool, Row};

    /// The first column of every row `sql` returns, as text.
    async fn strings(pool: &AnyPool, sql: &str) -> Vec<String> {
        sqlx::query(sql)
            .fetch_all(pool)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<String, _>(0))
            .collect()
    }

    /// Everything that makes the database what it is: the schema, every
    /// table's rows, and the migrations recorded as applied (without when
    /// and how fast they ran).
    async fn contents(pool: &AnyPool) -> Vec<String> {
        let mut out = strings(
            pool,
            "SELECT type || ' ' || name || ': ' || COALESCE(sql, '') FROM sqlite_master \
             WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name",
        )
        .await;
        let tables = strings(
            pool,
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
             AND name <> '_sqlx_migrations' ORDER BY name",
        )
        .await;
        for table in tables {
            let columns: Vec<String> = strings(pool, &format!("SELECT name FROM pragma_table_info('{table}')"))
                .await
                .iter()
                .map(|c| format!("quote(\"{c}\")"))
                .collect();
            let rows = strings(
                pool,
                &format!("SELECT {} FROM \"{table}\" ORDER BY rowid", columns.join(" || '|' || ")),
            )
            .await;
            out.extend(rows.iter().map(|r| format!("{table}: {r}")));
        }
        let migrations = strings(
            pool,
            "SELECT version || ' ' || description || ' ' || success || ' ' || hex(checksum) \
             FROM _sqlx_migrations ORDER BY version",
        )
        .await;
        out.extend(migrations.iter().map(|m| format!("migration {m}")));
        out
    }

    async fn pool(path: &std::path::Path) -> AnyPool {
        sqlx::any::install_default_drivers();
        AnyPoolOptions::new()
            .max_connections(1)
            .connect(&format!("sqlite://{}?mode=rwc", path.display()))
            .await
            .unwrap()
    }

    /// The saved copy is what the migrations make. When a migration is
    /// added or changed, save it again with
    /// `WEFT_SAVE_FRESH_DB=1 cargo test -p weft-store fresh`.
    #[tokio::test]
    async fn fresh_image_is_what_the_migrations_make() {
        let dir = tempfile::tempdir().unwrap();
        let migrated = dir.path().join("migrated.db");
        let made = pool(&migrated).await;
        sqlx::query("PRAGMA journal_mode = WAL").execute(&made).await.unwrap();
        sqlx::migrate!("./migrations").run(&made).await.unwrap();

        if std::env::var_os("WEFT_SAVE_FRESH_DB").is_some() {
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&made)
                .await
                .unwrap();
            sqlx::query("VACUUM").execute(&made).await.unwrap();
            made.close().await;
            let image = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/fresh.sqlite");
            std::fs::copy(&migrated, &image).unwrap();
            eprintln!("saved {}", image.display());
            return;
        }

        let copied = dir.path().join("copied.db");
        assert!(super::create(&copied).unwrap(), "the copy was not written");
        assert!(
            !super::create(&copied).unwrap(),
            "an existing database must be left alone"
        );
        let copy = pool(&copied).await;
        assert_eq!(
            contents(&copy).await,
            contents(&made).await,
            "host/store/schema/fresh.sqlite is not what the migrations make: save it again with \
             `WEFT_SAVE_FRESH_DB=1 cargo test -p weft-store fresh`"
        );
    }
}

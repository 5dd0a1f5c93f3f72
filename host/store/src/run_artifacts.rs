//! Files logged to runs through the MLflow artifact proxy: a path index
//! over blobs of the content-addressed artifact store.

use crate::{now_ms, Store, StoreError};

/// A file or directory under a listed path.
#[derive(Debug, Clone, PartialEq)]
pub struct ArtifactEntry {
    /// Name relative to the listed directory.
    pub name: String,
    pub is_dir: bool,
    /// Size of a file.
    pub size: Option<i64>,
}

impl Store {
    /// Records (or replaces) the file at `path`.
    pub async fn put_run_artifact(&self, path: &str, digest: &str, size: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO tracking_artifacts (path, digest, size, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (path) DO UPDATE SET digest = excluded.digest, size = excluded.size, created_at = excluded.created_at",
        )
        .bind(path)
        .bind(digest)
        .bind(size)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The digest and size of the file at `path`.
    pub async fn run_artifact(&self, path: &str) -> Result<(String, i64), StoreError> {
        sqlx::query_as("SELECT digest, size FROM tracking_artifacts WHERE path = $1")
            .bind(path)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound {
                what: "artifact",
                key: path.to_string(),
            })
    }

    /// Deletes the file at `path`, or every file under it.
    pub async fn delete_run_artifacts(&self, path: &str) -> Result<u64, StoreError> {
        Ok(
            sqlx::query("DELETE FROM tracking_artifacts WHERE path = $1 OR substr(path, 1, length($2)) = $2")
                .bind(path)
                .bind(format!("{}/", path.trim_end_matches('/')))
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )
    }

    /// The direct children of directory `dir` (`""` for the root).
    pub async fn list_run_artifacts(&self, dir: &str) -> Result<Vec<ArtifactEntry>, StoreError> {
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{}/", dir.trim_end_matches('/'))
        };
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT path, size FROM tracking_artifacts WHERE substr(path, 1, length($1)) = $1 ORDER BY path",
        )
        .bind(&prefix)
        .fetch_all(&self.pool)
        .await?;
        let mut entries: Vec<ArtifactEntry> = Vec::new();
        for (path, size) in rows {
            let rest = &path[prefix.len()..];
            match rest.split_once('/') {
                Some((name, _)) => {
                    if !entries.iter().any(|e| e.name == name && e.is_dir) {
                        entries.push(ArtifactEntry {
                            name: name.to_string(),
                            is_dir: true,
                            size: None,
                        });
                    }
                }
                None => entries.push(ArtifactEntry {
                    name: rest.to_string(),
                    is_dir: false,
                    size: Some(size),
                }),
            }
        }
        Ok(entries)
    }
}

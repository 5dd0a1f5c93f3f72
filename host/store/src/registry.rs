//! The model registry: registered models, their versions, tags and aliases.

use serde::Serialize;

use crate::{now_ms, Store, StoreError};

/// A model version: an artifact source (and the run that made it).
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ModelVersion {
    pub name: String,
    pub version: i64,
    pub creation_timestamp: i64,
    pub last_updated_timestamp: i64,
    pub description: String,
    pub source: String,
    pub run_id: Option<String>,
    pub current_stage: String,
    /// `[key, value]` pairs.
    #[sqlx(skip)]
    #[schema(value_type = Vec<Vec<String>>)]
    pub tags: Vec<(String, String)>,
    #[sqlx(skip)]
    pub aliases: Vec<String>,
}

/// A registered model.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct RegisteredModel {
    pub name: String,
    pub creation_timestamp: i64,
    pub last_updated_timestamp: i64,
    pub description: String,
    /// `[key, value]` pairs.
    #[sqlx(skip)]
    #[schema(value_type = Vec<Vec<String>>)]
    pub tags: Vec<(String, String)>,
    /// `[alias, version]` pairs.
    #[sqlx(skip)]
    #[schema(value_type = Vec<Vec<Object>>)]
    pub aliases: Vec<(String, i64)>,
    /// The newest version, if any.
    #[sqlx(skip)]
    pub latest_versions: Vec<ModelVersion>,
}

/// The model version tag naming (by digest) the component that serves the
/// version: a model server archived in the artifact store.
pub const SERVED_BY_TAG: &str = "weft.served_by";

/// The model version tag holding the digest of the version's bytes.
pub const DIGEST_TAG: &str = "weft.digest";

/// An alias: letters, digits, '_' and '-', and not `latest` or `v<number>`
/// (those name versions already).
pub fn validate_alias(alias: &str) -> Result<(), String> {
    let reserved = alias.eq_ignore_ascii_case("latest")
        || (alias.len() > 1 && alias.starts_with(['v', 'V']) && alias[1..].chars().all(|c| c.is_ascii_digit()));
    if alias.is_empty()
        || alias.len() > 255
        || reserved
        || !alias.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-')
    {
        return Err(format!(
            "invalid alias '{alias}': letters, digits, '_' and '-', and not 'latest' or 'v<number>'"
        ));
    }
    Ok(())
}

/// A model name: 1-256 characters, no '/' or ':' (they delimit model URIs).
pub fn validate_model_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() || name.len() > 256 || name.contains('/') || name.contains(':') {
        return Err(format!("invalid model name '{name}': 1-256 characters, no '/' or ':'"));
    }
    Ok(())
}

/// Marks a registered model updated (a version of it changed).
async fn touch_model(tx: &mut sqlx::Transaction<'_, sqlx::Any>, name: &str, now: i64) -> Result<(), StoreError> {
    sqlx::query("UPDATE registered_models SET last_updated_timestamp = $1 WHERE name = $2")
        .bind(now)
        .bind(name)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

fn not_found_model(name: &str) -> StoreError {
    StoreError::NotFound {
        what: "registered model",
        key: name.to_string(),
    }
}

impl Store {
    /// Registers a model name.
    pub async fn create_registered_model(
        &self,
        name: &str,
        description: &str,
        tags: &[(String, String)],
    ) -> Result<RegisteredModel, StoreError> {
        let mut tx = self.begin_write().await?;
        let exists: Option<String> = sqlx::query_scalar("SELECT name FROM registered_models WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_some() {
            return Err(StoreError::AlreadyExists(format!(
                "registered model (name={name}) already exists"
            )));
        }
        let now = now_ms();
        sqlx::query("INSERT INTO registered_models (name, creation_timestamp, last_updated_timestamp, description) VALUES ($1, $2, $2, $3)")
            .bind(name)
            .bind(now)
            .bind(description)
            .execute(&mut *tx)
            .await?;
        for (key, value) in tags {
            sqlx::query("INSERT INTO registered_model_tags (name, key, value) VALUES ($1, $2, $3) ON CONFLICT (name, key) DO UPDATE SET value = excluded.value")
                .bind(name)
                .bind(key)
                .bind(value)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.registered_model(name).await
    }

    /// A registered model with its tags, aliases and newest version.
    pub async fn registered_model(&self, name: &str) -> Result<RegisteredModel, StoreError> {
        let mut model: RegisteredModel = sqlx::query_as("SELECT name, creation_timestamp, last_updated_timestamp, description FROM registered_models WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| not_found_model(name))?;
        model.tags = sqlx::query_as("SELECT key, value FROM registered_model_tags WHERE name = $1 ORDER BY key")
            .bind(name)
            .fetch_all(&self.pool)
            .await?;
        model.aliases =
            sqlx::query_as("SELECT alias, version FROM registered_model_aliases WHERE name = $1 ORDER BY alias")
                .bind(name)
                .fetch_all(&self.pool)
                .await?;
        model.latest_versions = self.latest_model_versions(name, &[]).await?;
        Ok(model)
    }

    /// The newest version in each stage (of `stages`, or of all when
    /// empty), by version: what MLflow calls a model's latest versions.
    pub async fn latest_model_versions(&self, name: &str, stages: &[String]) -> Result<Vec<ModelVersion>, StoreError> {
        let latest: Vec<(String, i64)> = sqlx::query_as(
            "SELECT current_stage, MAX(version) FROM model_versions WHERE name = $1 GROUP BY current_stage ORDER BY MAX(version)",
        )
        .bind(name)
        .fetch_all(&self.pool)
        .await?;
        let mut versions = Vec::new();
        for (stage, version) in latest {
            if stages.is_empty() || stages.iter().any(|s| s.eq_ignore_ascii_case(&stage)) {
                versions.push(self.model_version(name, version).await?);
            }
        }
        Ok(versions)
    }

    /// Moves a version to a stage (`None`, `Staging`, `Production`,
    /// `Archived`); with `archive_existing`, the other versions in that
    /// stage (Staging or Production only) move to `Archived`.
    pub async fn transition_model_version_stage(
        &self,
        name: &str,
        version: i64,
        stage: &str,
        archive_existing: bool,
    ) -> Result<ModelVersion, StoreError> {
        let mut tx = self.begin_write().await?;
        let now = now_ms();
        let n = sqlx::query(
            "UPDATE model_versions SET current_stage = $1, last_updated_timestamp = $2 WHERE name = $3 AND version = $4",
        )
        .bind(stage)
        .bind(now)
        .bind(name)
        .bind(version)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound {
                what: "model version",
                key: format!("{name} version {version}"),
            });
        }
        if archive_existing {
            sqlx::query(
                "UPDATE model_versions SET current_stage = 'Archived', last_updated_timestamp = $1 \
                 WHERE name = $2 AND version != $3 AND current_stage = $4",
            )
            .bind(now)
            .bind(name)
            .bind(version)
            .bind(stage)
            .execute(&mut *tx)
            .await?;
        }
        touch_model(&mut tx, name, now).await?;
        tx.commit().await?;
        self.model_version(name, version).await
    }

    /// Registered models whose name matches a SQL LIKE pattern (all when
    /// `None`), by name.
    pub async fn registered_models(
        &self,
        name_like: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<RegisteredModel>, StoreError> {
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM registered_models WHERE ($1 IS NULL OR name LIKE $1) ORDER BY name LIMIT $2 OFFSET $3",
        )
        .bind(name_like)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        let mut models = Vec::with_capacity(names.len());
        for name in names {
            models.push(self.registered_model(&name).await?);
        }
        Ok(models)
    }

    /// Every registered model's name and tags, by name, in two queries: what
    /// a search filters on before it loads the models of one page.
    pub async fn registered_model_index(&self) -> Result<Vec<(String, Vec<(String, String)>)>, StoreError> {
        let names: Vec<String> = sqlx::query_scalar("SELECT name FROM registered_models ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        let tags: Vec<(String, String, String)> =
            sqlx::query_as("SELECT name, key, value FROM registered_model_tags ORDER BY name, key")
                .fetch_all(&self.pool)
                .await?;
        let mut by_name: std::collections::HashMap<String, Vec<(String, String)>> = std::collections::HashMap::new();
        for (name, key, value) in tags {
            by_name.entry(name).or_default().push((key, value));
        }
        Ok(names
            .into_iter()
            .map(|name| {
                let tags = by_name.remove(&name).unwrap_or_default();
                (name, tags)
            })
            .collect())
    }

    /// Changes a registered model's description.
    pub async fn update_registered_model(&self, name: &str, description: &str) -> Result<RegisteredModel, StoreError> {
        let n =
            sqlx::query("UPDATE registered_models SET description = $1, last_updated_timestamp = $2 WHERE name = $3")
                .bind(description)
                .bind(now_ms())
                .bind(name)
                .execute(&self.pool)
                .await?
                .rows_affected();
        if n == 0 {
            return Err(not_found_model(name));
        }
        self.registered_model(name).await
    }

    /// Renames a registered model (its versions, tags and aliases follow).
    pub async fn rename_registered_model(&self, name: &str, new_name: &str) -> Result<RegisteredModel, StoreError> {
        let mut tx = self.begin_write().await?;
        let taken: Option<String> = sqlx::query_scalar("SELECT name FROM registered_models WHERE name = $1")
            .bind(new_name)
            .fetch_optional(&mut *tx)
            .await?;
        if taken.is_some() {
            return Err(StoreError::AlreadyExists(format!(
                "registered model (name={new_name}) already exists"
            )));
        }
        let n = sqlx::query("UPDATE registered_models SET name = $1, last_updated_timestamp = $2 WHERE name = $3")
            .bind(new_name)
            .bind(now_ms())
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(not_found_model(name));
        }
        tx.commit().await?;
        self.registered_model(new_name).await
    }

    /// Deletes a registered model and all its versions.
    pub async fn delete_registered_model(&self, name: &str) -> Result<(), StoreError> {
        let n = sqlx::query("DELETE FROM registered_models WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(not_found_model(name));
        }
        Ok(())
    }

    /// Sets (`Some`) or deletes (`None`) a registered model tag.
    pub async fn registered_model_tag(&self, name: &str, key: &str, value: Option<&str>) -> Result<(), StoreError> {
        self.registered_model(name).await?;
        match value {
            Some(value) => {
                sqlx::query("INSERT INTO registered_model_tags (name, key, value) VALUES ($1, $2, $3) ON CONFLICT (name, key) DO UPDATE SET value = excluded.value")
                    .bind(name)
                    .bind(key)
                    .bind(value)
                    .execute(&self.pool)
                    .await?;
            }
            None => {
                sqlx::query("DELETE FROM registered_model_tags WHERE name = $1 AND key = $2")
                    .bind(name)
                    .bind(key)
                    .execute(&self.pool)
                    .await?;
            }
        }
        Ok(())
    }

    /// Adds the next version of a registered model.
    pub async fn create_model_version(
        &self,
        name: &str,
        source: &str,
        run_id: Option<&str>,
        description: &str,
        tags: &[(String, String)],
    ) -> Result<ModelVersion, StoreError> {
        let mut tx = self.begin_write().await?;
        let exists: Option<String> = sqlx::query_scalar("SELECT name FROM registered_models WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(not_found_model(name));
        }
        let version: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) + 1 FROM model_versions WHERE name = $1")
                .bind(name)
                .fetch_one(&mut *tx)
                .await?;
        let now = now_ms();
        sqlx::query(
            "INSERT INTO model_versions (name, version, creation_timestamp, last_updated_timestamp, description, source, run_id, current_stage) \
             VALUES ($1, $2, $3, $3, $4, $5, $6, 'None')",
        )
        .bind(name)
        .bind(version)
        .bind(now)
        .bind(description)
        .bind(source)
        .bind(run_id)
        .execute(&mut *tx)
        .await?;
        for (key, value) in tags {
            sqlx::query("INSERT INTO model_version_tags (name, version, key, value) VALUES ($1, $2, $3, $4) ON CONFLICT (name, version, key) DO UPDATE SET value = excluded.value")
                .bind(name)
                .bind(version)
                .bind(key)
                .bind(value)
                .execute(&mut *tx)
                .await?;
        }
        touch_model(&mut tx, name, now).await?;
        tx.commit().await?;
        self.model_version(name, version).await
    }

    /// One version with its tags and aliases.
    pub async fn model_version(&self, name: &str, version: i64) -> Result<ModelVersion, StoreError> {
        let mut v: ModelVersion = sqlx::query_as(
            "SELECT name, version, creation_timestamp, last_updated_timestamp, description, source, run_id, current_stage \
             FROM model_versions WHERE name = $1 AND version = $2",
        )
        .bind(name)
        .bind(version)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::NotFound { what: "model version", key: format!("{name} version {version}") })?;
        v.tags =
            sqlx::query_as("SELECT key, value FROM model_version_tags WHERE name = $1 AND version = $2 ORDER BY key")
                .bind(name)
                .bind(version)
                .fetch_all(&self.pool)
                .await?;
        v.aliases = sqlx::query_scalar(
            "SELECT alias FROM registered_model_aliases WHERE name = $1 AND version = $2 ORDER BY alias",
        )
        .bind(name)
        .bind(version)
        .fetch_all(&self.pool)
        .await?;
        Ok(v)
    }

    /// Versions, optionally of one model and/or one run, newest first.
    pub async fn model_versions(
        &self,
        name: Option<&str>,
        run_id: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<ModelVersion>, StoreError> {
        let keys: Vec<(String, i64)> = sqlx::query_as(
            "SELECT name, version FROM model_versions WHERE ($1 IS NULL OR name = $1) AND ($2 IS NULL OR run_id = $2) \
             ORDER BY name, version DESC LIMIT $3 OFFSET $4",
        )
        .bind(name)
        .bind(run_id)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        let mut versions = Vec::with_capacity(keys.len());
        for (name, version) in keys {
            versions.push(self.model_version(&name, version).await?);
        }
        Ok(versions)
    }

    /// Changes a version's description.
    pub async fn update_model_version(
        &self,
        name: &str,
        version: i64,
        description: &str,
    ) -> Result<ModelVersion, StoreError> {
        self.model_version(name, version).await?;
        sqlx::query(
            "UPDATE model_versions SET description = $1, last_updated_timestamp = $2 WHERE name = $3 AND version = $4",
        )
        .bind(description)
        .bind(now_ms())
        .bind(name)
        .bind(version)
        .execute(&self.pool)
        .await?;
        self.model_version(name, version).await
    }

    /// Deletes a version (and the aliases pointing at it).
    pub async fn delete_model_version(&self, name: &str, version: i64) -> Result<(), StoreError> {
        self.model_version(name, version).await?;
        sqlx::query("DELETE FROM model_versions WHERE name = $1 AND version = $2")
            .bind(name)
            .bind(version)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Sets (`Some`) or deletes (`None`) a model version tag.
    pub async fn model_version_tag(
        &self,
        name: &str,
        version: i64,
        key: &str,
        value: Option<&str>,
    ) -> Result<(), StoreError> {
        self.model_version(name, version).await?;
        match value {
            Some(value) => {
                sqlx::query("INSERT INTO model_version_tags (name, version, key, value) VALUES ($1, $2, $3, $4) ON CONFLICT (name, version, key) DO UPDATE SET value = excluded.value")
                    .bind(name)
                    .bind(version)
                    .bind(key)
                    .bind(value)
                    .execute(&self.pool)
                    .await?;
            }
            None => {
                sqlx::query("DELETE FROM model_version_tags WHERE name = $1 AND version = $2 AND key = $3")
                    .bind(name)
                    .bind(version)
                    .bind(key)
                    .execute(&self.pool)
                    .await?;
            }
        }
        Ok(())
    }

    /// Points `alias` at a version (moving it if it pointed elsewhere).
    pub async fn set_model_alias(&self, name: &str, alias: &str, version: i64) -> Result<(), StoreError> {
        self.model_version(name, version).await?;
        sqlx::query("INSERT INTO registered_model_aliases (name, alias, version) VALUES ($1, $2, $3) ON CONFLICT (name, alias) DO UPDATE SET version = excluded.version")
            .bind(name)
            .bind(alias)
            .bind(version)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Removes an alias.
    pub async fn delete_model_alias(&self, name: &str, alias: &str) -> Result<(), StoreError> {
        self.registered_model(name).await?;
        sqlx::query("DELETE FROM registered_model_aliases WHERE name = $1 AND alias = $2")
            .bind(name)
            .bind(alias)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The version an alias points at.
    pub async fn model_version_by_alias(&self, name: &str, alias: &str) -> Result<ModelVersion, StoreError> {
        let version: i64 =
            sqlx::query_scalar("SELECT version FROM registered_model_aliases WHERE name = $1 AND alias = $2")
                .bind(name)
                .bind(alias)
                .fetch_optional(&self.pool)
                .await?
                .ok_or_else(|| StoreError::NotFound {
                    what: "alias",
                    key: format!("{name}@{alias}"),
                })?;
        self.model_version(name, version).await
    }
}

impl Store {
    /// Registers a weft artifact as the next version of model `name`
    /// (creating the model if needed). Its files become visible to MLflow
    /// clients under `mlflow-artifacts:/weft/<artifact id>`, the version's
    /// run is the step run that produced it, and its tags trace it back to
    /// the pipeline run, the component and the artifact digest. Registering
    /// the same bytes as the newest version again returns that version.
    ///
    /// `files` lists the artifact's files as (relative path, digest, size);
    /// a file artifact has one entry.
    pub async fn register_artifact(
        &self,
        artifact_key: &str,
        name: &str,
        files: &[(String, String, i64)],
    ) -> Result<ModelVersion, StoreError> {
        let artifact = self.artifact(artifact_key).await?;
        if let Some(latest) = self.newest_version_of(name, &artifact.digest).await? {
            return Ok(latest);
        }
        let root = format!("weft/{}", artifact.id);
        for (path, digest, size) in files {
            self.put_run_artifact(&format!("{root}/{path}"), digest, *size).await?;
        }
        let mut tags = vec![
            ("weft.artifact_id".to_string(), artifact.id.clone()),
            (
                "weft.artifact".to_string(),
                format!("{}:{}", artifact.name, artifact.version),
            ),
            ("weft.digest".to_string(), artifact.digest.clone()),
        ];
        let mut run_id = None;
        if let Some(step_run_id) = &artifact.producer_step_run_id {
            let step = self.step_run(step_run_id).await?;
            tags.push(("weft.run_id".into(), step.run_id.clone()));
            tags.push(("weft.step".into(), step.step_name.clone()));
            if let Some(digest) = &step.component_digest {
                tags.push(("weft.component_digest".into(), digest.clone()));
            }
            // The MLflow view of the step run, when it has been written.
            if self.run_info(step_run_id).await.is_ok() {
                run_id = Some(step_run_id.clone());
            }
        }
        self.create_model_version(name, &format!("mlflow-artifacts:/{root}"), run_id.as_deref(), "", &tags)
            .await
    }

    /// Registers a file made outside weft (a model trained elsewhere) as
    /// the next version of model `name`, creating the model if needed. Its
    /// bytes are already in the artifact store under `digest`; MLflow
    /// clients see it as `file_name` under
    /// `mlflow-artifacts:/weft/files/<digest>`. Registering the same bytes
    /// as the newest version again returns that version.
    pub async fn register_file(
        &self,
        name: &str,
        file_name: &str,
        digest: &str,
        size: i64,
    ) -> Result<ModelVersion, StoreError> {
        if file_name.is_empty() || file_name == "." || file_name == ".." || file_name.contains(['/', '\\']) {
            return Err(StoreError::Invalid(format!(
                "'{file_name}' is not a file name (one path component)"
            )));
        }
        if let Some(latest) = self.newest_version_of(name, digest).await? {
            return Ok(latest);
        }
        let root = format!("weft/files/{digest}");
        self.put_run_artifact(&format!("{root}/{file_name}"), digest, size)
            .await?;
        let tags = vec![
            (DIGEST_TAG.to_string(), digest.to_string()),
            ("weft.file".to_string(), file_name.to_string()),
        ];
        self.create_model_version(name, &format!("mlflow-artifacts:/{root}"), None, "", &tags)
            .await
    }

    /// Creates model `name` if it does not exist, and returns its newest
    /// version when that holds the bytes `digest` already.
    async fn newest_version_of(&self, name: &str, digest: &str) -> Result<Option<ModelVersion>, StoreError> {
        if let Err(StoreError::NotFound { .. }) = self.registered_model(name).await {
            match self.create_registered_model(name, "", &[]).await {
                Ok(_) | Err(StoreError::AlreadyExists(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(self
            .registered_model(name)
            .await?
            .latest_versions
            .into_iter()
            .next()
            .filter(|latest| latest.tags.iter().any(|(k, v)| k == DIGEST_TAG && v == digest)))
    }
}

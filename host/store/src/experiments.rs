//! Experiments as MLflow models them: create, get, rename, tag, delete
//! (with their runs) and restore, and search with a filter evaluated in SQL.

use serde::Serialize;

use crate::search::{Attribute, Clause, Entity, Literal, Op, OrderBy};
use crate::sql::Sql;
use crate::tracking::push_comparison;
use crate::{now_ms, Store, StoreError};

/// An experiment.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Experiment {
    pub experiment_id: i64,
    pub name: String,
    pub artifact_location: String,
    pub lifecycle_stage: String,
    pub creation_time: i64,
    pub last_update_time: i64,
    #[sqlx(skip)]
    pub tags: Vec<(String, String)>,
}

/// Which experiments a search sees, by lifecycle stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewType {
    ActiveOnly,
    DeletedOnly,
    All,
}

impl ViewType {
    fn stage(self) -> Option<&'static str> {
        match self {
            ViewType::ActiveOnly => Some("active"),
            ViewType::DeletedOnly => Some("deleted"),
            ViewType::All => None,
        }
    }
}

impl Store {
    /// Creates an experiment; its artifacts live under
    /// `artifact_location` (default `mlflow-artifacts:/<id>`).
    pub async fn create_experiment(
        &self,
        name: &str,
        artifact_location: Option<&str>,
        tags: &[(String, String)],
    ) -> Result<i64, StoreError> {
        let mut tx = self.begin_write().await?;
        let id = insert_experiment(&mut tx, name, artifact_location, tags).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// An experiment by id.
    pub async fn experiment(&self, id: i64) -> Result<Experiment, StoreError> {
        let mut q = Sql::new(self.backend, "SELECT * FROM experiments WHERE experiment_id = ");
        q.push_bind(id);
        self.one_experiment(q, id.to_string()).await
    }

    /// An experiment by name.
    pub async fn experiment_by_name(&self, name: &str) -> Result<Experiment, StoreError> {
        let mut q = Sql::new(self.backend, "SELECT * FROM experiments WHERE name = ");
        q.push_bind(name.to_string());
        self.one_experiment(q, name.to_string()).await
    }

    /// The experiment `q` selects, with its tags; `key` names it when absent.
    async fn one_experiment(&self, mut q: Sql<'_>, key: String) -> Result<Experiment, StoreError> {
        let e: Option<Experiment> = q.build_query_as()?.fetch_optional(&self.pool).await?;
        let e = e.ok_or(StoreError::NotFound {
            what: "experiment",
            key: key.clone(),
        })?;
        self.with_all_tags(vec![e]).await?.pop().ok_or(StoreError::NotFound {
            what: "experiment",
            key,
        })
    }

    /// Renames an active experiment.
    pub async fn rename_experiment(&self, id: i64, name: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let stage = experiment_stage(&mut tx, id).await?;
        if stage != "active" {
            return Err(StoreError::InvalidState("cannot rename a non-active experiment".into()));
        }
        let taken: Option<i64> = sqlx::query_scalar("SELECT experiment_id FROM experiments WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
        if taken.is_some_and(|other| other != id) {
            return Err(StoreError::Conflict(format!(
                "an experiment named '{name}' exists already"
            )));
        }
        sqlx::query("UPDATE experiments SET name = $1, last_update_time = $2 WHERE experiment_id = $3")
            .bind(name)
            .bind(now_ms())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Sets a tag of an active experiment.
    pub async fn set_experiment_tag(&self, id: i64, key: &str, value: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        require_active(&mut tx, id).await?;
        sqlx::query(
            "INSERT INTO experiment_tags (experiment_id, key, value) VALUES ($1, $2, $3) \
             ON CONFLICT (experiment_id, key) DO UPDATE SET value = excluded.value",
        )
        .bind(id)
        .bind(key)
        .bind(value)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes a tag of an active experiment.
    pub async fn delete_experiment_tag(&self, id: i64, key: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        require_active(&mut tx, id).await?;
        let deleted = sqlx::query("DELETE FROM experiment_tags WHERE experiment_id = $1 AND key = $2")
            .bind(id)
            .bind(key)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if deleted == 0 {
            return Err(StoreError::NotFound {
                what: "experiment tag",
                key: key.to_string(),
            });
        }
        tx.commit().await?;
        Ok(())
    }

    /// Marks an active experiment and all its runs deleted.
    pub async fn delete_experiment(&self, id: i64) -> Result<(), StoreError> {
        self.set_experiment_stage(id, "active", "deleted").await
    }

    /// Brings a deleted experiment and all its runs back.
    pub async fn restore_experiment(&self, id: i64) -> Result<(), StoreError> {
        self.set_experiment_stage(id, "deleted", "active").await
    }

    async fn set_experiment_stage(&self, id: i64, from: &str, to: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let stage = experiment_stage(&mut tx, id).await?;
        if stage != from {
            // What the reference answers: the experiment is not found among
            // those in the expected stage.
            return Err(StoreError::NotFound {
                what: if from == "active" {
                    "active experiment"
                } else {
                    "deleted experiment"
                },
                key: id.to_string(),
            });
        }
        let now = now_ms();
        sqlx::query("UPDATE experiments SET lifecycle_stage = $1, last_update_time = $2 WHERE experiment_id = $3")
            .bind(to)
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE tracking_runs SET lifecycle_stage = $1 WHERE experiment_id = $2")
            .bind(to)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// One page of the experiments in `view` matching every clause (on
    /// `name`, `experiment_id`, `creation_time`, `last_update_time` and
    /// tags), in `order` (default: newest first), then by id. Fetches
    /// `limit` rows; the caller asks for one more than a page to know
    /// whether another follows.
    pub async fn search_experiments(
        &self,
        view: ViewType,
        clauses: &[Clause],
        order: &[OrderBy],
        limit: i64,
        offset: i64,
    ) -> Result<Vec<Experiment>, StoreError> {
        let mut q = Sql::new(
            self.backend,
            "SELECT e.experiment_id, e.name, e.artifact_location, e.lifecycle_stage, e.creation_time, e.last_update_time \
             FROM experiments e WHERE 1 = 1",
        );
        if let Some(stage) = view.stage() {
            q.push(" AND e.lifecycle_stage = ").push_bind(stage.to_string());
        }
        for clause in clauses {
            q.push(" AND ");
            push_experiment_clause(&mut q, self.backend, clause)?;
        }
        q.push(" ORDER BY ");
        let default = [
            OrderBy {
                entity: Entity::Attribute(Attribute::CreationTime),
                ascending: false,
            },
            OrderBy {
                entity: Entity::Attribute(Attribute::ExperimentId),
                ascending: true,
            },
        ];
        let order = if order.is_empty() { &default[..] } else { order };
        for o in order {
            let column = match &o.entity {
                Entity::Attribute(a) => a.experiment_column(),
                _ => None,
            }
            .ok_or_else(|| StoreError::Invalid(format!("experiments cannot be ordered by {:?}", o.entity)))?;
            q.push(format!("{column} {}, ", if o.ascending { "ASC" } else { "DESC" }));
        }
        // The reference's tie-breaker: id, descending, unless ordered by id.
        let by_id = order
            .iter()
            .any(|o| o.entity == Entity::Attribute(Attribute::ExperimentId));
        q.push(if by_id {
            "e.experiment_id"
        } else {
            "e.experiment_id DESC"
        });
        q.push(" LIMIT ").push_bind(limit).push(" OFFSET ").push_bind(offset);
        let rows: Vec<Experiment> = q.build_query_as()?.fetch_all(&self.pool).await?;
        self.with_all_tags(rows).await
    }

    /// Fills in the tags of experiments with one query per 500.
    async fn with_all_tags(&self, mut rows: Vec<Experiment>) -> Result<Vec<Experiment>, StoreError> {
        for chunk in rows.chunks_mut(500) {
            let mut q = Sql::new(
                self.backend,
                "SELECT experiment_id, key, value FROM experiment_tags WHERE experiment_id IN (",
            );
            q.push_list(chunk.iter().map(|e| e.experiment_id))
                .push(") ORDER BY key");
            let tags: Vec<(i64, String, String)> = q.build_query_as()?.fetch_all(&self.pool).await?;
            for (id, key, value) in tags {
                if let Some(e) = chunk.iter_mut().find(|e| e.experiment_id == id) {
                    e.tags.push((key, value));
                }
            }
        }
        Ok(rows)
    }
}

/// The lifecycle stage of an experiment, in a write transaction.
async fn experiment_stage(tx: &mut sqlx::Transaction<'_, sqlx::Any>, id: i64) -> Result<String, StoreError> {
    sqlx::query_scalar("SELECT lifecycle_stage FROM experiments WHERE experiment_id = $1")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(StoreError::NotFound {
            what: "experiment",
            key: id.to_string(),
        })
}

/// Refuses a change to an experiment that is not active.
async fn require_active(tx: &mut sqlx::Transaction<'_, sqlx::Any>, id: i64) -> Result<(), StoreError> {
    if experiment_stage(tx, id).await? != "active" {
        return Err(StoreError::InvalidState(format!(
            "the experiment {id} must be in the 'active' state"
        )));
    }
    Ok(())
}

/// One clause of an experiment search over the `experiments e` alias.
fn push_experiment_clause(q: &mut Sql<'_>, backend: crate::sql::Backend, clause: &Clause) -> Result<(), StoreError> {
    match &clause.entity {
        Entity::Attribute(Attribute::ExperimentId) => {
            let id = |text: &str| {
                text.trim()
                    .parse::<i64>()
                    .map_err(|_| StoreError::Invalid(format!("'{text}' is not an experiment id")))
            };
            match (&clause.op, &clause.value) {
                (Op::Eq | Op::Ne, Literal::Text(t)) => {
                    q.push(format!("e.experiment_id {} ", clause.op.sql()))
                        .push_bind(id(t)?);
                }
                (Op::Eq | Op::Ne, Literal::Number(n)) if n.fract() == 0.0 => {
                    q.push(format!("e.experiment_id {} ", clause.op.sql()))
                        .push_bind(*n as i64);
                }
                (Op::In | Op::NotIn, Literal::List(items)) => {
                    let ids = items.iter().map(|t| id(t)).collect::<Result<Vec<_>, _>>()?;
                    q.push(format!("e.experiment_id {} (", clause.op.sql()));
                    q.push_list(ids).push(")");
                }
                _ => {
                    return Err(StoreError::Invalid(format!(
                        "invalid comparator for experiment_id: {}",
                        clause.op.sql()
                    )))
                }
            }
        }
        Entity::Attribute(a) => {
            let column = a
                .experiment_column()
                .ok_or_else(|| StoreError::Invalid(format!("experiments have no attribute {a:?}")))?;
            push_comparison(q, backend, column, clause);
        }
        Entity::Tag(key) => crate::tracking::push_keyed_clause(
            q,
            backend,
            "experiment_tags x WHERE x.experiment_id = e.experiment_id",
            key,
            clause,
        ),
        other => {
            return Err(StoreError::Invalid(format!(
                "experiments can be searched by name, id, times and tags, not {other:?}"
            )))
        }
    }
    Ok(())
}

/// The statements of [`Store::create_experiment`], in `tx`: its id, or
/// `AlreadyExists`.
pub(crate) async fn insert_experiment(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    name: &str,
    artifact_location: Option<&str>,
    tags: &[(String, String)],
) -> Result<i64, StoreError> {
    let exists: Option<i64> = sqlx::query_scalar("SELECT experiment_id FROM experiments WHERE name = $1")
        .bind(name)
        .fetch_optional(&mut **tx)
        .await?;
    if exists.is_some() {
        return Err(StoreError::AlreadyExists(format!("experiment '{name}' already exists")));
    }
    let id: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(experiment_id), 0) + 1 FROM experiments")
        .fetch_one(&mut **tx)
        .await?;
    let location = artifact_location
        .map(str::to_string)
        .unwrap_or_else(|| format!("mlflow-artifacts:/{id}"));
    let now = now_ms();
    sqlx::query(
            "INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time) \
             VALUES ($1, $2, $3, 'active', $4, $4)",
        )
        .bind(id)
        .bind(name)
        .bind(location)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    for (key, value) in tags {
        sqlx::query("INSERT INTO experiment_tags (experiment_id, key, value) VALUES ($1, $2, $3) ON CONFLICT (experiment_id, key) DO UPDATE SET value = excluded.value")
                .bind(id)
                .bind(key)
                .bind(value)
                .execute(&mut **tx)
                .await?;
    }
    Ok(id)
}

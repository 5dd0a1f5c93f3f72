//! MLflow traces, as the v3 trace API records them: a trace belongs to an
//! experiment and has a state, a start time, a duration, request and
//! response previews, tags and request metadata. Its spans are not here:
//! the client uploads them as `traces.json` to the artifact location that
//! [`Store::start_trace`] gives the trace (its `mlflow.artifactLocation`
//! tag), where the artifact proxy keeps them.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::search::{Attribute, Clause, Entity, OrderBy};
use crate::sql::Sql;
use crate::tracking::push_comparison;
use crate::{Store, StoreError};

/// The tag that holds where a trace's spans are uploaded.
pub const TRACE_ARTIFACT_LOCATION_TAG: &str = "mlflow.artifactLocation";
/// The tag that names a trace (what `trace.name` searches).
pub const TRACE_NAME_TAG: &str = "mlflow.traceName";
/// The metadata entry that links a trace to the run it was made in (what
/// `trace.run_id` searches).
pub const TRACE_RUN_METADATA: &str = "mlflow.sourceRun";
/// Set by the server once it has recorded a trace's top-level fields.
const INFO_FINALIZED_METADATA: &str = "mlflow.trace.infoFinalized";
/// Longest trace id accepted.
const MAX_TRACE_ID: usize = 256;

/// What a trace is, without its spans.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TraceInfo {
    pub trace_id: String,
    pub experiment_id: i64,
    pub client_request_id: Option<String>,
    /// When the trace started, in milliseconds since the epoch.
    pub request_time: i64,
    /// How long it took, in milliseconds.
    pub execution_duration: Option<i64>,
    /// `OK`, `ERROR`, `IN_PROGRESS` or `STATE_UNSPECIFIED`.
    pub state: String,
    pub request_preview: Option<String>,
    pub response_preview: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
}

/// The states a trace can be in.
pub const TRACE_STATES: [&str; 4] = ["STATE_UNSPECIFIED", "OK", "ERROR", "IN_PROGRESS"];

/// A trace id: 1 to 256 characters of letters, digits, `-`, `_`, `.` or
/// `:` (it names a folder of the artifact store).
pub fn validate_trace_id(id: &str) -> Result<(), StoreError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_TRACE_ID
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
        && id != "."
        && id != "..";
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "invalid trace id '{}': 1 to {MAX_TRACE_ID} letters, digits, '-', '_', '.' or ':'",
            id.escape_debug()
        )))
    }
}

impl Store {
    /// Records a finished trace (the client calls this when its root span
    /// ends) in an active experiment, and returns it as stored: with the
    /// `mlflow.artifactLocation` tag where its spans go. A trace recorded
    /// again (a retry) takes the new fields and merges tags and metadata.
    pub async fn start_trace(&self, info: &TraceInfo) -> Result<TraceInfo, StoreError> {
        validate_trace_id(&info.trace_id)?;
        if !TRACE_STATES.contains(&info.state.as_str()) {
            return Err(StoreError::Invalid(format!("'{}' is not a trace state", info.state)));
        }
        let mut tx = self.begin_write().await?;
        let experiment: Option<(String, String)> =
            sqlx::query_as("SELECT lifecycle_stage, artifact_location FROM experiments WHERE experiment_id = $1")
                .bind(info.experiment_id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((stage, location)) = experiment else {
            return Err(StoreError::NotFound {
                what: "experiment",
                key: info.experiment_id.to_string(),
            });
        };
        if stage != "active" {
            return Err(StoreError::Invalid(format!(
                "the experiment {} must be in the 'active' state",
                info.experiment_id
            )));
        }
        let owner: Option<i64> = sqlx::query_scalar("SELECT experiment_id FROM traces WHERE trace_id = $1")
            .bind(&info.trace_id)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(owner) = owner.filter(|o| *o != info.experiment_id) {
            return Err(StoreError::AlreadyExists(format!(
                "trace '{}' belongs to experiment {owner}",
                info.trace_id
            )));
        }
        sqlx::query(
            "INSERT INTO traces (trace_id, experiment_id, client_request_id, request_time, execution_duration, \
             state, request_preview, response_preview) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (trace_id) DO UPDATE SET client_request_id = excluded.client_request_id, \
             request_time = excluded.request_time, execution_duration = excluded.execution_duration, \
             state = excluded.state, request_preview = excluded.request_preview, \
             response_preview = excluded.response_preview",
        )
        .bind(&info.trace_id)
        .bind(info.experiment_id)
        .bind(info.client_request_id.as_deref())
        .bind(info.request_time)
        .bind(info.execution_duration)
        .bind(&info.state)
        .bind(info.request_preview.as_deref())
        .bind(info.response_preview.as_deref())
        .execute(&mut *tx)
        .await?;
        let artifacts = format!("{}/traces/{}/artifacts", location.trim_end_matches('/'), info.trace_id);
        let tags = info
            .tags
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain([(TRACE_ARTIFACT_LOCATION_TAG, artifacts.as_str())]);
        let metadata = info
            .metadata
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain([(INFO_FINALIZED_METADATA, "true")]);
        for (table, pairs) in [
            ("trace_tags", tags.collect::<Vec<_>>()),
            ("trace_metadata", metadata.collect::<Vec<_>>()),
        ] {
            let mut q = Sql::new(self.backend, format!("INSERT INTO {table} (trace_id, key, value)"));
            q.push_values(pairs, |row, (k, v)| {
                row.bind(info.trace_id.clone()).bind(k.to_string()).bind(v.to_string());
            });
            q.push(" ON CONFLICT (trace_id, key) DO UPDATE SET value = excluded.value");
            q.build()?.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        self.trace(&info.trace_id).await
    }

    /// One trace.
    pub async fn trace(&self, trace_id: &str) -> Result<TraceInfo, StoreError> {
        self.traces(&[trace_id.to_string()])
            .await?
            .pop()
            .ok_or_else(|| StoreError::NotFound {
                what: "trace",
                key: trace_id.to_string(),
            })
    }

    /// These traces, in the order asked (unknown ids are left out).
    pub async fn traces(&self, trace_ids: &[String]) -> Result<Vec<TraceInfo>, StoreError> {
        type Row = (
            String,
            i64,
            Option<String>,
            i64,
            Option<i64>,
            String,
            Option<String>,
            Option<String>,
        );
        let mut found: HashMap<String, TraceInfo> = HashMap::new();
        for chunk in trace_ids.chunks(500) {
            let mut q = Sql::new(
                self.backend,
                "SELECT trace_id, experiment_id, client_request_id, request_time, execution_duration, state, \
                 request_preview, response_preview FROM traces WHERE trace_id IN (",
            );
            q.push_list(chunk.iter().cloned()).push(")");
            let rows: Vec<Row> = q.build_query_as()?.fetch_all(&self.pool).await?;
            for (trace_id, experiment_id, client_request_id, request_time, execution_duration, state, req, resp) in rows
            {
                found.insert(
                    trace_id.clone(),
                    TraceInfo {
                        trace_id,
                        experiment_id,
                        client_request_id,
                        request_time,
                        execution_duration,
                        state,
                        request_preview: req,
                        response_preview: resp,
                        metadata: BTreeMap::new(),
                        tags: BTreeMap::new(),
                    },
                );
            }
            for table in ["trace_tags", "trace_metadata"] {
                let mut q = Sql::new(
                    self.backend,
                    format!("SELECT trace_id, key, value FROM {table} WHERE trace_id IN ("),
                );
                q.push_list(chunk.iter().cloned()).push(")");
                let rows: Vec<(String, String, String)> = q.build_query_as()?.fetch_all(&self.pool).await?;
                for (id, key, value) in rows {
                    if let Some(t) = found.get_mut(&id) {
                        let map = if table == "trace_tags" {
                            &mut t.tags
                        } else {
                            &mut t.metadata
                        };
                        map.insert(key, value);
                    }
                }
            }
        }
        Ok(trace_ids.iter().filter_map(|id| found.remove(id)).collect())
    }

    /// One page of the traces of these experiments that match every
    /// clause, in `order` and then newest first (ties by id).
    ///
    /// Filters compare `request_id`, `client_request_id`, `status`,
    /// `timestamp_ms`, `execution_time_ms`, `end_time_ms`, `name` (the
    /// `mlflow.traceName` tag), `run_id` (the `mlflow.sourceRun`
    /// metadata), `tags.<key>` and `metadata.<key>`.
    pub async fn search_traces(
        &self,
        experiment_ids: &[i64],
        clauses: &[Clause],
        order: &[OrderBy],
        limit: i64,
        offset: i64,
    ) -> Result<Vec<TraceInfo>, StoreError> {
        if experiment_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = Sql::new(
            self.backend,
            "SELECT t.trace_id FROM traces t WHERE t.experiment_id IN (",
        );
        q.push_list(experiment_ids.iter().copied()).push(")");
        for clause in clauses {
            q.push(" AND ");
            push_trace_clause(&mut q, self.backend, clause)?;
        }
        q.push(" ORDER BY ");
        let mut seen = Vec::new();
        for o in order {
            if seen.contains(&&o.entity) {
                return Err(StoreError::Invalid(format!("order_by names {:?} twice", o.entity)));
            }
            seen.push(&o.entity);
            push_trace_order(&mut q, o)?;
        }
        q.push("t.request_time DESC, t.trace_id ASC LIMIT ")
            .push_bind(limit)
            .push(" OFFSET ")
            .push_bind(offset);
        let ids: Vec<String> = q.build_query_scalar()?.fetch_all(&self.pool).await?;
        self.traces(&ids).await
    }

    /// Sets one tag of a trace.
    pub async fn set_trace_tag(&self, trace_id: &str, key: &str, value: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        require_trace(&mut tx, trace_id).await?;
        sqlx::query(
            "INSERT INTO trace_tags (trace_id, key, value) VALUES ($1, $2, $3) \
             ON CONFLICT (trace_id, key) DO UPDATE SET value = excluded.value",
        )
        .bind(trace_id)
        .bind(key)
        .bind(value)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes one tag of a trace; a tag that is not there is `NotFound`.
    pub async fn delete_trace_tag(&self, trace_id: &str, key: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        require_trace(&mut tx, trace_id).await?;
        let removed = sqlx::query("DELETE FROM trace_tags WHERE trace_id = $1 AND key = $2")
            .bind(trace_id)
            .bind(key)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if removed == 0 {
            return Err(StoreError::NotFound {
                what: "trace tag",
                key: format!("{trace_id}/{key}"),
            });
        }
        tx.commit().await?;
        Ok(())
    }

    /// Deletes traces of an experiment: the listed ones, or else the
    /// oldest ones that started at or before `max_timestamp` (at most
    /// `max_traces` of them). Returns how many went, with the ids, so that
    /// the caller can drop their span files too.
    pub async fn delete_traces(
        &self,
        experiment_id: i64,
        max_timestamp: Option<i64>,
        max_traces: Option<i64>,
        trace_ids: &[String],
    ) -> Result<Vec<String>, StoreError> {
        let mut tx = self.begin_write().await?;
        let mut q = Sql::new(self.backend, "SELECT trace_id FROM traces WHERE experiment_id = ");
        q.push_bind(experiment_id);
        if let Some(max) = max_timestamp {
            q.push(" AND request_time <= ").push_bind(max);
            q.push(" ORDER BY request_time, trace_id");
            if let Some(n) = max_traces {
                q.push(" LIMIT ").push_bind(n);
            }
        } else {
            if trace_ids.is_empty() {
                return Ok(Vec::new());
            }
            q.push(" AND trace_id IN (")
                .push_list(trace_ids.iter().cloned())
                .push(")");
        }
        let doomed: Vec<String> = q.build_query_scalar()?.fetch_all(&mut *tx).await?;
        for chunk in doomed.chunks(500) {
            for table in ["trace_tags", "trace_metadata", "traces"] {
                let mut q = Sql::new(self.backend, format!("DELETE FROM {table} WHERE trace_id IN ("));
                q.push_list(chunk.iter().cloned()).push(")");
                q.build()?.execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        Ok(doomed)
    }
}

async fn require_trace(tx: &mut sqlx::Transaction<'_, sqlx::Any>, trace_id: &str) -> Result<(), StoreError> {
    let found: Option<i64> = sqlx::query_scalar("SELECT experiment_id FROM traces WHERE trace_id = $1")
        .bind(trace_id)
        .fetch_optional(&mut **tx)
        .await?;
    found.map(|_| ()).ok_or_else(|| StoreError::NotFound {
        what: "trace",
        key: trace_id.to_string(),
    })
}

/// Where a searched key lives: a trace column, or a key of its tags or
/// metadata.
enum TraceField<'a> {
    Column(&'static str),
    Keyed { table: &'static str, key: &'a str },
}

fn trace_field(entity: &Entity) -> Result<TraceField<'_>, StoreError> {
    Ok(match entity {
        Entity::Attribute(Attribute::RunName) => TraceField::Keyed {
            table: "trace_tags",
            key: TRACE_NAME_TAG,
        },
        Entity::Attribute(Attribute::RunId) => TraceField::Keyed {
            table: "trace_metadata",
            key: TRACE_RUN_METADATA,
        },
        Entity::Attribute(a) => TraceField::Column(
            a.trace_column()
                .ok_or_else(|| StoreError::Invalid(format!("traces have no attribute {a:?}")))?,
        ),
        Entity::Tag(key) => TraceField::Keyed {
            table: "trace_tags",
            key,
        },
        Entity::Metadata(key) => TraceField::Keyed {
            table: "trace_metadata",
            key,
        },
        other => {
            return Err(StoreError::Invalid(format!(
                "traces can be searched by their attributes, tags.<key> and metadata.<key>, not {other:?}"
            )))
        }
    })
}

fn push_trace_clause(q: &mut Sql<'_>, backend: crate::Backend, clause: &Clause) -> Result<(), StoreError> {
    match trace_field(&clause.entity)? {
        TraceField::Column(column) => push_comparison(q, backend, column, clause),
        TraceField::Keyed { table, key } => crate::tracking::push_keyed_clause(
            q,
            backend,
            &format!("{table} x WHERE x.trace_id = t.trace_id"),
            key,
            clause,
        ),
    }
    Ok(())
}

/// `value IS NULL, value ASC|DESC, `: traces without the value last, as in
/// the reference. Sorting by the client request id is not offered there.
fn push_trace_order(q: &mut Sql<'_>, o: &OrderBy) -> Result<(), StoreError> {
    if o.entity == Entity::Attribute(Attribute::ClientRequestId) {
        return Err(StoreError::Invalid(
            "traces cannot be ordered by client_request_id".into(),
        ));
    }
    let direction = if o.ascending { "ASC" } else { "DESC" };
    match trace_field(&o.entity)? {
        TraceField::Column(column) => {
            q.push(format!("({column} IS NULL), {column} {direction}, "));
        }
        TraceField::Keyed { table, key } => {
            let value = |q: &mut Sql<'_>| {
                q.push(format!(
                    "(SELECT x.value FROM {table} x WHERE x.trace_id = t.trace_id AND x.key = "
                ))
                .push_bind(key.to_string())
                .push(")");
            };
            q.push("(");
            value(q);
            q.push(" IS NULL), ");
            value(q);
            q.push(format!(" {direction}, "));
        }
    }
    Ok(())
}

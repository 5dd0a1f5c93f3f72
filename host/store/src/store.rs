//! The store and its queries.

use std::collections::HashMap;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyPool, ConnectOptions, Executor, Transaction};

use crate::model::*;
use crate::pipeline_runs::{write_runs, RunScope};
use crate::sql::{Backend, Sql};
use crate::{new_id, now_ms, StoreError};

/// The metadata store. Cheap to clone.
///
/// On SQLite every write transaction starts with `BEGIN IMMEDIATE`: it
/// takes the write lock up front, so concurrent writers wait (busy timeout)
/// instead of failing when a read-then-write transaction cannot upgrade its
/// lock. On PostgreSQL a write transaction takes one transaction-scoped
/// advisory lock for the same effect: writers are serialised, readers never
/// wait, and read-then-write logic (next run number, next model version)
/// behaves exactly as on SQLite.
///
/// On SQLite the lookups that a running step waits for (the cache) use a
/// second, read-only connection: in WAL mode it reads the last committed
/// state while the write-behind ledger holds the writer, instead of queueing
/// behind it.
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) pool: AnyPool,
    /// Read-only queries on a step's critical path (the same pool as `pool`
    /// on PostgreSQL).
    pub(crate) reader: AnyPool,
    pub(crate) backend: Backend,
}

/// The advisory lock key weft's writers share on PostgreSQL ("weft" in ASCII).
const WRITE_LOCK_KEY: i64 = 0x7765_6674;

/// The first half of the two-key advisory locks of scoped writers (two-key
/// and one-key advisory locks never collide in PostgreSQL).
const SCOPE_LOCK_CLASS: i32 = 0x7765_6674;

/// What a write transaction may change, for PostgreSQL's locks.
#[derive(Debug, Clone, Copy)]
pub(crate) enum WriteScope<'a> {
    /// The rows of the pipeline of this run: its runs, step runs,
    /// artifacts and their tracking runs.
    PipelineOfRun(&'a str),
    /// The tracking rows of one run: its metrics, params and tags.
    Run(&'a str),
}

impl WriteScope<'_> {
    /// A stable 32-bit key for a scope of `kind` and `name` (FNV-1a: the
    /// same in every weft process sharing the database; a collision only
    /// serialises two scopes).
    fn lock_key(kind: u8, name: &str) -> i32 {
        let mut hash: u32 = 0x811c_9dc5;
        for byte in std::iter::once(kind).chain(name.bytes()) {
            hash ^= u32::from(byte);
            hash = hash.wrapping_mul(0x0100_0193);
        }
        hash as i32
    }
}

/// An artifact to record (its bytes are already in the artifact store).
#[derive(Debug, Clone)]
pub struct NewArtifact {
    pub name: String,
    pub digest: String,
    pub kind: String,
    pub media_type: String,
    pub size: i64,
    pub source_uri: Option<String>,
}

/// A step run served from the cache, to record (see
/// [`Store::record_cache_hits`]).
#[derive(Debug, Clone)]
pub struct CacheHit {
    pub step_run_id: String,
    pub run_id: String,
    pub step_name: String,
    /// The step's params (canonical JSON), as the step run was created.
    pub params: String,
    /// The step run that executed.
    pub original: String,
    pub component_digest: String,
    pub cache_key: String,
    /// The sandbox spec (JSON).
    pub sandbox: String,
    pub determinism: String,
    /// (input name, artifact id) this step run was given.
    pub inputs: Vec<(String, String)>,
    /// (output name, new artifact id, artifact): its outputs, the
    /// original's bytes under this step's names.
    pub outputs: Vec<(String, String, NewArtifact)>,
}

/// One write of a run's ledger (see [`Store::record_step_runs`]).
#[derive(Debug, Clone)]
pub enum LedgerWrite {
    /// A step run that ran to its end, with everything it produced.
    Finished {
        run_id: String,
        id: String,
        record: StepRunRecord,
    },
    /// A step run served from the cache.
    Hit(CacheHit),
}

impl LedgerWrite {
    /// The run the write belongs to.
    pub fn run_id(&self) -> &str {
        match self {
            LedgerWrite::Finished { run_id, .. } => run_id,
            LedgerWrite::Hit(hit) => &hit.run_id,
        }
    }
}

/// What a finished step run recorded, all written in one transaction.
#[derive(Debug, Clone, Default)]
pub struct StepRunRecord {
    pub status: String,
    pub error: Option<String>,
    pub logs: String,
    pub attempts: i64,
    pub component_digest: Option<String>,
    pub cache_key: Option<String>,
    /// The sandbox spec (JSON) whose hash is the cache key.
    pub sandbox: Option<String>,
    /// `virtual` or `real`.
    pub determinism: Option<String>,
    pub started_at: Option<i64>,
    /// (input name, artifact id)
    pub inputs: Vec<(String, String)>,
    /// (output name, artifact) — new artifacts produced by this step run.
    pub outputs: Vec<(String, NewArtifact)>,
    /// The ids of the new output artifacts, in the order of `outputs`,
    /// when the caller chose them (to hand them downstream before the
    /// record is written); empty: chosen when written.
    pub output_ids: Vec<String>,
    /// When it ended (ms); `None`: when it is written.
    pub ended_at: Option<i64>,
    pub params: Vec<(String, String)>,
    /// (key, value, step, timestamp ms)
    pub metrics: Vec<(String, f64, Option<i64>, i64)>,
    pub tags: Vec<(String, String)>,
    pub metadata: Vec<(String, String)>,
}

/// The step runs whose logged values (params, metrics, tags, metadata,
/// logs) a run shows: its own, and for each cached step run the original it
/// was served from.
pub(crate) const SOURCE_STEP_RUNS: &str = "SELECT COALESCE(cached_from, id) FROM step_runs WHERE run_id = $1";

/// The metric points of step runs as the native API shows them, from
/// their tracking runs: `(step_run_id, key, value, step, timestamp)`, the
/// step index `NULL` where none was logged. Append `WHERE`-less conditions
/// with `AND`.
pub(crate) const STEP_METRIC_ROWS: &str = "SELECT run_uuid AS step_run_id, key, value, \
     CASE WHEN has_step THEN step END AS step, timestamp FROM tracking_metrics WHERE NOT is_nan";

/// The tags of a step run that are its own (logged), not weft's or MLflow's.
pub(crate) const OWN_TAGS: &str = "key NOT LIKE 'mlflow.%' AND key NOT LIKE 'weft.%'";

pub(crate) const RUN_COLUMNS: &str = "r.id, p.name AS pipeline, r.number, r.status, r.started_at, r.ended_at, r.error";
pub(crate) const STEP_RUN_COLUMNS: &str = "id, run_id, step_name, status, params, started_at, ended_at, component_digest, cache_key, cached_from, attempts, error, determinism, origin";
/// Which succeeded step runs `o` may serve a cache hit (`trusted`: the
/// placeholder of whether imported ones are trusted unverified): none that
/// a verification found to differ, and an imported one only once a
/// verification here matched.
fn candidate_rules(trusted: &str) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM verifications v WHERE v.step_run_id = o.id AND v.outcome = 'mismatch') \
         AND (o.origin = 'local' OR {trusted} \
              OR EXISTS (SELECT 1 FROM verifications v WHERE v.step_run_id = o.id AND v.outcome = 'match'))"
    )
}
const ARTIFACT_COLUMNS: &str = "a.id, a.name, a.version, a.digest, a.kind, a.media_type, a.size, a.producer_step_run_id, a.source_uri, a.created_at";

impl Store {
    /// Opens (creating if needed) a store and brings its schema up to date.
    ///
    /// `url` is `sqlite://path` (or a plain path) for a local file, or
    /// `postgres://user:password@host:port/database` for a shared server.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Self::open_postgres(url).await;
        }
        if url.contains("://") && !url.starts_with("sqlite://") {
            return Err(StoreError::BadUrl(url.to_string()));
        }
        let path = url.strip_prefix("sqlite://").unwrap_or(url);
        if path.is_empty() || path.contains(['?', '#']) {
            return Err(StoreError::BadUrl(url.to_string()));
        }
        // A new database starts as the saved result of the migrations;
        // if that cannot be written, the migrations below make it.
        if let Err(e) = crate::fresh::create(std::path::Path::new(path)) {
            tracing::debug!("new database {path} not created from the saved schema: {e}");
        }
        let options = format!("sqlite://{path}?mode=rwc")
            .parse::<AnyConnectOptions>()?
            .disable_statement_logging();
        // One connection: SQLite has one writer anyway, and a single
        // connection keeps its page cache warm (with several, each write
        // invalidates the others' caches and every query re-reads pages).
        // No ping before each acquire: the database is a local file, and a
        // ping is a full round trip to sqlx's connection thread. The page
        // cache may grow to 32 MiB (it is allocated as pages are read), so
        // long metric histories are read from memory. Never run a
        // pool query while holding a transaction: it would wait for itself.
        let pool = AnyPoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute(
                        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                         PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 30000; PRAGMA cache_size = -32768;",
                    )
                    .await?;
                    Ok(())
                })
            })
            .connect_with(options.clone())
            .await?;
        migrate(&pool).await?;
        // Connected on first use (the executor opens it early, in the
        // background: `warm_up_reader`).
        let reader = AnyPoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute("PRAGMA query_only = ON; PRAGMA busy_timeout = 30000; PRAGMA cache_size = -8192;")
                        .await?;
                    Ok(())
                })
            })
            .connect_lazy_with(options);
        Ok(Self {
            pool,
            reader,
            backend: Backend::Sqlite,
        })
    }

    /// Opens a PostgreSQL store, creating its database when the server has
    /// none of that name (as a SQLite file is created when missing).
    async fn open_postgres(url: &str) -> Result<Self, StoreError> {
        use sqlx::migrate::MigrateDatabase;
        if !Any::database_exists(url).await? {
            // Two processes may race to create it: the loser finds it there.
            if let Err(e) = Any::create_database(url).await {
                if !Any::database_exists(url).await? {
                    return Err(e.into());
                }
            }
        }
        let options = url.parse::<AnyConnectOptions>()?.disable_statement_logging();
        let pool = AnyPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await?;
        migrate(&pool).await?;
        Ok(Self {
            reader: pool.clone(),
            pool,
            backend: Backend::Postgres,
        })
    }

    /// Opens the read connection of a SQLite store in the background, so
    /// that the first cache lookup of a run does not wait for it. Needs a
    /// tokio runtime; does nothing on PostgreSQL.
    pub fn warm_up_reader(&self) {
        if self.backend == Backend::Sqlite {
            let reader = self.reader.clone();
            tokio::spawn(async move {
                if let Err(e) = reader.acquire().await {
                    tracing::debug!("the read connection did not open early: {e}");
                }
            });
        }
    }

    /// Which database this store uses.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Starts a write transaction (see [`Store`] for how writers are
    /// serialised).
    pub(crate) async fn begin_write(&self) -> Result<Transaction<'static, Any>, StoreError> {
        match self.backend {
            Backend::Sqlite => Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?),
            Backend::Postgres => {
                let mut tx = self.pool.begin().await?;
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(WRITE_LOCK_KEY)
                    .execute(&mut *tx)
                    .await?;
                Ok(tx)
            }
        }
    }

    /// Starts a write transaction confined to `scope`: on PostgreSQL it
    /// holds the shared write lock and the scope's own lock, so it waits
    /// only for writers of the same scope and for unscoped writers. On
    /// SQLite, the same as [`Store::begin_write`].
    pub(crate) async fn begin_write_in(&self, scope: WriteScope<'_>) -> Result<Transaction<'static, Any>, StoreError> {
        match self.backend {
            Backend::Sqlite => self.begin_write().await,
            Backend::Postgres => {
                let key = match scope {
                    // A run's pipeline never changes: read before locking.
                    WriteScope::PipelineOfRun(run_id) => {
                        let pipeline: String = sqlx::query_scalar(
                            "SELECT p.name FROM runs r JOIN pipelines p ON p.id = r.pipeline_id WHERE r.id = $1",
                        )
                        .bind(run_id)
                        .fetch_one(&self.pool)
                        .await?;
                        WriteScope::lock_key(b'p', &pipeline)
                    }
                    WriteScope::Run(run_uuid) => WriteScope::lock_key(b'r', run_uuid),
                };
                let mut tx = self.pool.begin().await?;
                // Always the shared lock first, then the scope's: one order,
                // so no two writers can wait for each other.
                sqlx::query("SELECT pg_advisory_xact_lock_shared($1), pg_advisory_xact_lock($2, $3)")
                    .bind(WRITE_LOCK_KEY)
                    .bind(SCOPE_LOCK_CLASS)
                    .bind(key)
                    .execute(&mut *tx)
                    .await?;
                Ok(tx)
            }
        }
    }

    /// Checks the database: SQLite's integrity and foreign-key checks, or
    /// on PostgreSQL that every table is readable. Returns the problems
    /// found (empty when the database is sound).
    pub async fn check_integrity(&self) -> Result<Vec<String>, StoreError> {
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT COUNT(*) FROM runs").fetch_one(&self.pool).await?;
            return Ok(Vec::new());
        }
        let mut problems: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_all(&self.pool)
            .await?;
        problems.retain(|p| p != "ok");
        let fk: Vec<(String,)> = sqlx::query_as("SELECT \"table\" FROM pragma_foreign_key_check")
            .fetch_all(&self.pool)
            .await?;
        problems.extend(fk.into_iter().map(|(t,)| format!("foreign key violation in {t}")));
        Ok(problems)
    }

    /// Returns the id of the pipeline called `name`, creating it if needed.
    pub async fn ensure_pipeline(&self, name: &str) -> Result<String, StoreError> {
        sqlx::query("INSERT INTO pipelines (id, name, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING")
            .bind(new_id())
            .bind(name)
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(sqlx::query_scalar("SELECT id FROM pipelines WHERE name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await?)
    }

    /// Marks runs (and their unfinished step runs) left `running` by a
    /// process of this host that no longer exists as crashed, in their
    /// tracking runs as well.
    /// Returns the ids of the runs it marked.
    pub async fn recover_crashed(&self, host: &str, is_alive: impl Fn(i64) -> bool) -> Result<Vec<String>, StoreError> {
        let running: Vec<(String, Option<i64>)> =
            sqlx::query_as("SELECT id, pid FROM runs WHERE status = $1 AND host = $2")
                .bind(status::RUNNING)
                .bind(host)
                .fetch_all(&self.pool)
                .await?;
        let mut recovered = Vec::new();
        for (id, pid) in running {
            if pid.is_some_and(&is_alive) {
                continue;
            }
            let mut tx = self.begin_write().await?;
            let now = now_ms();
            sqlx::query(
                "UPDATE step_runs SET status = $1, ended_at = $2, error = $3 WHERE run_id = $4 AND status IN ($5, $6)",
            )
            .bind(status::CRASHED)
            .bind(now)
            .bind("the weft process running this step died before it finished")
            .bind(&id)
            .bind(status::RUNNING)
            .bind(status::PENDING)
            .execute(&mut *tx)
            .await?;
            sqlx::query("UPDATE runs SET status = $1, ended_at = $2, error = $3 WHERE id = $4")
                .bind(status::CRASHED)
                .bind(now)
                .bind("the weft process running this pipeline died before it finished")
                .bind(&id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            // Its tracking run shows it crashed too; a failure here does not
            // undo the recovery.
            if let Err(e) = self.write_tracking_runs(&id, crate::RunScope::All).await {
                tracing::warn!("could not record the tracking runs of run {id}: {e}");
            }
            recovered.push(id);
        }
        Ok(recovered)
    }

    /// Starts a run: a new row numbered after the pipeline's last run.
    pub async fn create_run(&self, pipeline_id: &str, manifest: &str, host: &str, pid: i64) -> Result<Run, StoreError> {
        let id = new_id();
        let mut tx = self.begin_write().await?;
        let number: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(number), 0) + 1 FROM runs WHERE pipeline_id = $1")
            .bind(pipeline_id)
            .fetch_one(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO runs (id, pipeline_id, number, status, started_at, manifest, host, pid) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
            .bind(&id)
            .bind(pipeline_id)
            .bind(number)
            .bind(status::RUNNING)
            .bind(now_ms())
            .bind(manifest)
            .bind(host)
            .bind(pid)
            .execute(&mut *tx)
            .await?;
        write_runs(&mut tx, self.backend, &id, RunScope::Run).await?;
        tx.commit().await?;
        self.run(&id).await
    }

    /// Ends a run.
    pub async fn finish_run(&self, run_id: &str, status: &str, error: Option<&str>) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE runs SET status = $1, ended_at = $2, error = $3 WHERE id = $4")
            .bind(status)
            .bind(now_ms())
            .bind(error)
            .bind(run_id)
            .execute(&mut *tx)
            .await?;
        write_runs(&mut tx, self.backend, run_id, RunScope::Run).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records an external input of a run. When the latest version of
    /// `artifact.name` has the same digest it is reused; otherwise a new
    /// version is created.
    pub async fn record_run_input(
        &self,
        run_id: &str,
        slot: &str,
        artifact: &NewArtifact,
    ) -> Result<Artifact, StoreError> {
        let mut tx = self.begin_write().await?;
        let latest: Option<Artifact> = sqlx::query_as(&format!(
            "SELECT {ARTIFACT_COLUMNS} FROM artifacts a WHERE a.name = $1 ORDER BY a.version DESC LIMIT 1"
        ))
        .bind(&artifact.name)
        .fetch_optional(&mut *tx)
        .await?;
        let id = match latest {
            Some(a) if a.digest == artifact.digest && a.kind == artifact.kind && a.producer_step_run_id.is_none() => {
                a.id
            }
            _ => insert_artifact(&mut tx, artifact, None, None).await?,
        };
        sqlx::query("INSERT INTO run_inputs (run_id, name, artifact_id) VALUES ($1, $2, $3)")
            .bind(run_id)
            .bind(slot)
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.artifact(&id).await
    }

    /// Adds the step runs of a run, all pending.
    pub async fn create_step_runs(&self, run_id: &str, steps: &[(String, String)]) -> Result<Vec<String>, StoreError> {
        let ids: Vec<String> = steps.iter().map(|_| new_id()).collect();
        let rows: Vec<(&String, &(String, String))> = ids.iter().zip(steps).collect();
        let mut tx = self.begin_write().await?;
        // Many rows per statement: a pipeline can have hundreds of steps.
        for chunk in rows.chunks(200) {
            let mut insert = Sql::new(
                self.backend,
                "INSERT INTO step_runs (id, run_id, step_name, status, params)",
            );
            insert.push_values(chunk, |row, (id, (name, params))| {
                row.bind(id.as_str())
                    .bind(run_id)
                    .bind(name.as_str())
                    .bind(status::PENDING)
                    .bind(params.as_str());
            });
            insert.build()?.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(ids)
    }

    /// Marks a step run as running in the sandbox `sandbox` (its spec as
    /// JSON), whose hash is `cache_key`.
    pub async fn start_step_run(
        &self,
        id: &str,
        component_digest: &str,
        cache_key: &str,
        sandbox: &str,
        determinism: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE step_runs SET status = $1, started_at = $2, component_digest = $3, cache_key = $4, sandbox = $5, \
             determinism = $6 WHERE id = $7",
        )
        .bind(status::RUNNING)
        .bind(now_ms())
        .bind(component_digest)
        .bind(cache_key)
        .bind(sandbox)
        .bind(determinism)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        write_step_tracking_run(&mut tx, self.backend, id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records the end of a step run with everything it produced, in one
    /// transaction. Returns the ids of the new output artifacts, by name.
    pub async fn complete_step_run(
        &self,
        run_id: &str,
        id: &str,
        record: &StepRunRecord,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let mut tx = self.begin_write().await?;
        let outputs = self.complete_step_run_in(&mut tx, run_id, id, record).await?;
        tx.commit().await?;
        Ok(outputs)
    }

    /// The writes of [`Store::complete_step_run`], in `tx`.
    pub(crate) async fn complete_step_run_in(
        &self,
        tx: &mut Transaction<'_, Any>,
        run_id: &str,
        id: &str,
        record: &StepRunRecord,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let outputs = self.complete_in(tx, run_id, id, record).await?;
        write_runs(tx, self.backend, run_id, RunScope::Steps(&[id.to_string()])).await?;
        write_logged(tx, self.backend, id, record).await?;
        Ok(outputs)
    }

    /// Writes what step runs did, in order, in one transaction: the
    /// records of finished step runs and the cache hits (consecutive hits
    /// in a few statements). The write-behind ledger of a run calls this
    /// with everything that piled up while it wrote the previous batch.
    pub async fn record_step_runs(&self, writes: &[LedgerWrite]) -> Result<(), StoreError> {
        if writes.is_empty() {
            return Ok(());
        }
        // A ledger batch belongs to one run, so to one pipeline.
        let first_run = writes[0].run_id();
        let mut tx = if writes.iter().all(|w| w.run_id() == first_run) {
            self.begin_write_in(WriteScope::PipelineOfRun(first_run)).await?
        } else {
            self.begin_write().await?
        };
        let mut i = 0;
        while i < writes.len() {
            match &writes[i] {
                LedgerWrite::Finished { run_id, id, record } => {
                    self.complete_in(&mut tx, run_id, id, record).await?;
                    i += 1;
                }
                LedgerWrite::Hit(_) => {
                    let hits: Vec<&CacheHit> = writes[i..]
                        .iter()
                        .map_while(|w| match w {
                            LedgerWrite::Hit(hit) => Some(hit),
                            LedgerWrite::Finished { .. } => None,
                        })
                        .collect();
                    i += hits.len();
                    self.insert_cache_hits(&mut tx, &hits).await?;
                }
            }
        }
        let mut by_run: Vec<(&str, Vec<String>)> = Vec::new();
        for write in writes {
            let (run_id, id) = match write {
                LedgerWrite::Finished { id, .. } => (write.run_id(), id),
                LedgerWrite::Hit(hit) => (write.run_id(), &hit.step_run_id),
            };
            match by_run.iter_mut().find(|(run, _)| *run == run_id) {
                Some((_, ids)) => ids.push(id.clone()),
                None => by_run.push((run_id, vec![id.clone()])),
            }
        }
        for (run_id, ids) in &by_run {
            write_runs(&mut tx, self.backend, run_id, RunScope::Steps(ids)).await?;
        }
        // Once each step run is a tracking run: what it logged goes there.
        for write in writes {
            if let LedgerWrite::Finished { id, record, .. } = write {
                write_logged(&mut tx, self.backend, id, record).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// The statements of [`Store::complete_step_run`], in `tx`.
    async fn complete_in(
        &self,
        tx: &mut Transaction<'_, Any>,
        run_id: &str,
        id: &str,
        record: &StepRunRecord,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let mut outputs = Vec::with_capacity(record.outputs.len());
        for (i, (slot, artifact)) in record.outputs.iter().enumerate() {
            let artifact_id = insert_artifact(tx, artifact, Some(id), record.output_ids.get(i)).await?;
            link(tx, "step_run_outputs", id, slot, &artifact_id).await?;
            outputs.push((slot.clone(), artifact_id));
        }
        link_inputs(tx, self.backend, id, &record.inputs).await?;
        for (key, value) in &record.metadata {
            sqlx::query(
                "INSERT INTO metadata (run_id, step_run_id, key, value) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (step_run_id, key) DO UPDATE SET value = excluded.value",
            )
            .bind(run_id)
            .bind(id)
            .bind(key)
            .bind(value)
            .execute(&mut **tx)
            .await?;
        }
        sqlx::query(
            "UPDATE step_runs SET status = $1, error = $2, logs = $3, attempts = $4, component_digest = COALESCE($5, component_digest), \
             cache_key = COALESCE($6, cache_key), started_at = COALESCE(started_at, $7), ended_at = $8, \
             sandbox = COALESCE($9, sandbox), determinism = COALESCE($10, determinism) WHERE id = $11",
        )
        .bind(&record.status)
        .bind(&record.error)
        .bind(&record.logs)
        .bind(record.attempts)
        .bind(&record.component_digest)
        .bind(&record.cache_key)
        .bind(record.started_at)
        .bind(record.ended_at.unwrap_or_else(now_ms))
        .bind(&record.sandbox)
        .bind(&record.determinism)
        .bind(id)
        .execute(&mut **tx)
        .await?;
        Ok(outputs)
    }

    /// Records step runs served from the cache, all in one transaction of
    /// a few statements however many there are: each a step run of its own
    /// run, with new versions of its outputs under its own names (the same
    /// bytes as the original's), produced by it, and lineage to the
    /// artifacts it was given. The run shows what each original logged.
    pub async fn record_cache_hits(&self, hits: &[CacheHit]) -> Result<(), StoreError> {
        if hits.is_empty() {
            return Ok(());
        }
        let writes: Vec<LedgerWrite> = hits.iter().cloned().map(LedgerWrite::Hit).collect();
        self.record_step_runs(&writes).await
    }

    /// The statements of [`Store::record_cache_hits`], in `tx`.
    pub(crate) async fn insert_cache_hits(
        &self,
        tx: &mut Transaction<'_, Any>,
        hits: &[&CacheHit],
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let outputs: Vec<(&CacheHit, &(String, String, NewArtifact))> = hits
            .iter()
            .flat_map(|h| h.outputs.iter().map(move |o| (*h, o)))
            .collect();
        for chunk in outputs.chunks(500) {
            let mut insert = Sql::new(
                self.backend,
                "INSERT INTO artifacts (id, name, version, digest, kind, media_type, size, producer_step_run_id, source_uri, created_at)",
            );
            insert.push_values(chunk, |row, (hit, (_, id, a))| {
                row.bind(id.as_str())
                    .bind(a.name.as_str())
                    .expr(
                        "(SELECT COALESCE(MAX(version), 0) + 1 FROM artifacts WHERE name = ",
                        a.name.as_str(),
                        ")",
                    )
                    .bind(a.digest.as_str())
                    .bind(a.kind.as_str())
                    .bind(a.media_type.as_str())
                    .bind(a.size)
                    .bind(hit.step_run_id.as_str())
                    .bind(a.source_uri.as_deref())
                    .bind(now);
            });
            insert.build()?.execute(&mut **tx).await?;
            let mut links = Sql::new(
                self.backend,
                "INSERT INTO step_run_outputs (step_run_id, name, artifact_id)",
            );
            links.push_values(chunk, |row, (hit, (slot, id, _))| {
                row.bind(hit.step_run_id.as_str()).bind(slot.as_str()).bind(id.as_str());
            });
            links.build()?.execute(&mut **tx).await?;
        }
        let inputs: Vec<(&str, &(String, String))> = hits
            .iter()
            .flat_map(|h| h.inputs.iter().map(move |i| (h.step_run_id.as_str(), i)))
            .collect();
        for chunk in inputs.chunks(1000) {
            let mut links = Sql::new(
                self.backend,
                "INSERT INTO step_run_inputs (step_run_id, name, artifact_id)",
            );
            links.push_values(chunk, |row, (step_run_id, (slot, artifact_id))| {
                row.bind(*step_run_id).bind(slot.as_str()).bind(artifact_id.as_str());
            });
            links.build()?.execute(&mut **tx).await?;
        }
        // Every step run row at once: an upsert onto rows that exist.
        for chunk in hits.chunks(200) {
            let mut update = Sql::new(
                self.backend,
                "INSERT INTO step_runs (id, run_id, step_name, status, params, cached_from, component_digest, cache_key, \
                 sandbox, determinism, started_at, ended_at)",
            );
            update.push_values(chunk, |row, h| {
                row.bind(h.step_run_id.as_str())
                    .bind(h.run_id.as_str())
                    .bind(h.step_name.as_str())
                    .bind(status::CACHED)
                    .bind(h.params.as_str())
                    .bind(h.original.as_str())
                    .bind(h.component_digest.as_str())
                    .bind(h.cache_key.as_str())
                    .bind(h.sandbox.as_str())
                    .bind(h.determinism.as_str())
                    .bind(now)
                    .bind(now);
            });
            update.push(
                " ON CONFLICT (id) DO UPDATE SET status = excluded.status, cached_from = excluded.cached_from, \
                 component_digest = excluded.component_digest, cache_key = excluded.cache_key, sandbox = excluded.sandbox, \
                 determinism = excluded.determinism, started_at = excluded.started_at, ended_at = excluded.ended_at",
            );
            update.build()?.execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// The cache candidates a rerun most likely needs, in one query: the
    /// step runs that produced the outputs of `pipeline`'s latest run
    /// other than `current` (each step run, or its original when it was a
    /// cache hit), keyed by cache key, under the rules of
    /// [`Store::cache_candidates`]. A run asks for this once at its start,
    /// and a step whose key is here needs no query of its own.
    pub async fn previous_run_candidates(
        &self,
        pipeline: &str,
        current: &str,
        trust_imported: bool,
    ) -> Result<HashMap<String, (String, Vec<ArtifactLink>)>, StoreError> {
        #[derive(sqlx::FromRow)]
        struct Row {
            cache_key: String,
            candidate: String,
            #[sqlx(flatten)]
            link: ArtifactLink,
        }
        let rows: Vec<Row> = sqlx::query_as(&format!(
            "SELECT o.cache_key, o.id AS candidate, l.name AS slot, {ARTIFACT_COLUMNS} FROM step_runs s \
             JOIN step_runs o ON o.id = COALESCE(s.cached_from, s.id) \
             JOIN step_run_outputs l ON l.step_run_id = o.id JOIN artifacts a ON a.id = l.artifact_id \
             WHERE s.run_id = (SELECT r.id FROM runs r JOIN pipelines p ON p.id = r.pipeline_id \
                               WHERE p.name = $1 AND r.id <> $2 ORDER BY r.number DESC LIMIT 1) \
               AND o.status = $3 AND o.cache_key IS NOT NULL \
               AND {} \
             ORDER BY o.id, l.name",
            candidate_rules("$4")
        ))
        .bind(pipeline)
        .bind(current)
        .bind(status::SUCCEEDED)
        .bind(trust_imported)
        .fetch_all(&self.reader)
        .await?;
        let mut candidates: HashMap<String, (String, Vec<ArtifactLink>)> = HashMap::new();
        for row in rows {
            candidates
                .entry(row.cache_key)
                .or_insert_with(|| (row.candidate, Vec::new()))
                .1
                .push(row.link);
        }
        Ok(candidates)
    }

    /// Step runs that executed successfully with this cache key and may
    /// serve it, newest first, each with its output artifacts. A step run
    /// that a verification found to differ never serves; an imported one
    /// serves only once a verification here matched it, unless
    /// `trust_imported`.
    pub async fn cache_candidates(
        &self,
        cache_key: &str,
        trust_imported: bool,
    ) -> Result<Vec<(String, Vec<ArtifactLink>)>, StoreError> {
        // One query for the five newest candidates and all their outputs:
        // this runs before every step, so it must be one round trip.
        #[derive(sqlx::FromRow)]
        struct Row {
            candidate: String,
            #[sqlx(flatten)]
            link: ArtifactLink,
        }
        let rows: Vec<Row> = sqlx::query_as(&format!(
            "SELECT c.id AS candidate, l.name AS slot, {ARTIFACT_COLUMNS} FROM \
             (SELECT o.id, o.ended_at FROM step_runs o WHERE o.cache_key = $1 AND o.status = $2 AND {} \
              ORDER BY o.ended_at DESC LIMIT 5) c \
             JOIN step_run_outputs l ON l.step_run_id = c.id JOIN artifacts a ON a.id = l.artifact_id \
             ORDER BY c.ended_at DESC, c.id, l.name",
            candidate_rules("$3")
        ))
        .bind(cache_key)
        .bind(status::SUCCEEDED)
        .bind(trust_imported)
        .fetch_all(&self.reader)
        .await?;
        let mut candidates: Vec<(String, Vec<ArtifactLink>)> = Vec::new();
        for row in rows {
            match candidates.last_mut() {
                Some((id, links)) if *id == row.candidate => links.push(row.link),
                _ => candidates.push((row.candidate, vec![row.link])),
            }
        }
        Ok(candidates)
    }

    /// Marks the step runs of a run that never started (still pending) with
    /// `status` and a reason.
    pub async fn close_pending(&self, run_id: &str, status: &str, reason: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE step_runs SET status = $1, error = $2, ended_at = $3 WHERE run_id = $4 AND status = $5")
            .bind(status)
            .bind(reason)
            .bind(now_ms())
            .bind(run_id)
            .bind(status::PENDING)
            .execute(&mut *tx)
            .await?;
        write_runs(&mut tx, self.backend, run_id, RunScope::All).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Sets one pending step run's final status without running it.
    pub async fn skip_step_run(&self, id: &str, status: &str, reason: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE step_runs SET status = $1, error = $2, ended_at = $3 WHERE id = $4")
            .bind(status)
            .bind(reason)
            .bind(now_ms())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        write_step_tracking_run(&mut tx, self.backend, id).await?;
        tx.commit().await?;
        Ok(())
    }

    // ----- queries -----

    /// A run by id, id prefix, or `latest`.
    pub async fn run(&self, key: &str) -> Result<Run, StoreError> {
        if key == "latest" {
            return sqlx::query_as(&format!("SELECT {RUN_COLUMNS} FROM runs r JOIN pipelines p ON p.id = r.pipeline_id ORDER BY r.started_at DESC, r.id DESC LIMIT 1"))
                .fetch_optional(&self.pool)
                .await?
                .ok_or(StoreError::NotFound { what: "run", key: key.into() });
        }
        let mut runs: Vec<Run> = sqlx::query_as(&format!("SELECT {RUN_COLUMNS} FROM runs r JOIN pipelines p ON p.id = r.pipeline_id WHERE r.id LIKE $1 ESCAPE '\\' LIMIT 2"))
            .bind(format!("{}%", escape_like(key)))
            .fetch_all(&self.pool)
            .await?;
        match runs.len() {
            0 => Err(StoreError::NotFound {
                what: "run",
                key: key.into(),
            }),
            1 => Ok(runs.remove(0)),
            _ => Err(StoreError::Ambiguous {
                what: "run",
                key: key.into(),
            }),
        }
    }

    /// Pipelines by name, with how many runs each has.
    pub async fn pipelines(&self, limit: i64, offset: i64) -> Result<Vec<Pipeline>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT p.id, p.name, p.created_at, COUNT(r.id) AS runs, MAX(r.started_at) AS last_run_at \
             FROM pipelines p LEFT JOIN runs r ON r.pipeline_id = p.id \
             GROUP BY p.id, p.name, p.created_at ORDER BY p.name LIMIT $1 OFFSET $2",
        )
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Runs, newest first, optionally of one pipeline and with one status.
    pub async fn runs(
        &self,
        pipeline: Option<&str>,
        status: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<Run>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {RUN_COLUMNS} FROM runs r JOIN pipelines p ON p.id = r.pipeline_id \
             WHERE ($1 IS NULL OR p.name = $1) AND ($2 IS NULL OR r.status = $2) \
             ORDER BY r.started_at DESC, r.id DESC LIMIT $3 OFFSET $4"
        ))
        .bind(pipeline)
        .bind(status)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The full history of one metric of a run (cached steps included), in
    /// step then time order.
    pub async fn metric_history(&self, run_id: &str, key: &str) -> Result<Vec<Metric>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "{STEP_METRIC_ROWS} AND run_uuid IN ({SOURCE_STEP_RUNS}) AND key = $2 ORDER BY tracking_metrics.run_uuid, tracking_metrics.step, tracking_metrics.timestamp"
        ))
        .bind(run_id)
        .bind(key)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The step runs of a run, in the order they were created.
    pub async fn step_runs(&self, run_id: &str) -> Result<Vec<StepRun>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {STEP_RUN_COLUMNS} FROM step_runs WHERE run_id = $1 ORDER BY id"
        ))
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// One step run by id.
    pub async fn step_run(&self, id: &str) -> Result<StepRun, StoreError> {
        sqlx::query_as(&format!("SELECT {STEP_RUN_COLUMNS} FROM step_runs WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound {
                what: "step run",
                key: id.into(),
            })
    }

    /// The captured logs of a step of a run. For a cached step run, the logs
    /// of the run it was served from.
    pub async fn step_logs(&self, run_id: &str, step: &str) -> Result<(StepRun, String), StoreError> {
        let row: Option<(String, Option<String>, Option<String>)> =
            sqlx::query_as("SELECT id, logs, cached_from FROM step_runs WHERE run_id = $1 AND step_name = $2")
                .bind(run_id)
                .bind(step)
                .fetch_optional(&self.pool)
                .await?;
        let (id, logs, cached_from) = row.ok_or(StoreError::NotFound {
            what: "step",
            key: step.into(),
        })?;
        let logs = match (logs, cached_from) {
            (Some(logs), _) => logs,
            (None, Some(original)) => {
                sqlx::query_scalar::<_, Option<String>>("SELECT logs FROM step_runs WHERE id = $1")
                    .bind(original)
                    .fetch_one(&self.pool)
                    .await?
                    .unwrap_or_default()
            }
            (None, None) => String::new(),
        };
        Ok((self.step_run(&id).await?, logs))
    }

    /// Everything about a run.
    pub async fn run_detail(&self, key: &str) -> Result<RunDetail, StoreError> {
        let mut detail = self.run_overview(key).await?;
        detail.metrics = sqlx::query_as(&format!(
            "{STEP_METRIC_ROWS} AND run_uuid IN ({SOURCE_STEP_RUNS}) ORDER BY tracking_metrics.run_uuid, tracking_metrics.key, tracking_metrics.step, tracking_metrics.timestamp"
        ))
            .bind(&detail.run.id)
            .fetch_all(&self.pool)
            .await?;
        Ok(detail)
    }

    /// Everything about a run but its metric points (`metrics` is empty):
    /// what a page shows before it charts a history.
    pub async fn run_overview(&self, key: &str) -> Result<RunDetail, StoreError> {
        let run = self.run(key).await?;
        let manifest: String = sqlx::query_scalar("SELECT manifest FROM runs WHERE id = $1")
            .bind(&run.id)
            .fetch_one(&self.pool)
            .await?;
        let manifest = serde_json::from_str(&manifest).unwrap_or(serde_json::Value::Null);
        let steps = self.step_runs(&run.id).await?;
        let inputs = sqlx::query_as(&format!(
            "SELECT ri.name AS slot, {ARTIFACT_COLUMNS} FROM run_inputs ri JOIN artifacts a ON a.id = ri.artifact_id WHERE ri.run_id = $1 ORDER BY ri.name"
        ))
        .bind(&run.id)
        .fetch_all(&self.pool)
        .await?;
        // Params and tags are those of the step runs' tracking runs.
        let kv = |table: &str, column: &str, only: &str| {
            format!(
                "SELECT {column} AS step_run_id, key, value FROM {table} \
                 WHERE {column} IN ({SOURCE_STEP_RUNS}){only} ORDER BY {column}, key"
            )
        };
        let params = crate::pipeline_runs::logged_params(
            sqlx::query_as(&kv("tracking_params", "run_uuid", ""))
                .bind(&run.id)
                .fetch_all(&self.pool)
                .await?,
            &steps,
        );
        let tags = sqlx::query_as(&kv("tracking_tags", "run_uuid", &format!(" AND {OWN_TAGS}")))
            .bind(&run.id)
            .fetch_all(&self.pool)
            .await?;
        let metadata = sqlx::query_as(&kv("metadata", "step_run_id", ""))
            .bind(&run.id)
            .fetch_all(&self.pool)
            .await?;
        let plugin_calls = self.plugin_calls(&run.id).await?;
        let verifications = self.verifications(&run.id).await?;
        Ok(RunDetail {
            run,
            manifest,
            steps,
            inputs,
            params,
            metrics: Vec::new(),
            plugin_calls,
            verifications,
            tags,
            metadata,
        })
    }

    /// Artifacts, newest first, optionally only those whose name starts with
    /// `prefix`.
    pub async fn artifacts(&self, prefix: Option<&str>, limit: i64, offset: i64) -> Result<Vec<Artifact>, StoreError> {
        let pattern = format!("{}%", escape_like(prefix.unwrap_or("")));
        Ok(sqlx::query_as(&format!(
            "SELECT {ARTIFACT_COLUMNS} FROM artifacts a WHERE a.name LIKE $1 ESCAPE '\\' ORDER BY a.created_at DESC, a.id DESC LIMIT $2 OFFSET $3"
        ))
        .bind(pattern)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?)
    }

    /// An artifact by id, id prefix, `name` (latest version) or `name:version`.
    pub async fn artifact(&self, key: &str) -> Result<Artifact, StoreError> {
        if let Some((name, version)) = key.rsplit_once(':') {
            if let Ok(version) = version.parse::<i64>() {
                return sqlx::query_as(&format!(
                    "SELECT {ARTIFACT_COLUMNS} FROM artifacts a WHERE a.name = $1 AND a.version = $2"
                ))
                .bind(name)
                .bind(version)
                .fetch_optional(&self.pool)
                .await?
                .ok_or(StoreError::NotFound {
                    what: "artifact",
                    key: key.into(),
                });
            }
        }
        if let Some(a) = sqlx::query_as(&format!(
            "SELECT {ARTIFACT_COLUMNS} FROM artifacts a WHERE a.name = $1 ORDER BY a.version DESC LIMIT 1"
        ))
        .bind(key)
        .fetch_optional(&self.pool)
        .await?
        {
            return Ok(a);
        }
        let mut found: Vec<Artifact> = sqlx::query_as(&format!(
            "SELECT {ARTIFACT_COLUMNS} FROM artifacts a WHERE a.id LIKE $1 ESCAPE '\\' LIMIT 2"
        ))
        .bind(format!("{}%", escape_like(key)))
        .fetch_all(&self.pool)
        .await?;
        match found.len() {
            0 => Err(StoreError::NotFound {
                what: "artifact",
                key: key.into(),
            }),
            1 => Ok(found.remove(0)),
            _ => Err(StoreError::Ambiguous {
                what: "artifact",
                key: key.into(),
            }),
        }
    }

    /// The artifacts a step run read.
    pub async fn step_run_inputs(&self, step_run_id: &str) -> Result<Vec<ArtifactLink>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT l.name AS slot, {ARTIFACT_COLUMNS} FROM step_run_inputs l JOIN artifacts a ON a.id = l.artifact_id \
             WHERE l.step_run_id = $1 ORDER BY l.name"
        ))
        .bind(step_run_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The artifacts a step run wrote (for a cached one, new versions of
    /// the bytes its original wrote).
    pub async fn step_run_outputs(&self, step_run_id: &str) -> Result<Vec<ArtifactLink>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT l.name AS slot, {ARTIFACT_COLUMNS} FROM step_run_outputs l JOIN artifacts a ON a.id = l.artifact_id \
             WHERE l.step_run_id = $1 ORDER BY l.name"
        ))
        .bind(step_run_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The lineage of an artifact: its producer, the producer's inputs, and
    /// so on back to external data.
    pub async fn lineage(&self, key: &str) -> Result<LineageNode, StoreError> {
        let artifact = self.artifact(key).await?;
        let mut seen = std::collections::HashSet::new();
        self.lineage_of(artifact, 0, &mut seen).await
    }

    /// One node of [`Store::lineage`]: each artifact is expanded once (a
    /// shared ancestor is marked `repeated` where it appears again, so a
    /// DAG of diamonds costs its size, not its paths), and a walk past
    /// [`LINEAGE_MAX_DEPTH`] levels or [`LINEAGE_MAX_NODES`] artifacts stops
    /// with the node marked `truncated`.
    fn lineage_of<'a>(
        &'a self,
        artifact: Artifact,
        depth: usize,
        seen: &'a mut std::collections::HashSet<String>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<LineageNode, StoreError>> + Send + 'a>> {
        Box::pin(async move {
            let leaf = |artifact, repeated, truncated| LineageNode {
                artifact,
                producer: None,
                inputs: Vec::new(),
                repeated,
                truncated,
            };
            if seen.contains(&artifact.id) {
                return Ok(leaf(artifact, true, false));
            }
            if depth >= LINEAGE_MAX_DEPTH || seen.len() >= LINEAGE_MAX_NODES {
                let produced = artifact.producer_step_run_id.is_some();
                return Ok(leaf(artifact, false, produced));
            }
            seen.insert(artifact.id.clone());
            let producer = match &artifact.producer_step_run_id {
                Some(id) => Some(self.step_run(id).await?),
                None => None,
            };
            let mut inputs = Vec::new();
            if let Some(step) = &producer {
                for link in self.step_run_inputs(&step.id).await? {
                    inputs.push((link.slot, self.lineage_of(link.artifact, depth + 1, seen).await?));
                }
            }
            Ok(LineageNode {
                artifact,
                producer,
                inputs,
                repeated: false,
                truncated: false,
            })
        })
    }
}

/// Brings the schema up to date. A database already at the newest version
/// (the usual case) costs one query instead of the migrator's checks.
async fn migrate(pool: &AnyPool) -> Result<(), StoreError> {
    let migrator = sqlx::migrate!("./migrations");
    let newest = migrator.iter().map(|m| m.version).max().unwrap_or(0);
    let applied: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success = TRUE")
        .fetch_one(pool)
        .await
        .unwrap_or(None);
    if applied != Some(newest) {
        migrator.run(pool).await?;
    }
    Ok(())
}

/// What a finished step run logged (params, tags, metrics), into its
/// tracking run (whose run id is the step run's id), in `tx`, after
/// [`write_runs`] has written that run. A logged param wins over the
/// step's configured param of the same key; a logged tag never replaces
/// one of weft's own (`weft.*`, `mlflow.*`).
async fn write_logged(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    id: &str,
    record: &StepRunRecord,
) -> Result<(), StoreError> {
    for (table, pairs, on_conflict) in [
        (
            "tracking_params",
            &record.params,
            "DO UPDATE SET value = excluded.value",
        ),
        ("tracking_tags", &record.tags, "DO NOTHING"),
    ] {
        for chunk in pairs.chunks(300) {
            let mut q = Sql::new(backend, format!("INSERT INTO {table} (run_uuid, key, value)"));
            q.push_values(chunk, |row, (key, value)| {
                row.bind(id).bind(key.as_str()).bind(value.as_str());
            });
            q.push(format!(" ON CONFLICT (run_uuid, key) {on_conflict}"));
            q.build()?.execute(&mut **tx).await?;
        }
    }
    let points: Vec<(&str, &str, f64, Option<i64>, i64)> = record
        .metrics
        .iter()
        .map(|(key, value, step, timestamp)| (id, key.as_str(), *value, *step, *timestamp))
        .collect();
    crate::tracking::insert_step_points(tx, backend, &points).await
}

/// Writes the tracking run of one step run (and its run) in `tx`.
pub(crate) async fn write_step_tracking_run(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    id: &str,
) -> Result<(), StoreError> {
    let run_id: String = sqlx::query_scalar("SELECT run_id FROM step_runs WHERE id = $1")
        .bind(id)
        .fetch_one(&mut **tx)
        .await?;
    write_runs(tx, backend, &run_id, RunScope::Steps(&[id.to_string()])).await
}

async fn insert_artifact(
    tx: &mut Transaction<'_, Any>,
    artifact: &NewArtifact,
    producer: Option<&str>,
    chosen_id: Option<&String>,
) -> Result<String, StoreError> {
    let id = chosen_id.cloned().unwrap_or_else(new_id);
    sqlx::query(
        "INSERT INTO artifacts (id, name, version, digest, kind, media_type, size, producer_step_run_id, source_uri, created_at) \
         SELECT $1, $2, COALESCE(MAX(version), 0) + 1, $3, $4, $5, $6, $7, $8, $9 FROM artifacts WHERE name = $2",
    )
    .bind(&id)
    .bind(&artifact.name)
    .bind(&artifact.digest)
    .bind(&artifact.kind)
    .bind(&artifact.media_type)
    .bind(artifact.size)
    .bind(producer)
    .bind(&artifact.source_uri)
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    Ok(id)
}

/// Records the inputs a step run read, in one statement.
pub(crate) async fn link_inputs(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    step_run_id: &str,
    inputs: &[(String, String)],
) -> Result<(), StoreError> {
    for chunk in inputs.chunks(1000) {
        let mut insert = Sql::new(backend, "INSERT INTO step_run_inputs (step_run_id, name, artifact_id) ");
        insert.push_values(chunk, |row, (slot, artifact_id)| {
            row.bind(step_run_id).bind(slot).bind(artifact_id);
        });
        insert.build()?.execute(&mut **tx).await?;
    }
    Ok(())
}

async fn link(
    tx: &mut Transaction<'_, Any>,
    table: &str,
    step_run_id: &str,
    slot: &str,
    artifact_id: &str,
) -> Result<(), StoreError> {
    sqlx::query(&format!(
        "INSERT INTO {table} (step_run_id, name, artifact_id) VALUES ($1, $2, $3)"
    ))
    .bind(step_run_id)
    .bind(slot)
    .bind(artifact_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(crate) fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

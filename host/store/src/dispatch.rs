//! Step runs handed to a worker (`weft step exec`): the dispatching
//! process prepares a step run (its sandbox spec, its inputs), a worker
//! claims it, executes it and records how it ended. A step run is claimed
//! by one conditional update, so a duplicate or late worker finds it taken
//! or finished and changes nothing.
//!
//! A step run can also be handed out *deferred*, before the step runs it
//! reads from have finished (a Slurm job held until its upstream jobs
//! succeed): it is prepared with what its worker needs to complete the
//! sandbox spec from their outputs, and the worker that claims it records
//! the spec, the cache key and the inputs ([`Store::resolve_deferred_step_run`]),
//! then executes it or serves it from the cache
//! ([`Store::finish_claimed_as_hit`]).

use crate::pipeline_runs::{write_runs, RunScope};
use crate::store::{link_inputs, write_step_tracking_run};
use crate::{new_id, now_ms, status, CacheHit, StepRunRecord, Store, StoreError};

/// What a worker found when it tried to claim a step run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// It is this worker's to execute: it was pending and prepared. The
    /// token its record must present (see
    /// [`Store::finish_claimed_step_run`]).
    Claimed(String),
    /// Another worker took it, or it ended already (its status).
    Taken(String),
    /// It was never prepared for a worker (no sandbox spec recorded).
    NotPrepared,
}

impl Store {
    /// Records what a worker needs to execute step run `id` — its
    /// component's digest, its sandbox spec and the spec's hash, its
    /// determinism, the artifacts it reads (`(input name, artifact id)`) —
    /// keeping it pending. Fails if it is not pending.
    pub async fn prepare_step_run(
        &self,
        id: &str,
        component_digest: &str,
        cache_key: &str,
        sandbox: &str,
        determinism: &str,
        inputs: &[(String, String)],
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let updated = sqlx::query(
            "UPDATE step_runs SET component_digest = $1, cache_key = $2, sandbox = $3, determinism = $4 \
             WHERE id = $5 AND status = $6 AND sandbox IS NULL AND deferred IS NULL",
        )
        .bind(component_digest)
        .bind(cache_key)
        .bind(sandbox)
        .bind(determinism)
        .bind(id)
        .bind(status::PENDING)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated != 1 {
            return Err(StoreError::InvalidState(format!(
                "step run {id} cannot be prepared for a worker: it is not a pending step run that was never prepared"
            )));
        }
        link_inputs(&mut tx, self.backend, id, inputs).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records what a worker needs to execute step run `id` once the step
    /// runs it reads from have ended (`deferred`, JSON written by the
    /// executor), keeping it pending. Fails if it is not pending or was
    /// prepared already.
    pub async fn prepare_deferred_step_run(&self, id: &str, deferred: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let updated = sqlx::query(
            "UPDATE step_runs SET deferred = $1 WHERE id = $2 AND status = $3 AND sandbox IS NULL AND deferred IS NULL",
        )
        .bind(deferred)
        .bind(id)
        .bind(status::PENDING)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated != 1 {
            return Err(StoreError::InvalidState(format!(
                "step run {id} cannot be deferred: it is not a pending step run that was never prepared"
            )));
        }
        tx.commit().await?;
        Ok(())
    }

    /// What a deferred step run's worker needs (see
    /// [`Store::prepare_deferred_step_run`]), while its sandbox spec is
    /// not recorded yet; `None` once it is, or when it was not deferred.
    pub async fn step_run_deferred(&self, id: &str) -> Result<Option<String>, StoreError> {
        let row: Option<(Option<String>,)> =
            sqlx::query_as("SELECT deferred FROM step_runs WHERE id = $1 AND sandbox IS NULL")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.and_then(|(d,)| d))
    }

    /// Records the sandbox spec of a deferred step run that this worker
    /// claimed (`claim`), completed from its upstream step runs' outputs:
    /// as [`Store::prepare_step_run`] records it. Returns whether it is
    /// still this worker's.
    #[allow(clippy::too_many_arguments)]
    pub async fn resolve_deferred_step_run(
        &self,
        id: &str,
        claim: &str,
        component_digest: &str,
        cache_key: &str,
        sandbox: &str,
        determinism: &str,
        inputs: &[(String, String)],
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let updated = sqlx::query(
            "UPDATE step_runs SET component_digest = $1, cache_key = $2, sandbox = $3, determinism = $4 \
             WHERE id = $5 AND status = $6 AND claim = $7 AND sandbox IS NULL",
        )
        .bind(component_digest)
        .bind(cache_key)
        .bind(sandbox)
        .bind(determinism)
        .bind(id)
        .bind(status::RUNNING)
        .bind(claim)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        link_inputs(&mut tx, self.backend, id, inputs).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Records a claimed step run (`claim`) as served from the cache, as a
    /// run records its own hits (see [`Store::record_cache_hits`]), if it
    /// is still this worker's. Its inputs were linked when it was
    /// prepared or resolved: `hit.inputs` stays empty. Returns whether it
    /// was recorded.
    pub async fn finish_claimed_as_hit(&self, claim: &str, hit: &CacheHit) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let released = sqlx::query("UPDATE step_runs SET claim = NULL WHERE id = $1 AND status = $2 AND claim = $3")
            .bind(&hit.step_run_id)
            .bind(status::RUNNING)
            .bind(claim)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if released != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        debug_assert!(hit.inputs.is_empty(), "linked when prepared");
        self.insert_cache_hits(&mut tx, &[hit]).await?;
        write_runs(
            &mut tx,
            self.backend,
            &hit.run_id,
            RunScope::Steps(std::slice::from_ref(&hit.step_run_id)),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Takes prepared step run `id` for this worker: pending becomes
    /// running, once. See [`Claim`].
    pub async fn claim_step_run(&self, id: &str) -> Result<Claim, StoreError> {
        let mut tx = self.begin_write().await?;
        let token = new_id();
        let updated = sqlx::query(
            "UPDATE step_runs SET status = $1, started_at = $2, claim = $3 \
             WHERE id = $4 AND status = $5 AND (sandbox IS NOT NULL OR deferred IS NOT NULL)",
        )
        .bind(status::RUNNING)
        .bind(now_ms())
        .bind(&token)
        .bind(id)
        .bind(status::PENDING)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 1 {
            write_step_tracking_run(&mut tx, self.backend, id).await?;
            tx.commit().await?;
            return Ok(Claim::Claimed(token));
        }
        tx.rollback().await?;
        let step_run = self.step_run(id).await?;
        if step_run.status == status::PENDING {
            return Ok(Claim::NotPrepared);
        }
        Ok(Claim::Taken(step_run.status))
    }

    /// Records how a claimed step run ended, if it is still this worker's
    /// (`claim`, the token of [`Claim::Claimed`]): still running under the
    /// same claim, not taken back or closed meanwhile. Returns whether it
    /// was recorded. The inputs were linked when it was prepared:
    /// `record.inputs` stays empty.
    pub async fn finish_claimed_step_run(
        &self,
        run_id: &str,
        id: &str,
        claim: &str,
        record: &StepRunRecord,
    ) -> Result<bool, StoreError> {
        self.finish_dispatched(run_id, id, Some(claim), record).await
    }

    /// Records the end of a dispatched step run that no worker recorded
    /// (its worker was lost, or never started): only if it is still
    /// pending or running, and so that its worker, if it is alive after
    /// all, can no longer record. Returns whether it was recorded.
    pub async fn close_dispatched_step_run(
        &self,
        run_id: &str,
        id: &str,
        record: &StepRunRecord,
    ) -> Result<bool, StoreError> {
        self.finish_dispatched(run_id, id, None, record).await
    }

    /// Takes a dispatched step run back from a worker that was lost
    /// (its job killed or failed before recording): pending again, its
    /// claim void, ready to be handed out again; the lost attempt is
    /// counted in its attempts when it ends. Returns whether it was still
    /// unfinished.
    pub async fn release_step_run(&self, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let updated = sqlx::query(
            "UPDATE step_runs SET status = $1, claim = NULL, started_at = NULL, attempts = attempts + 1 \
             WHERE id = $2 AND status IN ($1, $3) AND (sandbox IS NOT NULL OR deferred IS NOT NULL)",
        )
        .bind(status::PENDING)
        .bind(id)
        .bind(status::RUNNING)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(updated == 1)
    }

    async fn finish_dispatched(
        &self,
        run_id: &str,
        id: &str,
        claim: Option<&str>,
        record: &StepRunRecord,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let current: Option<(String, Option<String>, i64)> =
            sqlx::query_as("SELECT status, claim, attempts FROM step_runs WHERE id = $1 AND run_id = $2")
                .bind(id)
                .bind(run_id)
                .fetch_optional(&mut *tx)
                .await?;
        let current_status = current.as_ref().map(|(s, _, _)| s.as_str());
        let ours = match claim {
            Some(claim) => {
                current_status == Some(status::RUNNING)
                    && current.as_ref().and_then(|(_, c, _)| c.as_deref()) == Some(claim)
            }
            None => matches!(current_status, Some(status::PENDING | status::RUNNING)),
        };
        if !ours {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query("UPDATE step_runs SET claim = NULL WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        debug_assert!(record.inputs.is_empty(), "linked when prepared");
        self.complete_step_run_in(&mut tx, run_id, id, record).await?;
        // The attempts of the workers lost before this one count too.
        let lost = current.map_or(0, |(_, _, lost)| lost);
        if lost > 0 {
            sqlx::query("UPDATE step_runs SET attempts = attempts + $1 WHERE id = $2")
                .bind(lost)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }
}

//! The queue's SQL: one code path for SQLite and PostgreSQL through `sqlx::Any`.
//!
//! Every statement is a single `UPDATE`/`INSERT`, so no step of a job's life needs a
//! transaction of its own, and `enqueue_in` can run inside the caller's.

use std::sync::Arc;
use std::time::Duration;

use sqlx::{AnyConnection, AnyPool, Row};
use tokio::sync::Notify;
use tracing::{debug, info, warn};

use crate::job::{Backoff, ClaimedJob, FailOutcome, JobId, JobState, NewJob};
use crate::{Backend, QueueError, Result};

const INSERT: &str = "\
INSERT INTO jobs (id, kind, payload, priority, state, attempts, max_attempts, run_at,
                  unique_key, created_at, updated_at)
VALUES ($1, $2, $3, $4, 'queued', 0, $5, COALESCE($6, {now}), $7, {now}, {now})
ON CONFLICT DO NOTHING";

/// The job holding a unique key: an active one, or for periodic keys any one.
const EXISTING: &str = "\
SELECT id FROM jobs
WHERE unique_key = $1
  AND (state IN ('queued', 'running') OR substr(unique_key, 1, 9) = 'periodic:')
ORDER BY created_at DESC LIMIT 1";

/// Claims the best runnable job: a queued one that is due, or a running one whose lease
/// expired (its worker died). An expired job that already used its last attempt goes
/// to `dead` instead, in the same statement, so it cannot bounce between crashing
/// workers forever. `{lock}` is `FOR UPDATE SKIP LOCKED` on PostgreSQL.
const CLAIM: &str = "\
UPDATE jobs SET
    state       = CASE WHEN {exhausted} THEN 'dead' ELSE 'running' END,
    attempts    = CASE WHEN {exhausted} THEN attempts ELSE attempts + 1 END,
    locked_by   = CASE WHEN {exhausted} THEN locked_by ELSE $1 END,
    lease_until = CASE WHEN {exhausted} THEN NULL ELSE {now} + $2 END,
    lease_token = CASE WHEN {exhausted} THEN NULL ELSE $3 END,
    progress    = CASE WHEN {exhausted} THEN progress ELSE NULL END,
    finished_at = CASE WHEN {exhausted} THEN {now} ELSE NULL END,
    last_error  = CASE WHEN {exhausted} THEN $4 ELSE last_error END,
    updated_at  = {now}
WHERE id = (
    SELECT id FROM jobs
    WHERE ((state = 'queued' AND run_at <= {now})
        OR (state = 'running' AND lease_until < {now})){kinds}
    ORDER BY priority DESC, run_at ASC, id ASC
    LIMIT 1{lock}
)
RETURNING id, kind, payload, priority, state, attempts, max_attempts";

/// The `last_error` of a job whose worker was lost during its last attempt.
const LEASE_LOST_ON_LAST_ATTEMPT: &str = "lease expired during the last attempt (worker lost)";

/// Every write a worker makes on its job must match its claim's token.
const FENCE: &str = "id = $1 AND state = 'running' AND lease_token = $2";

/// A job that has just become a dead letter.
pub struct DeadJob<'a> {
    pub id: &'a JobId,
    pub kind: &'a str,
    pub payload: &'a serde_json::Value,
    pub attempts: i64,
    pub error: &'a str,
}

/// Writes something in the transaction that dead-letters a job (the application's event
/// outbox), so the dead letter and its notice commit together or not at all.
#[async_trait::async_trait]
pub trait DeadLetterHook: Send + Sync {
    async fn dead_lettered(
        &self,
        conn: &mut AnyConnection,
        job: &DeadJob<'_>,
    ) -> Result<(), sqlx::Error>;
}

/// A handle on the job queue; cheap to clone, one per process is plenty.
#[derive(Clone)]
pub struct Queue {
    pool: AnyPool,
    backend: Backend,
    backoff: Backoff,
    /// Wakes this process's idle workers when it enqueues, so they need not wait for
    /// their next poll.
    wake: Arc<Notify>,
    on_dead: Option<Arc<dyn DeadLetterHook>>,
}

impl Queue {
    pub fn new(pool: AnyPool, backend: Backend) -> Queue {
        Queue {
            pool,
            backend,
            backoff: Backoff::default(),
            wake: Arc::new(Notify::new()),
            on_dead: None,
        }
    }

    /// Runs `hook` in every transaction that makes a job a dead letter.
    pub fn on_dead_letter(mut self, hook: Arc<dyn DeadLetterHook>) -> Queue {
        self.on_dead = Some(hook);
        self
    }

    /// Replaces the retry backoff (default: 1 s base, 10 min cap).
    pub fn with_backoff(mut self, backoff: Backoff) -> Queue {
        self.backoff = backoff;
        self
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Wakes idle workers in this process. `enqueue` does it itself; call it after
    /// committing a transaction that used `enqueue_in`.
    pub fn notify(&self) {
        self.wake.notify_waiters();
    }

    pub(crate) fn wake(&self) -> &Notify {
        &self.wake
    }

    fn sql(&self, template: &str) -> String {
        template.replace("{now}", self.backend.now_sql())
    }

    /// Enqueues a job on its own connection and wakes local workers.
    pub async fn enqueue(&self, job: NewJob) -> Result<JobId> {
        let mut conn = self.pool.acquire().await?;
        let id = self.enqueue_in(&mut conn, job).await?;
        self.notify();
        Ok(id)
    }

    /// Enqueues a job on the caller's connection, typically inside its open transaction
    /// (`queue.enqueue_in(&mut tx, job)`), so the job commits or rolls back with the
    /// caller's rows. With a unique key held by an active job, returns that job's id.
    ///
    /// `ON CONFLICT DO NOTHING` rather than catching the violation keeps a PostgreSQL
    /// transaction usable after a duplicate.
    pub async fn enqueue_in(&self, conn: &mut AnyConnection, job: NewJob) -> Result<JobId> {
        let payload = serde_json::to_string(&job.payload)?;
        let insert = self.sql(INSERT);
        // A retry only happens when the conflicting job finished between our INSERT and
        // SELECT; then the next INSERT succeeds.
        for _ in 0..3 {
            let id = JobId::generate();
            let result = sqlx::query(&insert)
                .bind(id.as_str())
                .bind(&job.kind)
                .bind(&payload)
                .bind(job.priority)
                .bind(i64::from(job.max_attempts.max(1)))
                .bind(job.run_at)
                .bind(job.unique_key.as_deref())
                .execute(&mut *conn)
                .await?;
            if result.rows_affected() == 1 {
                debug!(job_id = %id, kind = %job.kind, "enqueued job");
                return Ok(id);
            }
            if let Some(key) = &job.unique_key {
                let existing: Option<String> = sqlx::query_scalar(EXISTING)
                    .bind(key)
                    .fetch_optional(&mut *conn)
                    .await?;
                if let Some(existing) = existing {
                    debug!(job_id = %existing, unique_key = %key, "job already enqueued");
                    return Ok(JobId::from_db(existing));
                }
            }
        }
        Err(QueueError::UniqueKeyContention(
            job.unique_key.unwrap_or_default(),
        ))
    }

    /// Leases the most urgent runnable job of the given kinds (`None`: any kind) to
    /// `worker_id` for `lease`. Returns `None` when nothing is due.
    pub async fn claim(
        &self,
        worker_id: &str,
        kinds: Option<&[&str]>,
        lease: Duration,
    ) -> Result<Option<ClaimedJob>> {
        if kinds.is_some_and(|k| k.is_empty()) {
            return Ok(None);
        }
        let sql = self.claim_sql(kinds.map_or(0, |k| k.len()));
        // Each turn either leases a job or dead-letters one exhausted job, so this
        // ends; the bound only guards against a pathological backlog of those.
        for _ in 0..100 {
            let lease_token = uuid::Uuid::new_v4().simple().to_string();
            let mut query = sqlx::query(&sql)
                .bind(worker_id)
                .bind(duration_ms(lease))
                .bind(&lease_token)
                .bind(LEASE_LOST_ON_LAST_ATTEMPT);
            for kind in kinds.unwrap_or_default() {
                query = query.bind(*kind);
            }
            // With a dead-letter hook, a claim that finds an exhausted job records its
            // notice in the same transaction.
            let mut tx = self.pool.begin().await?;
            let Some(row) = query.fetch_optional(&mut *tx).await? else {
                tx.commit().await?;
                return Ok(None);
            };
            let id = JobId::from_db(row.try_get("id")?);
            let kind: String = row.try_get("kind")?;
            let state: String = row.try_get("state")?;
            let attempts: i64 = row.try_get("attempts")?;
            let payload: String = row.try_get("payload")?;
            if state == JobState::Dead.as_str() {
                if let Some(hook) = &self.on_dead {
                    let payload = serde_json::from_str(&payload)?;
                    let dead = DeadJob {
                        id: &id,
                        kind: &kind,
                        payload: &payload,
                        attempts,
                        error: LEASE_LOST_ON_LAST_ATTEMPT,
                    };
                    hook.dead_lettered(&mut tx, &dead).await?;
                }
                tx.commit().await?;
                warn!(job_id = %id, %kind, attempts, "lease expired on the last attempt; job is dead");
                continue;
            }
            tx.commit().await?;
            info!(job_id = %id, %kind, attempts, worker_id, "claimed job");
            return Ok(Some(ClaimedJob {
                id,
                kind,
                payload: serde_json::from_str(&payload)?,
                priority: row.try_get("priority")?,
                attempts,
                max_attempts: row.try_get("max_attempts")?,
                worker_id: worker_id.to_owned(),
                lease_token,
            }));
        }
        Ok(None)
    }

    fn claim_sql(&self, kind_count: usize) -> String {
        let kinds = if kind_count == 0 {
            String::new()
        } else {
            let params: Vec<String> = (0..kind_count).map(|i| format!("${}", i + 5)).collect();
            format!(" AND kind IN ({})", params.join(", "))
        };
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        self.sql(CLAIM)
            .replace(
                "{exhausted}",
                "(state = 'running' AND attempts >= max_attempts)",
            )
            .replace("{kinds}", &kinds)
            .replace("{lock}", lock)
    }

    /// Extends the lease by `lease` from now. `false` means the lease is lost: the job
    /// was reclaimed or finished elsewhere and this worker's result must be discarded.
    pub async fn heartbeat(&self, job: &ClaimedJob, lease: Duration) -> Result<bool> {
        let sql = format!(
            "UPDATE jobs SET lease_until = {{now}} + $3, updated_at = {{now}} WHERE {FENCE}"
        );
        let done = sqlx::query(&self.sql(&sql))
            .bind(job.id.as_str())
            .bind(&job.lease_token)
            .bind(duration_ms(lease))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records how far the job is, in percent (clamped to 0–100).
    pub async fn set_progress(&self, job: &ClaimedJob, percent: i64) -> Result<()> {
        let sql = format!("UPDATE jobs SET progress = $3, updated_at = {{now}} WHERE {FENCE}");
        self.fenced(job, &self.sql(&sql), |q| q.bind(percent.clamp(0, 100)))
            .await
    }

    /// Marks the job succeeded.
    pub async fn complete(&self, job: &ClaimedJob) -> Result<()> {
        let sql = format!(
            "UPDATE jobs SET state = 'succeeded', progress = 100, lease_until = NULL, \
             lease_token = NULL, finished_at = {{now}}, updated_at = {{now}} WHERE {FENCE}"
        );
        self.fenced(job, &self.sql(&sql), |q| q).await?;
        info!(job_id = %job.id, kind = %job.kind, attempts = job.attempts, "job succeeded");
        Ok(())
    }

    /// Records a failure: a retryable one with attempts left is queued again after a
    /// backoff; anything else becomes a dead letter keeping `error` as `last_error`.
    pub async fn fail(
        &self,
        job: &ClaimedJob,
        error: &str,
        retryable: bool,
    ) -> Result<FailOutcome> {
        if retryable && job.attempts < job.max_attempts {
            let delay = self.backoff.delay(job.attempts);
            let sql = format!(
                "UPDATE jobs SET state = 'queued', last_error = $3, run_at = {{now}} + $4, \
                 locked_by = NULL, lease_until = NULL, lease_token = NULL, \
                 updated_at = {{now}} WHERE {FENCE}"
            );
            self.fenced(job, &self.sql(&sql), |q| {
                q.bind(error).bind(duration_ms(delay))
            })
            .await?;
            warn!(job_id = %job.id, kind = %job.kind, attempts = job.attempts, ?delay, error, "job failed; will retry");
            Ok(FailOutcome::Retrying { delay })
        } else {
            let sql = format!(
                "UPDATE jobs SET state = 'dead', last_error = $3, lease_until = NULL, \
                 lease_token = NULL, finished_at = {{now}}, updated_at = {{now}} WHERE {FENCE}"
            );
            let sql = self.sql(&sql);
            let mut tx = self.pool.begin().await?;
            let done = sqlx::query(&sql)
                .bind(job.id.as_str())
                .bind(job.lease_token.as_str())
                .bind(error)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() != 1 {
                return Err(QueueError::LeaseLost(job.id.clone()));
            }
            if let Some(hook) = &self.on_dead {
                let dead = DeadJob {
                    id: &job.id,
                    kind: &job.kind,
                    payload: &job.payload,
                    attempts: job.attempts,
                    error,
                };
                hook.dead_lettered(&mut tx, &dead).await?;
            }
            tx.commit().await?;
            warn!(job_id = %job.id, kind = %job.kind, attempts = job.attempts, retryable, error, "job is dead");
            Ok(FailOutcome::Dead)
        }
    }

    /// Hands the job back at once without counting the attempt (graceful shutdown).
    pub async fn release(&self, job: &ClaimedJob) -> Result<()> {
        let sql = format!(
            "UPDATE jobs SET state = 'queued', attempts = attempts - 1, locked_by = NULL, \
             lease_until = NULL, lease_token = NULL, updated_at = {{now}} WHERE {FENCE}"
        );
        self.fenced(job, &self.sql(&sql), |q| q).await?;
        info!(job_id = %job.id, kind = %job.kind, "released job");
        Ok(())
    }

    /// Runs a worker write guarded by the claim's fence; no row means the lease is lost.
    async fn fenced<'q>(
        &self,
        job: &'q ClaimedJob,
        sql: &'q str,
        bind_rest: impl FnOnce(AnyQuery<'q>) -> AnyQuery<'q>,
    ) -> Result<()> {
        let query = sqlx::query(sql)
            .bind(job.id.as_str())
            .bind(job.lease_token.as_str());
        let done = bind_rest(query).execute(&self.pool).await?;
        if done.rows_affected() == 1 {
            Ok(())
        } else {
            Err(QueueError::LeaseLost(job.id.clone()))
        }
    }

    /// Cancels a queued or running job. A running job loses its lease at once: its
    /// worker's next heartbeat or progress report fails, which cancels the handler's
    /// token (within `heartbeat_every`). `false` if the job has already finished.
    pub async fn cancel(&self, id: &JobId) -> Result<bool> {
        let sql = self.sql(
            "UPDATE jobs SET state = 'cancelled', lease_until = NULL, lease_token = NULL, \
             finished_at = {now}, updated_at = {now} \
             WHERE id = $1 AND state IN ('queued', 'running')",
        );
        let done = sqlx::query(&sql)
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Queues a dead job again with a fresh set of attempts. `false` if it is not dead.
    pub async fn retry_dead(&self, id: &JobId) -> Result<bool> {
        let sql = self.sql(
            "UPDATE jobs SET state = 'queued', attempts = 0, run_at = {now}, finished_at = NULL, \
             locked_by = NULL, lease_until = NULL, lease_token = NULL, updated_at = {now} \
             WHERE id = $1 AND state = 'dead'",
        );
        let done = match sqlx::query(&sql)
            .bind(id.as_str())
            .execute(&self.pool)
            .await
        {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(QueueError::UniqueKeyTaken(id.clone()))
            }
            other => other?,
        };
        let requeued = done.rows_affected() == 1;
        if requeued {
            self.notify();
        }
        Ok(requeued)
    }
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

fn duration_ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

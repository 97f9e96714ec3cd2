//! Durable job queue and worker runtime over sqlx, on SQLite and PostgreSQL alike.
//!
//! Jobs are rows of the `jobs` table in the metadata database (see
//! `migrations/*/0001_init.sql`). A worker *claims* a job by taking a lease on it
//! (`locked_by`, `lease_until`, and a fresh `lease_token` that fences every later write),
//! keeps the lease alive with heartbeats, and finishes it with `complete` or `fail`.
//! A worker that crashes simply stops heartbeating: its lease expires and another worker
//! claims the job again. Failed jobs are retried with exponential backoff and full jitter
//! until `max_attempts`, then kept as `dead` letters that can be listed and retried.
//!
//! On PostgreSQL, claiming uses `FOR UPDATE SKIP LOCKED` so many workers never queue
//! behind each other; on SQLite a single `UPDATE … WHERE id = (SELECT …) RETURNING` is
//! enough because SQLite serialises writers. All timestamps (`run_at`, leases) come from
//! the database clock, so nodes with skewed clocks still agree on who owns a lease.
//!
//! # Why not apalis
//!
//! We evaluated apalis. Its SQL storages are separate per backend, and none of them can
//! enqueue inside a transaction the caller already holds on one code path for both
//! SQLite and PostgreSQL. Framehouse's central rule is that a media row, its jobs and its
//! events commit together or not at all, so enqueueing into the caller's transaction
//! ([`Queue::enqueue_in`]) through `sqlx::AnyConnection` is the one feature we cannot do
//! without. The rest (leases, heartbeats, retries, dead letters, periodic slots) is small
//! enough to own in one focused crate.
//!
//! # Shape
//!
//! - [`Queue`]: enqueue, claim, heartbeat, complete/fail/release, and reads for the API.
//! - [`run_workers`]: `concurrency` loops that claim jobs of the registered kinds and run
//!   their [`JobHandler`], with heartbeats and graceful shutdown.
//! - [`run_scheduler`]: enqueues [`Periodic`] jobs once per time slot, safe on many nodes.
//! - [`Queue::listen_postgres`]: `LISTEN`s for the `NOTIFY` the jobs table's triggers send,
//!   so idle workers on every node wake as soon as work is committed anywhere.

mod job;
mod listen;
mod read;
mod scheduler;
mod store;
mod worker;

pub use job::{
    Backoff, ClaimedJob, FailOutcome, JobId, JobRecord, JobState, NewJob, DEFAULT_MAX_ATTEMPTS,
    PRIORITY_BATCH, PRIORITY_INTERACTIVE,
};
pub use listen::{listen_channel, CHANNEL};
pub use scheduler::{enqueue_slot, run_scheduler, Periodic};
pub use store::{DeadJob, DeadLetterHook, Queue};
pub use worker::{run_workers, JobContext, JobError, JobHandler, WorkerConfig};

/// Everything that can go wrong in the queue.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("job payload is not valid JSON: {0}")]
    Payload(#[from] serde_json::Error),
    /// The worker's lease was lost (expired and reclaimed, released, or the job was
    /// finished elsewhere): its result must be discarded.
    #[error("job {0} is no longer leased to this worker")]
    LeaseLost(JobId),
    /// Requeueing would create a second active job with the same unique key.
    #[error("another active job already has the unique key of job {0}")]
    UniqueKeyTaken(JobId),
    /// The job kept flipping between conflicting and finished while enqueueing.
    #[error("could not enqueue job with unique key {0:?}: the conflicting job kept changing")]
    UniqueKeyContention(String),
    #[error("invalid job id {0:?}")]
    InvalidJobId(String),
    #[error("unknown job state {0:?} in the database")]
    UnknownState(String),
}

pub type Result<T, E = QueueError> = std::result::Result<T, E>;

/// The SQL dialect behind the `AnyPool`: only claiming and the clock differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend a database URL points at (`sqlite:` or `postgres[ql]:`).
    pub fn from_url(url: &str) -> Option<Backend> {
        let scheme = url.split(':').next()?.to_ascii_lowercase();
        match scheme.as_str() {
            "sqlite" => Some(Backend::Sqlite),
            "postgres" | "postgresql" => Some(Backend::Postgres),
            _ => None,
        }
    }

    /// The backend of an existing pool, read from the URL it was opened with.
    pub fn of_pool(pool: &sqlx::AnyPool) -> Option<Backend> {
        Backend::from_url(pool.connect_options().database_url.as_str())
    }

    /// SQL for "now" as epoch milliseconds, read from the database clock.
    ///
    /// PostgreSQL's `statement_timestamp()` advances per statement even inside a long
    /// transaction (unlike `now()`); SQLite's `'now'` is fixed for one statement.
    pub fn now_sql(self) -> &'static str {
        match self {
            Backend::Sqlite => "CAST((julianday('now') - 2440587.5) * 86400000.0 AS BIGINT)",
            Backend::Postgres => "CAST(EXTRACT(EPOCH FROM statement_timestamp()) * 1000 AS BIGINT)",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Backend;

    #[test]
    fn backend_is_read_from_the_url_scheme() {
        assert_eq!(
            Backend::from_url("sqlite://x.db?mode=rwc"),
            Some(Backend::Sqlite)
        );
        assert_eq!(Backend::from_url("sqlite::memory:"), Some(Backend::Sqlite));
        assert_eq!(
            Backend::from_url("postgres://u@h/db"),
            Some(Backend::Postgres)
        );
        assert_eq!(
            Backend::from_url("PostgreSQL://u@h/db"),
            Some(Backend::Postgres)
        );
        assert_eq!(Backend::from_url("mysql://u@h/db"), None);
    }
}

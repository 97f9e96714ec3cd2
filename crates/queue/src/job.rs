//! The job types: what callers enqueue, what workers claim, and what the API reads.

use std::fmt;
use std::time::Duration;

use rand::Rng;
use serde::Serialize;

use crate::QueueError;

/// Priority for work a person is waiting on (thumbnails of a fresh upload).
pub const PRIORITY_INTERACTIVE: i64 = 100;
/// Priority for background work (re-encodes, GC, roll-ups).
pub const PRIORITY_BATCH: i64 = 0;
/// Attempts before a job that keeps failing becomes a dead letter.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;

/// A job id: a UUIDv7 string, so ids sort by creation time and double as list cursors.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct JobId(String);

impl JobId {
    pub(crate) fn generate() -> JobId {
        JobId(uuid::Uuid::now_v7().to_string())
    }

    /// Parses a job id from text (e.g. a URL path segment).
    pub fn parse(text: &str) -> Result<JobId, QueueError> {
        uuid::Uuid::parse_str(text)
            .map(|id| JobId(id.hyphenated().to_string()))
            .map_err(|_| QueueError::InvalidJobId(text.to_owned()))
    }

    /// Wraps an id read back from the database, where it is known to be well formed.
    pub(crate) fn from_db(text: String) -> JobId {
        JobId(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for `run_at`, then for a worker.
    Queued,
    /// Leased by a worker until `lease_until`.
    Running,
    Succeeded,
    /// Failed permanently or ran out of attempts; kept for inspection and `retry_dead`.
    Dead,
    Cancelled,
}

impl JobState {
    pub const ALL: [JobState; 5] = [
        JobState::Queued,
        JobState::Running,
        JobState::Succeeded,
        JobState::Dead,
        JobState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Dead => "dead",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Parses the stored (and API) spelling of a state.
    pub fn parse(text: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A job to enqueue. Build with [`NewJob::new`] and the chained setters.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    /// Which handler runs it, e.g. `"media.process"`.
    pub kind: String,
    pub payload: serde_json::Value,
    /// Higher runs first; see [`PRIORITY_INTERACTIVE`] and [`PRIORITY_BATCH`].
    pub priority: i64,
    /// While a queued or running job has this key, enqueueing another one returns the
    /// existing job's id instead. Keys starting with `periodic:` are reserved for the
    /// scheduler and stay unique forever, finished or not.
    pub unique_key: Option<String>,
    /// Earliest start, epoch milliseconds; `None` means now (database clock).
    pub run_at: Option<i64>,
    pub max_attempts: u32,
}

impl NewJob {
    pub fn new(kind: impl Into<String>, payload: serde_json::Value) -> NewJob {
        NewJob {
            kind: kind.into(),
            payload,
            priority: PRIORITY_BATCH,
            unique_key: None,
            run_at: None,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
        }
    }

    pub fn priority(mut self, priority: i64) -> NewJob {
        self.priority = priority;
        self
    }

    pub fn unique_key(mut self, key: impl Into<String>) -> NewJob {
        self.unique_key = Some(key.into());
        self
    }

    pub fn run_at(mut self, epoch_ms: i64) -> NewJob {
        self.run_at = Some(epoch_ms);
        self
    }

    /// At least one attempt always runs.
    pub fn max_attempts(mut self, max_attempts: u32) -> NewJob {
        self.max_attempts = max_attempts.max(1);
        self
    }
}

/// A job leased to one worker. Its `lease_token` fences every write the worker makes:
/// once the lease is lost, `heartbeat` says so and `complete`/`fail` are refused.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedJob {
    pub id: JobId,
    pub kind: String,
    pub payload: serde_json::Value,
    pub priority: i64,
    /// This run's number, starting at 1.
    pub attempts: i64,
    pub max_attempts: i64,
    pub worker_id: String,
    pub(crate) lease_token: String,
}

/// Every column of a job, as the API returns it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobRecord {
    pub id: JobId,
    pub kind: String,
    pub payload: serde_json::Value,
    pub state: JobState,
    pub priority: i64,
    pub attempts: i64,
    pub max_attempts: i64,
    /// Percent done, as last reported by the handler.
    pub progress: Option<i64>,
    pub last_error: Option<String>,
    pub unique_key: Option<String>,
    pub locked_by: Option<String>,
    pub lease_until: Option<i64>,
    pub run_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
}

/// What `fail` did with the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOutcome {
    /// Queued again; runs no earlier than `delay` from now.
    Retrying { delay: Duration },
    /// Dead-lettered: permanent error or out of attempts.
    Dead,
}

/// Retry delays: `base × 2^(attempt-1)`, capped, with full jitter (a uniform draw in
/// `[0, that]`) so a burst of failures does not retry in lockstep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(600),
        }
    }
}

impl Backoff {
    /// The ceiling of the jittered delay after the given (1-based) failed attempt.
    pub fn ceiling(&self, attempt: i64) -> Duration {
        let doublings = attempt.saturating_sub(1).clamp(0, 30) as u32;
        self.base.saturating_mul(1 << doublings).min(self.cap)
    }

    /// A delay drawn uniformly from `[0, ceiling(attempt)]`.
    pub fn delay(&self, attempt: i64) -> Duration {
        let ceiling = self.ceiling(attempt).as_millis() as u64;
        Duration::from_millis(rand::thread_rng().gen_range(0..=ceiling))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_per_attempt_and_stops_at_the_cap() {
        let b = Backoff {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(600),
        };
        assert_eq!(b.ceiling(1), Duration::from_secs(1));
        assert_eq!(b.ceiling(2), Duration::from_secs(2));
        assert_eq!(b.ceiling(4), Duration::from_secs(8));
        assert_eq!(b.ceiling(11), Duration::from_secs(600));
        assert_eq!(b.ceiling(1000), Duration::from_secs(600));
        for attempt in 1..20 {
            assert!(b.delay(attempt) <= b.ceiling(attempt));
        }
    }

    #[test]
    fn job_state_round_trips_through_its_stored_spelling() {
        for state in JobState::ALL {
            assert_eq!(JobState::parse(state.as_str()), Some(state));
        }
        assert_eq!(JobState::parse("paused"), None);
    }

    #[test]
    fn job_id_parse_accepts_uuids_only() {
        let id = JobId::generate();
        assert_eq!(JobId::parse(id.as_str()).ok(), Some(id));
        assert!(JobId::parse("../etc/passwd").is_err());
    }
}

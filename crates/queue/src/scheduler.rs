//! Periodic jobs for the scheduler role: each periodic job is enqueued once per time
//! slot (`now / every`), however many scheduler nodes run.
//!
//! No leader election is needed: every node enqueues every slot it sees under the key
//! `periodic:{name}:{slot}`, and the `jobs_unique_periodic` index keeps one row per key
//! in any state, so a slot that already ran is not enqueued again by a slower node.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::task::JoinHandle;
use tokio::time::sleep;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error};

use crate::job::{JobId, NewJob};
use crate::store::Queue;
use crate::Result;

/// Idle wake-up bound, so a clock jump cannot leave the scheduler asleep for long.
const MAX_SLEEP_MS: i64 = 60_000;
/// Retry delay after a failed enqueue.
const RETRY_MS: i64 = 1_000;

/// A job enqueued every `every`, e.g. garbage collection once an hour.
#[derive(Debug, Clone, PartialEq)]
pub struct Periodic {
    /// Stable across deployments: it is part of the dedup key.
    pub name: String,
    pub every: Duration,
    /// The job to enqueue; its `unique_key` and `run_at` are set per slot.
    pub job: NewJob,
}

impl Periodic {
    pub fn new(name: impl Into<String>, every: Duration, job: NewJob) -> Periodic {
        Periodic {
            name: name.into(),
            every,
            job,
        }
    }

    fn every_ms(&self) -> i64 {
        i64::try_from(self.every.as_millis())
            .unwrap_or(i64::MAX)
            .max(1)
    }

    fn slot(&self, now_ms: i64) -> i64 {
        now_ms.div_euclid(self.every_ms())
    }
}

/// Enqueues the periodic job of the slot containing `now_ms` unless that slot already
/// has its job; returns the slot's job id either way.
pub async fn enqueue_slot(queue: &Queue, periodic: &Periodic, now_ms: i64) -> Result<JobId> {
    let slot = periodic.slot(now_ms);
    let mut job = periodic.job.clone();
    job.unique_key = Some(format!("periodic:{}:{slot}", periodic.name));
    // The slot's start, identical on every node, and never in the future.
    job.run_at = Some(slot.saturating_mul(periodic.every_ms()));
    queue.enqueue(job).await
}

/// Starts the scheduler loop; it ends when `shutdown` is cancelled.
pub fn run_scheduler(
    queue: Queue,
    periodics: Vec<Periodic>,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        // The last slot enqueued per periodic job, so each slot costs one INSERT per node.
        let mut done: Vec<Option<i64>> = vec![None; periodics.len()];
        loop {
            let now = now_ms();
            let mut next_wake = now.saturating_add(MAX_SLEEP_MS);
            for (periodic, done) in periodics.iter().zip(done.iter_mut()) {
                let slot = periodic.slot(now);
                if *done != Some(slot) {
                    match enqueue_slot(&queue, periodic, now).await {
                        Ok(id) => {
                            debug!(name = %periodic.name, slot, job_id = %id, "periodic job enqueued");
                            *done = Some(slot);
                        }
                        Err(e) => {
                            error!(name = %periodic.name, slot, error = %e, "enqueueing periodic job failed");
                            next_wake = next_wake.min(now.saturating_add(RETRY_MS));
                        }
                    }
                }
                let slot_end = (slot + 1).saturating_mul(periodic.every_ms());
                next_wake = next_wake.min(slot_end);
            }
            let wait = (next_wake - now_ms()).clamp(1, MAX_SLEEP_MS);
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = sleep(Duration::from_millis(wait as u64)) => {}
            }
        }
    })
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_whole_periods_since_the_epoch() {
        let p = Periodic::new(
            "gc",
            Duration::from_secs(60),
            NewJob::new("gc", serde_json::json!({})),
        );
        assert_eq!(p.slot(0), 0);
        assert_eq!(p.slot(59_999), 0);
        assert_eq!(p.slot(60_000), 1);
        let zero = Periodic::new("z", Duration::ZERO, NewJob::new("z", serde_json::json!({})));
        assert_eq!(zero.slot(5), 5);
    }
}

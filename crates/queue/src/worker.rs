//! The worker runtime: `concurrency` loops that claim jobs, run their handlers under a
//! heartbeat, and record the outcome; drained gracefully on shutdown.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::futures::Notified;
use tokio::task::{JoinError, JoinHandle};
use tokio::time::{sleep, Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info_span, warn, Instrument};

use crate::job::ClaimedJob;
use crate::store::Queue;
use crate::QueueError;

/// Runs jobs of one kind. Handlers must be idempotent: a job whose worker crashed or
/// lost its lease runs again.
#[async_trait]
pub trait JobHandler: Send + Sync + 'static {
    async fn run(&self, job: &ClaimedJob, ctx: &JobContext) -> Result<(), JobError>;
}

/// How a handler failed, which decides between a retry and the dead-letter state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// Might work next time (IO hiccup, timeout): retried with backoff.
    #[error("{0}")]
    Retryable(String),
    /// Will never work (corrupt input): dead-lettered at once.
    #[error("{0}")]
    Permanent(String),
}

impl JobError {
    pub fn retryable(error: impl fmt::Display) -> JobError {
        JobError::Retryable(error.to_string())
    }

    pub fn permanent(error: impl fmt::Display) -> JobError {
        JobError::Permanent(error.to_string())
    }
}

/// What a running handler may use besides its job.
#[derive(Clone)]
pub struct JobContext {
    queue: Queue,
    job: ClaimedJob,
    cancel: CancellationToken,
}

impl JobContext {
    /// Reports progress in percent. Fails with `LeaseLost` once the job is no longer
    /// this worker's, a hint to stop early.
    pub async fn set_progress(&self, percent: i64) -> Result<(), QueueError> {
        self.queue.set_progress(&self.job, percent).await
    }

    /// Cancelled when the process shuts down or the lease is lost: long handlers should
    /// watch it and return early (a `Retryable` error then releases the job uncounted).
    pub fn cancellation_token(&self) -> &CancellationToken {
        &self.cancel
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// The queue, to enqueue follow-up jobs.
    pub fn queue(&self) -> &Queue {
        &self.queue
    }
}

/// Tuning of one process's worker pool.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Recorded as `locked_by`; unique per process helps when reading the jobs table.
    pub worker_id: String,
    /// Jobs run at once.
    pub concurrency: usize,
    /// How long a claim lasts without a heartbeat; a crashed worker's jobs wait this long.
    pub lease: Duration,
    /// Well under `lease`, so a slow heartbeat or two do not lose the job.
    pub heartbeat_every: Duration,
    /// Idle wait between claims when no local enqueue wakes the workers.
    pub poll_interval: Duration,
    /// After shutdown, how long running jobs may take before they are aborted and released.
    pub shutdown_grace: Duration,
}

impl Default for WorkerConfig {
    fn default() -> WorkerConfig {
        WorkerConfig {
            worker_id: format!(
                "worker-{}",
                &uuid::Uuid::new_v4().simple().to_string()[..12]
            ),
            concurrency: 4,
            lease: Duration::from_secs(30),
            heartbeat_every: Duration::from_secs(10),
            poll_interval: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

struct Runtime {
    queue: Queue,
    handlers: HashMap<String, Arc<dyn JobHandler>>,
    kinds: Vec<String>,
    config: WorkerConfig,
    shutdown: CancellationToken,
}

/// Starts the worker pool. Only jobs of the registered kinds are claimed. The returned
/// handle finishes once `shutdown` is cancelled and every running job has completed or,
/// after `shutdown_grace`, been aborted and released for another node.
pub fn run_workers(
    queue: Queue,
    handlers: HashMap<String, Arc<dyn JobHandler>>,
    mut config: WorkerConfig,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    if config.heartbeat_every.is_zero() || config.heartbeat_every >= config.lease {
        // A heartbeat slower than the lease would lose every long job to another node.
        warn!(?config.heartbeat_every, ?config.lease, "heartbeat_every must be well under lease; using lease / 3");
        config.heartbeat_every = (config.lease / 3).max(Duration::from_millis(1));
    }
    let mut kinds: Vec<String> = handlers.keys().cloned().collect();
    kinds.sort();
    let runtime = Arc::new(Runtime {
        queue,
        handlers,
        kinds,
        config,
        shutdown,
    });
    tokio::spawn(async move {
        if runtime.kinds.is_empty() {
            warn!("no job handlers registered; workers not started");
            return;
        }
        let tracker = TaskTracker::new();
        for _ in 0..runtime.config.concurrency.max(1) {
            tracker.spawn(work(runtime.clone()));
        }
        tracker.close();
        tracker.wait().await;
    })
}

/// One worker loop: claim and run jobs until shutdown, idling in `wait_for_work`.
async fn work(rt: Arc<Runtime>) {
    let kinds: Vec<&str> = rt.kinds.iter().map(String::as_str).collect();
    let poll = rt.config.poll_interval;
    let mut error_delay = poll;
    while !rt.shutdown.is_cancelled() {
        // Registered before claiming, so an enqueue landing between an empty claim and
        // the wait below still wakes this loop.
        let mut notified = std::pin::pin!(rt.queue.wake().notified());
        notified.as_mut().enable();
        match rt
            .queue
            .claim(&rt.config.worker_id, Some(&kinds), rt.config.lease)
            .await
        {
            Ok(Some(job)) => {
                error_delay = poll;
                run_job(&rt, job).await;
            }
            Ok(None) => wait_for_work(&rt, notified, poll).await,
            Err(e) => {
                error!(error = %e, "claiming a job failed");
                wait_for_work(&rt, notified, error_delay).await;
                error_delay = (error_delay * 2).min(Duration::from_secs(30));
            }
        }
    }
}

async fn wait_for_work(rt: &Runtime, notified: std::pin::Pin<&mut Notified<'_>>, wait: Duration) {
    tokio::select! {
        () = rt.shutdown.cancelled() => {}
        () = notified => {}
        () = sleep(wait) => {}
    }
}

enum Outcome {
    Finished(Result<Result<(), JobError>, JoinError>),
    LeaseLost,
    Interrupted,
}

async fn run_job(rt: &Runtime, job: ClaimedJob) {
    let span = info_span!("job", job_id = %job.id, kind = %job.kind, attempt = job.attempts);
    let Some(handler) = rt.handlers.get(&job.kind).cloned() else {
        // Unreachable while claims filter by the registered kinds; hand it back anyway.
        release(rt, &job).instrument(span).await;
        return;
    };
    if rt.shutdown.is_cancelled() {
        // Shutdown began while claiming: give the job straight back.
        release(rt, &job).instrument(span).await;
        return;
    }
    let cancel = rt.shutdown.child_token();
    let ctx = JobContext {
        queue: rt.queue.clone(),
        job: job.clone(),
        cancel: cancel.clone(),
    };
    // A task of its own, so a panic is caught by its JoinHandle and it can be aborted.
    let handler_job = job.clone();
    let task =
        tokio::spawn(async move { handler.run(&handler_job, &ctx).await }.instrument(span.clone()));
    let outcome = supervise(rt, &job, task, &cancel)
        .instrument(span.clone())
        .await;
    record(rt, &job, outcome, &cancel).instrument(span).await;
}

/// Keeps the lease alive while the handler runs; aborts it when the lease is lost or
/// the shutdown grace period is over.
async fn supervise(
    rt: &Runtime,
    job: &ClaimedJob,
    mut task: JoinHandle<Result<(), JobError>>,
    cancel: &CancellationToken,
) -> Outcome {
    let config = &rt.config;
    let mut beat = tokio::time::interval_at(
        Instant::now() + config.heartbeat_every,
        config.heartbeat_every,
    );
    beat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut grace = std::pin::pin!(async {
        rt.shutdown.cancelled().await;
        sleep(config.shutdown_grace).await;
    });
    let stopped = loop {
        tokio::select! {
            result = &mut task => return Outcome::Finished(result),
            _ = beat.tick() => match rt.queue.heartbeat(job, config.lease).await {
                Ok(true) => {}
                Ok(false) => {
                    warn!("lease lost; abandoning the job and discarding its result");
                    break Outcome::LeaseLost;
                }
                // Transient: the lease outlives a few missed beats.
                Err(e) => warn!(error = %e, "heartbeat failed"),
            },
            () = &mut grace => {
                warn!("shutdown grace period over; aborting the job");
                break Outcome::Interrupted;
            }
        }
    };
    cancel.cancel();
    task.abort();
    // Wait until the handler is really gone before anyone else may run the job.
    let _ = task.await;
    stopped
}

async fn record(rt: &Runtime, job: &ClaimedJob, outcome: Outcome, cancel: &CancellationToken) {
    let queue = &rt.queue;
    let result = match outcome {
        Outcome::Finished(Ok(Ok(()))) => queue.complete(job).await,
        // A handler that gave up because it was told to stop did not really fail.
        Outcome::Finished(Ok(Err(JobError::Retryable(_)))) if cancel.is_cancelled() => {
            queue.release(job).await
        }
        Outcome::Finished(Ok(Err(JobError::Retryable(e)))) => {
            queue.fail(job, &e, true).await.map(drop)
        }
        Outcome::Finished(Ok(Err(JobError::Permanent(e)))) => {
            queue.fail(job, &e, false).await.map(drop)
        }
        Outcome::Finished(Err(join_error)) if join_error.is_panic() => {
            let message = panic_message(join_error.into_panic());
            error!(panic = %message, "job handler panicked");
            queue
                .fail(job, &format!("handler panicked: {message}"), true)
                .await
                .map(drop)
        }
        Outcome::Finished(Err(_)) | Outcome::Interrupted => queue.release(job).await,
        Outcome::LeaseLost => Ok(()),
    };
    match result {
        Ok(()) => {}
        Err(QueueError::LeaseLost(_)) => {
            warn!("lease lost before the outcome was recorded; result discarded")
        }
        Err(e) => error!(error = %e, "recording the job outcome failed; its lease will expire"),
    }
}

async fn release(rt: &Runtime, job: &ClaimedJob) {
    if let Err(e) = rt.queue.release(job).await {
        error!(error = %e, "releasing the job failed; its lease will expire");
    }
}

fn panic_message(panic: Box<dyn Any + Send>) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

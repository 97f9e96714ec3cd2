//! The background side of a process, by role: job workers, the event relay and the
//! domains' worker loops (`worker`), periodic jobs (`scheduler`), the live event feed
//! and the domains' api loops (`api`); the Redis health watch in every process. Which job kinds, subscribers and periodic jobs exist comes from the domains.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use queue::{ClaimedJob, JobContext, JobError, JobHandler, NewJob, Periodic, WorkerConfig};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::kernel::db::Backend;
use crate::kernel::outbox::relay;
use crate::settings::Role;
use crate::{AppState, DOMAINS};

/// Records `job_duration_seconds{kind,outcome}` around a handler.
struct Timed {
    kind: &'static str,
    inner: Arc<dyn JobHandler>,
}

#[async_trait::async_trait]
impl JobHandler for Timed {
    async fn run(&self, job: &ClaimedJob, ctx: &JobContext) -> Result<(), JobError> {
        let start = Instant::now();
        let result = self.inner.run(job, ctx).await;
        let outcome = match &result {
            Ok(()) => "succeeded",
            Err(JobError::Retryable(_)) => "retryable",
            Err(JobError::Permanent(_)) => "permanent",
        };
        metrics::histogram!("job_duration_seconds", "kind" => self.kind, "outcome" => outcome)
            .record(start.elapsed().as_secs_f64());
        result
    }
}

/// The background tasks of this process.
pub struct Background {
    tasks: JoinSet<()>,
}

impl Background {
    /// Waits for every task to end (they end after the shutdown token is cancelled).
    pub async fn wait(mut self) {
        while self.tasks.join_next().await.is_some() {}
    }
}

pub fn start(state: &AppState, roles: &[Role], shutdown: CancellationToken) -> Background {
    let mut tasks = JoinSet::new();
    tasks.spawn(state.redis.clone().watch(shutdown.clone()));
    if state.db.backend == Backend::Postgres {
        state
            .outbox
            .wake
            .listen_postgres(state.settings.database_url(), shutdown.clone());
    }
    if roles.contains(&Role::Api) {
        let listeners = DOMAINS.iter().flat_map(|d| d.listeners(state)).collect();
        state.outbox.feed.start(
            state.db.clone(),
            &state.settings.events,
            &state.outbox.wake,
            listeners,
            shutdown.clone(),
        );
        for run in DOMAINS
            .iter()
            .flat_map(|d| d.api_loops(state, shutdown.clone()))
        {
            tasks.spawn(run);
        }
    }
    if roles.contains(&Role::Worker) {
        if state.db.backend == Backend::Postgres {
            // Jobs committed on any node wake this node's idle workers at once.
            let listener = state
                .queue
                .listen_postgres(state.settings.database_url(), shutdown.clone());
            tasks.spawn(async move {
                let _ = listener.await;
            });
        }
        let handle = job_workers(state, shutdown.clone());
        tasks.spawn(async move {
            let _ = handle.await;
        });
        let subscribers = DOMAINS.iter().flat_map(|d| d.subscribers(state)).collect();
        tasks.spawn(relay::run(
            state.db.clone(),
            subscribers,
            state.settings.events.clone(),
            state.outbox.wake.clone(),
            state.node.id.clone(),
            shutdown.clone(),
        ));
        for run in DOMAINS
            .iter()
            .flat_map(|d| d.worker_loops(state, shutdown.clone()))
        {
            tasks.spawn(run);
        }
    }
    if roles.contains(&Role::Scheduler) {
        let handle = queue::run_scheduler(state.queue.clone(), periodic(state), shutdown);
        tasks.spawn(async move {
            let _ = handle.await;
        });
    }
    Background { tasks }
}

fn job_workers(state: &AppState, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
    let s = &state.settings;
    let mut handlers: HashMap<String, Arc<dyn JobHandler>> = DOMAINS
        .iter()
        .flat_map(|d| d.jobs(state))
        .map(|(kind, inner)| -> (String, Arc<dyn JobHandler>) {
            (kind.to_string(), Arc::new(Timed { kind, inner }))
        })
        .collect();
    handlers.insert(
        PRUNE_EVENTS.into(),
        Arc::new(Timed {
            kind: PRUNE_EVENTS,
            inner: Arc::new(PruneEvents(state.clone())),
        }),
    );
    let lease = Duration::from_secs(s.worker.lease_secs.max(1));
    let config = WorkerConfig {
        concurrency: s.worker.concurrency.max(1),
        lease,
        heartbeat_every: lease / 3,
        poll_interval: Duration::from_millis(s.worker.poll_interval_ms.max(10)),
        shutdown_grace: Duration::from_secs(s.shutdown_grace_secs),
        worker_id: state.node.id.clone(),
    };
    queue::run_workers(state.queue.clone(), handlers, config, shutdown)
}

fn periodic(state: &AppState) -> Vec<Periodic> {
    let mut jobs: Vec<Periodic> = DOMAINS
        .iter()
        .flat_map(|d| d.periodic(&state.settings))
        .collect();
    jobs.push(Periodic::new(
        PRUNE_EVENTS,
        Duration::from_secs(3600),
        NewJob::new(PRUNE_EVENTS, serde_json::json!({})).priority(queue::PRIORITY_BATCH),
    ));
    jobs
}

const PRUNE_EVENTS: &str = "prune_events";

/// Removes events past their retention that every subscriber has handled.
struct PruneEvents(AppState);

#[async_trait::async_trait]
impl JobHandler for PruneEvents {
    async fn run(&self, _job: &ClaimedJob, _ctx: &JobContext) -> Result<(), JobError> {
        let state = &self.0;
        let names: Vec<&'static str> = DOMAINS
            .iter()
            .flat_map(|d| d.subscribers(state))
            .map(|s| s.name())
            .collect();
        let retention = Duration::from_secs(state.settings.events.retention_days * 86_400);
        let removed = relay::prune(&state.db, &names, retention)
            .await
            .map_err(JobError::retryable)?;
        if removed > 0 {
            tracing::info!(removed, "pruned events");
        }
        Ok(())
    }
}

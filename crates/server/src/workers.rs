//! Wiring of the worker and scheduler roles: which job kinds this process runs, with
//! duration metrics around every handler, and which periodic jobs it schedules.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use queue::{ClaimedJob, JobContext, JobError, JobHandler, NewJob, Periodic, WorkerConfig};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::media::{
    GcBlobHandler, GcSweepHandler, ProcessImageHandler, GC_BLOB, GC_SWEEP, PROCESS_IMAGE,
};
use crate::AppState;

/// Records `job_duration_seconds{kind,outcome}` around a handler.
struct Timed<H> {
    kind: &'static str,
    inner: H,
}

#[async_trait::async_trait]
impl<H: JobHandler> JobHandler for Timed<H> {
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

fn timed<H: JobHandler>(kind: &'static str, inner: H) -> (String, Arc<dyn JobHandler>) {
    (kind.to_string(), Arc::new(Timed { kind, inner }))
}

const TRANSFORM_GC: &str = "transform_gc";

/// Removes stored transform results not requested for `transform.unused_days`.
struct TransformGcHandler {
    transforms: Arc<crate::transform::TransformEngine>,
}

#[async_trait::async_trait]
impl JobHandler for TransformGcHandler {
    async fn run(&self, _job: &ClaimedJob, _ctx: &JobContext) -> Result<(), JobError> {
        let removed = self
            .transforms
            .remove_unused()
            .await
            .map_err(JobError::retryable)?;
        if removed > 0 {
            tracing::info!(removed, "removed unused transform results");
        }
        Ok(())
    }
}

pub fn start(state: &AppState, shutdown: CancellationToken) -> JoinHandle<()> {
    let s = &state.settings;
    let handlers: HashMap<String, Arc<dyn JobHandler>> = [
        timed(
            PROCESS_IMAGE,
            ProcessImageHandler {
                db: state.db.clone(),
                storage: state.storage.clone(),
                presets: state.presets.clone(),
                transforms: state.transforms.clone(),
            },
        ),
        timed(
            crate::video::PROCESS_VIDEO,
            crate::video::ProcessVideoHandler {
                db: state.db.clone(),
                storage: state.storage.clone(),
                presets: state.presets.clone(),
                video: state.video.clone(),
                settings: s.video.clone(),
            },
        ),
        timed(
            crate::video::EXTRACT_AUDIO,
            crate::video::ExtractAudioHandler {
                db: state.db.clone(),
                storage: state.storage.clone(),
                video: state.video.clone(),
            },
        ),
        timed(
            GC_BLOB,
            GcBlobHandler {
                db: state.db.clone(),
                storage: state.storage.clone(),
            },
        ),
        timed(
            TRANSFORM_GC,
            TransformGcHandler {
                transforms: state.transforms.clone(),
            },
        ),
        timed(
            GC_SWEEP,
            GcSweepHandler {
                db: state.db.clone(),
                storage: state.storage.clone(),
                tmp_max_age: Duration::from_secs(s.gc.tmp_max_age_secs),
                orphan_min_age: Duration::from_secs(s.gc.orphan_min_age_secs),
                audit_retention: Duration::from_secs(s.auth.audit_retention_days * 86_400),
            },
        ),
    ]
    .into_iter()
    .collect();
    let lease = Duration::from_secs(s.worker.lease_secs.max(1));
    let config = WorkerConfig {
        concurrency: s.worker.concurrency.max(1),
        lease,
        heartbeat_every: lease / 3,
        poll_interval: Duration::from_millis(s.worker.poll_interval_ms.max(10)),
        shutdown_grace: Duration::from_secs(s.shutdown_grace_secs),
        ..WorkerConfig::default()
    };
    queue::run_workers(state.queue.clone(), handlers, config, shutdown)
}

pub fn start_scheduler(state: &AppState, shutdown: CancellationToken) -> JoinHandle<()> {
    let every = Duration::from_secs(state.settings.gc.sweep_interval_secs.max(1));
    let periodics = vec![
        Periodic::new(GC_SWEEP, every, crate::media::gc_sweep_job()),
        Periodic::new(
            TRANSFORM_GC,
            every,
            NewJob::new(TRANSFORM_GC, serde_json::json!({})),
        ),
    ];
    queue::run_scheduler(state.queue.clone(), periodics, shutdown)
}

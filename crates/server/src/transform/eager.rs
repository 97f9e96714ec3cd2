//! Presets marked `eager` are rendered as soon as an image is ready, so their first
//! request is a hit: a reaction to `media.ready` queues one `eager_presets` job per blob
//! (in the transaction that moves the reaction's cursor), and the job renders them.

use std::sync::Arc;

use queue::{ClaimedJob, JobContext, JobError, JobHandler, NewJob, PRIORITY_BATCH};
use serde::Deserialize;
use sqlx::AnyConnection;

use super::{source_of, TransformEngine};
use crate::kernel::db::Db;
use crate::kernel::outbox::relay::Subscriber;
use crate::kernel::outbox::EventRecord;
use crate::media::repo;

pub const EAGER_PRESETS: &str = "eager_presets";

#[derive(Deserialize)]
struct Payload {
    media_id: String,
}

/// Queues the eager presets of images that became ready.
pub struct QueueEagerPresets {
    pub queue: queue::Queue,
}

#[async_trait::async_trait]
impl Subscriber for QueueEagerPresets {
    fn name(&self) -> &'static str {
        "transform.eager_presets"
    }

    fn types(&self) -> &'static [&'static str] {
        &["media.ready"]
    }

    async fn handle(
        &self,
        tx: &mut AnyConnection,
        events: &[EventRecord],
    ) -> anyhow::Result<usize> {
        for event in events {
            let Some(item) = repo::item_on(tx, &event.aggregate_id, "").await? else {
                continue; // deleted since
            };
            if item.kind != "image" {
                continue;
            }
            let job = NewJob::new(
                EAGER_PRESETS,
                serde_json::json!({ "media_id": item.id, "blob_id": item.blob_id }),
            )
            .priority(PRIORITY_BATCH)
            .unique_key(format!("eager:{}", item.blob_id));
            self.queue.enqueue_in(tx, job).await?;
        }
        self.queue.notify();
        Ok(events.len())
    }
}

/// Renders every eager preset of an item's blob. A preset that fails only costs its first
/// request the speed: it is logged, not retried.
pub struct EagerPresetsHandler {
    pub db: Db,
    pub engine: Arc<TransformEngine>,
}

#[async_trait::async_trait]
impl JobHandler for EagerPresetsHandler {
    async fn run(&self, job: &ClaimedJob, _ctx: &JobContext) -> Result<(), JobError> {
        let payload: Payload = serde_json::from_value(job.payload.clone())
            .map_err(|e| JobError::Permanent(format!("bad payload: {e}")))?;
        let Some(item) = repo::item(&self.db, &payload.media_id)
            .await
            .map_err(JobError::retryable)?
        else {
            return Ok(());
        };
        let source = source_of(&item).map_err(JobError::permanent)?;
        for (name, preset) in &self.engine.presets {
            for ext in preset.entry.eager_formats() {
                let Some(output) = imaging::transform::TransformFormat::from_extension(ext) else {
                    tracing::warn!(preset = %name, ext, "eager preset names an unknown format");
                    continue;
                };
                if let Err(e) = self
                    .engine
                    .render_preset(&source, &preset.spec, output)
                    .await
                {
                    tracing::warn!(preset = %name, ext, error = ?e, "eager preset failed");
                }
            }
        }
        Ok(())
    }
}

//! The `process_image` job: one decode of the original → every preset in WebP and JPEG,
//! EXIF-oriented and metadata-free, plus a perceptual hash; then the blob is `ready`.

use std::sync::Arc;

use bytes::Bytes;
use queue::{ClaimedJob, JobContext, JobError, JobHandler, NewJob, PRIORITY_INTERACTIVE};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::ingest::original_key;
use super::repo;
use crate::db::{now_ms, Db};
use crate::storage::Storage;

pub const PROCESS_IMAGE: &str = "process_image";

#[derive(Deserialize)]
struct Payload {
    blob_id: String,
}

pub fn process_job(blob_id: &str, max_attempts: u32) -> NewJob {
    NewJob::new(PROCESS_IMAGE, serde_json::json!({ "blob_id": blob_id }))
        .priority(PRIORITY_INTERACTIVE)
        .unique_key(format!("process:{blob_id}"))
        .max_attempts(max_attempts.max(1))
}

pub fn variant_key(blob_id: &str, preset: &str, ext: &str) -> String {
    format!("derivatives/{blob_id}/{preset}.{ext}")
}

pub struct ProcessImageHandler {
    pub db: Db,
    pub storage: Storage,
    pub presets: Arc<Vec<imaging::PresetSpec>>,
    pub transforms: Arc<crate::transform::TransformEngine>,
}

#[async_trait::async_trait]
impl JobHandler for ProcessImageHandler {
    async fn run(&self, job: &ClaimedJob, _ctx: &JobContext) -> Result<(), JobError> {
        let payload: Payload = serde_json::from_value(job.payload.clone())
            .map_err(|e| JobError::Permanent(format!("bad payload: {e}")))?;
        let Some(blob) = repo::blob(&self.db, &payload.blob_id)
            .await
            .map_err(retry)?
        else {
            return Ok(()); // deleted before we got to it
        };
        if blob.status == "ready" {
            return Ok(());
        }
        let last_attempt = job.attempts >= job.max_attempts;
        match self.render(&blob).await {
            Ok(()) => Ok(()),
            Err(JobError::Permanent(reason)) => {
                self.mark_failed(&blob.id, &reason).await?;
                Err(JobError::Permanent(reason))
            }
            Err(JobError::Retryable(reason)) if last_attempt => {
                self.mark_failed(&blob.id, &reason).await?;
                Err(JobError::Retryable(reason))
            }
            Err(other) => Err(other),
        }
    }
}

impl ProcessImageHandler {
    async fn render(&self, blob: &repo::BlobRow) -> Result<(), JobError> {
        let format = imaging::ImageFormat::parse(&blob.format)
            .ok_or_else(|| JobError::Permanent(format!("unknown format {}", blob.format)))?;
        let (path, is_temp) = self
            .storage
            .fetch_to_path(&original_key(&blob.id))
            .await
            .map_err(retry)?;
        let presets = self.presets.clone();
        let decode_path = path.clone();
        let result = tokio::task::spawn_blocking(move || {
            imaging::process_file(&decode_path, format, &presets)
        })
        .await;
        if is_temp {
            tokio::fs::remove_file(&path).await.ok();
        }
        let processed = result
            .map_err(|e| JobError::Retryable(format!("image task panicked: {e}")))?
            .map_err(|e| JobError::Permanent(format!("the image cannot be decoded: {e}")))?;
        let size = (processed.width, processed.height);
        let stored = save_presets(&self.db, &self.storage, &blob.id, processed, true).await?;
        if stored {
            self.make_eager_presets(blob, size).await;
        }
        Ok(())
    }

    /// Transform presets marked `eager` are made now, so their first request is a hit.
    /// A failure here only costs that first request its speed: it is logged, not fatal.
    async fn make_eager_presets(&self, blob: &repo::BlobRow, (width, height): (u32, u32)) {
        let Some(format) = imaging::ImageFormat::parse(&blob.format) else {
            return;
        };
        let source = crate::transform::Source {
            blob_id: blob.id.clone(),
            format,
            frames: blob.frames,
            width,
            height,
            poster_only: false,
        };
        for (name, preset) in &self.transforms.presets {
            for ext in preset.entry.eager_formats() {
                let Some(output) = imaging::transform::TransformFormat::from_extension(ext) else {
                    tracing::warn!(preset = %name, ext, "eager preset names an unknown format");
                    continue;
                };
                if let Err(e) = self
                    .transforms
                    .render_preset(&source, &preset.spec, output)
                    .await
                {
                    tracing::warn!(preset = %name, ext, error = ?e, "eager preset failed");
                }
            }
        }
    }

    async fn mark_failed(&self, blob_id: &str, reason: &str) -> Result<(), JobError> {
        mark_failed(&self.db, blob_id, reason).await
    }
}

/// Records that processing failed for good. A blob that is already `ready` (a video
/// whose first rendition plays) keeps its status; the job itself says what failed.
pub(crate) async fn mark_failed(db: &Db, blob_id: &str, reason: &str) -> Result<(), JobError> {
    sqlx::query(
        "UPDATE blobs SET status = 'failed', error = $1, processed_at = $2
         WHERE id = $3 AND status <> 'ready'",
    )
    .bind(reason)
    .bind(now_ms())
    .bind(blob_id)
    .execute(&db.pool)
    .await
    .map_err(retry)?;
    Ok(())
}

/// Stores the preset renditions and records them with the perceptual hash; with
/// `mark_ready` the blob also becomes `ready` with the decoded size. `false` when the
/// blob was garbage-collected meanwhile (its derivatives are then removed again).
pub(crate) async fn save_presets(
    db: &Db,
    storage: &Storage,
    blob_id: &str,
    processed: imaging::Processed,
    mark_ready: bool,
) -> Result<bool, JobError> {
    let mut rows = Vec::with_capacity(processed.renditions.len());
    for r in processed.renditions {
        let ext = r.format.extension();
        let etag = hex::encode(&Sha256::digest(&r.bytes)[..16]);
        let size = r.bytes.len() as i64;
        storage
            .put_bytes(&variant_key(blob_id, &r.preset, ext), Bytes::from(r.bytes))
            .await
            .map_err(retry)?;
        rows.push((r.preset, ext, r.width as i64, r.height as i64, size, etag));
    }
    let size = (processed.width, processed.height);
    let stored = record(db, blob_id, &rows, size, processed.phash, mark_ready)
        .await
        .map_err(retry)?;
    if !stored {
        // The blob was garbage-collected while we worked: do not leave derivatives.
        storage
            .delete_prefix(&format!("derivatives/{blob_id}"))
            .await
            .map_err(retry)?;
    }
    Ok(stored)
}

async fn record(
    db: &Db,
    blob_id: &str,
    rows: &[(String, &str, i64, i64, i64, String)],
    (width, height): (u32, u32),
    phash: u64,
    mark_ready: bool,
) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin_write().await?;
    // The hash is stored as the i64 with the same bits: both databases lack an unsigned
    // 64-bit type. A video keeps its own size and status; only its poster hash is set.
    let updated = if mark_ready {
        sqlx::query(
            "UPDATE blobs SET status = 'ready', error = NULL, width = $1, height = $2,
             phash = $3, processed_at = $4 WHERE id = $5",
        )
        .bind(i64::from(width))
        .bind(i64::from(height))
        .bind(phash as i64)
        .bind(now_ms())
        .bind(blob_id)
        .execute(&mut *tx)
        .await?
    } else {
        sqlx::query("UPDATE blobs SET phash = $1 WHERE id = $2")
            .bind(phash as i64)
            .bind(blob_id)
            .execute(&mut *tx)
            .await?
    };
    if updated.rows_affected() == 0 {
        return Ok(false);
    }
    sqlx::query("DELETE FROM variants WHERE blob_id = $1")
        .bind(blob_id)
        .execute(&mut *tx)
        .await?;
    for (preset, ext, width, height, size, etag) in rows {
        sqlx::query(
            "INSERT INTO variants (blob_id, preset, format, width, height, size, etag)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(blob_id)
        .bind(preset)
        .bind(*ext)
        .bind(*width)
        .bind(*height)
        .bind(*size)
        .bind(etag)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(true)
}

fn retry(e: impl std::fmt::Display) -> JobError {
    JobError::Retryable(e.to_string())
}

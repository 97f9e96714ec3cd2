//! The `process_image` job: one decode of the original → every preset in WebP and JPEG,
//! EXIF-oriented and metadata-free, plus a perceptual hash; then the blob is `ready` and
//! each of its items announces `media.ready` (or `media.failed`).

use bytes::Bytes;
use queue::{ClaimedJob, JobContext, JobError, JobHandler, NewJob, PRIORITY_INTERACTIVE};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use sqlx::{AnyConnection, Row};

use super::{changes, repo};
use crate::kernel::error::AppResult;
use crate::kernel::keys;
use crate::kernel::time::now_ms;
use crate::AppState;

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

pub struct ProcessImageHandler {
    pub state: AppState,
}

#[async_trait::async_trait]
impl JobHandler for ProcessImageHandler {
    async fn run(&self, job: &ClaimedJob, _ctx: &JobContext) -> Result<(), JobError> {
        let payload: Payload = serde_json::from_value(job.payload.clone())
            .map_err(|e| JobError::Permanent(format!("bad payload: {e}")))?;
        let Some(blob) = repo::blob(&self.state.db, &payload.blob_id)
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
                mark_failed(&self.state, &blob.id, &reason).await?;
                Err(JobError::Permanent(reason))
            }
            Err(JobError::Retryable(reason)) if last_attempt => {
                mark_failed(&self.state, &blob.id, &reason).await?;
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
            .state
            .storage
            .fetch_to_path(&keys::original(&blob.id))
            .await
            .map_err(retry)?;
        let presets = self.state.media.presets.clone();
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
        save_presets(&self.state, &blob.id, processed, true).await?;
        Ok(())
    }
}

/// Records that processing failed for good (see [`fail_blob`]).
pub(crate) async fn mark_failed(
    state: &AppState,
    blob_id: &str,
    reason: &str,
) -> Result<(), JobError> {
    let mut tx = state.db.begin_write().await.map_err(retry)?;
    fail_blob(state, &mut tx, blob_id, reason)
        .await
        .map_err(retry)?;
    tx.commit().await.map_err(retry)
}

/// Marks a blob `failed` with its reason; items of a blob that was still processing
/// announce `media.failed`. A blob that is already `ready` (a video whose first
/// rendition plays) keeps its status; the job itself says what failed.
pub(crate) async fn fail_blob(
    state: &AppState,
    conn: &mut AnyConnection,
    blob_id: &str,
    reason: &str,
) -> AppResult<()> {
    let items = repo::items_of_blob(conn, blob_id, state.db.for_update()).await?;
    let Some(status) = blob_status(conn, blob_id).await? else {
        return Ok(());
    };
    if status == "ready" {
        return Ok(());
    }
    sqlx::query("UPDATE blobs SET status = 'failed', error = $1, processed_at = $2 WHERE id = $3")
        .bind(reason)
        .bind(now_ms())
        .bind(blob_id)
        .execute(&mut *conn)
        .await?;
    if status == "processing" {
        let items = refreshed(conn, items).await?;
        changes::emit(state, conn, "media.failed", items).await?;
    }
    Ok(())
}

/// Marks a blob `ready` (a video once its first rendition is published); its items
/// announce `media.ready`.
pub(crate) async fn mark_ready(state: &AppState, blob_id: &str) -> Result<(), JobError> {
    let result: AppResult<()> = async {
        let mut tx = state.db.begin_write().await?;
        let items = repo::items_of_blob(&mut tx, blob_id, state.db.for_update()).await?;
        let done = sqlx::query(
            "UPDATE blobs SET status = 'ready', error = NULL, processed_at = $1
             WHERE id = $2 AND status <> 'ready'",
        )
        .bind(now_ms())
        .bind(blob_id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 1 {
            let items = refreshed(&mut tx, items).await?;
            changes::emit(state, &mut tx, "media.ready", items).await?;
        }
        tx.commit().await?;
        Ok(())
    }
    .await;
    result.map_err(retry)
}

async fn blob_status(
    conn: &mut AnyConnection,
    blob_id: &str,
) -> Result<Option<String>, sqlx::Error> {
    let lock = match conn.backend_name() {
        "PostgreSQL" => " FOR UPDATE",
        _ => "",
    };
    let row = sqlx::query(&format!("SELECT status FROM blobs WHERE id = $1{lock}"))
        .bind(blob_id)
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|r| r.try_get("status")).transpose()
}

/// The item rows again, after this transaction changed their blob.
async fn refreshed(
    conn: &mut AnyConnection,
    items: Vec<repo::ItemRow>,
) -> Result<Vec<repo::ItemRow>, sqlx::Error> {
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        if let Some(row) = repo::item_on(conn, &item.id, "").await? {
            out.push(row);
        }
    }
    Ok(out)
}

/// Stores the preset renditions and records them with the perceptual hash; with
/// `mark_ready` the blob also becomes `ready` with the decoded size. `false` when the
/// blob was garbage-collected meanwhile (its derivatives are then removed again).
pub(crate) async fn save_presets(
    state: &AppState,
    blob_id: &str,
    processed: imaging::Processed,
    mark_ready: bool,
) -> Result<bool, JobError> {
    let storage = &state.storage;
    let mut rows = Vec::with_capacity(processed.renditions.len());
    for r in processed.renditions {
        let ext = r.format.extension();
        let etag = hex::encode(&Sha256::digest(&r.bytes)[..16]);
        let size = r.bytes.len() as i64;
        storage
            .put_bytes(
                &keys::variant(blob_id, &r.preset, ext),
                Bytes::from(r.bytes),
            )
            .await
            .map_err(retry)?;
        rows.push((r.preset, ext, r.width as i64, r.height as i64, size, etag));
    }
    let size = (processed.width, processed.height);
    let hashes = (processed.phash, &processed.placeholder[..]);
    let stored = record(state, blob_id, &rows, size, hashes, mark_ready)
        .await
        .map_err(retry)?;
    if !stored {
        // The blob was garbage-collected while we worked: do not leave derivatives.
        storage
            .delete_prefix(&keys::derivatives(blob_id))
            .await
            .map_err(retry)?;
    }
    Ok(stored)
}

async fn record(
    state: &AppState,
    blob_id: &str,
    rows: &[(String, &str, i64, i64, i64, String)],
    (width, height): (u32, u32),
    (phash, placeholder): (u64, &[u8]),
    mark_ready: bool,
) -> AppResult<bool> {
    use base64::Engine as _;
    let thumbhash = (!placeholder.is_empty())
        .then(|| base64::engine::general_purpose::STANDARD.encode(placeholder));
    let mut tx = state.db.begin_write().await?;
    let items = if mark_ready {
        repo::items_of_blob(&mut tx, blob_id, state.db.for_update()).await?
    } else {
        Vec::new()
    };
    // The hash is stored as the i64 with the same bits: both databases lack an unsigned
    // 64-bit type. A video keeps its own size and status; only its poster hash is set.
    let updated = if mark_ready {
        sqlx::query(
            "UPDATE blobs SET status = 'ready', error = NULL, width = $1, height = $2,
             phash = $3, processed_at = $4, thumbhash = $6 WHERE id = $5",
        )
        .bind(i64::from(width))
        .bind(i64::from(height))
        .bind(phash as i64)
        .bind(now_ms())
        .bind(blob_id)
        .bind(&thumbhash)
        .execute(&mut *tx)
        .await?
    } else {
        sqlx::query("UPDATE blobs SET phash = $1, thumbhash = $3 WHERE id = $2")
            .bind(phash as i64)
            .bind(blob_id)
            .bind(&thumbhash)
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
    if mark_ready {
        let items = refreshed(&mut tx, items).await?;
        changes::emit(state, &mut tx, "media.ready", items).await?;
    }
    tx.commit().await?;
    Ok(true)
}

fn retry(e: impl std::fmt::Display) -> JobError {
    JobError::Retryable(e.to_string())
}

//! Garbage collection: a blob and its derivatives are removed once no item references
//! them (`gc_blob`, queued on delete), and a periodic sweep (`gc_sweep`, scheduler)
//! catches orphans left by crashes and removes stale temp files.

use std::time::Duration;

use queue::{ClaimedJob, JobContext, JobError, JobHandler, NewJob, PRIORITY_BATCH};
use serde::Deserialize;

use super::repo;
use crate::kernel::db::Db;
use crate::kernel::keys;
use crate::kernel::storage::Storage;

pub const GC_BLOB: &str = "gc_blob";
pub const GC_SWEEP: &str = "gc_sweep";

#[derive(Deserialize)]
struct Payload {
    blob_id: String,
}

pub fn gc_blob_job(blob_id: &str) -> NewJob {
    NewJob::new(GC_BLOB, serde_json::json!({ "blob_id": blob_id }))
        .priority(PRIORITY_BATCH)
        .unique_key(format!("gc:{blob_id}"))
}

pub fn gc_sweep_job() -> NewJob {
    NewJob::new(GC_SWEEP, serde_json::json!({})).priority(PRIORITY_BATCH)
}

pub struct GcBlobHandler {
    pub db: Db,
    pub storage: Storage,
}

#[async_trait::async_trait]
impl JobHandler for GcBlobHandler {
    async fn run(&self, job: &ClaimedJob, _ctx: &JobContext) -> Result<(), JobError> {
        let payload: Payload = serde_json::from_value(job.payload.clone())
            .map_err(|e| JobError::Permanent(format!("bad payload: {e}")))?;
        collect_blob(&self.db, &self.storage, &payload.blob_id).await
    }
}

/// Deletes the row first (only if unreferenced, atomically), then the objects: blob ids
/// are never reused, so a new upload of the same bytes cannot collide with the objects
/// being removed here.
async fn collect_blob(db: &Db, storage: &Storage, blob_id: &str) -> Result<(), JobError> {
    let deleted = match repo::delete_blob_if_orphan(db, blob_id).await {
        Ok(deleted) => deleted,
        // A concurrent upload referenced it between our check and delete.
        Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => false,
        Err(e) => return Err(JobError::Retryable(e.to_string())),
    };
    if deleted {
        storage
            .delete(&keys::original(blob_id))
            .await
            .map_err(retry)?;
        storage
            .delete_prefix(&keys::derivatives(blob_id))
            .await
            .map_err(retry)?;
        tracing::info!(blob_id, "garbage-collected blob");
    }
    Ok(())
}

pub struct GcSweepHandler {
    pub db: Db,
    pub storage: Storage,
    pub tmp_max_age: Duration,
    pub orphan_min_age: Duration,
}

#[async_trait::async_trait]
impl JobHandler for GcSweepHandler {
    async fn run(&self, _job: &ClaimedJob, _ctx: &JobContext) -> Result<(), JobError> {
        for blob_id in repo::orphan_blobs(&self.db, 1000).await.map_err(retry)? {
            collect_blob(&self.db, &self.storage, &blob_id).await?;
        }
        remove_rowless_objects(&self.db, &self.storage, self.orphan_min_age)
            .await
            .map_err(retry)?;
        remove_stale_temp_files(self.storage.tmp_dir(), self.tmp_max_age)
            .await
            .map_err(retry)
    }
}

/// Objects whose blob row never committed (a crash between moving the upload into the
/// store and the transaction) or is gone. Only objects older than `min_age` are
/// considered, so an upload in flight is never touched.
async fn remove_rowless_objects(
    db: &Db,
    storage: &Storage,
    min_age: Duration,
) -> anyhow::Result<()> {
    let cutoff = crate::kernel::time::now_ms() - min_age.as_millis() as i64;
    for prefix in ["originals", "derivatives"] {
        let old: Vec<(String, String)> = storage
            .list(prefix)
            .await?
            .into_iter()
            .filter(|(_, modified)| *modified < cutoff)
            .filter_map(|(key, _)| {
                let blob = keys::blob_of(&key)?.to_string();
                Some((key, blob))
            })
            .collect();
        for chunk in old.chunks(500) {
            let ids: Vec<&str> = chunk.iter().map(|(_, blob)| blob.as_str()).collect();
            let live = repo::existing_blob_ids(db, &ids).await?;
            for (key, blob) in chunk {
                if !live.contains(blob) {
                    tracing::info!(key, "removing an object without a blob row");
                    storage.delete(key).await?;
                }
            }
        }
    }
    Ok(())
}

async fn remove_stale_temp_files(dir: &std::path::Path, max_age: Duration) -> std::io::Result<()> {
    let mut entries = tokio::fs::read_dir(dir).await?;
    while let Some(entry) = entries.next_entry().await? {
        let old = entry
            .metadata()
            .await?
            .modified()?
            .elapsed()
            .is_ok_and(|age| age > max_age);
        if old {
            // Uploads spool to files; transcodes work in directories.
            if entry.file_type().await?.is_dir() {
                tokio::fs::remove_dir_all(entry.path()).await.ok();
            } else {
                tokio::fs::remove_file(entry.path()).await.ok();
            }
        }
    }
    Ok(())
}

fn retry(e: impl std::fmt::Display) -> JobError {
    JobError::Retryable(e.to_string())
}

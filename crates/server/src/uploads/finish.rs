//! The end of an upload: a complete one becomes a media item through the same path as
//! `POST /api/v1/media` (`media::ingest::accept`); a partial one waits for its final
//! upload; a final one is assembled from its partial uploads (on the local store with
//! `copy_file_range`, in the kernel; on S3 streamed through a small buffer). A refused,
//! terminated or expired upload leaves nothing behind.

use std::io::Read;
use std::path::{Path, PathBuf};

use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::protocol::Metadata;
use super::receive::{part_file, target_key};
use super::repo::{self, UploadRow};
use crate::identity::Caller;
use crate::kernel::error::{AppError, AppResult};
use crate::media::ingest::{self, Allowed, Received, UploadMeta};
use crate::AppState;

fn io(e: impl Into<anyhow::Error>) -> AppError {
    AppError::internal(e)
}

/// The item fields the upload's metadata carries.
pub fn item_meta(upload: &UploadRow) -> UploadMeta {
    let meta: Metadata = serde_json::from_str(&upload.metadata).unwrap_or_default();
    UploadMeta {
        title: meta.title.or(meta.filename),
        description: meta.description,
        tags: meta.tags,
        visibility: meta.visibility,
        watermark: meta.watermark,
    }
}

/// Finishes a complete upload (its lease held, or it is new): the item id for a whole
/// or final upload, `None` for a partial one. A file refused as an upload would be
/// returns that upload's error, and the upload is gone.
pub async fn finish(
    state: &AppState,
    upload: &UploadRow,
    caller: &Caller,
) -> AppResult<Option<String>> {
    if upload.concat == "partial" {
        if !state.storage.is_local() {
            if upload.received == 0 {
                // Nothing to assemble: S3 cannot complete a multipart upload of no parts.
                if let Some(id) = &upload.multipart_id {
                    let key = target_key(upload);
                    state.storage.abort_multipart(&key, id).await.map_err(io)?;
                }
            } else {
                complete_multipart(state, upload).await?;
            }
        }
        repo::mark_done(&state.db, &upload.id, None).await?;
        return Ok(None);
    }
    let made = match gather(state, upload).await {
        Ok(received) => {
            let allowed = Allowed {
                max_bytes: state.settings.limits.max_upload_bytes,
                kinds: upload
                    .kinds
                    .as_deref()
                    .and_then(|k| serde_json::from_str(k).ok()),
            };
            ingest::accept(state, caller, &item_meta(upload), received, &allowed).await
        }
        Err(e) => Err(e),
    };
    match made {
        Ok(item_id) => {
            repo::mark_done(&state.db, &upload.id, Some(&item_id)).await?;
            state.uploads.hashes.invalidate(&upload.id);
            spend_parts(state, upload).await;
            if !state.storage.is_local() {
                state
                    .storage
                    .delete_prefix(&format!("uploads/{}", upload.id))
                    .await
                    .ok();
            }
            Ok(Some(item_id))
        }
        // Refused as an upload would be: nothing stays. Any other failure (the store or
        // the database away) leaves the upload complete, to be finished by a retry.
        Err(refused @ AppError::Client { .. }) => {
            spend_parts(state, upload).await;
            discard(state, upload).await;
            Err(refused)
        }
        Err(failed) => Err(failed),
    }
}

/// Removes the partial uploads of a final one once it is made or refused.
async fn spend_parts(state: &AppState, upload: &UploadRow) {
    for part in upload.part_ids() {
        if let Ok(Some(p)) = repo::get(&state.db, &part).await {
            discard(state, &p).await;
        }
    }
}

/// The complete file on local disk with its SHA-256, and (S3) the blob it already is.
async fn gather(state: &AppState, upload: &UploadRow) -> AppResult<Received> {
    let size = upload.received as u64;
    if upload.concat == "final" {
        let path = state
            .storage
            .tmp_dir()
            .join(format!("upload-{}.part", uuid::Uuid::new_v4()));
        if let Err(e) = assemble(state, upload, &path).await {
            tokio::fs::remove_file(&path).await.ok();
            return Err(e);
        }
        let sha256 = hash_file(path.clone()).await?;
        return Ok(Received {
            path,
            sha256,
            size,
            placed_blob: None,
        });
    }
    if state.storage.is_local() {
        let path = part_file(state, &upload.id)?;
        let cached = state.uploads.hashes.get(&upload.id);
        let sha256 = match cached.filter(|(at, _)| *at == size) {
            Some((_, h)) => hex::encode(h.finalize()),
            None => hash_file(path.clone()).await?,
        };
        return Ok(Received {
            path,
            sha256,
            size,
            placed_blob: None,
        });
    }
    complete_multipart(state, upload).await?;
    let (path, _) = state
        .storage
        .fetch_to_path(&target_key(upload))
        .await
        .map_err(io)?;
    let sha256 = hash_file(path.clone()).await?;
    Ok(Received {
        path,
        sha256,
        size,
        placed_blob: upload.blob_id.clone(),
    })
}

/// Completes the S3 multipart upload; done already (a crash after completing) is fine
/// when the object has the expected size.
async fn complete_multipart(state: &AppState, upload: &UploadRow) -> AppResult<()> {
    let key = target_key(upload);
    let id = upload.multipart_id.as_deref().unwrap_or_default();
    let etags = upload.etag_list();
    if etags.is_empty() {
        return Err(AppError::unprocessable(
            "empty_upload",
            "the upload is empty",
        ));
    }
    if let Err(e) = state.storage.complete_multipart(&key, id, etags).await {
        let there = state
            .storage
            .get(&key, Some(0..1))
            .await
            .ok()
            .map(|g| g.meta.size);
        if there != Some(upload.received as u64) {
            return Err(io(e));
        }
    }
    Ok(())
}

/// Writes the partial uploads of a final one, in order, into `dest`.
async fn assemble(state: &AppState, upload: &UploadRow, dest: &Path) -> AppResult<()> {
    let parts = upload.part_ids();
    if state.storage.is_local() {
        let sources: Vec<PathBuf> = parts
            .iter()
            .map(|id| part_file(state, id))
            .collect::<AppResult<_>>()?;
        let dest = dest.to_path_buf();
        return tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let mut out = std::fs::File::create(&dest)?;
            for source in sources {
                // std::io::copy between files is copy_file_range on Linux: no bytes
                // pass through this process.
                std::io::copy(&mut std::fs::File::open(source)?, &mut out)?;
            }
            out.sync_all()
        })
        .await
        .map_err(io)?
        .map_err(io);
    }
    let mut out = tokio::fs::File::create(dest).await.map_err(io)?;
    for id in parts {
        let empty = repo::get(&state.db, &id)
            .await?
            .is_some_and(|p| p.received == 0);
        if empty {
            continue;
        }
        let got = state
            .storage
            .get(&format!("uploads/{id}/data"), None)
            .await
            .map_err(io)?;
        let mut stream = got.into_stream();
        while let Some(chunk) = stream.next().await {
            out.write_all(&chunk.map_err(io)?).await.map_err(io)?;
        }
    }
    out.flush().await.map_err(io)?;
    out.sync_all().await.map_err(io)
}

async fn hash_file(path: PathBuf) -> AppResult<String> {
    tokio::task::spawn_blocking(move || -> std::io::Result<String> {
        let mut file = std::fs::File::open(path)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                return Ok(hex::encode(hasher.finalize()));
            }
            hasher.update(&buf[..n]);
        }
    })
    .await
    .map_err(io)?
    .map_err(io)
}

/// Removes an upload's bytes (part file, multipart upload, tails) and its row.
pub async fn discard(state: &AppState, upload: &UploadRow) {
    remove_bytes(state, upload).await;
    match state.db.pool.acquire().await {
        Ok(mut conn) => {
            if let Err(e) = repo::delete(&mut conn, &upload.id).await {
                tracing::warn!(error = %e, upload = upload.id, "could not delete an upload row");
            }
        }
        Err(e) => tracing::warn!(error = %e, upload = upload.id, "could not delete an upload row"),
    }
}

/// Removes an upload's bytes, keeping its row (an expired upload's tombstone).
pub async fn remove_bytes(state: &AppState, upload: &UploadRow) {
    state.uploads.hashes.invalidate(&upload.id);
    if state.storage.is_local() {
        if let Ok(path) = part_file(state, &upload.id) {
            tokio::fs::remove_file(path).await.ok();
        }
        return;
    }
    if let Some(id) = &upload.multipart_id {
        if let Err(e) = state.storage.abort_multipart(&target_key(upload), id).await {
            tracing::warn!(error = %e, upload = upload.id, "could not abort a multipart upload");
        }
    }
    if let Err(e) = state
        .storage
        .delete_prefix(&format!("uploads/{}", upload.id))
        .await
    {
        tracing::warn!(error = %e, upload = upload.id, "could not remove an upload's objects");
    }
    if let Some(blob) = &upload.blob_id {
        if let Ok(mut conn) = state.db.pool.acquire().await {
            crate::media::repo::release_blob(&mut conn, blob).await.ok();
        }
    }
}

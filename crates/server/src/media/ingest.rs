//! `POST /api/v1/media`: stream the body to a temp file while hashing it, sniff and probe
//! it, enforce limits, deduplicate, move it into the object store, and record the item
//! and its processing job in one transaction. Nothing is left behind on rejection.
//! [`accept`] runs the same path for a file received another way (a resumable upload).

use std::path::{Path, PathBuf};

use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{header, StatusCode};
use axum::Json;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use utoipa::IntoParams;

use super::kinds::{Described, Upload};
use super::{changes, item_json, repo, validate_meta, MediaItem, Visibility};
use crate::identity::usage::{self, Quota};
use crate::identity::{Caller, ClientInfo, Writer};
use crate::kernel::error::{AppError, AppQuery, AppResult, ErrorBody};
use crate::kernel::ids::new_id;
use crate::kernel::keys;
use crate::kernel::time::now_ms;
use crate::AppState;

/// Item fields that may accompany an upload, as query parameters or multipart fields.
#[derive(Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadMeta {
    pub title: Option<String>,
    pub description: Option<String>,
    /// Comma-separated tags.
    pub tags: Option<String>,
    pub visibility: Option<Visibility>,
    /// Video only: `auto` (default: the owner's watermark, if set), `none`, or the id of
    /// one of the caller's image items to burn into the renditions.
    pub watermark: Option<String>,
}

/// A temp file removed on drop unless it was moved into the store.
struct TempFile {
    path: PathBuf,
    armed: bool,
}

impl TempFile {
    fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.armed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

struct Spooled {
    file: TempFile,
    sha256: String,
    size: u64,
    head: Vec<u8>,
    /// The blob id under whose original key the bytes already are (a resumable upload
    /// assembled in the object store): nothing is put, and the object is removed if the
    /// file is refused or is a duplicate.
    placed: Option<PlacedObject>,
}

/// An original already in the store for a blob not yet recorded; deleted on drop unless
/// its blob row committed.
struct PlacedObject {
    storage: crate::kernel::storage::Storage,
    blob_id: String,
    armed: bool,
}

impl Drop for PlacedObject {
    fn drop(&mut self) {
        if self.armed {
            let (storage, key) = (self.storage.clone(), keys::original(&self.blob_id));
            tokio::spawn(async move {
                if let Err(e) = storage.delete(&key).await {
                    tracing::warn!(error = %e, key, "could not remove a refused upload");
                }
            });
        }
    }
}

/// What an upload may be: at most `max_bytes`, and only of `kinds` when set (a
/// direct-upload URL fixes both in advance).
#[derive(Clone, Debug)]
pub struct Allowed {
    pub max_bytes: u64,
    pub kinds: Option<Vec<String>>,
}

impl Allowed {
    /// Anything the server takes.
    pub fn any(state: &AppState) -> Allowed {
        Allowed {
            max_bytes: state.settings.limits.max_upload_bytes,
            kinds: None,
        }
    }
}

/// A file received in full by other means than the body of `POST /api/v1/media`.
pub struct Received {
    /// A local file holding the bytes; removed (or moved into the store) in any case.
    pub path: PathBuf,
    pub sha256: String,
    pub size: u64,
    /// Set when the bytes are also in the store already, as `keys::original(blob)`.
    pub placed_blob: Option<String>,
}

/// Makes an item of `received` exactly as an upload does (quota, metadata, sniffing,
/// the kind's validation, dedup, one transaction); the item id, or the same error an
/// upload of these bytes would get, with nothing left behind.
pub async fn accept(
    state: &AppState,
    caller: &Caller,
    meta: &UploadMeta,
    received: Received,
    allowed: &Allowed,
) -> AppResult<String> {
    let file = TempFile {
        path: received.path,
        armed: true,
    };
    let placed = received.placed_blob.map(|blob_id| PlacedObject {
        storage: state.storage.clone(),
        blob_id,
        armed: true,
    });
    let path = file.path.clone();
    let head = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
        use std::io::Read;
        let mut head = Vec::with_capacity(HEAD);
        std::fs::File::open(path)?
            .take(HEAD as u64)
            .read_to_end(&mut head)?;
        Ok(head)
    })
    .await
    .map_err(AppError::internal)?
    .map_err(AppError::internal)?;
    let spooled = Spooled {
        file,
        sha256: received.sha256,
        size: received.size,
        head,
        placed,
    };
    if spooled.size > allowed.max_bytes {
        return Err(too_large(allowed.max_bytes));
    }
    if spooled.size == 0 {
        return Err(AppError::unprocessable(
            "empty_upload",
            "the upload is empty",
        ));
    }
    let quota = Quota::of(&state.db, &caller.user_id).await?;
    make_item(
        state,
        caller,
        meta,
        &quota,
        spooled,
        allowed.kinds.as_deref(),
    )
    .await
}

/// Makes an item of a request's raw body, as `POST /api/v1/media` does, within
/// `allowed` (a direct-upload URL's `PUT`). The new item's id.
pub async fn ingest_raw(
    state: &AppState,
    caller: &Caller,
    client: &ClientInfo,
    meta: &UploadMeta,
    request: Request,
    allowed: &Allowed,
) -> AppResult<String> {
    let declared = declared_length(&request);
    let quota = match admit(state, caller, client, declared, allowed.max_bytes).await {
        Ok(quota) => quota,
        Err(refused) => {
            linger(request).await;
            return Err(refused);
        }
    };
    let body = request.into_body().into_data_stream();
    let spooled = spool(state.storage.tmp_dir(), body, allowed.max_bytes).await?;
    make_item(
        state,
        caller,
        meta,
        &quota,
        spooled,
        allowed.kinds.as_deref(),
    )
    .await
}

fn declared_length(request: &Request) -> Option<u64> {
    request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// The steps after the bytes are on disk, shared by both ways in: the quota, the item
/// fields, the kind's validation, then the transaction.
async fn make_item(
    state: &AppState,
    caller: &Caller,
    meta: &UploadMeta,
    quota: &Quota,
    spooled: Spooled,
    kinds: Option<&[String]>,
) -> AppResult<String> {
    quota.check(spooled.size)?;
    let tags = parse_tags(meta.tags.as_deref());
    validate_meta(
        meta.title.as_deref(),
        meta.description.as_deref(),
        Some(&tags),
    )?;
    let described = describe(state, &spooled, meta, caller).await?;
    if let Some(kinds) = kinds.filter(|k| !k.iter().any(|k| k == described.kind)) {
        return Err(AppError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "kind_not_allowed",
            format!("this upload takes only {}", kinds.join(", ")),
        ));
    }
    store(state, caller, meta, &tags, spooled, described).await
}

#[utoipa::path(post, path = "/api/v1/media", tag = "media", security(("bearer" = [])), params(UploadMeta),
    request_body(content = Vec<u8>, description = "the image bytes as the raw body, or a multipart form with a `file` field (and optional title, description, tags, visibility fields)",
        content_type = "application/octet-stream"),
    responses((status = 202, body = MediaItem, description = "stored durably; processing in the background"),
        (status = 401, body = ErrorBody), (status = 408, body = ErrorBody, description = "the body stalled for a minute"),
        (status = 413, body = ErrorBody, description = "body over max_upload_bytes or the quota"),
        (status = 415, body = ErrorBody, description = "not an accepted image format"),
        (status = 422, body = ErrorBody, description = "corrupt, truncated, or over a pixel/side/frame limit"),
        (status = 429, body = ErrorBody, description = "too many uploads from this address or account")))]
pub async fn upload_media(
    State(state): State<AppState>,
    Writer(caller): Writer,
    client: ClientInfo,
    AppQuery(mut meta): AppQuery<UploadMeta>,
    request: Request,
) -> AppResult<(StatusCode, Json<MediaItem>)> {
    let limit = state.settings.limits.max_upload_bytes;
    let declared = declared_length(&request);
    let quota = match admit(&state, &caller, &client, declared, limit).await {
        Ok(quota) => quota,
        Err(refused) => {
            linger(request).await;
            return Err(refused);
        }
    };
    let is_multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let spooled = if is_multipart {
        spool_multipart(&state, request, &mut meta).await?
    } else {
        spool(
            state.storage.tmp_dir(),
            request.into_body().into_data_stream(),
            limit,
        )
        .await?
    };
    let item_id = make_item(&state, &caller, &meta, &quota, spooled, None).await?;
    let row = repo::item(&state.db, &item_id)
        .await?
        .ok_or_else(|| AppError::not_found("media item"))?;
    Ok((StatusCode::ACCEPTED, Json(item_json(&state, row).await?)))
}

/// Checks what can be checked before reading the body: its declared size, the rate
/// limits and the quota.
pub async fn admit(
    state: &AppState,
    caller: &Caller,
    client: &ClientInfo,
    declared: Option<u64>,
    limit: u64,
) -> AppResult<Quota> {
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large(limit));
    }
    let rules = &state.settings.auth.rate_limits;
    crate::identity::rate_limit(state, "upload_ip", &client.rate_key(), &rules.upload_per_ip)
        .await?;
    crate::identity::rate_limit(
        state,
        "upload_account",
        &caller.user_id,
        &rules.upload_per_account,
    )
    .await?;
    let quota = Quota::of(&state.db, &caller.user_id).await?;
    quota.check(declared.unwrap_or(0))?;
    Ok(quota)
}

/// Reads and drops a little of a body being refused before it was read, for at most
/// half a second: a client still sending when the connection closes gets a reset that
/// can swallow our answer (nginx's "lingering close" solves the same problem).
async fn linger(request: Request) {
    linger_body(request.into_body()).await
}

/// [`linger`] for a body already taken from its request (a tus PATCH refused mid-way).
pub async fn linger_body(body: axum::body::Body) {
    let mut stream = body.into_data_stream();
    let drain = async {
        let mut seen = 0usize;
        while let Some(Ok(chunk)) = stream.next().await {
            seen += chunk.len();
            if seen > 8 << 20 {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_millis(500), drain).await;
}

pub fn too_large(limit: u64) -> AppError {
    AppError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("the upload is larger than the limit of {limit} bytes"),
    )
}

pub fn parse_tags(text: Option<&str>) -> Vec<String> {
    text.map(|t| {
        t.split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(String::from)
            .collect()
    })
    .unwrap_or_default()
}

async fn spool_multipart(
    state: &AppState,
    request: Request,
    meta: &mut UploadMeta,
) -> AppResult<Spooled> {
    let limit = state.settings.limits.max_upload_bytes;
    let mut multipart = Multipart::from_request(request, state)
        .await
        .map_err(|e| AppError::bad_request("invalid_multipart", e.body_text()))?;
    let mut spooled = None;
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        let name = field.name().unwrap_or_default().to_string();
        match name.as_str() {
            "file" if spooled.is_none() => {
                let stream = field.map(|r| r.map_err(std::io::Error::other));
                spooled = Some(spool(state.storage.tmp_dir(), stream, limit).await?);
            }
            "title" | "description" | "tags" | "visibility" | "watermark" => {
                let text = small_text(field).await?;
                match name.as_str() {
                    "title" => meta.title = Some(text),
                    "description" => meta.description = Some(text),
                    "tags" => meta.tags = Some(text),
                    "watermark" => meta.watermark = Some(text),
                    _ => {
                        meta.visibility =
                            Some(serde_json::from_value(text.into()).map_err(|_| {
                                AppError::unprocessable(
                                    "invalid_visibility",
                                    "visibility must be private, friends, unlisted or public",
                                )
                            })?)
                    }
                }
            }
            _ => {
                return Err(AppError::bad_request(
                    "invalid_multipart",
                    format!("unexpected multipart field `{name}`"),
                ))
            }
        }
    }
    spooled.ok_or_else(|| {
        AppError::bad_request("missing_file", "the multipart form has no `file` field")
    })
}

/// Reads a metadata field of a multipart form, refusing more than 16 KiB: these fields
/// are not counted by the body limit, which applies to the file.
async fn small_text(mut field: axum::extract::multipart::Field<'_>) -> AppResult<String> {
    const MAX: usize = 16 * 1024;
    let name = field.name().unwrap_or_default().to_string();
    let mut bytes = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        if bytes.len() + chunk.len() > MAX {
            return Err(AppError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the form field `{name}` is longer than {MAX} bytes"),
            ));
        }
        bytes.extend_from_slice(&chunk);
    }
    String::from_utf8(bytes)
        .map_err(|_| AppError::bad_request("invalid_multipart", format!("`{name}` is not UTF-8")))
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> AppError {
    AppError::bad_request("invalid_multipart", e.body_text())
}

/// How long an upload may send nothing before it is dropped (slow-loris protection).
const BODY_IDLE: std::time::Duration = std::time::Duration::from_secs(60);
/// Bytes gathered before one blocking write + hash.
const BATCH: usize = 1 << 20;
/// Bytes kept for sniffing: images need 64, Matroska's doctype can sit a few hundred in.
const HEAD: usize = 4096;

/// The temp file and the running hash, handed to a blocking thread per batch and back.
struct Sink {
    file: std::fs::File,
    hasher: Sha256,
}

impl Sink {
    fn absorb(mut self, batch: Vec<u8>) -> std::io::Result<Sink> {
        use std::io::Write;
        self.hasher.update(&batch);
        self.file.write_all(&batch)?;
        Ok(self)
    }
}

/// Streams `body` into a new temp file. Chunks are gathered into 1 MiB batches; each
/// batch is hashed and written on a blocking thread while the next one is received, so
/// a blocking thread is held only for the write itself, never while a slow client
/// trickles its body (which would let a few hundred slow uploads starve the pool).
async fn spool<S, E>(dir: &Path, body: S, limit: u64) -> AppResult<Spooled>
where
    S: Stream<Item = Result<Bytes, E>> + Send,
    E: std::fmt::Display,
{
    let path = dir.join(format!("upload-{}.part", uuid::Uuid::new_v4()));
    let file = TempFile {
        path: path.clone(),
        armed: true,
    };
    let created = tokio::task::spawn_blocking(move || std::fs::File::create(path))
        .await
        .map_err(AppError::internal)?
        .map_err(AppError::internal)?;
    let mut sink = Some(Sink {
        file: created,
        hasher: Sha256::new(),
    });
    let mut pending: Option<tokio::task::JoinHandle<std::io::Result<Sink>>> = None;
    let mut batch = Vec::with_capacity(BATCH);
    let (mut size, mut head) = (0u64, Vec::with_capacity(HEAD));
    let mut body = std::pin::pin!(body);
    loop {
        let next = tokio::time::timeout(BODY_IDLE, body.next())
            .await
            .map_err(|_| {
                AppError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "upload_timeout",
                    "the upload stalled",
                )
            })?;
        let chunk = match next {
            Some(Ok(chunk)) => Some(chunk),
            Some(Err(e)) => {
                let message = format!("reading the upload failed: {e}");
                return Err(AppError::bad_request("upload_interrupted", message));
            }
            None => None,
        };
        if let Some(chunk) = &chunk {
            size += chunk.len() as u64;
            if size > limit {
                return Err(too_large(limit));
            }
            if head.len() < HEAD {
                head.extend_from_slice(&chunk[..chunk.len().min(HEAD - head.len())]);
            }
            batch.extend_from_slice(chunk);
        }
        let finished = chunk.is_none();
        if batch.len() >= BATCH || (finished && !batch.is_empty()) {
            // Wait for the previous batch, then hand this one over and keep receiving.
            if let Some(job) = pending.take() {
                sink = Some(
                    job.await
                        .map_err(AppError::internal)?
                        .map_err(AppError::internal)?,
                );
            }
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
            let taken = sink.take().expect("sink is home between batches");
            pending = Some(tokio::task::spawn_blocking(move || taken.absorb(full)));
        }
        if finished {
            break;
        }
    }
    if let Some(job) = pending.take() {
        sink = Some(
            job.await
                .map_err(AppError::internal)?
                .map_err(AppError::internal)?,
        );
    }
    let Sink {
        file: written,
        hasher,
    } = sink.expect("sink is home after the last batch");
    // A 2xx for an upload means the bytes are on disk.
    tokio::task::spawn_blocking(move || written.sync_all())
        .await
        .map_err(AppError::internal)?
        .map_err(AppError::internal)?;
    if size == 0 {
        return Err(AppError::unprocessable(
            "empty_upload",
            "the upload is empty",
        ));
    }
    Ok(Spooled {
        file,
        sha256: hex::encode(hasher.finalize()),
        size,
        head,
        placed: None,
    })
}

/// Sniffs the real format by magic bytes and lets the media kind it belongs to
/// validate the file (415 when no kind knows it).
async fn describe(
    state: &AppState,
    spooled: &Spooled,
    meta: &UploadMeta,
    caller: &Caller,
) -> AppResult<Described> {
    let kinds = &state.media.kinds;
    let Some(kind) = kinds.sniff(state, &spooled.head) else {
        return Err(AppError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_format",
            format!("the bytes are not an accepted format ({})", kinds.formats()),
        ));
    };
    let upload = Upload {
        path: &spooled.file.path,
        head: &spooled.head,
        sha256: &spooled.sha256,
        size: spooled.size,
        meta,
        caller,
    };
    kind.describe(state, &upload).await
}

/// Places the bytes (unless already stored) and writes blob + item + job in one
/// transaction. Returns the new item id.
async fn store(
    state: &AppState,
    caller: &Caller,
    meta: &UploadMeta,
    tags: &[String],
    mut spooled: Spooled,
    described: Described,
) -> AppResult<String> {
    // An upload with something burned in is keyed by content + addition.
    let dedup_key = match &described.burn_in {
        Some(b) => b.dedup_key.clone(),
        None => spooled.sha256.clone(),
    };
    let burn_in = described.burn_in.as_ref().map(|b| b.json.as_str());
    let item_id = new_id();
    let tags_json = serde_json::to_string(tags).map_err(AppError::internal)?;
    let visibility = meta.visibility.unwrap_or(Visibility::Private);
    // Two rounds at most: a blob found for dedup can be garbage-collected before our
    // transaction; the foreign key then fails and the second round stores our copy.
    for round in 0..2 {
        let existing = if round == 0 {
            repo::blob_by_sha(&state.db, &dedup_key).await?
        } else {
            None
        };
        let already = spooled.placed.as_ref().map(|p| p.blob_id.clone());
        let (blob_id, placed) = match (&existing, already) {
            (Some(blob), _) => (blob.id.clone(), false),
            (None, Some(id)) => (id, true),
            (None, None) => {
                let id = new_id();
                state
                    .storage
                    .put_file(
                        &keys::original(&id),
                        &spooled.file.path,
                        Some(state.media.kinds.mime(described.format)),
                    )
                    .await
                    .map_err(AppError::internal)?;
                spooled.file.disarm();
                (id, true)
            }
        };
        let now = now_ms();
        let mut tx = state.db.begin_write().await?;
        let mut blob_for_item = blob_id.clone();
        let mut job_id = None;
        if placed {
            let blob = repo::NewBlob {
                id: &blob_id,
                sha256: &dedup_key,
                size: spooled.size as i64,
                format: described.format,
                width: described.width,
                height: described.height,
                frames: described.frames,
                kind: described.kind,
                duration_ms: described.duration_ms,
                media_info: described.media_info.as_deref(),
                watermark: burn_in,
                content_sha256: burn_in.is_some().then_some(spooled.sha256.as_str()),
                now,
            };
            if repo::insert_blob(&mut tx, &blob).await? {
                let attempts = state.settings.worker.max_attempts;
                let kind = state.media.kinds.of(described.kind).ok_or_else(|| {
                    AppError::internal(anyhow::anyhow!("no kind {}", described.kind))
                })?;
                let job = state
                    .queue
                    .enqueue_in(&mut tx, kind.process_job(&blob_id, attempts))
                    .await?;
                job_id = Some(job.to_string());
            } else {
                // An identical upload won the race: share its blob, drop our copy.
                let winner =
                    sqlx::query_scalar::<_, String>("SELECT id FROM blobs WHERE sha256 = $1")
                        .bind(&dedup_key)
                        .fetch_one(&mut *tx)
                        .await?;
                blob_for_item = winner;
            }
        }
        // Said only when the caller already has these bytes: telling anyone that some
        // other account uploaded them would leak that account's files.
        let deduplicated = job_id.is_none()
            && repo::owner_has_blob(&mut tx, &caller.user_id, &blob_for_item).await?;
        let item = repo::NewItem {
            id: &item_id,
            owner_id: &caller.user_id,
            blob_id: &blob_for_item,
            title: meta.title.as_deref(),
            description: meta.description.as_deref(),
            tags: &tags_json,
            visibility: visibility.as_str(),
            deduplicated,
            job_id: job_id.as_deref(),
            now,
        };
        if let Err(refused) = usage::charge(&mut tx, &caller.user_id, spooled.size).await {
            drop(tx);
            if placed {
                // Never committed: remove it now rather than at the next sweep.
                let _ = state.storage.delete(&keys::original(&blob_id)).await;
            }
            return Err(refused);
        }
        match repo::insert_item(&mut tx, &item).await {
            Ok(()) => {}
            Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() && !placed => continue,
            Err(e) => return Err(e.into()),
        }
        announce(state, &mut tx, &item_id).await?;
        if let Some(object) = &spooled.placed {
            repo::release_blob(&mut tx, &object.blob_id).await?;
        }
        tx.commit().await?;
        if let Some(object) = spooled.placed.as_mut() {
            object.armed = blob_for_item != object.blob_id;
        }
        if placed && blob_for_item != blob_id {
            // The item is saved: a failure here must not turn into an error the client
            // would retry. The GC sweep collects the unused copy.
            if let Err(e) = state.storage.delete(&keys::original(&blob_id)).await {
                tracing::warn!(error = %e, blob_id, "could not remove a duplicate upload copy");
            }
        }
        state.queue.notify();
        return Ok(item_id);
    }
    Err(AppError::internal(anyhow::anyhow!(
        "blob vanished twice during upload"
    )))
}

/// `media.created`, and at once `media.ready` or `media.failed` when the item shares a
/// blob that was already processed.
async fn announce(
    state: &AppState,
    conn: &mut sqlx::AnyConnection,
    item_id: &str,
) -> AppResult<()> {
    let row = repo::item_on(conn, item_id, "")
        .await?
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("the new item is not there")))?;
    let settled = match row.status.as_str() {
        "ready" => Some("media.ready"),
        "failed" => Some("media.failed"),
        _ => None,
    };
    changes::emit(state, conn, "media.created", vec![row.clone()]).await?;
    if let Some(kind) = settled {
        changes::emit(state, conn, kind, vec![row]).await?;
    }
    Ok(())
}

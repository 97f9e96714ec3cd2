//! tus creation (`POST /api/v1/uploads/`): with a declared or deferred length, with
//! the first bytes in the same request, as a partial upload, or as the final upload
//! that concatenates partial ones; and creation at a direct-upload URL, whose fields and
//! limits are fixed in advance ([`Grant`]).

use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::finish;
use super::lease::Lease;
use super::protocol::{self, answer, Concat, Metadata};
use super::receive;
use super::repo::{self, UploadRow};
use super::tus::{base_url, expires, has_body, header_value, verify_of, write};
use crate::identity::usage::Quota;
use crate::identity::{Caller, ClientInfo, Writer};
use crate::kernel::error::{AppError, AppResult, ErrorBody};
use crate::kernel::ids::new_id;
use crate::kernel::time::now_ms;
use crate::AppState;

#[utoipa::path(post, path = "/api/v1/uploads", tag = "uploads", security(("bearer" = [])),
    params(
        ("Tus-Resumable" = String, Header, description = "1.0.0"),
        ("Upload-Length" = Option<u64>, Header, description = "the file's size; or send `Upload-Defer-Length: 1`"),
        ("Upload-Metadata" = Option<String>, Header, description = "`key base64value` pairs: filename, filetype, title, description, visibility, tags, watermark"),
        ("Upload-Concat" = Option<String>, Header, description = "`partial`, or `final;` and the partial uploads' URLs"),
    ),
    request_body(content = Vec<u8>, content_type = "application/offset+octet-stream",
        description = "optional: the first bytes (creation-with-upload)"),
    responses((status = 201, description = "created; `Location` is its URL, `Upload-Offset` what is stored, `Framehouse-Media-Id` the item once complete"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 412, body = ErrorBody, description = "wrong `Tus-Resumable`"),
        (status = 413, body = ErrorBody, description = "over `Tus-Max-Size` or the quota"),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
pub async fn create_upload(
    State(state): State<AppState>,
    Writer(caller): Writer,
    client: ClientInfo,
    request: Request,
) -> Response {
    answer(create(&state, &caller, &client, request, None).await)
}

#[utoipa::path(post, path = "/api/v1/uploads/", tag = "uploads", security(("bearer" = [])),
    responses((status = 201, description = "as `POST /api/v1/uploads`"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 412, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
pub async fn create_upload_slash(
    State(state): State<AppState>,
    Writer(caller): Writer,
    client: ClientInfo,
    request: Request,
) -> Response {
    answer(create(&state, &caller, &client, request, None).await)
}

/// What a direct-upload URL fixes for the upload it creates.
pub struct Grant {
    /// The upload's id, claimed for the URL already.
    pub id: String,
    /// Its URL's path (the direct URL itself, which carries the secret).
    pub path: String,
    /// The item's fields; the client's metadata may add only the file name and type.
    pub meta: Metadata,
    pub kinds: Option<Vec<String>>,
    pub max_bytes: u64,
}

pub async fn create(
    state: &AppState,
    caller: &Caller,
    client: &ClientInfo,
    request: Request,
    grant: Option<Grant>,
) -> AppResult<Response> {
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    protocol::check_version(headers)?;
    let (mut meta, raw_metadata) =
        protocol::metadata(headers, state.settings.uploads.max_metadata_bytes)?;
    let tags = crate::media::ingest::parse_tags(meta.tags.as_deref());
    crate::media::validate_meta(
        meta.title.as_deref(),
        meta.description.as_deref(),
        Some(&tags),
    )?;
    let length = protocol::number(headers, "upload-length")?;
    let deferred = protocol::defers_length(headers)?;
    let concat = protocol::concat(headers)?;
    if grant.is_some() && (concat.is_some() || deferred) {
        return Err(AppError::bad_request(
            "direct_upload_single",
            "a direct upload is one file of a declared length (no concatenation, no deferred length)",
        ));
    }
    if let Some(Concat::Final(ids)) = concat {
        if length.is_some() || deferred {
            return Err(AppError::bad_request(
                "invalid_concat",
                "a final upload takes its length from its partial uploads",
            ));
        }
        return create_final(state, caller, &parts, meta, raw_metadata, ids).await;
    }
    match (length, deferred) {
        (Some(_), true) => {
            return Err(AppError::bad_request(
                "invalid_tus_header",
                "send Upload-Length or Upload-Defer-Length, not both",
            ))
        }
        (None, false) => {
            return Err(AppError::bad_request(
                "missing_length",
                "Upload-Length (or Upload-Defer-Length: 1) is required",
            ))
        }
        _ => {}
    }
    let (id, path, kinds, max) = match grant {
        Some(grant) => {
            meta = Metadata {
                filename: meta.filename,
                filetype: meta.filetype,
                ..grant.meta
            };
            let kinds = grant.kinds.map(|k| serde_json::to_string(&k)).transpose();
            (
                grant.id,
                grant.path,
                kinds.map_err(AppError::internal)?,
                grant.max_bytes,
            )
        }
        None => {
            let id = new_id();
            let path = format!("/api/v1/uploads/{id}");
            (id, path, None, state.settings.limits.max_upload_bytes)
        }
    };
    let quota = crate::media::ingest::admit(state, caller, client, length, max).await?;
    reserve(state, caller, &quota, length.unwrap_or(0)).await?;
    let partial = matches!(concat, Some(Concat::Partial));
    let now = now_ms();
    let mut upload = UploadRow {
        id: id.clone(),
        owner_id: caller.user_id.clone(),
        concat: if partial { "partial" } else { "none" }.into(),
        length: length.map(|n| n as i64),
        received: 0,
        metadata: serde_json::to_string(&meta).map_err(AppError::internal)?,
        raw_metadata,
        parts: None,
        state: "receiving".into(),
        blob_id: None,
        multipart_id: None,
        etags: "[]".into(),
        tail: 0,
        item_id: None,
        kinds,
        expires_at: now + state.settings.uploads.expire_after_secs as i64 * 1000,
        created_at: now,
    };
    let verify = verify_of(headers)?;
    if let Err(e) = open_upload(state, &mut upload, partial).await {
        finish::remove_bytes(state, &upload).await;
        return Err(e);
    }
    let location = format!("{}{path}", base_url(state, &parts));
    let with_body = protocol::check_body_type(headers).is_ok() && has_body(headers);
    let mut headers = HeaderMap::new();
    headers.insert("location", header_value(&location)?);
    let (offset, media_id) = if with_body || length == Some(0) {
        // creation-with-upload: the body is the first PATCH.
        let lease = Lease::take(state, &id).await?;
        let written = write(state, caller, &lease, &upload, verify, body).await;
        lease.release().await;
        match written {
            Ok(done) => done,
            Err(e) => match repo::get(&state.db, &id).await? {
                // Refused as a whole file: the upload is gone.
                None => return Err(e),
                // The upload exists: say where, so the client can resume (as tusd does).
                Some(now) => (now.received as u64, None),
            },
        }
    } else {
        (0, None)
    };
    headers.insert("upload-offset", HeaderValue::from(offset));
    if let Some(media) = media_id {
        headers.insert("framehouse-media-id", header_value(&media)?);
    } else {
        headers.insert("upload-expires", expires(upload.expires_at));
    }
    Ok((StatusCode::CREATED, headers).into_response())
}

/// Starts the S3 multipart upload (with the original's blob id reserved) and writes the
/// row; on failure the caller removes what was made.
async fn open_upload(state: &AppState, upload: &mut UploadRow, partial: bool) -> AppResult<()> {
    if !state.storage.is_local() {
        if !partial {
            upload.blob_id = Some(crate::media::repo::reserve_blob(&state.db).await?);
        }
        let key = receive::target_key(upload);
        upload.multipart_id = Some(
            state
                .storage
                .create_multipart(&key)
                .await
                .map_err(AppError::internal)?,
        );
    }
    let mut conn = state.db.pool.acquire().await?;
    repo::insert(&mut conn, upload).await?;
    Ok(())
}

/// Refuses an upload the user has no room for, counting their incomplete uploads.
async fn reserve(state: &AppState, caller: &Caller, quota: &Quota, length: u64) -> AppResult<()> {
    let (count, pending) = repo::pending(&state.db, &caller.user_id).await?;
    if count >= state.settings.uploads.max_pending_per_user {
        return Err(AppError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_uploads",
            format!("finish or terminate some of your {count} incomplete uploads first"),
        ));
    }
    quota.check(length + pending.max(0) as u64)
}

async fn create_final(
    state: &AppState,
    caller: &Caller,
    parts: &Parts,
    meta: Metadata,
    raw_metadata: Option<String>,
    ids: Vec<String>,
) -> AppResult<Response> {
    let mut length = 0i64;
    for id in &ids {
        let part = repo::get(&state.db, id).await?;
        let part = part
            .filter(|p| p.owner_id == caller.user_id)
            .ok_or_else(|| {
                AppError::bad_request("invalid_concat", format!("no partial upload {id} of yours"))
            })?;
        if part.concat != "partial" || part.state != "done" {
            return Err(AppError::bad_request(
                "invalid_concat",
                format!("upload {id} is not a complete partial upload"),
            ));
        }
        length += part.received;
    }
    let limit = state.settings.limits.max_upload_bytes;
    if length as u64 > limit {
        return Err(crate::media::ingest::too_large(limit));
    }
    let now = now_ms();
    let upload = UploadRow {
        id: new_id(),
        owner_id: caller.user_id.clone(),
        concat: "final".into(),
        length: Some(length),
        received: length,
        metadata: serde_json::to_string(&meta).map_err(AppError::internal)?,
        raw_metadata,
        parts: Some(serde_json::to_string(&ids).map_err(AppError::internal)?),
        state: "receiving".into(),
        blob_id: None,
        multipart_id: None,
        etags: "[]".into(),
        tail: 0,
        item_id: None,
        kinds: None,
        expires_at: now + state.settings.uploads.expire_after_secs as i64 * 1000,
        created_at: now,
    };
    let mut tx = state.db.begin_write().await?;
    if !repo::claim_parts(&mut tx, &caller.user_id, &ids).await? {
        return Err(AppError::bad_request(
            "invalid_concat",
            "a partial upload is already part of another final upload",
        ));
    }
    repo::insert(&mut tx, &upload).await?;
    tx.commit().await?;
    let lease = Lease::take(state, &upload.id).await?;
    let made = finish::finish(state, &upload, caller).await;
    lease.release().await;
    let media = made?.unwrap_or_default();
    let mut headers = HeaderMap::new();
    let location = format!("{}/api/v1/uploads/{}", base_url(state, parts), upload.id);
    headers.insert("location", header_value(&location)?);
    headers.insert("upload-offset", HeaderValue::from(length));
    headers.insert("framehouse-media-id", header_value(&media)?);
    Ok((StatusCode::CREATED, headers).into_response())
}

//! The tus 1.0 endpoints: `OPTIONS` (what the server offers), `POST` (creation, with
//! an upload, deferred length, or the concatenation of partial uploads), `HEAD` (the
//! durable offset), `PATCH` (bytes at an offset), `DELETE` (termination), and a JSON
//! `GET` of an upload's state. Only the owner sees an upload; others get 404.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::finish::{self, discard};
use super::lease::Lease;
use super::protocol::{self, answer, Checksum, Concat, Metadata};
use super::receive::{self, Verify};
use super::repo::{self, UploadRow};
use crate::identity::usage::Quota;
use crate::identity::{Caller, ClientInfo, Writer};
use crate::kernel::error::{AppError, AppResult, ErrorBody};
use crate::kernel::ids::new_id;
use crate::kernel::time::now_ms;
use crate::AppState;

/// The state of an upload, for programs that prefer JSON to `HEAD`.
#[derive(Serialize, ToSchema)]
pub struct UploadStatus {
    pub id: String,
    /// Bytes stored durably.
    pub offset: i64,
    /// `null` while the length is deferred.
    pub length: Option<i64>,
    /// `receiving`, `done` or `expired`.
    pub state: String,
    /// `none`, `partial` or `final`.
    pub concat: String,
    /// The media item the upload became.
    pub media_id: Option<String>,
    /// When an incomplete upload is removed (epoch ms).
    pub expires_at: i64,
    pub created_at: i64,
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
}

fn options_response(state: &AppState) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(
        "tus-version",
        HeaderValue::from_static(protocol::TUS_VERSION),
    );
    headers.insert(
        "tus-extension",
        HeaderValue::from_static(protocol::EXTENSIONS),
    );
    headers.insert(
        "tus-checksum-algorithm",
        HeaderValue::from_static(protocol::CHECKSUM_ALGORITHMS),
    );
    headers.insert(
        "tus-max-size",
        HeaderValue::from(state.settings.limits.max_upload_bytes),
    );
    answer(Ok((StatusCode::NO_CONTENT, headers).into_response()))
}

#[utoipa::path(options, path = "/api/v1/uploads", tag = "uploads",
    responses((status = 204, description = "the tus version, extensions (`Tus-Extension`), `Tus-Max-Size` and `Tus-Checksum-Algorithm`")))]
pub async fn options_uploads(State(state): State<AppState>) -> Response {
    options_response(&state)
}

#[utoipa::path(options, path = "/api/v1/uploads/", tag = "uploads",
    responses((status = 204, description = "as `OPTIONS /api/v1/uploads`")))]
pub async fn options_uploads_slash(State(state): State<AppState>) -> Response {
    options_response(&state)
}

#[utoipa::path(options, path = "/api/v1/uploads/{id}", tag = "uploads",
    params(("id" = String, Path)),
    responses((status = 204, description = "as `OPTIONS /api/v1/uploads`")))]
pub async fn options_upload(State(state): State<AppState>, Path(_id): Path<String>) -> Response {
    options_response(&state)
}

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

#[utoipa::path(head, path = "/api/v1/uploads/{id}", tag = "uploads", security(("bearer" = [])),
    params(("id" = String, Path), ("Tus-Resumable" = String, Header, description = "1.0.0")),
    responses((status = 200, description = "`Upload-Offset` (bytes stored durably), `Upload-Length` or `Upload-Defer-Length`, `Upload-Metadata`, `Upload-Concat`, `Upload-Expires`, and `Framehouse-Media-Id` once complete"),
        (status = 404, description = "no such upload of yours, or terminated"),
        (status = 410, description = "expired"), (status = 412, description = "wrong `Tus-Resumable`")))]
pub async fn head_upload(
    State(state): State<AppState>,
    Writer(caller): Writer,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    answer(head(&state, &caller, &id, &headers).await)
}

pub async fn head(
    state: &AppState,
    caller: &Caller,
    id: &str,
    headers: &HeaderMap,
) -> AppResult<Response> {
    protocol::check_version(headers)?;
    let mut upload = owned(state, caller, id).await?;
    if upload.state == "receiving" && upload.is_complete() {
        // Complete but not finished: the process that received the last byte died.
        let lease = Lease::take(state, id).await?;
        upload = owned(state, caller, id).await?;
        if upload.state == "receiving" && upload.is_complete() {
            let made = finish::finish(state, &upload, caller).await;
            lease.release().await;
            made?;
            upload = owned(state, caller, id).await?;
        }
    }
    let mut out = HeaderMap::new();
    out.insert("upload-offset", HeaderValue::from(upload.received));
    match upload.length {
        Some(n) => out.insert("upload-length", HeaderValue::from(n)),
        None => out.insert("upload-defer-length", HeaderValue::from_static("1")),
    };
    if let Some(raw) = &upload.raw_metadata {
        out.insert("upload-metadata", header_value(raw)?);
    }
    match upload.concat.as_str() {
        "partial" => {
            out.insert("upload-concat", HeaderValue::from_static("partial"));
        }
        "final" => {
            let urls: Vec<String> = upload
                .part_ids()
                .iter()
                .map(|p| format!("/api/v1/uploads/{p}"))
                .collect();
            out.insert(
                "upload-concat",
                header_value(&format!("final;{}", urls.join(" ")))?,
            );
        }
        _ => {}
    }
    if let Some(item) = &upload.item_id {
        out.insert("framehouse-media-id", header_value(item)?);
    } else {
        out.insert("upload-expires", expires(upload.expires_at));
    }
    Ok((StatusCode::OK, out).into_response())
}

#[utoipa::path(patch, path = "/api/v1/uploads/{id}", tag = "uploads", security(("bearer" = [])),
    params(("id" = String, Path), ("Tus-Resumable" = String, Header, description = "1.0.0"),
        ("Upload-Offset" = u64, Header, description = "where these bytes go: the stored offset"),
        ("Upload-Checksum" = Option<String>, Header, description = "`sha1|sha256|md5 base64digest` of this body (or sent as a trailer)"),
        ("Upload-Length" = Option<u64>, Header, description = "declares a deferred length, once")),
    request_body(content = Vec<u8>, content_type = "application/offset+octet-stream"),
    responses((status = 204, description = "stored; `Upload-Offset` is the new offset, `Framehouse-Media-Id` the item when this completed the upload"),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody, description = "a final upload"),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "`Upload-Offset` is not the stored offset"),
        (status = 410, body = ErrorBody), (status = 412, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "the completed file was refused, as an upload would be"),
        (status = 423, body = ErrorBody, description = "another request is writing to it"),
        (status = 460, body = ErrorBody, description = "checksum mismatch")))]
pub async fn patch_upload(
    State(state): State<AppState>,
    Writer(caller): Writer,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    answer(patch(&state, &caller, &id, request).await)
}

pub async fn patch(
    state: &AppState,
    caller: &Caller,
    id: &str,
    request: Request,
) -> AppResult<Response> {
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    protocol::check_version(headers)?;
    protocol::check_body_type(headers)?;
    let offset = protocol::number(headers, "upload-offset")?
        .ok_or_else(|| AppError::bad_request("missing_offset", "Upload-Offset is required"))?;
    let declared = protocol::number(headers, "upload-length")?;
    let verify = verify_of(headers)?;
    let upload = owned(state, caller, id).await?;
    if upload.concat == "final" {
        return Err(AppError::forbidden_code(
            "final_upload",
            "a final upload is made of its partial uploads and takes no bytes",
        ));
    }
    if upload.state != "receiving" {
        if offset == upload.received as u64 && upload.is_complete() {
            return Ok(done_response(&upload));
        }
        return Err(offset_conflict(&upload));
    }
    let lease = Lease::take(state, id).await?;
    let mut upload = owned(state, caller, id).await?;
    if upload.state != "receiving" {
        // Finished while this request waited for the lease.
        lease.release().await;
        if offset == upload.received as u64 && upload.is_complete() {
            return Ok(done_response(&upload));
        }
        return Err(offset_conflict(&upload));
    }
    if offset != upload.received as u64 {
        return Err(offset_conflict(&upload));
    }
    if let Some(length) = declared {
        declare_length(state, &mut upload, length).await?;
    }
    if upload.is_complete() {
        // Complete but not finished (the process that received the last byte died).
        let made = finish::finish(state, &upload, caller).await;
        lease.release().await;
        made?;
        let upload = owned(state, caller, id).await?;
        return Ok(done_response(&upload));
    }
    let written = write(state, caller, &lease, &upload, verify, body).await;
    lease.release().await;
    let (offset, media) = written?;
    let mut out = HeaderMap::new();
    out.insert("upload-offset", HeaderValue::from(offset));
    match media {
        Some(media) => out.insert("framehouse-media-id", header_value(&media)?),
        None => out.insert("upload-expires", expires(upload.expires_at.max(now_ms()))),
    };
    Ok((StatusCode::NO_CONTENT, out).into_response())
}

/// Receives a body into `upload` (lease held) and finishes it when complete: the new
/// offset and the item made.
async fn write(
    state: &AppState,
    caller: &Caller,
    lease: &Lease,
    upload: &UploadRow,
    verify: Verify,
    body: Body,
) -> AppResult<(u64, Option<String>)> {
    let limit = match upload.length {
        Some(n) => n as u64,
        None => {
            let quota = Quota::of(&state.db, &caller.user_id).await?;
            let max = state.settings.limits.max_upload_bytes;
            quota.remaining().map_or(max, |left| left.min(max))
        }
    };
    let offset = receive::receive(state, upload, lease, verify, limit, body).await?;
    if upload.length != Some(offset as i64) {
        return Ok((offset, None));
    }
    let upload = repo::get(&state.db, &upload.id)
        .await?
        .ok_or_else(|| AppError::not_found("upload"))?;
    let media = finish::finish(state, &upload, caller).await?;
    Ok((offset, media))
}

/// creation-defer-length: the length, declared once, no less than what is stored and
/// within the size limit and the quota.
async fn declare_length(state: &AppState, upload: &mut UploadRow, length: u64) -> AppResult<()> {
    match upload.length {
        // The same length again: a retry of the request that declared it.
        Some(known) if known as u64 == length => return Ok(()),
        Some(_) => {
            return Err(AppError::bad_request(
                "length_already_set",
                "Upload-Length was declared already and cannot change",
            ))
        }
        None => {}
    }
    if length < upload.received as u64 {
        return Err(AppError::bad_request(
            "invalid_length",
            "Upload-Length is less than what was uploaded already",
        ));
    }
    let limit = state.settings.limits.max_upload_bytes;
    if length > limit {
        return Err(crate::media::ingest::too_large(limit));
    }
    let quota = Quota::of(&state.db, &upload.owner_id).await?;
    let (_, pending) = repo::pending(&state.db, &upload.owner_id).await?;
    quota.check(length + (pending - upload.received).max(0) as u64)?;
    if !repo::set_length(&state.db, &upload.id, length as i64).await? {
        return Err(AppError::bad_request(
            "length_already_set",
            "Upload-Length was declared already and cannot change",
        ));
    }
    upload.length = Some(length as i64);
    Ok(())
}

#[utoipa::path(delete, path = "/api/v1/uploads/{id}", tag = "uploads", security(("bearer" = [])),
    params(("id" = String, Path), ("Tus-Resumable" = String, Header, description = "1.0.0")),
    responses((status = 204, description = "terminated: its bytes are gone (an item it became stays)"),
        (status = 404, body = ErrorBody), (status = 410, body = ErrorBody),
        (status = 412, body = ErrorBody), (status = 423, body = ErrorBody)))]
pub async fn delete_upload(
    State(state): State<AppState>,
    Writer(caller): Writer,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    answer(terminate(&state, &caller, &id, &headers).await)
}

pub async fn terminate(
    state: &AppState,
    caller: &Caller,
    id: &str,
    headers: &HeaderMap,
) -> AppResult<Response> {
    protocol::check_version(headers)?;
    owned(state, caller, id).await?;
    let lease = Lease::take(state, id).await?;
    let upload = owned(state, caller, id).await?;
    if upload.state == "done" && upload.concat != "partial" {
        let mut conn = state.db.pool.acquire().await?;
        repo::delete(&mut conn, id).await?;
    } else {
        discard(state, &upload).await;
    }
    lease.release().await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(post, path = "/api/v1/uploads/{id}", tag = "uploads", security(("bearer" = [])),
    params(("id" = String, Path), ("X-HTTP-Method-Override" = String, Header, description = "PATCH or DELETE")),
    responses((status = 204, description = "as the method named by `X-HTTP-Method-Override`"),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 405, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 410, body = ErrorBody),
        (status = 412, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 423, body = ErrorBody), (status = 460, body = ErrorBody)))]
pub async fn override_upload(
    State(state): State<AppState>,
    Writer(caller): Writer,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    let method = request
        .headers()
        .get("x-http-method-override")
        .and_then(|v| v.to_str().ok())
        .map(str::to_ascii_uppercase);
    match method.as_deref() {
        Some("PATCH") => answer(patch(&state, &caller, &id, request).await),
        Some("DELETE") => answer(terminate(&state, &caller, &id, &request.headers().clone()).await),
        _ => answer(Err(AppError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "POST to an upload needs X-HTTP-Method-Override: PATCH or DELETE",
        ))),
    }
}

#[utoipa::path(get, path = "/api/v1/uploads/{id}", tag = "uploads", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = UploadStatus), (status = 404, body = ErrorBody)))]
pub async fn get_upload(
    State(state): State<AppState>,
    Writer(caller): Writer,
    Path(id): Path<String>,
) -> AppResult<Json<UploadStatus>> {
    let upload = repo::get(&state.db, &id)
        .await?
        .filter(|u| u.owner_id == caller.user_id)
        .ok_or_else(|| AppError::not_found("upload"))?;
    Ok(Json(UploadStatus {
        metadata: serde_json::from_str(&upload.metadata).unwrap_or_default(),
        offset: upload.received,
        length: upload.length,
        state: upload.state,
        concat: upload.concat,
        media_id: upload.item_id,
        expires_at: upload.expires_at,
        created_at: upload.created_at,
        id: upload.id,
    }))
}

/// The caller's upload `id`: 404 when it is not there or not theirs, 410 once expired.
async fn owned(state: &AppState, caller: &Caller, id: &str) -> AppResult<UploadRow> {
    let upload = repo::get(&state.db, id)
        .await?
        .filter(|u| u.owner_id == caller.user_id)
        .ok_or_else(|| AppError::not_found("upload"))?;
    if upload.state == "expired" {
        return Err(AppError::new(
            StatusCode::GONE,
            "upload_expired",
            "the upload expired and its bytes were removed",
        ));
    }
    Ok(upload)
}

fn verify_of(headers: &HeaderMap) -> AppResult<Verify> {
    if let Some(checksum) = Checksum::from_headers(headers)? {
        return Ok(Verify::Header(checksum));
    }
    let announced = headers
        .get_all("trailer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|name| name.trim().eq_ignore_ascii_case("upload-checksum"));
    Ok(if announced {
        Verify::Trailer
    } else {
        Verify::None
    })
}

fn has_body(headers: &HeaderMap) -> bool {
    let length = headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    length.is_some_and(|n| n > 0) || headers.contains_key("transfer-encoding")
}

fn offset_conflict(upload: &UploadRow) -> AppError {
    AppError::conflict(
        "offset_mismatch",
        format!(
            "Upload-Offset must be the stored offset, {} (ask with HEAD)",
            upload.received
        ),
    )
}

fn done_response(upload: &UploadRow) -> Response {
    let mut out = HeaderMap::new();
    out.insert("upload-offset", HeaderValue::from(upload.received));
    if let Some(item) = upload
        .item_id
        .as_deref()
        .and_then(|i| HeaderValue::from_str(i).ok())
    {
        out.insert("framehouse-media-id", item);
    }
    (StatusCode::NO_CONTENT, out).into_response()
}

fn header_value(text: &str) -> AppResult<HeaderValue> {
    HeaderValue::from_str(text).map_err(AppError::internal)
}

fn expires(at_ms: i64) -> HeaderValue {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(at_ms.max(0) as u64);
    HeaderValue::from_str(&httpdate::fmt_http_date(at)).expect("an HTTP date is ASCII")
}

/// The scheme and host clients reach this server by: what a trusted proxy says in
/// `X-Forwarded-Proto` and `X-Forwarded-Host` (or `Host`), else `public_url`. A `Host`
/// from anyone else is not believed (it would let a client choose where others resume).
fn base_url(state: &AppState, parts: &Parts) -> String {
    let configured = state
        .settings
        .public_url()
        .trim_end_matches('/')
        .to_string();
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_canonical());
    let trusted = peer.is_some_and(|ip| {
        state
            .settings
            .trusted_proxies
            .iter()
            .any(|range| range.contains(&ip))
    });
    if !trusted {
        return configured;
    }
    let first = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let proto = match first("x-forwarded-proto") {
        Some("https") => "https",
        Some(_) => "http",
        None => return configured,
    };
    let host = first("x-forwarded-host").or_else(|| first("host"));
    match host {
        Some(host)
            if host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b)) =>
        {
            format!("{proto}://{host}")
        }
        _ => configured,
    }
}

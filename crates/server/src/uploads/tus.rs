//! The tus 1.0 endpoints on an upload: `OPTIONS` (what the server offers), `HEAD` (the
//! durable offset), `PATCH` (bytes at an offset), `DELETE` (termination), and a JSON
//! `GET` of an upload's state; creation is `creation.rs`. Only the owner sees an
//! upload; others get 404.

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
use super::protocol::{self, answer, Checksum};
use super::receive::{self, Verify};
use super::repo::{self, UploadRow};
use crate::identity::usage::Quota;
use crate::identity::{Caller, Writer};
use crate::kernel::error::{AppError, AppResult, ErrorBody};
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
            upload = finish_leftover(state, caller, &upload, lease).await?;
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
    let mut body = Some(body);
    let answered = patch_with(state, caller, id, &parts.headers, &mut body).await;
    let refused = answered.is_err();
    if let (true, Some(unread)) = (refused, body) {
        // Refused before its body was read: read a little of it first, or a client
        // still sending gets a reset instead of the answer.
        crate::media::ingest::linger_body(unread).await;
    }
    answered
}

async fn patch_with(
    state: &AppState,
    caller: &Caller,
    id: &str,
    headers: &HeaderMap,
    body: &mut Option<Body>,
) -> AppResult<Response> {
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
        let upload = finish_leftover(state, caller, &upload, lease).await?;
        return Ok(done_response(&upload));
    }
    let body = body.take().expect("the body is read once");
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

/// Finishes a complete upload whose last byte's process died before making its item,
/// under `lease` (released here); the upload as it is then.
async fn finish_leftover(
    state: &AppState,
    caller: &Caller,
    upload: &UploadRow,
    lease: Lease,
) -> AppResult<UploadRow> {
    let made = finish::finish(state, upload, caller).await;
    lease.release().await;
    made?;
    owned(state, caller, &upload.id).await
}

/// Receives a body into `upload` (lease held) and finishes it when complete: the new
/// offset and the item made.
pub(super) async fn write(
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
pub(super) async fn owned(state: &AppState, caller: &Caller, id: &str) -> AppResult<UploadRow> {
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

pub(super) fn verify_of(headers: &HeaderMap) -> AppResult<Verify> {
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

pub(super) fn has_body(headers: &HeaderMap) -> bool {
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

pub(super) fn header_value(text: &str) -> AppResult<HeaderValue> {
    HeaderValue::from_str(text).map_err(AppError::internal)
}

pub(super) fn expires(at_ms: i64) -> HeaderValue {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(at_ms.max(0) as u64);
    HeaderValue::from_str(&httpdate::fmt_http_date(at)).expect("an HTTP date is ASCII")
}

/// The scheme and host clients reach this server by: what a trusted proxy says in
/// `X-Forwarded-Proto` and `X-Forwarded-Host` (or `Host`), else `public_url`. A `Host`
/// from anyone else is not believed (it would let a client choose where others resume).
pub(super) fn base_url(state: &AppState, parts: &Parts) -> String {
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

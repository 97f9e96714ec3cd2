//! Direct-upload URLs (Mux and Cloudflare Stream style): an authenticated app asks for
//! a one-time, expiring URL with the item's fields, a size limit and the allowed kinds
//! fixed in advance, and hands it to a browser, which uploads to it without credentials
//! — by tus at the URL itself, or by a plain `PUT` of the file to `{url}/file`. The URL
//! carries a secret; only its SHA-256 is stored.

use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::Row;
use utoipa::ToSchema;

use super::creation::{self, Grant};
use super::protocol::{answer, Metadata};
use super::tus;
use crate::identity::{Caller, ClientInfo, Writer};
use crate::kernel::error::{AppError, AppJson, AppResult, ErrorBody};
use crate::kernel::ids::new_id;
use crate::kernel::time::now_ms;
use crate::media::ingest::{self, Allowed, UploadMeta};
use crate::media::Visibility;
use crate::AppState;

/// Media kinds a direct upload may be restricted to.
const KINDS: [&str; 3] = ["image", "video", "audio"];
/// The longest a direct-upload URL may wait for its upload: a week.
const MAX_TTL_SECS: u64 = 7 * 86_400;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDirectUpload {
    pub title: Option<String>,
    pub description: Option<String>,
    /// The item's tags.
    #[serde(default)]
    pub tags: Vec<String>,
    pub visibility: Option<Visibility>,
    /// The largest file accepted; default and ceiling `limits.max_upload_bytes`.
    pub max_bytes: Option<u64>,
    /// `image`, `video`, `audio`: what the file may be (default: any).
    pub kinds: Option<Vec<String>>,
    /// Seconds the URL waits for its upload; default 3600, at most a week.
    pub expires_in_secs: Option<u64>,
}

/// A direct-upload URL. `url` and `put_url` are shown only when it is made.
#[derive(Serialize, ToSchema)]
pub struct DirectUpload {
    pub id: String,
    /// The tus endpoint (creation at this URL, then `HEAD`/`PATCH` at the same URL).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `PUT` the whole file here instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub put_url: Option<String>,
    /// `waiting` (unused), `uploading`, `done`, or `expired` (never used in time).
    pub state: String,
    /// The item it made, once done.
    pub media_id: Option<String>,
    pub max_bytes: u64,
    pub kinds: Option<Vec<String>>,
    /// When an unused URL stops working (epoch ms).
    pub expires_at: i64,
    pub created_at: i64,
}

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[utoipa::path(post, path = "/api/v1/uploads/direct", tag = "uploads", security(("bearer" = [])),
    request_body = NewDirectUpload,
    responses((status = 201, body = DirectUpload, description = "the one-time URLs, shown this once"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_direct_upload(
    State(state): State<AppState>,
    Writer(caller): Writer,
    AppJson(body): AppJson<NewDirectUpload>,
) -> AppResult<(StatusCode, Json<DirectUpload>)> {
    crate::media::validate_meta(
        body.title.as_deref(),
        body.description.as_deref(),
        Some(&body.tags),
    )?;
    let ceiling = state.settings.limits.max_upload_bytes;
    let max_bytes = body.max_bytes.unwrap_or(ceiling);
    if max_bytes == 0 || max_bytes > ceiling {
        return Err(AppError::unprocessable(
            "invalid_max_bytes",
            format!("max_bytes must be between 1 and {ceiling}"),
        ));
    }
    if let Some(kind) = (body.kinds.iter().flatten()).find(|k| !KINDS.contains(&k.as_str())) {
        return Err(AppError::unprocessable(
            "invalid_kind",
            format!("`{kind}` is not one of {}", KINDS.join(", ")),
        ));
    }
    let ttl = body.expires_in_secs.unwrap_or(3600);
    if ttl == 0 || ttl > MAX_TTL_SECS {
        return Err(AppError::unprocessable(
            "invalid_expiry",
            format!("expires_in_secs must be between 1 and {MAX_TTL_SECS}"),
        ));
    }
    let meta = Metadata {
        title: body.title,
        description: body.description,
        tags: (!body.tags.is_empty()).then(|| body.tags.join(",")),
        visibility: body.visibility,
        ..Metadata::default()
    };
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let (id, now) = (new_id(), now_ms());
    let expires_at = now + ttl as i64 * 1000;
    let kinds_json = body
        .kinds
        .as_ref()
        .map(|k| serde_json::to_string(k).expect("strings"));
    sqlx::query(
        "INSERT INTO direct_uploads (id, owner_id, token_hash, metadata, max_bytes, kinds, state,
            expires_at, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, 'waiting', $7, $8)",
    )
    .bind(&id)
    .bind(&caller.user_id)
    .bind(hash(&token))
    .bind(serde_json::to_string(&meta).map_err(AppError::internal)?)
    .bind(max_bytes as i64)
    .bind(&kinds_json)
    .bind(expires_at)
    .bind(now)
    .execute(&state.db.pool)
    .await?;
    let url = format!(
        "{}/api/v1/direct-uploads/{token}",
        state.settings.public_url().trim_end_matches('/')
    );
    Ok((
        StatusCode::CREATED,
        Json(DirectUpload {
            id,
            put_url: Some(format!("{url}/file")),
            url: Some(url),
            state: "waiting".into(),
            media_id: None,
            max_bytes,
            kinds: body.kinds,
            expires_at,
            created_at: now,
        }),
    ))
}

#[utoipa::path(get, path = "/api/v1/uploads/direct/{id}", tag = "uploads", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = DirectUpload, description = "whether it was used, and the item it made"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_direct_upload(
    State(state): State<AppState>,
    Writer(caller): Writer,
    Path(id): Path<String>,
) -> AppResult<Json<DirectUpload>> {
    let row = sqlx::query(
        "SELECT d.id, d.max_bytes, d.kinds, d.state, d.expires_at, d.created_at,
                COALESCE(d.item_id, u.item_id) AS item_id
         FROM direct_uploads d LEFT JOIN uploads u ON u.id = d.upload_id
         WHERE d.id = $1 AND d.owner_id = $2",
    )
    .bind(&id)
    .bind(&caller.user_id)
    .fetch_optional(&state.db.pool)
    .await?
    .ok_or_else(|| AppError::not_found("direct upload"))?;
    let media_id: Option<String> = row.try_get("item_id")?;
    let expires_at: i64 = row.try_get("expires_at")?;
    let stored: String = row.try_get("state")?;
    let state_now = match (&media_id, stored.as_str()) {
        (Some(_), _) => "done".to_string(),
        (None, "waiting") if expires_at < now_ms() => "expired".to_string(),
        _ => stored,
    };
    let kinds: Option<String> = row.try_get("kinds")?;
    Ok(Json(DirectUpload {
        id: row.try_get("id")?,
        url: None,
        put_url: None,
        state: state_now,
        media_id,
        max_bytes: row.try_get::<i64, _>("max_bytes")? as u64,
        kinds: kinds.and_then(|k| serde_json::from_str(&k).ok()),
        expires_at,
        created_at: row.try_get("created_at")?,
    }))
}

/// A direct upload found by its URL's secret.
struct Direct {
    id: String,
    owner_id: String,
    meta: Metadata,
    max_bytes: u64,
    kinds: Option<Vec<String>>,
    state: String,
    upload_id: Option<String>,
    expires_at: i64,
}

impl Direct {
    fn caller(&self) -> Caller {
        Caller::granted(&self.owner_id, &self.id)
    }
}

async fn find(state: &AppState, token: &str) -> AppResult<Direct> {
    let row = sqlx::query(
        "SELECT id, owner_id, metadata, max_bytes, kinds, state, upload_id, expires_at
         FROM direct_uploads WHERE token_hash = $1",
    )
    .bind(hash(token))
    .fetch_optional(&state.db.pool)
    .await?
    .ok_or_else(|| AppError::not_found("direct upload"))?;
    let metadata: String = row.try_get("metadata")?;
    let kinds: Option<String> = row.try_get("kinds")?;
    Ok(Direct {
        id: row.try_get("id")?,
        owner_id: row.try_get("owner_id")?,
        meta: serde_json::from_str(&metadata).map_err(AppError::internal)?,
        max_bytes: row.try_get::<i64, _>("max_bytes")? as u64,
        kinds: kinds.and_then(|k| serde_json::from_str(&k).ok()),
        state: row.try_get("state")?,
        upload_id: row.try_get("upload_id")?,
        expires_at: row.try_get("expires_at")?,
    })
}

/// Takes an unused, unexpired URL for one upload (`upload_id`, or `None` for a `PUT`):
/// 410 once expired, 409 once used. A URL whose tus upload was refused at its last byte
/// (the upload is gone, no item was made) is unused again.
async fn claim(state: &AppState, direct: &Direct, upload_id: Option<&str>) -> AppResult<()> {
    if direct.state != "done" && direct.expires_at < now_ms() {
        return Err(AppError::new(
            StatusCode::GONE,
            "direct_upload_expired",
            "this upload URL expired unused",
        ));
    }
    let done = sqlx::query(
        "UPDATE direct_uploads SET state = 'uploading', upload_id = $1
         WHERE id = $2 AND expires_at >= $3 AND item_id IS NULL
           AND (state = 'waiting'
                OR (state = 'uploading' AND upload_id IS NOT NULL
                    AND NOT EXISTS (SELECT 1 FROM uploads u WHERE u.id = direct_uploads.upload_id)))",
    )
    .bind(upload_id)
    .bind(&direct.id)
    .bind(now_ms())
    .execute(&state.db.pool)
    .await?;
    if done.rows_affected() == 1 {
        return Ok(());
    }
    Err(AppError::conflict(
        "direct_upload_used",
        "this upload URL was used already",
    ))
}

/// Frees a claimed URL again after an attempt that made nothing (a refused file), so
/// the browser can try once more.
async fn unclaim(state: &AppState, direct: &Direct) {
    let _ = sqlx::query(
        "UPDATE direct_uploads SET state = 'waiting', upload_id = NULL
         WHERE id = $1 AND state = 'uploading' AND item_id IS NULL",
    )
    .bind(&direct.id)
    .execute(&state.db.pool)
    .await;
}

async fn mark_done(state: &AppState, direct: &Direct, media_id: &str) -> AppResult<()> {
    sqlx::query("UPDATE direct_uploads SET state = 'done', item_id = $1 WHERE id = $2")
        .bind(media_id)
        .bind(&direct.id)
        .execute(&state.db.pool)
        .await?;
    Ok(())
}

/// The item a tus answer names, if any.
fn named_item(response: &Response) -> Option<String> {
    response
        .headers()
        .get("framehouse-media-id")
        .and_then(|v| v.to_str().ok())
        .map(String::from)
}

/// Records the item a tus answer named.
async fn note_item(state: &AppState, direct: &Direct, media: Option<String>) -> AppResult<()> {
    match media {
        Some(media) => mark_done(state, direct, &media).await,
        None => Ok(()),
    }
}

#[utoipa::path(post, path = "/api/v1/direct-uploads/{token}", tag = "uploads",
    params(("token" = String, Path, description = "the secret of the URL"),
        ("Tus-Resumable" = String, Header, description = "1.0.0"),
        ("Upload-Length" = u64, Header, description = "the file's size, within the URL's limit")),
    request_body(content = Vec<u8>, content_type = "application/offset+octet-stream",
        description = "optional: the first bytes (creation-with-upload)"),
    responses((status = 201, description = "created at this same URL (`Location`)"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "used already"),
        (status = 410, body = ErrorBody, description = "expired unused"),
        (status = 412, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn create_direct(
    State(state): State<AppState>,
    Path(token): Path<String>,
    client: ClientInfo,
    request: Request,
) -> Response {
    let result = async {
        let direct = find(&state, &token).await?;
        let upload_id = new_id();
        claim(&state, &direct, Some(&upload_id)).await?;
        let grant = Grant {
            id: upload_id,
            path: format!("/api/v1/direct-uploads/{token}"),
            meta: direct.meta.clone(),
            kinds: direct.kinds.clone(),
            max_bytes: direct.max_bytes,
        };
        let made = creation::create(&state, &direct.caller(), &client, request, Some(grant)).await;
        let (named, failed) = match &made {
            Ok(response) => (named_item(response), false),
            Err(_) => (None, true),
        };
        note_item(&state, &direct, named).await?;
        // Nothing was created: the URL stays usable.
        if failed && !exists(&state, &direct).await {
            unclaim(&state, &direct).await;
        }
        made
    }
    .await;
    answer(result)
}

async fn exists(state: &AppState, direct: &Direct) -> bool {
    let Ok(row) = sqlx::query(
        "SELECT 1 FROM uploads u JOIN direct_uploads d ON d.upload_id = u.id WHERE d.id = $1",
    )
    .bind(&direct.id)
    .fetch_optional(&state.db.pool)
    .await
    else {
        return true;
    };
    row.is_some()
}

/// The upload a used URL leads to.
async fn upload_of(state: &AppState, token: &str) -> AppResult<(Direct, String)> {
    let direct = find(state, token).await?;
    match direct.upload_id.clone() {
        Some(id) => Ok((direct, id)),
        None => Err(AppError::not_found("upload")),
    }
}

#[utoipa::path(head, path = "/api/v1/direct-uploads/{token}", tag = "uploads",
    params(("token" = String, Path), ("Tus-Resumable" = String, Header, description = "1.0.0")),
    responses((status = 200, description = "as `HEAD /api/v1/uploads/{id}`"), (status = 404, description = "not created yet")))]
pub async fn head_direct(
    State(state): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    let result = async {
        let (direct, id) = upload_of(&state, &token).await?;
        let response = tus::head(&state, &direct.caller(), &id, &headers).await?;
        note_item(&state, &direct, named_item(&response)).await?;
        Ok(response)
    }
    .await;
    answer(result)
}

#[utoipa::path(patch, path = "/api/v1/direct-uploads/{token}", tag = "uploads",
    params(("token" = String, Path), ("Tus-Resumable" = String, Header, description = "1.0.0"),
        ("Upload-Offset" = u64, Header)),
    request_body(content = Vec<u8>, content_type = "application/offset+octet-stream"),
    responses((status = 204, description = "as `PATCH /api/v1/uploads/{id}`"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 410, body = ErrorBody), (status = 412, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody), (status = 423, body = ErrorBody),
        (status = 460, body = ErrorBody)))]
pub async fn patch_direct(
    State(state): State<AppState>,
    Path(token): Path<String>,
    request: Request,
) -> Response {
    let result = async {
        let (direct, id) = upload_of(&state, &token).await?;
        let response = tus::patch(&state, &direct.caller(), &id, request).await?;
        note_item(&state, &direct, named_item(&response)).await?;
        Ok(response)
    }
    .await;
    answer(result)
}

#[utoipa::path(delete, path = "/api/v1/direct-uploads/{token}", tag = "uploads",
    params(("token" = String, Path), ("Tus-Resumable" = String, Header, description = "1.0.0")),
    responses((status = 204, description = "terminated; the URL is spent"),
        (status = 404, body = ErrorBody), (status = 412, body = ErrorBody), (status = 423, body = ErrorBody)))]
pub async fn delete_direct(
    State(state): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    let result = async {
        let (direct, id) = upload_of(&state, &token).await?;
        tus::terminate(&state, &direct.caller(), &id, &headers).await
    }
    .await;
    answer(result)
}

#[utoipa::path(put, path = "/api/v1/direct-uploads/{token}/file", tag = "uploads",
    params(("token" = String, Path)),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "the whole file"),
    responses((status = 201, description = "the item was made; `Framehouse-Media-Id` names it"),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 410, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
pub async fn put_direct(
    State(state): State<AppState>,
    Path(token): Path<String>,
    client: ClientInfo,
    request: Request,
) -> AppResult<Response> {
    let found = match find(&state, &token).await {
        Ok(direct) => claim(&state, &direct, None).await.map(|_| direct),
        Err(e) => Err(e),
    };
    let direct = match found {
        Ok(direct) => direct,
        Err(e) => {
            // Refused before the body is read: read a little of it first, or a client
            // still sending gets a reset (or a dead pooled connection) instead of this.
            crate::media::ingest::linger_body(request.into_body()).await;
            return Err(e);
        }
    };
    let meta = UploadMeta {
        title: direct.meta.title.clone(),
        description: direct.meta.description.clone(),
        tags: direct.meta.tags.clone(),
        visibility: direct.meta.visibility,
        watermark: None,
    };
    let allowed = Allowed {
        max_bytes: direct.max_bytes,
        kinds: direct.kinds.clone(),
    };
    match ingest::ingest_raw(&state, &direct.caller(), &client, &meta, request, &allowed).await {
        Ok(media) => {
            mark_done(&state, &direct, &media).await?;
            let body = serde_json::json!({ "media_id": media });
            let mut response = (StatusCode::CREATED, Json(body)).into_response();
            response.headers_mut().insert(
                "framehouse-media-id",
                media.parse().map_err(AppError::internal)?,
            );
            Ok(response)
        }
        Err(e) => {
            unclaim(&state, &direct).await;
            Err(e)
        }
    }
}

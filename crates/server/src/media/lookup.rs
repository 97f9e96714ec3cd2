//! `POST /api/v1/media/lookup`: which of these SHA-256 digests the caller already has as
//! items, so a client (`framehouse upload`) can skip files it uploaded before. Only the
//! caller's own items answer: another account's files are never revealed.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use utoipa::ToSchema;

use crate::identity::Caller;
use crate::kernel::db::placeholders;
use crate::kernel::error::{AppError, AppJson, AppResult, ErrorBody};
use crate::AppState;

/// Digests asked about in one request.
const MAX: usize = 1000;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Lookup {
    /// SHA-256 digests (lowercase hex) of whole files.
    pub sha256: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Found {
    /// For each digest the caller has, the id of one of their items with those bytes.
    pub items: BTreeMap<String, String>,
}

#[utoipa::path(post, path = "/api/v1/media/lookup", tag = "media", security(("bearer" = [])),
    request_body = Lookup,
    responses((status = 200, body = Found), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn lookup_media(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(body): AppJson<Lookup>,
) -> AppResult<Json<Found>> {
    if body.sha256.len() > MAX {
        return Err(AppError::unprocessable(
            "too_many_digests",
            format!("at most {MAX} digests per request"),
        ));
    }
    let valid = |d: &String| d.len() == 64 && d.bytes().all(|b| b.is_ascii_hexdigit());
    if let Some(bad) = body.sha256.iter().find(|d| !valid(d)) {
        return Err(AppError::unprocessable(
            "invalid_digest",
            format!("`{bad}` is not a hex SHA-256"),
        ));
    }
    let mut items = BTreeMap::new();
    if body.sha256.is_empty() {
        return Ok(Json(Found { items }));
    }
    let digests: Vec<String> = body.sha256.iter().map(|d| d.to_ascii_lowercase()).collect();
    let list = placeholders(2, digests.len());
    // An item with something burned in is keyed by content + addition; its upload's
    // digest is `content_sha256`.
    let sql = format!(
        "SELECT m.id, COALESCE(b.content_sha256, b.sha256) AS sha256
         FROM media m JOIN blobs b ON b.id = m.blob_id
         WHERE m.owner_id = $1 AND COALESCE(b.content_sha256, b.sha256) IN ({list})"
    );
    let mut query = sqlx::query(&sql).bind(&caller.user_id);
    for d in &digests {
        query = query.bind(d);
    }
    for row in query.fetch_all(&state.db.reader().pool).await? {
        items.insert(row.try_get("sha256")?, row.try_get("id")?);
    }
    Ok(Json(Found { items }))
}

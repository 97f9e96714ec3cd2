//! API keys for programs: `fh_…` bearer credentials with scopes, shown once and stored
//! as a hash, with an optional expiry and a last-used time.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::audit::AuditEvent;
use super::auth::{Account, ClientInfo, Scope, Scopes, API_KEY_PREFIX};
use super::{random_secret, secret_hash};
use crate::kernel::error::{AppError, AppJson, AppResult, ErrorBody};
use crate::kernel::ids::new_id;
use crate::kernel::time::{now_ms, rfc3339};
use crate::AppState;

/// Keys a user may hold at once.
const MAX_KEYS: i64 = 100;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_api_key, list_api_keys))
        .routes(routes!(revoke_api_key))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    /// What the key is for, 1–100 characters.
    pub name: String,
    /// Any of `media:read`, `media:write`, `media:delete`, `admin` (admins only).
    pub scopes: Vec<String>,
    /// Days until the key stops working; without it the key lasts until revoked.
    pub expires_in_days: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct ApiKeyView {
    pub id: String,
    pub name: String,
    /// The first characters of the key, to recognise it.
    pub hint: String,
    pub scopes: Vec<&'static str>,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub last_used_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedApiKey {
    #[serde(flatten)]
    pub view: ApiKeyView,
    /// The key itself. It is shown only now; store it safely.
    pub key: String,
}

#[utoipa::path(post, path = "/api/v1/api-keys", tag = "auth", security(("bearer" = [])), request_body = CreateApiKey,
    responses((status = 201, body = CreatedApiKey), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_api_key(
    State(state): State<AppState>,
    Account(caller): Account,
    client: ClientInfo,
    AppJson(req): AppJson<CreateApiKey>,
) -> AppResult<(StatusCode, Json<CreatedApiKey>)> {
    let name = req.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(AppError::unprocessable(
            "invalid_name",
            "name must be 1–100 characters",
        ));
    }
    let scopes = Scopes::parse(req.scopes.iter().map(String::as_str)).map_err(|unknown| {
        AppError::unprocessable("invalid_scope", format!("unknown scope `{unknown}`"))
    })?;
    if scopes == Scopes::default() {
        return Err(AppError::unprocessable(
            "invalid_scope",
            "give the key at least one scope",
        ));
    }
    if scopes.contains(Scope::Admin) && !caller.is_admin {
        return Err(AppError::forbidden(
            "only administrators may create `admin` keys",
        ));
    }
    let held: i64 =
        sqlx::query("SELECT COUNT(*) AS n FROM api_keys WHERE user_id = $1 AND revoked_at IS NULL")
            .bind(&caller.user_id)
            .fetch_one(&state.db.pool)
            .await?
            .try_get("n")?;
    if held >= MAX_KEYS {
        return Err(AppError::unprocessable(
            "too_many_keys",
            format!("at most {MAX_KEYS} keys; revoke some first"),
        ));
    }
    let key = random_secret(API_KEY_PREFIX);
    let now = now_ms();
    let expires_at = req
        .expires_in_days
        .map(|days| now + i64::from(days.clamp(1, 3650)) * 86_400_000);
    let view = ApiKeyView {
        id: new_id(),
        name,
        hint: key.chars().take(10).collect(),
        scopes: scopes.names(),
        created_at: rfc3339(now),
        expires_at: expires_at.map(rfc3339),
        last_used_at: None,
    };
    sqlx::query(
        "INSERT INTO api_keys (id, user_id, name, hash, hint, scopes, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&view.id)
    .bind(&caller.user_id)
    .bind(&view.name)
    .bind(secret_hash(&key))
    .bind(&view.hint)
    .bind(scopes.to_db())
    .bind(now)
    .bind(expires_at)
    .execute(&state.db.pool)
    .await?;
    AuditEvent::by_user("api_key_created", &caller.user_id, &client)
        .detail(serde_json::json!({ "key_id": view.id, "scopes": view.scopes }))
        .record(&state.db)
        .await;
    Ok((StatusCode::CREATED, Json(CreatedApiKey { view, key })))
}

#[utoipa::path(get, path = "/api/v1/api-keys", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = [ApiKeyView]), (status = 401, body = ErrorBody)))]
pub async fn list_api_keys(
    State(state): State<AppState>,
    Account(caller): Account,
) -> AppResult<Json<Vec<ApiKeyView>>> {
    let rows =
        sqlx::query("SELECT * FROM api_keys WHERE user_id = $1 AND revoked_at IS NULL ORDER BY id")
            .bind(&caller.user_id)
            .fetch_all(&state.db.pool)
            .await?;
    let views = rows
        .iter()
        .map(|row| {
            Ok(ApiKeyView {
                id: row.try_get("id")?,
                name: row.try_get("name")?,
                hint: row.try_get("hint")?,
                scopes: Scopes::from_db(&row.try_get::<String, _>("scopes")?).names(),
                created_at: rfc3339(row.try_get("created_at")?),
                expires_at: row.try_get::<Option<i64>, _>("expires_at")?.map(rfc3339),
                last_used_at: row.try_get::<Option<i64>, _>("last_used_at")?.map(rfc3339),
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(Json(views))
}

#[utoipa::path(delete, path = "/api/v1/api-keys/{id}", tag = "auth", security(("bearer" = [])),
    params(("id" = String, Path, description = "API key id")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn revoke_api_key(
    State(state): State<AppState>,
    Account(caller): Account,
    client: ClientInfo,
    Path(id): Path<String>,
) -> AppResult<StatusCode> {
    let done = sqlx::query(
        "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL",
    )
    .bind(now_ms())
    .bind(&id)
    .bind(&caller.user_id)
    .execute(&state.db.pool)
    .await?;
    if done.rows_affected() == 0 {
        return Err(AppError::not_found("API key"));
    }
    state.identity.auth.forget();
    AuditEvent::by_user("api_key_revoked", &caller.user_id, &client)
        .detail(serde_json::json!({ "key_id": id }))
        .record(&state.db)
        .await;
    Ok(StatusCode::NO_CONTENT)
}

//! Sessions: one per signed-in device, each a family of refresh tokens. A refresh token
//! works once and is replaced; presenting a used one again means it was copied, so the
//! whole family is revoked (OAuth 2.0 Security BCP §4.14 "refresh token rotation").

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use utoipa::ToSchema;

use super::audit::AuditEvent;
use super::auth::{Account, ClientInfo};
use super::{random_secret, rate_limit, secret_hash};
use crate::kernel::db::Db;
use crate::kernel::error::{AppError, AppJson, AppResult, ErrorBody};
use crate::kernel::ids::new_id;
use crate::kernel::time::{now_ms, rfc3339};
use crate::AppState;

const REFRESH_PREFIX: &str = "fhr_";

#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Single use: exchange it at `POST /api/v1/auth/refresh` for a new pair.
    pub refresh_token: String,
    /// Seconds the session lasts unused.
    pub refresh_expires_in: u64,
    pub session_id: String,
}

#[derive(Deserialize, ToSchema)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[derive(Deserialize, ToSchema, Default)]
pub struct LogoutRequest {
    /// Ends this token's session; without it, the session of the access token sent.
    pub refresh_token: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct SessionView {
    pub id: String,
    /// `password`, `oidc:<provider>` or `password_reset`.
    pub method: String,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub created_at: String,
    pub last_used_at: String,
    pub expires_at: String,
    /// The session of the token that asked.
    pub current: bool,
}

fn token_response(
    state: &AppState,
    user_id: &str,
    session_id: &str,
    refresh: String,
) -> AppResult<TokenResponse> {
    Ok(TokenResponse {
        access_token: state.identity.auth.jwt.issue(user_id, session_id)?,
        token_type: "Bearer",
        expires_in: state.identity.auth.jwt.ttl_secs,
        refresh_token: refresh,
        refresh_expires_in: state.settings.auth.refresh_token_ttl_secs,
        session_id: session_id.to_string(),
    })
}

/// Opens a session for a user who just proved who they are.
pub async fn start(
    state: &AppState,
    user_id: &str,
    method: &str,
    client: &ClientInfo,
) -> AppResult<TokenResponse> {
    let id = new_id();
    let now = now_ms();
    let expires_at = session_expiry(state, now, now);
    let refresh = random_secret(REFRESH_PREFIX);
    let mut tx = state.db.begin_write().await?;
    sqlx::query(
        "INSERT INTO sessions (id, user_id, method, user_agent, ip, created_at, last_used_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $6, $7)",
    )
    .bind(&id)
    .bind(user_id)
    .bind(method)
    .bind(&client.user_agent)
    .bind(client.ip_text())
    .bind(now)
    .bind(expires_at)
    .execute(&mut *tx)
    .await?;
    insert_refresh(&mut tx, &id, &refresh, now).await?;
    tx.commit().await?;
    token_response(state, user_id, &id, refresh)
}

async fn insert_refresh(
    conn: &mut sqlx::AnyConnection,
    session_id: &str,
    token: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO refresh_tokens (hash, session_id, created_at) VALUES ($1, $2, $3)")
        .bind(secret_hash(token))
        .bind(session_id)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

/// Revokes a session (a no-op when already revoked). Returns whether it was active.
pub async fn revoke(db: &Db, session_id: &str, reason: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE sessions SET revoked_at = $1, revoked_reason = $2
         WHERE id = $3 AND revoked_at IS NULL",
    )
    .bind(now_ms())
    .bind(reason)
    .bind(session_id)
    .execute(&db.pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Revokes every session of a user, but `keep` if given.
pub async fn revoke_all(
    db: &Db,
    user_id: &str,
    keep: Option<&str>,
    reason: &str,
) -> Result<u64, sqlx::Error> {
    let mut conn = db.pool.acquire().await?;
    revoke_all_in(&mut conn, user_id, keep, reason).await
}

/// [`revoke_all`] on a given connection (inside a transaction).
pub async fn revoke_all_in(
    conn: &mut sqlx::AnyConnection,
    user_id: &str,
    keep: Option<&str>,
    reason: &str,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE sessions SET revoked_at = $1, revoked_reason = $2
         WHERE user_id = $3 AND revoked_at IS NULL AND id <> $4",
    )
    .bind(now_ms())
    .bind(reason)
    .bind(user_id)
    .bind(keep.unwrap_or(""))
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected())
}

/// How long ended sessions, used refresh tokens and spent reset tokens are kept. A used
/// refresh token replayed within this time revokes its session; after it, it is merely
/// unknown (401).
const KEEP_MS: i64 = 30 * 86_400_000;

/// Deletes identity rows nobody can use any more, and audit events older than
/// `audit_retention`; run periodically (`prune_identity`).
pub async fn prune(db: &Db, audit_retention: std::time::Duration) -> Result<(), sqlx::Error> {
    let horizon = now_ms() - KEEP_MS;
    let statements = [
        "DELETE FROM refresh_tokens WHERE used_at < $1",
        "DELETE FROM password_resets WHERE expires_at < $1",
        "DELETE FROM sessions WHERE revoked_at < $1 OR expires_at < $1",
    ];
    for sql in statements {
        sqlx::query(sql).bind(horizon).execute(&db.pool).await?;
    }
    for sql in [
        "DELETE FROM oidc_logins WHERE created_at < $1",
        "DELETE FROM login_codes WHERE created_at < $1",
    ] {
        sqlx::query(sql)
            .bind(now_ms() - 3_600_000)
            .execute(&db.pool)
            .await?;
    }
    sqlx::query("DELETE FROM audit_log WHERE at < $1")
        .bind(now_ms() - audit_retention.as_millis() as i64)
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// When a session used at `now` ends: idle lifetime from now, capped by the absolute
/// lifetime from sign-in.
fn session_expiry(state: &AppState, created_at: i64, now: i64) -> i64 {
    let auth = &state.settings.auth;
    (now + auth.refresh_token_ttl_secs as i64 * 1000)
        .min(created_at + auth.session_max_lifetime_secs as i64 * 1000)
}

fn refresh_refused(message: &str) -> AppError {
    AppError::new(StatusCode::UNAUTHORIZED, "invalid_refresh_token", message)
}

#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = TokenResponse), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn refresh_tokens(
    State(state): State<AppState>,
    client: ClientInfo,
    AppJson(req): AppJson<RefreshRequest>,
) -> AppResult<Json<TokenResponse>> {
    let rules = &state.settings.auth.rate_limits;
    rate_limit(
        &state,
        "refresh_ip",
        &client.rate_key(),
        &rules.refresh_per_ip,
    )
    .await?;
    let hash = secret_hash(&req.refresh_token);
    let mut tx = state.db.begin_write().await?;
    let row = sqlx::query(
        "SELECT r.session_id, r.used_at, s.user_id, s.created_at, s.revoked_at, s.expires_at,
                u.disabled_at
         FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id
         JOIN users u ON u.id = s.user_id WHERE r.hash = $1",
    )
    .bind(&hash)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| refresh_refused("unknown refresh token"))?;
    let session_id: String = row.try_get("session_id")?;
    let user_id: String = row.try_get("user_id")?;
    rate_limit(
        &state,
        "refresh_session",
        &session_id,
        &rules.refresh_per_session,
    )
    .await?;
    let now = now_ms();
    let active = row.try_get::<Option<i64>, _>("revoked_at")?.is_none()
        && row.try_get::<Option<i64>, _>("disabled_at")?.is_none()
        && row.try_get::<i64, _>("expires_at")? > now;
    if !active {
        return Err(refresh_refused("this session has ended; sign in again"));
    }
    // Claim the token; zero rows means it was used before (now or concurrently).
    let claimed =
        sqlx::query("UPDATE refresh_tokens SET used_at = $1 WHERE hash = $2 AND used_at IS NULL")
            .bind(now)
            .bind(&hash)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
    if !claimed {
        tx.rollback().await?;
        revoke(&state.db, &session_id, "refresh_token_reuse").await?;
        state.identity.auth.forget();
        AuditEvent::new("token_reuse")
            .user(&user_id)
            .client(&client)
            .detail(serde_json::json!({ "session_id": session_id }))
            .record(&state.db)
            .await;
        return Err(AppError::new(
            StatusCode::UNAUTHORIZED,
            "refresh_token_reused",
            "this refresh token was already used; the session is revoked, sign in again",
        ));
    }
    let refresh = random_secret(REFRESH_PREFIX);
    insert_refresh(&mut tx, &session_id, &refresh, now).await?;
    sqlx::query(
        "UPDATE sessions SET last_used_at = $1, expires_at = $2, ip = $3, user_agent = COALESCE($4, user_agent)
         WHERE id = $5",
    )
    .bind(now)
    .bind(session_expiry(&state, row.try_get("created_at")?, now))
    .bind(client.ip_text())
    .bind(&client.user_agent)
    .bind(&session_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Json(token_response(
        &state,
        &user_id,
        &session_id,
        refresh,
    )?))
}

#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", request_body = LogoutRequest,
    responses((status = 204), (status = 401, body = ErrorBody)))]
pub async fn logout(
    State(state): State<AppState>,
    account: Result<Account, AppError>,
    body: Result<AppJson<LogoutRequest>, AppError>,
) -> AppResult<StatusCode> {
    let by_refresh = body.ok().and_then(|AppJson(b)| b.refresh_token);
    let session_id = match (by_refresh, account.ok()) {
        (Some(token), _) => sqlx::query("SELECT session_id FROM refresh_tokens WHERE hash = $1")
            .bind(secret_hash(&token))
            .fetch_optional(&state.db.pool)
            .await?
            .map(|row| row.try_get::<String, _>("session_id"))
            .transpose()?
            .ok_or_else(|| refresh_refused("unknown refresh token"))?,
        (None, Some(Account(caller))) => caller.session_id().unwrap_or_default().to_string(),
        (None, None) => {
            return Err(AppError::unauthorized(
                "send the session's access token or its refresh token",
            ))
        }
    };
    revoke(&state.db, &session_id, "logout").await?;
    state.identity.auth.forget();
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/auth/sessions", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = [SessionView]), (status = 401, body = ErrorBody)))]
pub async fn list_sessions(
    State(state): State<AppState>,
    Account(caller): Account,
) -> AppResult<Json<Vec<SessionView>>> {
    let rows = sqlx::query(
        "SELECT * FROM sessions WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2
         ORDER BY id DESC LIMIT 500",
    )
    .bind(&caller.user_id)
    .bind(now_ms())
    .fetch_all(&state.db.pool)
    .await?;
    let current = caller.session_id().unwrap_or_default();
    let views = rows
        .iter()
        .map(|row| {
            let id: String = row.try_get("id")?;
            Ok(SessionView {
                current: id == current,
                id,
                method: row.try_get("method")?,
                user_agent: row.try_get("user_agent")?,
                ip: row.try_get("ip")?,
                created_at: rfc3339(row.try_get("created_at")?),
                last_used_at: rfc3339(row.try_get("last_used_at")?),
                expires_at: rfc3339(row.try_get("expires_at")?),
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(Json(views))
}

#[utoipa::path(delete, path = "/api/v1/auth/sessions/{id}", tag = "auth", security(("bearer" = [])),
    params(("id" = String, Path, description = "session id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke_session(
    State(state): State<AppState>,
    Account(caller): Account,
    client: ClientInfo,
    Path(id): Path<String>,
) -> AppResult<StatusCode> {
    let done = sqlx::query(
        "UPDATE sessions SET revoked_at = $1, revoked_reason = 'revoked_by_user'
         WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL",
    )
    .bind(now_ms())
    .bind(&id)
    .bind(&caller.user_id)
    .execute(&state.db.pool)
    .await?;
    if done.rows_affected() == 0 {
        return Err(AppError::not_found("session"));
    }
    state.identity.auth.forget();
    AuditEvent::by_user("session_revoked", &caller.user_id, &client)
        .detail(serde_json::json!({ "session_id": id }))
        .record(&state.db)
        .await;
    Ok(StatusCode::NO_CONTENT)
}

//! The account lifecycle: who am I, change password, password reset by token, and
//! deleting the account with everything in it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::audit::AuditEvent;
use super::auth::{Account, Caller, ClientInfo};
use super::notify::Notice;
use super::{password, random_secret, rate_limit, secret_hash, sessions, users, UserView};
use crate::kernel::error::{AppError, AppJson, AppResult, ErrorBody};
use crate::kernel::time::{now_ms, rfc3339};
use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_account, delete_account))
        .routes(routes!(change_password))
        .routes(routes!(request_password_reset))
        .routes(routes!(confirm_password_reset))
}

#[derive(Serialize, ToSchema)]
pub struct AccountView {
    #[serde(flatten)]
    pub user: UserView,
    /// Bytes of originals owned.
    pub used_bytes: i64,
    pub items: i64,
    /// Whether the account has a password (OpenID-only accounts do not).
    pub has_password: bool,
}

#[derive(Deserialize, ToSchema)]
pub struct ChangePassword {
    /// Required when the account has a password.
    pub current_password: Option<String>,
    pub new_password: String,
}

#[derive(Deserialize, ToSchema)]
pub struct DeleteAccount {
    /// Required when the account has a password.
    pub password: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct ResetRequest {
    /// The username or the email address of the account.
    pub login: String,
}

#[derive(Deserialize, ToSchema)]
pub struct ResetConfirm {
    pub token: String,
    pub new_password: String,
}

async fn load_user(state: &AppState, id: &str) -> AppResult<users::User> {
    users::find_by_id(&state.db, id)
        .await?
        .ok_or_else(|| AppError::unauthorized("this account no longer exists"))
}

#[utoipa::path(get, path = "/api/v1/account", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = AccountView), (status = 401, body = ErrorBody)))]
pub async fn get_account(
    State(state): State<AppState>,
    caller: Caller,
) -> AppResult<Json<AccountView>> {
    let user = load_user(&state, &caller.user_id).await?;
    let has_password = !user.password_hash.is_empty();
    Ok(Json(AccountView {
        used_bytes: user.used_bytes,
        items: user.item_count,
        user: user.into(),
        has_password,
    }))
}

/// Proves the holder of this session is the account's owner. With a password: the
/// current one, limited and counted like a login, so a stolen token does not allow
/// guessing it. Without one (OpenID-only accounts): a sign-in within ten minutes.
async fn confirm_password(
    state: &AppState,
    user: &users::User,
    caller: &Caller,
    given: Option<String>,
) -> AppResult<()> {
    if user.password_hash.is_empty() {
        let signed_in: Option<i64> = sqlx::query("SELECT created_at FROM sessions WHERE id = $1")
            .bind(caller.session_id().unwrap_or_default())
            .fetch_optional(&state.db.pool)
            .await?
            .map(|row| row.try_get("created_at"))
            .transpose()?;
        if signed_in.is_none_or(|at| now_ms() - at > 10 * 60_000) {
            return Err(AppError::forbidden_code(
                "reauthentication_required",
                "sign in again (within the last ten minutes) to do this",
            ));
        }
        return Ok(());
    }
    let rule = &state.settings.auth.rate_limits.login_per_account;
    rate_limit(state, "login_account", &user.username, rule).await?;
    let given = given.ok_or_else(|| {
        AppError::unprocessable("password_required", "confirm with the current password")
    })?;
    if !password::verify(given, user.password_hash.clone()).await? {
        users::record_failed_login(&state.db, &state.settings.auth, user).await?;
        return Err(AppError::forbidden_code(
            "wrong_password",
            "the current password is wrong",
        ));
    }
    Ok(())
}

#[utoipa::path(post, path = "/api/v1/account/password", tag = "auth", security(("bearer" = [])), request_body = ChangePassword,
    responses((status = 204), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody, description = "too many attempts at the current password")))]
pub async fn change_password(
    State(state): State<AppState>,
    Account(caller): Account,
    client: ClientInfo,
    AppJson(req): AppJson<ChangePassword>,
) -> AppResult<StatusCode> {
    let user = load_user(&state, &caller.user_id).await?;
    confirm_password(&state, &user, &caller, req.current_password).await?;
    users::check_password(&req.new_password, &user.username, &state.settings.auth)?;
    let hash = password::hash(req.new_password).await?;
    users::set_password_hash(&state.db, &user.id, &hash).await?;
    // Everyone else who knew the old password is signed out; this device stays.
    let revoked =
        sessions::revoke_all(&state.db, &user.id, caller.session_id(), "password_changed").await?;
    state.identity.auth.forget();
    AuditEvent::by_user("password_changed", &user.id, &client)
        .detail(serde_json::json!({ "sessions_revoked": revoked }))
        .record(&state.db)
        .await;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/api/v1/account", tag = "auth", security(("bearer" = [])), request_body = DeleteAccount,
    responses((status = 204), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "`last_admin`, `password_required`"),
        (status = 429, body = ErrorBody, description = "too many attempts at the current password")))]
pub async fn delete_account(
    State(state): State<AppState>,
    Account(caller): Account,
    client: ClientInfo,
    AppJson(req): AppJson<DeleteAccount>,
) -> AppResult<StatusCode> {
    let user = load_user(&state, &caller.user_id).await?;
    confirm_password(&state, &user, &caller, req.password).await?;
    if user.is_admin && users::other_admins(&state.db, &user.id).await? == 0 {
        return Err(super::admin::last_admin());
    }
    super::delete_user(&state, &user.id).await?;
    AuditEvent::by_user("user_deleted", &user.id, &client)
        .detail(serde_json::json!({ "username": user.username, "items": user.item_count }))
        .record(&state.db)
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Always 202 at once, whether or not the account exists: the lookup, the token and
/// the notice all happen after the answer, so neither content nor timing tells.
#[utoipa::path(post, path = "/api/v1/auth/password-reset", tag = "auth", request_body = ResetRequest,
    responses((status = 202), (status = 429, body = ErrorBody)))]
pub async fn request_password_reset(
    State(state): State<AppState>,
    client: ClientInfo,
    AppJson(req): AppJson<ResetRequest>,
) -> AppResult<StatusCode> {
    let rule = &state.settings.auth.rate_limits.password_reset_per_ip;
    rate_limit(&state, "password_reset_ip", &client.rate_key(), rule).await?;
    let login = req.login.trim().to_lowercase();
    if login.len() <= 254 {
        tokio::spawn(async move {
            if let Err(e) = send_reset(&state, &login, &client).await {
                tracing::error!(error = %e, "password reset");
            }
        });
    }
    Ok(StatusCode::ACCEPTED)
}

/// The account a reset asks for: by username, else by an email only one account has
/// (or only one has verified).
async fn reset_target(state: &AppState, login: &str) -> AppResult<Option<users::User>> {
    if let Some(user) = users::find_by_username(&state.db, login).await? {
        return Ok(Some(user));
    }
    if !login.contains('@') {
        return Ok(None);
    }
    let mut matches = users::find_by_email(&state.db, login, false).await?;
    if matches.len() > 1 {
        matches = users::find_by_email(&state.db, login, true).await?;
    }
    Ok((matches.len() == 1).then(|| matches.remove(0)))
}

async fn send_reset(state: &AppState, login: &str, client: &ClientInfo) -> AppResult<()> {
    let Some(user) = reset_target(state, login)
        .await?
        .filter(|u| u.disabled_at.is_none())
    else {
        return Ok(());
    };
    // Per account too, so nobody can flood one person with notices.
    let rule = &state.settings.auth.rate_limits.password_reset_per_ip;
    if rate_limit(state, "password_reset_account", &user.id, rule)
        .await
        .is_err()
    {
        return Ok(());
    }
    let token = random_secret("fhp_");
    let now = now_ms();
    let expires_at = now + state.settings.auth.password_reset_ttl_secs as i64 * 1000;
    sqlx::query(
        "INSERT INTO password_resets (hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(secret_hash(&token))
    .bind(&user.id)
    .bind(now)
    .bind(expires_at)
    .execute(&state.db.pool)
    .await?;
    AuditEvent::new("password_reset_requested")
        .user(&user.id)
        .client(client)
        .record(&state.db)
        .await;
    let notice = Notice {
        kind: "password_reset",
        user_id: user.id.clone(),
        username: user.username.clone(),
        email: user.email.clone(),
        link: format!(
            "{}/reset-password#token={token}",
            state.settings.public_url()
        ),
        token,
        expires_at: rfc3339(expires_at),
    };
    state
        .identity
        .notifier
        .send(&notice)
        .await
        .map_err(AppError::internal)
}

/// Spends every outstanding reset token of a user (after a reset or a password change).
async fn spend_reset_tokens(state: &AppState, user_id: &str) -> AppResult<()> {
    sqlx::query("UPDATE password_resets SET used_at = $1 WHERE user_id = $2 AND used_at IS NULL")
        .bind(now_ms())
        .bind(user_id)
        .execute(&state.db.pool)
        .await?;
    Ok(())
}

#[utoipa::path(post, path = "/api/v1/auth/password-reset/confirm", tag = "auth", request_body = ResetConfirm,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn confirm_password_reset(
    State(state): State<AppState>,
    client: ClientInfo,
    AppJson(req): AppJson<ResetConfirm>,
) -> AppResult<StatusCode> {
    let invalid = || {
        AppError::bad_request(
            "invalid_reset_token",
            "this reset link is invalid, used or expired",
        )
    };
    let hash = secret_hash(&req.token);
    let row = sqlx::query("SELECT user_id FROM password_resets WHERE hash = $1")
        .bind(&hash)
        .fetch_optional(&state.db.pool)
        .await?
        .ok_or_else(invalid)?;
    let user_id: String = row.try_get("user_id")?;
    let user = users::find_by_id(&state.db, &user_id)
        .await?
        .filter(|u| u.disabled_at.is_none())
        .ok_or_else(invalid)?;
    users::check_password(&req.new_password, &user.username, &state.settings.auth)?;
    let new_hash = password::hash(req.new_password).await?;
    // Single use and unexpired: only the request that marks the token used may set
    // the password.
    let now = now_ms();
    let claimed = sqlx::query(
        "UPDATE password_resets SET used_at = $1 WHERE hash = $2 AND used_at IS NULL AND expires_at > $1",
    )
    .bind(now)
    .bind(&hash)
    .execute(&state.db.pool)
    .await?
    .rows_affected()
        == 1;
    if !claimed {
        return Err(invalid());
    }
    users::set_password_hash(&state.db, &user.id, &new_hash).await?;
    spend_reset_tokens(&state, &user.id).await?;
    sessions::revoke_all(&state.db, &user.id, None, "password_reset").await?;
    state.identity.auth.forget();
    AuditEvent::by_user("password_reset", &user.id, &client)
        .record(&state.db)
        .await;
    Ok(StatusCode::NO_CONTENT)
}

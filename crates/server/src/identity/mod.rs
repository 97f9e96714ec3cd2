//! Accounts and sign-in: registration, login with short-lived JWT access tokens, and the
//! `Caller`/`Viewer` extractors every other domain uses for ownership checks.

pub mod password;
pub mod tokens;
mod users;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{AppError, AppJson, AppResult, ErrorBody};
use crate::AppState;
pub use tokens::{Caller, JwtKeys, Viewer};
pub use users::{create_user, NewUser, User};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/auth/register", post(register))
        .route("/api/v1/auth/login", post(login))
}

#[derive(Deserialize, ToSchema)]
pub struct RegisterRequest {
    /// 3–32 characters: lowercase letters, digits, `.`, `_`, `-`.
    pub username: String,
    /// At least 8 characters.
    pub password: String,
    pub email: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

#[derive(Serialize, ToSchema)]
pub struct UserView {
    pub id: String,
    pub username: String,
    pub email: Option<String>,
    pub is_admin: bool,
    pub created_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        UserView {
            id: u.id,
            username: u.username,
            email: u.email,
            is_admin: u.is_admin,
            created_at: crate::db::rfc3339(u.created_at),
        }
    }
}

#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth", request_body = RegisterRequest,
    responses((status = 201, body = UserView), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn register(
    State(state): State<AppState>,
    AppJson(req): AppJson<RegisterRequest>,
) -> AppResult<(StatusCode, Json<UserView>)> {
    if !state.settings.auth.open_registration {
        return Err(AppError::forbidden("registration is closed on this server"));
    }
    let new = NewUser {
        username: req.username,
        password: req.password,
        email: req.email,
        is_admin: false,
    };
    let user = create_user(&state.db, new).await?;
    Ok((StatusCode::CREATED, Json(user.into())))
}

#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = TokenResponse), (status = 401, body = ErrorBody)))]
pub async fn login(
    State(state): State<AppState>,
    AppJson(req): AppJson<LoginRequest>,
) -> AppResult<Json<TokenResponse>> {
    let user = users::find_by_username(&state.db, &req.username).await?;
    // Verify against a dummy hash for unknown users so timing does not reveal them.
    let stored = user.as_ref().map(|u| u.password_hash.clone());
    let ok = password::verify(
        req.password,
        stored
            .clone()
            .unwrap_or_else(|| password::dummy_hash().into()),
    )
    .await?;
    let user = match (user, ok) {
        (Some(user), true) => user,
        _ => return Err(AppError::unauthorized("wrong username or password")),
    };
    let access_token = state.jwt.issue(&user.id, user.is_admin)?;
    Ok(Json(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: state.jwt.ttl_secs,
    }))
}

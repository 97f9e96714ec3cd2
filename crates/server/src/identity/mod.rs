//! Accounts and sign-in: registration, password login with lockout, sessions with
//! rotating refresh tokens, API keys with scopes, OpenID Connect sign-in, the account
//! lifecycle, the admin API, rate limits and the audit log. `auth` holds the
//! extractors every other domain uses to learn who is calling and what it may do.

pub mod account;
pub mod admin;
pub mod api_keys;
pub mod audit;
pub mod auth;
pub mod browser;
mod notify;
pub mod oidc;
pub mod password;
pub mod policy;
pub mod ratelimit;
pub mod sessions;
pub mod settings;
pub mod tokens;
pub mod usage;
pub mod users;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::kernel::cache::Redis;
use crate::kernel::db::Db;
use crate::kernel::error::{AppError, AppJson, AppResult, ErrorBody};
use crate::settings::Settings;
use crate::AppState;
pub use audit::AuditEvent;
pub use auth::{
    Account, Admin, Authenticator, Caller, ClientInfo, Deleter, Scope, Scopes, SocialReader,
    SocialViewer, SocialWriter, Viewer, Writer,
};
pub use notify::Notifier;
pub use oidc::OidcProviders;
use queue::{ClaimedJob, JobContext, JobError, JobHandler, NewJob, Periodic, PRIORITY_BATCH};
pub use sessions::TokenResponse;
use settings::RateRule;
use std::sync::Arc;
use std::time::Duration;
pub use tokens::JwtKeys;
pub use users::{create_user, delete_user, NewUser, User};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(sessions::refresh_tokens))
        .routes(routes!(sessions::logout))
        .routes(routes!(sessions::list_sessions))
        .routes(routes!(sessions::revoke_session))
        .merge(oidc::routes())
        .merge(account::routes())
        .merge(api_keys::routes())
        .merge(admin::routes())
}

/// The identity domain's registration.
pub struct Identity;

const PRUNE_IDENTITY: &str = "prune_identity";

impl crate::domain::Domain for Identity {
    fn name(&self) -> &'static str {
        "identity"
    }

    fn figures<'a>(
        &self,
        state: &'a AppState,
    ) -> futures::future::BoxFuture<'a, crate::kernel::error::AppResult<Vec<crate::domain::Figure>>>
    {
        use crate::domain::{scalar, Figure};
        Box::pin(async move {
            let d = "identity";
            let now = crate::kernel::time::now_ms();
            Ok(vec![
                Figure::count(d, "users", "Accounts", scalar(state, "SELECT COUNT(*) FROM users WHERE deleted_at IS NULL", &[]).await?),
                Figure::count(d, "users.admin", "Administrators", scalar(state, "SELECT COUNT(*) FROM users WHERE deleted_at IS NULL AND is_admin = 1", &[]).await?),
                Figure::count(d, "users.disabled", "Disabled accounts", scalar(state, "SELECT COUNT(*) FROM users WHERE deleted_at IS NULL AND disabled_at IS NOT NULL", &[]).await?),
                Figure::count(d, "sessions", "Signed-in sessions", scalar(state, "SELECT COUNT(*) FROM sessions WHERE revoked_at IS NULL AND expires_at > $1", &[now]).await?),
            ])
        })
    }

    fn routes(&self) -> OpenApiRouter<AppState> {
        routes()
    }

    fn jobs(&self, state: &AppState) -> Vec<crate::domain::Job> {
        let retention = Duration::from_secs(state.settings.auth.audit_retention_days * 86_400);
        vec![(
            PRUNE_IDENTITY,
            Arc::new(PruneIdentity {
                db: state.db.clone(),
                audit_retention: retention,
            }),
        )]
    }

    fn event_types(&self) -> &'static [&'static str] {
        &["user.created", "user.updated", "user.deleted"]
    }

    fn periodic(&self, _settings: &Settings) -> Vec<Periodic> {
        vec![Periodic::new(
            PRUNE_IDENTITY,
            Duration::from_secs(3600),
            prune_job(),
        )]
    }

    fn api_loops(
        &self,
        state: &AppState,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Vec<futures::future::BoxFuture<'static, ()>> {
        vec![Box::pin(state.identity.auth.clone().listen(shutdown))]
    }
}

/// A `prune_identity` job, as the scheduler enqueues it.
pub fn prune_job() -> NewJob {
    NewJob::new(PRUNE_IDENTITY, serde_json::json!({})).priority(PRIORITY_BATCH)
}

/// Removes sessions, tokens and sign-in attempts nobody can use any more, and audit
/// events past their retention.
struct PruneIdentity {
    db: Db,
    audit_retention: Duration,
}

#[async_trait::async_trait]
impl JobHandler for PruneIdentity {
    async fn run(&self, _job: &ClaimedJob, _ctx: &JobContext) -> Result<(), JobError> {
        sessions::prune(&self.db, self.audit_retention)
            .await
            .map_err(JobError::retryable)
    }
}

/// What identity keeps in memory: the credential cache, rate-limit buckets, the
/// notifier and the OpenID providers.
#[derive(Clone)]
pub struct IdentityState {
    pub auth: Arc<Authenticator>,
    pub limiter: ratelimit::Limiter,
    pub notifier: Notifier,
    pub oidc: Arc<OidcProviders>,
    /// Signs browsers' CSRF tokens (derived from the token signing key).
    pub csrf_key: Vec<u8>,
}

impl IdentityState {
    /// `jwt_key` is the configured signing key (or the one generated into the data dir).
    pub fn new(
        settings: &Settings,
        db: &Db,
        redis: &Redis,
        jwt_key: Vec<u8>,
    ) -> anyhow::Result<IdentityState> {
        let auth = &settings.auth;
        let previous: Vec<Vec<u8>> = (auth.jwt_previous_secrets.iter())
            .map(|s| s.expose().as_bytes().to_vec())
            .collect();
        anyhow::ensure!(
            jwt_key.len() >= 32 && previous.iter().all(|k| k.len() >= 32),
            "auth.jwt_secret and auth.jwt_previous_secrets must be at least 32 bytes each"
        );
        let jwt = JwtKeys::new(&jwt_key, &previous, auth.access_token_ttl_secs);
        let csrf_key = Sha256::new()
            .chain_update(b"framehouse csrf key\0")
            .chain_update(&jwt_key)
            .finalize()
            .to_vec();
        Ok(IdentityState {
            auth: Arc::new(
                Authenticator::new(jwt, db.clone(), redis.clone(), auth.revocation_check_secs)
                    .with_cookie_lifetime(
                        auth.refresh_token_ttl_secs,
                        auth.session_max_lifetime_secs,
                    ),
            ),
            csrf_key,
            limiter: ratelimit::Limiter::for_redis(redis),
            notifier: notify::from_settings(settings)?,
            oidc: Arc::new(OidcProviders::new(settings)?),
        })
    }
}

/// Where an account stands, for what other domains do on its behalf.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Standing {
    /// It exists and is neither disabled nor deleted.
    pub active: bool,
    /// It is an active administrator.
    pub admin: bool,
}

pub async fn standing(
    conn: &mut sqlx::AnyConnection,
    user_id: &str,
) -> Result<Standing, sqlx::Error> {
    let user = users::find_by_id_in(conn, user_id).await?;
    let active = user.as_ref().is_some_and(|u| u.disabled_at.is_none());
    Ok(Standing {
        active,
        admin: active && user.is_some_and(|u| u.is_admin),
    })
}

/// SHA-256 hex of a high-entropy secret (refresh token, API key, reset token). These
/// are random 256-bit values, so a fast hash is enough: nothing to brute-force.
pub fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A new random secret: `prefix` then 32 random bytes in URL-safe base64.
pub fn random_secret(prefix: &str) -> String {
    use base64::Engine;
    let bytes: [u8; 32] = rand::random();
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// Takes one token from the bucket for `subject` under `rule`, or answers 429.
pub async fn rate_limit(
    state: &AppState,
    scope: &str,
    subject: &str,
    rule: &RateRule,
) -> AppResult<()> {
    state
        .identity
        .limiter
        .check(scope, subject, rule)
        .await
        .map_err(|limited| AppError::TooMany {
            code: "rate_limited",
            message: "too many requests; retry later".into(),
            retry_after_secs: limited.retry_after_secs(),
        })
}

#[derive(Deserialize, ToSchema)]
pub struct RegisterRequest {
    /// 3–32 characters: lowercase letters, digits, `.`, `_`, `-`.
    pub username: String,
    /// At least `auth.min_password_length` characters (default 8), not a common one.
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
    /// Confirmed by an OpenID provider or an operator (not by registration alone).
    pub email_verified: bool,
    /// `user` or `admin`.
    pub role: &'static str,
    pub is_admin: bool,
    pub disabled: bool,
    /// Bytes of originals this user may own; null is unlimited.
    pub quota_bytes: Option<i64>,
    pub created_at: String,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        UserView {
            id: u.id,
            username: u.username,
            email: u.email,
            email_verified: u.email_verified,
            role: if u.is_admin { "admin" } else { "user" },
            is_admin: u.is_admin,
            disabled: u.disabled_at.is_some(),
            quota_bytes: u.quota_bytes,
            created_at: crate::kernel::time::rfc3339(u.created_at),
        }
    }
}

#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth", request_body = RegisterRequest,
    responses((status = 201, body = UserView), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
pub async fn register(
    State(state): State<AppState>,
    client: ClientInfo,
    AppJson(req): AppJson<RegisterRequest>,
) -> AppResult<(StatusCode, Json<UserView>)> {
    let user = sign_up(&state, &client, req).await?;
    Ok((StatusCode::CREATED, Json(user.into())))
}

/// Creates an account by open registration (the API's and the sign-up page's).
pub async fn sign_up(
    state: &AppState,
    client: &ClientInfo,
    req: RegisterRequest,
) -> AppResult<User> {
    if !state.settings.auth.open_registration {
        return Err(AppError::forbidden("registration is closed on this server"));
    }
    let rules = &state.settings.auth.rate_limits;
    rate_limit(
        state,
        "register_ip",
        &client.rate_key(),
        &rules.register_per_ip,
    )
    .await?;
    let new = NewUser {
        username: req.username,
        password: Some(req.password),
        email: req.email,
        email_verified: false,
        is_admin: false,
    };
    let user = create_user(&state.db, &state.settings.auth, new).await?;
    AuditEvent::by_user("user_registered", &user.id, client)
        .record(&state.db)
        .await;
    Ok(user)
}

#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = TokenResponse), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn login(
    State(state): State<AppState>,
    client: ClientInfo,
    AppJson(req): AppJson<LoginRequest>,
) -> AppResult<Json<TokenResponse>> {
    let user = check_password_sign_in(&state, &client, &req.username, req.password).await?;
    let tokens = sessions::start(&state, &user.id, "password", &client).await?;
    AuditEvent::by_user("login_succeeded", &user.id, &client)
        .detail(serde_json::json!({ "method": "password", "session_id": tokens.session_id }))
        .record(&state.db)
        .await;
    Ok(Json(tokens))
}

/// The user these credentials prove, with the rate limits, lockout and audit of a
/// password sign-in (the API's and the sign-in page's); the caller opens the session.
pub async fn check_password_sign_in(
    state: &AppState,
    client: &ClientInfo,
    username: &str,
    password: String,
) -> AppResult<User> {
    let rules = &state.settings.auth.rate_limits;
    rate_limit(state, "login_ip", &client.rate_key(), &rules.login_per_ip).await?;
    let account = username.to_lowercase();
    // No account can have an invalid name; refusing it here also keeps arbitrary
    // strings out of the rate limiter and the audit log.
    if !users::valid_username(&account) {
        return Err(AppError::unauthorized("wrong username or password"));
    }
    rate_limit(state, "login_account", &account, &rules.login_per_account).await?;
    let user = users::find_by_username(&state.db, &account).await?;
    let now = crate::kernel::time::now_ms();
    if let Some(until) = user
        .as_ref()
        .and_then(|u| u.locked_until)
        .filter(|&t| t > now)
    {
        AuditEvent::new("login_locked")
            .user(user.as_ref().map_or("", |u| u.id.as_str()))
            .client(client)
            .record(&state.db)
            .await;
        return Err(AppError::TooMany {
            code: "account_locked",
            message: "too many failed sign-ins; this account is locked for a while".into(),
            retry_after_secs: ((until - now) as u64).div_ceil(1000),
        });
    }
    // Verify against a dummy hash for unknown users (and accounts without a password)
    // so that timing does not reveal them.
    let stored = (user.as_ref())
        .map(|u| u.password_hash.clone())
        .filter(|h| !h.is_empty());
    let ok = password::verify(
        password,
        stored.unwrap_or_else(|| password::dummy_hash().into()),
    )
    .await?;
    let user = match (user, ok) {
        (Some(user), true) => user,
        (user, _) => {
            let user_id = user.as_ref().map(|u| u.id.clone());
            if let Some(user) = user {
                users::record_failed_login(&state.db, &state.settings.auth, &user).await?;
            }
            AuditEvent::new("login_failed")
                .user(user_id.as_deref().unwrap_or(""))
                .client(client)
                .detail(serde_json::json!({ "username": account }))
                .record(&state.db)
                .await;
            return Err(AppError::unauthorized("wrong username or password"));
        }
    };
    if user.disabled_at.is_some() {
        return Err(AppError::forbidden_code(
            "account_disabled",
            "this account is disabled",
        ));
    }
    users::clear_failed_logins(&state.db, &user.id).await?;
    Ok(user)
}

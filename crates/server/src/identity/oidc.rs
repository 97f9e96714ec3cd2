//! Sign-in through external OpenID Connect providers (Keycloak, Authentik, Google, …):
//! the authorization-code flow with PKCE, `state` bound to the browser by a cookie and
//! a `nonce` checked in the ID token, whose signature and claims the `openidconnect`
//! crate verifies against the provider's discovered, cached signing keys. The account is
//! found by the provider's `sub`, else linked by *verified* email, else registered.

use std::collections::HashMap;
use std::time::{Duration, Instant};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use axum::extract::{Path, State};
use axum::http::header::{COOKIE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreJwsSigningAlgorithm, CoreProviderMetadata,
};
use openidconnect::{
    AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken, IssuerUrl,
    Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, SignatureVerificationError,
    TokenResponse as _,
};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use subtle::ConstantTimeEq;
use tokio::sync::Mutex;
use utoipa::{IntoParams, ToSchema};

use super::audit::AuditEvent;
use super::auth::ClientInfo;
use super::settings::OidcProviderSettings;
use super::{random_secret, secret_hash, sessions, users, TokenResponse};
use crate::kernel::db::Db;
use crate::kernel::error::{AppError, AppJson, AppQuery, AppResult, ErrorBody};
use crate::kernel::time::now_ms;
use crate::settings::Settings;
use crate::AppState;

const STATE_COOKIE: &str = "fh_oidc_state";
/// How long a user may take at the provider before the login must start over.
const LOGIN_TTL_MS: i64 = 10 * 60 * 1000;
/// Lifetime of the one-time code a redirect-mode sign-in hands to the page.
const CODE_TTL_MS: i64 = 60 * 1000;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_providers))
        .routes(routes!(start_login))
        .routes(routes!(finish_login))
        .routes(routes!(exchange_code))
}

struct Provider {
    settings: OidcProviderSettings,
    issuer: IssuerUrl,
    redirect: RedirectUrl,
    metadata: Mutex<Discovery>,
}

/// The discovery document with its JWKS, when it was fetched, and when fetching last
/// failed (so an unreachable provider is not asked again by every waiting login).
#[derive(Default)]
struct Discovery {
    fetched: Option<(Instant, CoreProviderMetadata)>,
    failed_at: Option<Instant>,
}

/// An unreachable provider is asked again after this long.
const FAILURE_BACKOFF: Duration = Duration::from_secs(10);
/// A forced refresh (unknown signing key) happens at most this often.
const MIN_REFRESH: Duration = Duration::from_secs(30);

/// The configured providers and the HTTP client that talks to them.
pub struct OidcProviders {
    providers: HashMap<String, Provider>,
    http: reqwest::Client,
}

impl OidcProviders {
    pub fn new(settings: &Settings) -> anyhow::Result<OidcProviders> {
        let mut providers = HashMap::new();
        for p in &settings.auth.oidc {
            anyhow::ensure!(
                !p.id.is_empty()
                    && p.id
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "auth.oidc: provider id `{}` must be letters, digits, `-` or `_`",
                p.id
            );
            anyhow::ensure!(
                !p.client_id.is_empty(),
                "auth.oidc `{}`: client_id is empty",
                p.id
            );
            let issuer = IssuerUrl::new(p.issuer.clone())
                .map_err(|e| anyhow::anyhow!("auth.oidc `{}`: issuer: {e}", p.id))?;
            let redirect = RedirectUrl::new(format!(
                "{}/api/v1/auth/oidc/{}/callback",
                settings.public_url(),
                p.id
            ))?;
            let provider = Provider {
                settings: p.clone(),
                issuer,
                redirect,
                metadata: Mutex::default(),
            };
            anyhow::ensure!(
                providers.insert(p.id.clone(), provider).is_none(),
                "auth.oidc: provider id `{}` appears twice",
                p.id
            );
        }
        // No redirects: the discovery, JWKS and token endpoints are named by the provider
        // and following redirects elsewhere would only widen what a bad config can reach.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(15))
            .build()?;
        Ok(OidcProviders { providers, http })
    }

    fn get(&self, id: &str) -> AppResult<&Provider> {
        self.providers
            .get(id)
            .ok_or_else(|| AppError::not_found("sign-in provider"))
    }

    /// The provider's metadata and keys, from cache unless stale or `refresh` is asked.
    async fn metadata(&self, p: &Provider, refresh: bool) -> AppResult<CoreProviderMetadata> {
        let unavailable = || {
            AppError::new(
                StatusCode::BAD_GATEWAY,
                "provider_unavailable",
                "the sign-in provider cannot be reached",
            )
        };
        let mut cached = p.metadata.lock().await;
        let ttl = Duration::from_secs(p.settings.metadata_cache_secs);
        if let Some((at, metadata)) = cached.fetched.as_ref() {
            let fresh_enough = if refresh { MIN_REFRESH } else { ttl };
            if at.elapsed() < fresh_enough {
                return Ok(metadata.clone());
            }
        }
        if cached
            .failed_at
            .is_some_and(|at| at.elapsed() < FAILURE_BACKOFF)
        {
            return Err(unavailable());
        }
        match CoreProviderMetadata::discover_async(p.issuer.clone(), &self.http).await {
            Ok(metadata) => {
                cached.fetched = Some((Instant::now(), metadata.clone()));
                cached.failed_at = None;
                Ok(metadata)
            }
            Err(e) => {
                tracing::warn!(provider = %p.settings.id, error = %e, "OpenID discovery failed");
                cached.failed_at = Some(Instant::now());
                Err(unavailable())
            }
        }
    }
}

/// A client for one provider after discovery (authorization endpoint set; token and
/// userinfo endpoints as the provider declares).
type Client = CoreClient<
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

fn client_for(p: &Provider, metadata: CoreProviderMetadata) -> Client {
    let secret = p.settings.client_secret.expose();
    CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(p.settings.client_id.clone()),
        (!secret.is_empty()).then(|| ClientSecret::new(secret.to_string())),
    )
    .set_redirect_uri(p.redirect.clone())
}

#[derive(Serialize, ToSchema)]
pub struct ProviderView {
    pub id: String,
    pub name: String,
    /// Send the browser here to sign in.
    pub login_url: String,
}

#[utoipa::path(get, path = "/api/v1/auth/oidc/providers", tag = "auth",
    responses((status = 200, body = [ProviderView])))]
pub async fn list_providers(State(state): State<AppState>) -> Json<Vec<ProviderView>> {
    Json(state.identity.oidc.views())
}

impl OidcProviders {
    /// The configured providers as sign-in buttons show them, by id.
    pub fn views(&self) -> Vec<ProviderView> {
        let mut views: Vec<ProviderView> = self
            .providers
            .values()
            .map(|p| ProviderView {
                id: p.settings.id.clone(),
                name: if p.settings.name.is_empty() {
                    p.settings.id.clone()
                } else {
                    p.settings.name.clone()
                },
                login_url: format!("/api/v1/auth/oidc/{}/login", p.settings.id),
            })
            .collect();
        views.sort_by(|a, b| a.id.cmp(&b.id));
        views
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LoginQuery {
    /// A path on this server to return to, tokens in the URL fragment; without it the
    /// callback answers JSON.
    pub redirect: Option<String>,
    /// Passed to the provider as `login_hint`.
    pub login_hint: Option<String>,
}

/// A loopback address a native client (`framehouse login --browser`) listens on, as
/// RFC 8252 describes: `http://127.0.0.1:PORT/…` or `http://[::1]:PORT/…`, never a name
/// (`localhost` may resolve elsewhere). Its one-time code goes in the query, which the
/// client can read, not in the fragment.
fn loopback(redirect: &str) -> bool {
    let Ok(url) = url::Url::parse(redirect) else {
        return false;
    };
    let host_ok = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        _ => false,
    };
    url.scheme() == "http"
        && host_ok
        && url.port().is_some()
        && url.username().is_empty()
        && url.password().is_none()
        && url.fragment().is_none()
        && redirect.len() <= 2048
}

fn local_path(redirect: &str) -> bool {
    redirect.starts_with('/')
        && !redirect.starts_with("//")
        && !redirect.contains('\\')
        && redirect.len() <= 2048
        && !redirect.chars().any(char::is_control)
}

#[utoipa::path(get, path = "/api/v1/auth/oidc/{provider}/login", tag = "auth", params(LoginQuery,
    ("provider" = String, Path, description = "provider id")),
    responses((status = 302, description = "to the provider"), (status = 404, body = ErrorBody),
        (status = 429, body = ErrorBody, description = "too many sign-in starts from this address"),
        (status = 502, body = ErrorBody)))]
pub async fn start_login(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    client: ClientInfo,
    AppQuery(q): AppQuery<LoginQuery>,
) -> AppResult<Response> {
    let p = state.identity.oidc.get(&provider)?;
    // Each start stores a pending login: limited like password logins.
    let rule = &state.settings.auth.rate_limits.login_per_ip;
    super::rate_limit(&state, "oidc_ip", &client.rate_key(), rule).await?;
    if q.redirect
        .as_deref()
        .is_some_and(|r| !local_path(r) && !loopback(r))
    {
        return Err(AppError::bad_request(
            "invalid_redirect",
            "redirect must be a path on this server or a loopback address (http://127.0.0.1:PORT/…)",
        ));
    }
    let metadata = state.identity.oidc.metadata(p, false).await?;
    let client = client_for(p, metadata);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge);
    for scope in p.settings.scopes.iter().filter(|s| s.as_str() != "openid") {
        request = request.add_scope(openidconnect::Scope::new(scope.clone()));
    }
    if let Some(hint) = q.login_hint.as_deref().filter(|h| h.len() <= 256) {
        request = request.add_extra_param("login_hint", hint.to_string());
    }
    let (url, csrf, nonce) = request.url();
    sqlx::query(
        "INSERT INTO oidc_logins (state_hash, provider, pkce_verifier, nonce, redirect, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(secret_hash(csrf.secret()))
    .bind(&provider)
    .bind(verifier.secret())
    .bind(nonce.secret())
    .bind(&q.redirect)
    .bind(now_ms())
    .execute(&state.db.pool)
    .await?;
    let secure = if state.settings.public_url().starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{STATE_COOKIE}={}; Path=/api/v1/auth/oidc/; Max-Age=600; HttpOnly; SameSite=Lax{secure}",
        csrf.secret()
    );
    let mut resp = StatusCode::FOUND.into_response();
    let headers = resp.headers_mut();
    headers.insert(
        LOCATION,
        HeaderValue::from_str(url.as_str()).map_err(AppError::internal)?,
    );
    headers.insert(
        SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(AppError::internal)?,
    );
    Ok(resp)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackQuery {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

fn cookie_value<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn bad_state() -> AppError {
    AppError::bad_request(
        "invalid_state",
        "the sign-in state does not match; start the sign-in again",
    )
}

fn bad_id_token(message: &str) -> AppError {
    AppError::new(StatusCode::UNAUTHORIZED, "invalid_id_token", message)
}

/// The claims Framehouse uses from a verified ID token.
struct Identity {
    subject: String,
    email: Option<String>,
    email_verified: bool,
    preferred_username: Option<String>,
    /// The raw claims, for the configured role claim.
    raw: serde_json::Value,
}

#[utoipa::path(get, path = "/api/v1/auth/oidc/{provider}/callback", tag = "auth", params(CallbackQuery,
    ("provider" = String, Path, description = "provider id")),
    responses((status = 200, body = super::TokenResponse), (status = 303, description = "to `redirect` with tokens in the fragment"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn finish_login(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    client: ClientInfo,
    headers: HeaderMap,
    AppQuery(q): AppQuery<CallbackQuery>,
) -> AppResult<Response> {
    let p = state.identity.oidc.get(&provider)?;
    if let Some(error) = q.error {
        tracing::info!(provider, error, description = ?q.error_description, "provider refused the sign-in");
        return Err(AppError::forbidden_code(
            "provider_refused",
            "the sign-in provider refused the sign-in",
        ));
    }
    let (Some(code), Some(csrf)) = (q.code, q.state) else {
        return Err(AppError::bad_request(
            "invalid_callback",
            "the callback lacks `code` or `state`",
        ));
    };
    // The state must come back to the browser that started the login (login CSRF).
    let cookie = cookie_value(&headers, STATE_COOKIE).unwrap_or("");
    if !bool::from(cookie.as_bytes().ct_eq(csrf.as_bytes())) {
        return Err(bad_state());
    }
    let hash = secret_hash(&csrf);
    let row = sqlx::query("SELECT * FROM oidc_logins WHERE state_hash = $1 AND provider = $2")
        .bind(&hash)
        .bind(&provider)
        .fetch_optional(&state.db.pool)
        .await?
        .ok_or_else(bad_state)?;
    let claimed = sqlx::query("DELETE FROM oidc_logins WHERE state_hash = $1")
        .bind(&hash)
        .execute(&state.db.pool)
        .await?
        .rows_affected()
        == 1;
    if !claimed || row.try_get::<i64, _>("created_at")? < now_ms() - LOGIN_TTL_MS {
        return Err(bad_state());
    }
    let verifier = PkceCodeVerifier::new(row.try_get("pkce_verifier")?);
    let nonce = Nonce::new(row.try_get("nonce")?);
    let redirect: Option<String> = row.try_get("redirect")?;
    let identity = exchange(&state, p, code, verifier, &nonce).await?;
    let user = account_for(&state, p, &identity, &client).await?;
    let method = format!("oidc:{provider}");
    let clear =
        format!("{STATE_COOKIE}=; Path=/api/v1/auth/oidc/; Max-Age=0; HttpOnly; SameSite=Lax");
    let mut resp = match redirect {
        // Tokens never travel in a URL (history, logs, Referer): the page gets a
        // one-time code to trade for them by POST.
        Some(path) => {
            let code = random_secret("fhc_");
            sqlx::query(
                "INSERT INTO login_codes (hash, user_id, method, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(secret_hash(&code))
            .bind(&user.id)
            .bind(&method)
            .bind(now_ms())
            .execute(&state.db.pool)
            .await?;
            let mut resp = StatusCode::SEE_OTHER.into_response();
            resp.headers_mut().insert(
                LOCATION,
                HeaderValue::from_str(&returned_to(&path, &code)).map_err(AppError::internal)?,
            );
            resp
        }
        None => Json(open_session(&state, &user.id, &method, &client).await?).into_response(),
    };
    resp.headers_mut().insert(
        SET_COOKIE,
        HeaderValue::from_str(&clear).map_err(AppError::internal)?,
    );
    resp.headers_mut()
        .insert("cache-control", HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// Where a redirect-mode sign-in returns: the page with the code in the fragment, or a
/// loopback client with it in the query.
fn returned_to(redirect: &str, code: &str) -> String {
    if loopback(redirect) {
        let join = if redirect.contains('?') { '&' } else { '?' };
        return format!("{redirect}{join}code={code}");
    }
    format!("{redirect}#code={code}")
}

async fn open_session(
    state: &AppState,
    user_id: &str,
    method: &str,
    client: &ClientInfo,
) -> AppResult<TokenResponse> {
    let tokens = sessions::start(state, user_id, method, client).await?;
    AuditEvent::by_user("login_succeeded", user_id, client)
        .detail(serde_json::json!({ "method": method, "session_id": tokens.session_id }))
        .record(&state.db)
        .await;
    Ok(tokens)
}

#[derive(Deserialize, ToSchema)]
pub struct ExchangeRequest {
    /// The `code` from the fragment of the page the sign-in returned to.
    pub code: String,
}

/// Trades the one-time code of a redirect-mode sign-in for the token pair (within a
/// minute, once).
#[utoipa::path(post, path = "/api/v1/auth/oidc/exchange", tag = "auth", request_body = ExchangeRequest,
    responses((status = 200, body = TokenResponse), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn exchange_code(
    State(state): State<AppState>,
    client: ClientInfo,
    AppJson(req): AppJson<ExchangeRequest>,
) -> AppResult<Json<TokenResponse>> {
    let (user_id, method) = redeem(&state, &req.code).await?;
    Ok(Json(
        open_session(&state, &user_id, &method, &client).await?,
    ))
}

/// Spends the one-time code of a redirect-mode sign-in (within a minute, once): the
/// account it signs in, and the session method (`oidc:<provider>`). The web UI opens a
/// browser session with it; programs get tokens from [`exchange_code`].
pub async fn redeem(state: &AppState, code: &str) -> AppResult<(String, String)> {
    let invalid = || {
        AppError::bad_request(
            "invalid_code",
            "this sign-in code is invalid, used or expired",
        )
    };
    let hash = secret_hash(code);
    let row = sqlx::query("SELECT user_id, method, created_at FROM login_codes WHERE hash = $1")
        .bind(&hash)
        .fetch_optional(&state.db.pool)
        .await?
        .ok_or_else(invalid)?;
    let claimed = sqlx::query("DELETE FROM login_codes WHERE hash = $1")
        .bind(&hash)
        .execute(&state.db.pool)
        .await?
        .rows_affected()
        == 1;
    if !claimed || row.try_get::<i64, _>("created_at")? < now_ms() - CODE_TTL_MS {
        return Err(invalid());
    }
    let user_id: String = row.try_get("user_id")?;
    let method: String = row.try_get("method")?;
    match users::find_by_id(&state.db, &user_id).await? {
        Some(user) if user.disabled_at.is_none() => Ok((user_id, method)),
        Some(_) => Err(disabled()),
        None => Err(invalid()),
    }
}

/// Trades the code for tokens and verifies the ID token. A signature by a key the
/// cached JWKS lacks refreshes the keys once (the provider may have rotated).
async fn exchange(
    state: &AppState,
    p: &Provider,
    code: String,
    verifier: PkceCodeVerifier,
    nonce: &Nonce,
) -> AppResult<Identity> {
    let metadata = state.identity.oidc.metadata(p, false).await?;
    let client = client_for(p, metadata);
    let response = client
        .exchange_code(AuthorizationCode::new(code))
        .map_err(AppError::internal)?
        .set_pkce_verifier(verifier)
        .request_async(&state.identity.oidc.http)
        .await
        .map_err(|e| {
            tracing::info!(provider = %p.settings.id, error = %e, "code exchange failed");
            AppError::new(
                StatusCode::UNAUTHORIZED,
                "code_exchange_failed",
                "the sign-in provider did not accept the code",
            )
        })?;
    let id_token = response
        .id_token()
        .ok_or_else(|| bad_id_token("the provider returned no ID token"))?;
    // Asymmetric signatures only: HS256 would make the client secret the key.
    let algs = [
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
        CoreJwsSigningAlgorithm::RsaSsaPssSha256,
        CoreJwsSigningAlgorithm::EcdsaP256Sha256,
        CoreJwsSigningAlgorithm::EcdsaP384Sha384,
        CoreJwsSigningAlgorithm::EdDsa,
    ];
    let verified = {
        let verifier = client.id_token_verifier().set_allowed_algs(algs.clone());
        id_token.claims(&verifier, nonce).cloned()
    };
    let claims = match verified {
        Err(ClaimsVerificationError::SignatureVerification(
            SignatureVerificationError::NoMatchingKey,
        )) => {
            let fresh = client_for(p, state.identity.oidc.metadata(p, true).await?);
            let verifier = fresh.id_token_verifier().set_allowed_algs(algs.clone());
            id_token.claims(&verifier, nonce).cloned()
        }
        other => other,
    }
    .map_err(|e| {
        tracing::warn!(provider = %p.settings.id, error = %e, "ID token refused");
        bad_id_token("the ID token did not verify")
    })?;
    let payload = id_token.to_string();
    let raw = payload
        .split('.')
        .nth(1)
        .and_then(|part| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(part)
                .ok()
        })
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    Ok(Identity {
        subject: claims.subject().to_string(),
        email: claims.email().map(|e| e.to_string()),
        email_verified: claims.email_verified() == Some(true),
        preferred_username: claims.preferred_username().map(|u| u.to_string()),
        raw,
    })
}

/// The local account for this identity: already linked, linked now by verified email,
/// or registered now; then its role follows the provider's claim when one is mapped.
async fn account_for(
    state: &AppState,
    p: &Provider,
    identity: &Identity,
    client: &ClientInfo,
) -> AppResult<users::User> {
    let provider = &p.settings.id;
    let linked = sqlx::query("SELECT user_id FROM identities WHERE provider = $1 AND subject = $2")
        .bind(provider)
        .bind(&identity.subject)
        .fetch_optional(&state.db.pool)
        .await?;
    let verified_email = identity
        .email
        .as_deref()
        .filter(|_| identity.email_verified);
    let mut user = match linked {
        Some(row) => {
            let id: String = row.try_get("user_id")?;
            sqlx::query(
                "UPDATE identities SET last_login_at = $1 WHERE provider = $2 AND subject = $3",
            )
            .bind(now_ms())
            .bind(provider)
            .bind(&identity.subject)
            .execute(&state.db.pool)
            .await?;
            users::find_by_id(&state.db, &id)
                .await?
                .ok_or_else(|| AppError::not_found("account"))?
        }
        None => {
            let by_email = match verified_email.filter(|_| p.settings.link_by_email) {
                // Only accounts whose email was itself verified: a local account anyone
                // registered with somebody else's address must not capture their sign-in.
                Some(email) => users::find_by_email(&state.db, email, true).await?,
                None => Vec::new(),
            };
            let (user, kind) = match <[users::User; 1]>::try_from(by_email) {
                Ok([user]) if user.disabled_at.is_some() => return Err(disabled()),
                // An administrator is never taken over by whoever a provider vouches
                // for; an admin links from a signed-in session instead (not built yet).
                Ok([user]) if user.is_admin => {
                    return Err(AppError::forbidden_code(
                        "link_refused",
                        "this email belongs to an administrator, who cannot be linked by email",
                    ))
                }
                Ok([user]) => (user, "oidc_linked"),
                Err(_) if p.settings.auto_register => (register(state, identity, verified_email).await?, "user_registered"),
                Err(_) => {
                    return Err(AppError::forbidden_code(
                        "no_account",
                        "no account is linked to this sign-in, and registration through this provider is off",
                    ))
                }
            };
            link(&state.db, provider, identity, &user.id).await?;
            AuditEvent::new(kind)
                .user(&user.id)
                .client(client)
                .detail(serde_json::json!({ "provider": provider, "subject": identity.subject }))
                .record(&state.db)
                .await;
            user
        }
    };
    if user.disabled_at.is_some() {
        return Err(disabled());
    }
    if let Some(claim) = &p.settings.role_claim {
        let admin = claim_values(&identity.raw, claim)
            .iter()
            .any(|v| p.settings.admin_values.contains(v));
        let last_admin =
            !admin && user.is_admin && users::other_admins(&state.db, &user.id).await? == 0;
        if last_admin {
            tracing::warn!(user_id = %user.id, provider, "the provider's claim would demote the last admin; kept");
        }
        if admin != user.is_admin && !last_admin {
            let change = users::UserChange {
                is_admin: Some(admin),
                ..Default::default()
            };
            users::apply_change(&state.db, &user.id, &change).await?;
            state.identity.auth.forget();
            AuditEvent::new("role_changed")
                .user(&user.id)
                .client(client)
                .detail(serde_json::json!({ "role": if admin { "admin" } else { "user" }, "source": provider }))
                .record(&state.db)
                .await;
            user.is_admin = admin;
        }
    }
    Ok(user)
}

fn disabled() -> AppError {
    AppError::forbidden_code("account_disabled", "this account is disabled")
}

/// A claim as a list of strings (a single string counts as a list of one).
fn claim_values(raw: &serde_json::Value, claim: &str) -> Vec<String> {
    match raw.get(claim) {
        Some(serde_json::Value::String(s)) => vec![s.clone()],
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect(),
        _ => Vec::new(),
    }
}

async fn link(db: &Db, provider: &str, identity: &Identity, user_id: &str) -> AppResult<()> {
    let now = now_ms();
    sqlx::query(
        "INSERT INTO identities (provider, subject, user_id, email, created_at, last_login_at)
         VALUES ($1, $2, $3, $4, $5, $5)",
    )
    .bind(provider)
    .bind(&identity.subject)
    .bind(user_id)
    .bind(&identity.email)
    .bind(now)
    .execute(&db.pool)
    .await
    // Two first sign-ins of one identity at once: the other one linked it.
    .map_err(|e| {
        crate::kernel::error::unique_violation_to(
            e,
            "sign_in_conflict",
            "this sign-in is being completed elsewhere; retry",
        )
    })?;
    Ok(())
}

/// A new account named after the provider's username or email, made unique. Only a
/// verified email is kept: an unverified one could later receive password resets.
async fn register(
    state: &AppState,
    identity: &Identity,
    verified_email: Option<&str>,
) -> AppResult<users::User> {
    let base = username_base(identity);
    for attempt in 0..6 {
        let username = if attempt == 0 {
            base.clone()
        } else {
            format!("{base}-{}", hex::encode(rand::random::<[u8; 2]>()))
        };
        let new = users::NewUser {
            username,
            password: None,
            email: verified_email.map(String::from),
            email_verified: verified_email.is_some(),
            is_admin: false,
        };
        match users::create_user(&state.db, &state.settings.auth, new).await {
            Err(AppError::Client {
                code: "username_taken",
                ..
            }) => continue,
            other => return other,
        }
    }
    Err(AppError::conflict(
        "username_taken",
        "could not find a free username",
    ))
}

fn username_base(identity: &Identity) -> String {
    let source = identity
        .preferred_username
        .clone()
        .or_else(|| {
            identity
                .email
                .as_deref()
                .and_then(|e| e.split('@').next())
                .map(String::from)
        })
        .unwrap_or_else(|| "user".into());
    let mut name: String = source
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(*c))
        .take(24)
        .collect();
    while name.len() < 3 {
        name.push('0');
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_accepted_as_redirects() {
        assert!(local_path("/app/library"));
        assert!(!local_path("//evil.example/x"));
        assert!(!local_path("https://evil.example/"));
        assert!(!local_path("/\\evil.example"));
    }

    #[test]
    fn loopback_redirects_are_numeric_with_a_port_and_get_the_code_in_the_query() {
        assert!(loopback("http://127.0.0.1:43123/callback"));
        assert!(loopback("http://[::1]:43123/callback"));
        assert!(!loopback("http://localhost:43123/callback"));
        assert!(!loopback("http://127.0.0.1/callback"));
        assert!(!loopback("https://127.0.0.1:443/callback"));
        assert!(!loopback("http://10.0.0.1:8080/callback"));
        assert!(!loopback("http://user@127.0.0.1:1/x"));
        assert_eq!(
            returned_to("http://127.0.0.1:9/callback", "fhc_x"),
            "http://127.0.0.1:9/callback?code=fhc_x"
        );
        assert_eq!(returned_to("/app", "fhc_x"), "/app#code=fhc_x");
    }

    #[test]
    fn role_claims_may_be_a_string_or_a_list() {
        let raw = serde_json::json!({"groups":["a","fh-admins"],"role":"admin"});
        assert_eq!(claim_values(&raw, "groups"), ["a", "fh-admins"]);
        assert_eq!(claim_values(&raw, "role"), ["admin"]);
        assert!(claim_values(&raw, "missing").is_empty());
    }

    #[test]
    fn usernames_from_providers_are_made_valid() {
        let identity = |u: Option<&str>, e: Option<&str>| Identity {
            subject: "s".into(),
            email: e.map(String::from),
            email_verified: true,
            preferred_username: u.map(String::from),
            raw: serde_json::Value::Null,
        };
        assert_eq!(username_base(&identity(Some("Jane Doe!"), None)), "janedoe");
        assert_eq!(username_base(&identity(None, Some("Bo@x.org"))), "bo0");
        assert!(users::valid_username(&username_base(&identity(None, None))));
    }
}

//! Browser sign-in: a session (the same `sessions` row programs get) carried by an
//! HttpOnly `SameSite=Lax` cookie instead of a bearer token, and the CSRF token every
//! state-changing request made with that cookie must carry.
//!
//! The cookie holds a random secret; the row keeps its SHA-256 (`cookie_hash`), so a
//! database leak yields no usable cookie. The CSRF token is an HMAC of the cookie the
//! browser holds — the session cookie when signed in, else a random pre-session cookie
//! (`fh_pre`), so the sign-in and sign-up forms are protected too ("signed double
//! submit"). A page renders the token into its forms and a `<meta>` for its scripts; an
//! attacker's page can neither read it nor, without the server's key, compute it.

use axum::http::{header, HeaderMap, HeaderValue, Method};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::auth::ClientInfo;
use super::{random_secret, secret_hash};
use crate::kernel::db::Db;
use crate::kernel::error::{AppError, AppResult};
use crate::kernel::ids::new_id;
use crate::kernel::time::now_ms;
use crate::AppState;

/// The session cookie.
pub const SESSION_COOKIE: &str = "fh_session";
/// The pre-session cookie that anonymous forms' CSRF tokens are bound to.
pub const PRE_COOKIE: &str = "fh_pre";
/// The header scripts send the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The form field forms send it in.
pub const CSRF_FIELD: &str = "_csrf";

const COOKIE_PREFIX: &str = "fhc_";

/// Opens a browser session for a user who just proved who they are; returns the
/// cookie's secret.
pub async fn start(
    state: &AppState,
    user_id: &str,
    method: &str,
    client: &ClientInfo,
) -> AppResult<String> {
    let secret = random_secret(COOKIE_PREFIX);
    let now = now_ms();
    let auth = &state.settings.auth;
    let expires_at = now
        + auth
            .refresh_token_ttl_secs
            .min(auth.session_max_lifetime_secs) as i64
            * 1000;
    sqlx::query(
        "INSERT INTO sessions (id, user_id, method, user_agent, ip, created_at, last_used_at,
                               expires_at, cookie_hash)
         VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $8)",
    )
    .bind(new_id())
    .bind(user_id)
    .bind(format!("browser:{method}"))
    .bind(&client.user_agent)
    .bind(client.ip_text())
    .bind(now)
    .bind(expires_at)
    .bind(secret_hash(&secret))
    .execute(&state.db.pool)
    .await?;
    Ok(secret)
}

/// Keeps an active browser session alive while it is used: its expiry slides to
/// `ttl_ms` from now, never past `max_ms` from its start.
pub async fn extend(
    db: &Db,
    session_id: &str,
    ttl_ms: i64,
    max_ms: i64,
) -> Result<(), sqlx::Error> {
    let now = now_ms();
    sqlx::query(
        "UPDATE sessions SET last_used_at = $1,
             expires_at = CASE WHEN $2 < created_at + $3 THEN $2 ELSE created_at + $3 END
         WHERE id = $4 AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(now + ttl_ms)
    .bind(max_ms)
    .bind(session_id)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// The value of cookie `name` in the request, if sent once or more (the first wins).
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"'))
        .filter(|v| !v.is_empty())
}

/// `Set-Cookie` for `name`; `None` as value clears it. `Secure` when the server's
/// public address is https.
pub fn set_cookie(state: &AppState, name: &str, value: Option<&str>) -> HeaderValue {
    let secure = state.settings.public_url().starts_with("https://");
    let max_age = match value {
        Some(_) => state.settings.auth.session_max_lifetime_secs,
        None => 0,
    };
    let text = format!(
        "{name}={}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{}",
        value.unwrap_or(""),
        if secure { "; Secure" } else { "" }
    );
    HeaderValue::from_str(&text).expect("cookie values are base64url")
}

/// A new pre-session cookie value.
pub fn new_pre_secret() -> String {
    random_secret("fhp_")
}

/// The CSRF token for a browser holding `binding` (its session or pre-session cookie).
pub fn csrf_token(state: &AppState, binding: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(&state.identity.csrf_key).expect("any key");
    mac.update(b"csrf\0");
    mac.update(binding.as_bytes());
    hex::encode(&mac.finalize().into_bytes()[..20])
}

/// What a request's CSRF token is bound to: the session cookie, else the pre-session one.
pub fn binding(headers: &HeaderMap) -> Option<&str> {
    cookie(headers, SESSION_COOKIE).or_else(|| cookie(headers, PRE_COOKIE))
}

/// 403 unless `presented` is the CSRF token of the cookie this request carries.
pub fn check_csrf(state: &AppState, headers: &HeaderMap, presented: Option<&str>) -> AppResult<()> {
    let expected = binding(headers).map(|b| csrf_token(state, b));
    match (expected, presented) {
        (Some(expected), Some(given))
            if bool::from(expected.as_bytes().ct_eq(given.as_bytes())) =>
        {
            Ok(())
        }
        _ => Err(AppError::forbidden_code(
            "csrf_failed",
            "this form has expired or came from another site; reload the page and try again",
        )),
    }
}

/// Whether a request with this method changes state (and so needs a CSRF token when it
/// is authenticated by the cookie).
pub fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

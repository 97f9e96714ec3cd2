//! Who is calling: the `Authorization: Bearer` credential (an access token or an `fh_`
//! API key) resolved to a [`Caller`] with scopes, and the extractors through which every
//! endpoint declares the scope it needs (`Viewer`/`Caller` read, `Writer`, `Deleter`,
//! `Admin`, and `Account` for managing the account itself, which API keys may not).
//!
//! Revocation: sessions, keys and users are re-read from the database, cached per node
//! for at most `auth.revocation_check_secs`; revoking on a node clears its cache at once,
//! and with Redis configured it tells every other node to do the same (a notice on the
//! `revocations` channel), so the bound only applies while Redis is unreachable.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::USER_AGENT;
use axum::http::request::Parts;
use axum::http::StatusCode;
use moka::future::Cache;
use sqlx::Row;

use super::tokens::JwtKeys;
use crate::kernel::cache::Redis;
use crate::kernel::db::Db;
use crate::kernel::error::AppError;
use crate::kernel::netrange::NetRange;
use crate::kernel::time::now_ms;
use crate::AppState;

/// What a credential may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    MediaRead,
    MediaWrite,
    MediaDelete,
    /// Friends, follows, albums, messages and notifications: reading them.
    SocialRead,
    /// … and changing them.
    SocialWrite,
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 6] = [
        Scope::MediaRead,
        Scope::MediaWrite,
        Scope::MediaDelete,
        Scope::SocialRead,
        Scope::SocialWrite,
        Scope::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::MediaRead => "media:read",
            Scope::MediaWrite => "media:write",
            Scope::MediaDelete => "media:delete",
            Scope::SocialRead => "social:read",
            Scope::SocialWrite => "social:write",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.as_str() == text)
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// A set of scopes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Scopes(u8);

impl Scopes {
    /// What a signed-in session may do: everything its user may.
    pub fn of_user(is_admin: bool) -> Scopes {
        let mut s = Scopes::default();
        for scope in Scope::ALL {
            if scope != Scope::Admin || is_admin {
                s.insert(scope);
            }
        }
        s
    }

    pub fn insert(&mut self, scope: Scope) {
        self.0 |= scope.bit();
    }

    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// Parses scope names, refusing unknown ones (named in the error).
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Scopes, String> {
        let mut s = Scopes::default();
        for name in names {
            s.insert(Scope::parse(name).ok_or_else(|| name.to_string())?);
        }
        Ok(s)
    }

    pub fn names(self) -> Vec<&'static str> {
        Scope::ALL
            .into_iter()
            .filter(|s| self.contains(*s))
            .map(Scope::as_str)
            .collect()
    }

    /// Space-separated, as stored.
    pub fn to_db(self) -> String {
        self.names().join(" ")
    }

    /// Unknown names in the database are ignored rather than trusted.
    pub fn from_db(text: &str) -> Scopes {
        let mut s = Scopes::default();
        for scope in text.split_whitespace().filter_map(Scope::parse) {
            s.insert(scope);
        }
        s
    }
}

/// How the caller proved who it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// An access token of this session.
    Session(String),
    /// This API key.
    ApiKey(String),
    /// A one-time grant the user made (a direct-upload URL, by its id): it may write
    /// and read media as the user, nothing else.
    Grant(String),
}

/// An authenticated caller. As an extractor it answers 401 when no valid credential is
/// sent and 403 when the credential lacks `media:read`.
#[derive(Clone, Debug)]
pub struct Caller {
    pub user_id: String,
    /// Whether the caller acts as an administrator now: the user's role (re-read within
    /// the revocation bound, not taken from the token) and, for an API key, its `admin`
    /// scope. Owner-or-admin checks everywhere rely on this.
    pub is_admin: bool,
    pub scopes: Scopes,
    pub credential: Credential,
}

impl Caller {
    /// The user acting through grant `grant_id`, which carries `media:read` and
    /// `media:write` only.
    pub fn granted(user_id: &str, grant_id: &str) -> Caller {
        let mut scopes = Scopes::default();
        scopes.insert(Scope::MediaRead);
        scopes.insert(Scope::MediaWrite);
        Caller {
            user_id: user_id.to_string(),
            is_admin: false,
            scopes,
            credential: Credential::Grant(grant_id.to_string()),
        }
    }

    pub fn session_id(&self) -> Option<&str> {
        match &self.credential {
            Credential::Session(id) => Some(id),
            Credential::ApiKey(_) | Credential::Grant(_) => None,
        }
    }

    /// 403 unless this credential carries `scope` (and, for `admin`, the user is one).
    pub fn require(&self, scope: Scope) -> Result<(), AppError> {
        let is_key = matches!(
            self.credential,
            Credential::ApiKey(_) | Credential::Grant(_)
        );
        if is_key && !self.scopes.contains(scope) {
            return Err(AppError::forbidden_code(
                "insufficient_scope",
                format!("this API key lacks the `{}` scope", scope.as_str()),
            ));
        }
        if scope == Scope::Admin && !self.is_admin {
            return Err(AppError::forbidden("this needs an administrator"));
        }
        debug_assert!(self.scopes.contains(scope));
        Ok(())
    }
}

/// The caller if a credential was sent, else anonymous. A credential that is sent but
/// invalid is still a 401: a client with a broken token should hear so.
#[derive(Clone, Debug)]
pub struct Viewer(pub Option<Caller>);

/// Declares an extractor that demands a signed-in caller holding `$scope`.
macro_rules! scoped_extractor {
    ($(#[$doc:meta])* $name:ident, $scope:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug)]
        pub struct $name(pub Caller);

        impl FromRequestParts<AppState> for $name {
            type Rejection = AppError;

            async fn from_request_parts(
                parts: &mut Parts,
                state: &AppState,
            ) -> Result<Self, AppError> {
                let caller = required(parts, state).await?;
                caller.require($scope)?;
                Ok($name(caller))
            }
        }
    };
}

scoped_extractor!(
    /// A caller that may create or change media (`media:write`).
    Writer,
    Scope::MediaWrite
);
scoped_extractor!(
    /// A caller that may delete media (`media:delete`).
    Deleter,
    Scope::MediaDelete
);
scoped_extractor!(
    /// A caller that may read its friends, albums, messages and notifications
    /// (`social:read`).
    SocialReader,
    Scope::SocialRead
);
scoped_extractor!(
    /// A caller that may change them (`social:write`).
    SocialWriter,
    Scope::SocialWrite
);
scoped_extractor!(
    /// An administrator (`admin` scope and the admin role).
    Admin,
    Scope::Admin
);

/// A person signed in with a session: managing the account itself (sessions, API keys,
/// password, deletion) is refused to API keys, so a leaked key cannot mint more keys or
/// lock its owner out.
#[derive(Clone, Debug)]
pub struct Account(pub Caller);

impl FromRequestParts<AppState> for Account {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let caller = required(parts, state).await?;
        if caller.session_id().is_none() {
            return Err(AppError::forbidden_code(
                "session_required",
                "API keys cannot manage the account; sign in instead",
            ));
        }
        Ok(Account(caller))
    }
}

async fn required(parts: &Parts, state: &AppState) -> Result<Caller, AppError> {
    match present(parts, state, false).await? {
        Some(caller) => Ok(caller),
        None => Err(AppError::unauthorized(
            "sign in first: send `Authorization: Bearer <token>`",
        )),
    }
}

/// The caller of a bearer credential, else of the browser's session cookie (which, on a
/// request that changes state, must come with its CSRF token in `X-CSRF-Token`); `None`
/// when neither is sent. With `lenient`, an ended session's cookie counts as none: a
/// browser does not choose to send it, so a public image must still load.
async fn present(
    parts: &Parts,
    state: &AppState,
    lenient: bool,
) -> Result<Option<Caller>, AppError> {
    if let Some(token) = bearer(parts)? {
        return state.identity.auth.authenticate(token).await.map(Some);
    }
    let Some(secret) = super::browser::cookie(&parts.headers, super::browser::SESSION_COOKIE)
    else {
        return Ok(None);
    };
    if super::browser::changes_state(&parts.method) {
        let sent = (parts.headers.get(super::browser::CSRF_HEADER)).and_then(|v| v.to_str().ok());
        super::browser::check_csrf(state, &parts.headers, sent)?;
    }
    match state.identity.auth.authenticate_cookie(secret).await {
        Ok(caller) => Ok(Some(caller)),
        Err(AppError::Client { status, .. }) if lenient && status == StatusCode::UNAUTHORIZED => {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

fn bearer(parts: &Parts) -> Result<Option<&str>, AppError> {
    bearer_of(&parts.headers)
}

/// The bearer credential in `headers`, for checking a long-lived response (an event
/// stream) again later.
pub fn bearer_of(headers: &axum::http::HeaderMap) -> Result<Option<&str>, AppError> {
    let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| AppError::unauthorized("malformed Authorization"))?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Ok(Some(token.trim())),
        _ => Err(AppError::unauthorized(
            "expected `Authorization: Bearer <token>`",
        )),
    }
}

/// The credential a request presented, kept by a long-lived response (an event stream)
/// to check again while it runs.
pub enum Presented {
    Bearer(String),
    Cookie(String),
}

impl Presented {
    /// The credential of `headers`, as [`Caller`] would pick it: the bearer first.
    pub fn of(headers: &axum::http::HeaderMap) -> Result<Option<Presented>, AppError> {
        if let Some(token) = bearer_of(headers)? {
            return Ok(Some(Presented::Bearer(token.to_string())));
        }
        let cookie = super::browser::cookie(headers, super::browser::SESSION_COOKIE);
        Ok(cookie.map(|c| Presented::Cookie(c.to_string())))
    }

    /// Who the credential stands for now.
    pub async fn check(&self, auth: &Authenticator) -> Result<Caller, AppError> {
        match self {
            Presented::Bearer(token) => auth.authenticate(token).await,
            Presented::Cookie(secret) => auth.authenticate_cookie(secret).await,
        }
    }
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let Some(caller) = present(parts, state, true).await? else {
            return Ok(Viewer(None));
        };
        caller.require(Scope::MediaRead)?;
        Ok(Viewer(Some(caller)))
    }
}

/// A viewer of social things (profiles, albums, comments): anonymous, or signed in with
/// `social:read` — a credential without it is refused, not treated as anonymous.
#[derive(Clone, Debug)]
pub struct SocialViewer(pub Viewer);

impl FromRequestParts<AppState> for SocialViewer {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let Some(caller) = present(parts, state, true).await? else {
            return Ok(SocialViewer(Viewer(None)));
        };
        caller.require(Scope::SocialRead)?;
        Ok(SocialViewer(Viewer(Some(caller))))
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let caller = required(parts, state).await?;
        caller.require(Scope::MediaRead)?;
        Ok(caller)
    }
}

/// The prefix that marks API keys, so they are recognisable in code and secret scanners.
pub const API_KEY_PREFIX: &str = "fh_";

/// The Redis channel of revocation notices.
const REVOCATIONS: &str = "revocations";

/// The state of a session or key as last read, with its user's.
#[derive(Debug)]
struct Principal {
    id: String,
    user_id: String,
    /// For pages, which name the signed-in person without another query.
    username: String,
    is_admin: bool,
    scopes: Scopes,
    /// Not revoked and the user not disabled.
    active: bool,
    expires_at: Option<i64>,
    /// When use was last written to the database (ms; 0 never), shared by every request
    /// that finds this entry in the cache, so at most one write a minute per node.
    last_used_at: AtomicI64,
}

impl Principal {
    /// Whether this use should be written to the database: at most once a minute per
    /// node, claimed by one of the requests that share this cache entry.
    fn use_due(&self, now: i64) -> bool {
        let last = self.last_used_at.load(Ordering::Relaxed);
        now - last > 60_000
            && (self.last_used_at)
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

/// Resolves credentials, caching what it reads for the revocation bound.
pub struct Authenticator {
    pub jwt: JwtKeys,
    db: Db,
    redis: Redis,
    cache: Option<Cache<String, Option<Arc<Principal>>>>,
    /// Bumped by `forget`: a load that began before a revocation must not put what it
    /// read back into the cache after the revocation cleared it.
    generation: std::sync::atomic::AtomicU64,
    /// How far (ms) a browser session's expiry slides on use, and its maximum lifetime.
    cookie_lifetime: (i64, i64),
}

impl Authenticator {
    pub fn new(jwt: JwtKeys, db: Db, redis: Redis, revocation_check_secs: u64) -> Authenticator {
        let cache = (revocation_check_secs > 0).then(|| {
            Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(revocation_check_secs))
                .build()
        });
        Authenticator {
            jwt,
            db,
            redis,
            cache,
            generation: Default::default(),
            cookie_lifetime: (30 * 86_400_000, 90 * 86_400_000),
        }
    }

    /// Sets how far a browser session's expiry slides on use, and its maximum lifetime.
    pub fn with_cookie_lifetime(mut self, ttl_secs: u64, max_secs: u64) -> Authenticator {
        self.cookie_lifetime = (ttl_secs as i64 * 1000, max_secs as i64 * 1000);
        self
    }

    /// Drops everything cached, after a revocation, disabling or role change here, and
    /// tells the other nodes to (when Redis is configured).
    pub fn forget(&self) {
        self.forget_here();
        if self.redis.enabled() && self.cache.is_some() {
            let redis = self.redis.clone();
            tokio::spawn(async move {
                if !redis.publish(REVOCATIONS, "forget").await {
                    tracing::warn!("revocation notice not sent: other nodes notice within auth.revocation_check_secs");
                }
            });
        }
    }

    fn forget_here(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        if let Some(cache) = &self.cache {
            cache.invalidate_all();
        }
    }

    /// Forgets on every notice from another node until `shutdown`, and whenever the
    /// subscription is (re)made, since notices sent while it was not are lost.
    pub async fn listen(self: Arc<Self>, shutdown: tokio_util::sync::CancellationToken) {
        if self.cache.is_none() {
            return;
        }
        let (a, b) = (self.clone(), self.clone());
        self.redis
            .clone()
            .subscribe(
                REVOCATIONS,
                shutdown,
                move || a.forget_here(),
                move |_| {
                    metrics::counter!("revocation_notices_total").increment(1);
                    b.forget_here()
                },
            )
            .await;
    }

    pub async fn authenticate(&self, token: &str) -> Result<Caller, AppError> {
        if token.starts_with(API_KEY_PREFIX) {
            return self.api_key(token).await;
        }
        let claims = self.jwt.verify(token)?;
        let key = format!("s:{}", claims.session_id);
        let principal = self
            .cached(&key, || session(&self.db, &claims.session_id))
            .await?;
        match principal {
            Some(p) if p.active && p.user_id == claims.user_id => Ok(Caller {
                user_id: p.user_id.clone(),
                is_admin: p.is_admin,
                scopes: p.scopes,
                credential: Credential::Session(p.id.clone()),
            }),
            _ => Err(AppError::unauthorized(
                "this session has ended; sign in again",
            )),
        }
    }

    /// The caller of a browser session cookie. An active session's expiry slides
    /// forward with use, written at most once a minute per node.
    pub async fn authenticate_cookie(&self, secret: &str) -> Result<Caller, AppError> {
        self.authenticate_browser(secret)
            .await
            .map(|(caller, _)| caller)
    }

    /// [`Self::authenticate_cookie`], with the signed-in person's username.
    pub async fn authenticate_browser(&self, secret: &str) -> Result<(Caller, String), AppError> {
        let hash = super::secret_hash(secret);
        let principal = self
            .cached(&format!("c:{hash}"), || session_by_cookie(&self.db, &hash))
            .await?;
        let Some(p) = principal.filter(|p| p.active) else {
            return Err(AppError::unauthorized(
                "this session has ended; sign in again",
            ));
        };
        let now = now_ms();
        let due = p.use_due(now);
        if due {
            let (db, id, (ttl, max)) = (self.db.clone(), p.id.clone(), self.cookie_lifetime);
            tokio::spawn(async move {
                if let Err(e) = super::browser::extend(&db, &id, ttl, max).await {
                    tracing::warn!(error = %e, "extending a browser session");
                }
            });
        }
        let caller = Caller {
            user_id: p.user_id.clone(),
            is_admin: p.is_admin,
            scopes: p.scopes,
            credential: Credential::Session(p.id.clone()),
        };
        Ok((caller, p.username.clone()))
    }

    async fn api_key(&self, key: &str) -> Result<Caller, AppError> {
        let hash = super::secret_hash(key);
        let principal = self
            .cached(&format!("k:{hash}"), || api_key(&self.db, &hash))
            .await?;
        let now = now_ms();
        let Some(p) = principal.filter(|p| p.active && p.expires_at.is_none_or(|at| at > now))
        else {
            return Err(AppError::unauthorized(
                "unknown, revoked or expired API key",
            ));
        };
        // Last use is recorded at most once a minute per key, off the request path.
        let due = p.use_due(now);
        if due {
            let db = self.db.clone();
            let id = p.id.clone();
            tokio::spawn(async move {
                let done = sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
                    .bind(now)
                    .bind(&id)
                    .execute(&db.pool)
                    .await;
                if let Err(e) = done {
                    tracing::warn!(error = %e, "recording API key use");
                }
            });
        }
        Ok(Caller {
            user_id: p.user_id.clone(),
            // An admin's key acts as admin (sees others' items, …) only with the scope.
            is_admin: p.is_admin && p.scopes.contains(Scope::Admin),
            scopes: p.scopes,
            credential: Credential::ApiKey(p.id.clone()),
        })
    }

    async fn cached<F, Fut>(&self, key: &str, load: F) -> Result<Option<Arc<Principal>>, AppError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Option<Principal>, sqlx::Error>>,
    {
        if let Some(cache) = &self.cache {
            if let Some(hit) = cache.get(key).await {
                return Ok(hit);
            }
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let loaded = load().await?.map(Arc::new);
        if let Some(cache) = &self.cache {
            if self.generation.load(Ordering::SeqCst) == generation {
                cache.insert(key.to_string(), loaded.clone()).await;
                // A `forget` between the check and the insert: drop what we put.
                if self.generation.load(Ordering::SeqCst) != generation {
                    cache.invalidate(key).await;
                }
            }
        }
        Ok(loaded)
    }
}

async fn session(db: &Db, id: &str) -> Result<Option<Principal>, sqlx::Error> {
    session_where(db, "s.id", id).await
}

async fn session_by_cookie(db: &Db, hash: &str) -> Result<Option<Principal>, sqlx::Error> {
    session_where(db, "s.cookie_hash", hash).await
}

/// The session whose `column` (a fixed name, never input) equals `value`.
async fn session_where(
    db: &Db,
    column: &'static str,
    value: &str,
) -> Result<Option<Principal>, sqlx::Error> {
    let sql = format!(
        "SELECT s.id, s.user_id, s.revoked_at, s.expires_at, s.last_used_at, u.is_admin,
                u.disabled_at, u.username
         FROM sessions s JOIN users u ON u.id = s.user_id WHERE {column} = $1"
    );
    let row = sqlx::query(&sql)
        .bind(value)
        .fetch_optional(&db.pool)
        .await?;
    let Some(row) = row else { return Ok(None) };
    let id: String = row.try_get("id")?;
    let is_admin = row.try_get::<i64, _>("is_admin")? != 0;
    let active = row.try_get::<Option<i64>, _>("revoked_at")?.is_none()
        && row.try_get::<Option<i64>, _>("disabled_at")?.is_none()
        && row.try_get::<i64, _>("expires_at")? > now_ms();
    Ok(Some(Principal {
        id,
        user_id: row.try_get("user_id")?,
        username: row.try_get("username")?,
        is_admin,
        scopes: Scopes::of_user(is_admin),
        active,
        expires_at: None,
        last_used_at: AtomicI64::new(row.try_get("last_used_at")?),
    }))
}

async fn api_key(db: &Db, hash: &str) -> Result<Option<Principal>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT k.id, k.user_id, k.scopes, k.expires_at, k.revoked_at, k.last_used_at,
                u.is_admin, u.disabled_at, u.username
         FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.hash = $1",
    )
    .bind(hash)
    .fetch_optional(&db.pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some(Principal {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        username: row.try_get("username")?,
        is_admin: row.try_get::<i64, _>("is_admin")? != 0,
        scopes: Scopes::from_db(&row.try_get::<String, _>("scopes")?),
        active: row.try_get::<Option<i64>, _>("revoked_at")?.is_none()
            && row.try_get::<Option<i64>, _>("disabled_at")?.is_none(),
        expires_at: row.try_get("expires_at")?,
        last_used_at: AtomicI64::new(row.try_get::<Option<i64>, _>("last_used_at")?.unwrap_or(0)),
    }))
}

/// The client's address and agent, for rate limits, the audit log and session lists.
#[derive(Clone, Debug)]
pub struct ClientInfo {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
}

impl ClientInfo {
    pub fn ip_text(&self) -> String {
        self.ip
            .map_or_else(|| "unknown".into(), |ip| ip.to_canonical().to_string())
    }

    /// The address as a rate-limit subject: IPv6 by its /64, which one subscriber
    /// holds whole and could otherwise rotate through for fresh buckets.
    pub fn rate_key(&self) -> String {
        match self.ip.map(|ip| ip.to_canonical()) {
            Some(IpAddr::V6(v6)) => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
            _ => self.ip_text(),
        }
    }
}

/// The TCP peer, or, when the peer is a trusted proxy, the nearest untrusted address
/// in `X-Forwarded-For` (the rightmost entries are the ones our own proxies added).
pub fn client_ip(parts: &Parts, trusted: &[NetRange]) -> Option<IpAddr> {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|range| range.contains(ip));
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip().to_canonical())?;
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let forwarded = parts
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|part| part.trim().parse::<IpAddr>().ok())
        .map(|ip| ip.to_canonical())
        .collect::<Vec<_>>();
    forwarded
        .into_iter()
        .rev()
        .find(|ip| !is_trusted(ip))
        .or(Some(peer))
}

impl FromRequestParts<AppState> for ClientInfo {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let user_agent = parts
            .headers
            .get(USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(256).collect());
        Ok(ClientInfo {
            ip: client_ip(parts, &state.settings.trusted_proxies),
            user_agent,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip_and_unknown_names_are_refused() {
        let s = Scopes::parse(["media:read", "media:delete"]).unwrap();
        assert!(s.contains(Scope::MediaRead) && !s.contains(Scope::MediaWrite));
        assert_eq!(Scopes::from_db(&s.to_db()), s);
        assert_eq!(Scopes::parse(["media:read", "root"]), Err("root".into()));
        assert!(!Scopes::of_user(false).contains(Scope::Admin));
        assert!(Scopes::of_user(true).contains(Scope::Admin));
    }

    #[test]
    fn forwarded_addresses_are_believed_only_from_trusted_proxies() {
        let request = |peer: &str, xff: &str| {
            let mut req = axum::http::Request::builder()
                .header("x-forwarded-for", xff)
                .body(())
                .unwrap();
            req.extensions_mut()
                .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
            req.into_parts().0
        };
        let proxy: NetRange = "10.0.0.1".parse().unwrap();
        let parts = request("10.0.0.1:5000", "6.6.6.6, 203.0.113.9");
        assert_eq!(client_ip(&parts, &[proxy]), "203.0.113.9".parse().ok());
        assert_eq!(client_ip(&parts, &[]), "10.0.0.1".parse().ok());
        let direct = request("198.51.100.7:5000", "1.1.1.1");
        assert_eq!(client_ip(&direct, &[proxy]), "198.51.100.7".parse().ok());
        // A range of proxies (a pod network): every hop inside it is skipped.
        let pods: NetRange = "10.244.0.0/16".parse().unwrap();
        let chain = request("10.244.1.5:5000", "203.0.113.9, 10.244.2.7");
        assert_eq!(client_ip(&chain, &[pods]), "203.0.113.9".parse().ok());
        assert_eq!(client_ip(&chain, &[proxy]), "10.244.1.5".parse().ok());
    }
}

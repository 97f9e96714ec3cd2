//! The `[auth]` section: tokens, sessions, passwords, lockout, rate limits, notices and
//! OpenID Connect providers.

use serde::{Deserialize, Serialize};

use crate::kernel::secret::Secret;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// HMAC key for access tokens. Default: generated once and kept in
    /// `<data_dir>/secrets/jwt.key` (set it explicitly when running several api nodes).
    pub jwt_secret: Secret,
    /// Earlier signing keys, still accepted when verifying during a key rotation: move
    /// the old `jwt_secret` here, set a new one, and drop it after `access_token_ttl_secs`.
    /// Each key is named in tokens by its `kid`, derived from the key.
    pub jwt_previous_secrets: Vec<Secret>,
    /// Access-token lifetime in seconds. Default 900 (15 minutes).
    pub access_token_ttl_secs: u64,
    /// A session (its refresh token) ends after this many seconds unused. Default 30 days.
    pub refresh_token_ttl_secs: u64,
    /// How long an api node may trust what it last read about a session, API key or user
    /// (revoked, disabled, role). This bounds how fast a logout, revocation, disabling
    /// or demotion done on *another* node takes effect; on the node that did it, it is
    /// immediate. 0 checks the database on every request. Default 10.
    pub revocation_check_secs: u64,
    /// Whether anyone may register an account. Default true.
    pub open_registration: bool,
    /// Shortest accepted password, in characters. Default 8.
    pub min_password_length: usize,
    /// Failed logins in a row before an account is locked. Default 5.
    pub lockout_threshold: u32,
    /// First lockout in seconds; it doubles with each further failure. Default 30.
    pub lockout_base_secs: u64,
    /// Longest lockout in seconds. Default 3600.
    pub lockout_max_secs: u64,
    /// Lifetime of a password-reset token in seconds. Default 3600.
    pub password_reset_ttl_secs: u64,
    /// A session ends this many seconds after sign-in however often it is refreshed.
    /// Default 90 days.
    pub session_max_lifetime_secs: u64,
    /// Days audit events are kept. Default 365.
    pub audit_retention_days: u64,
    /// How password-reset links reach users.
    pub notifier: NotifierSettings,
    /// Token-bucket limits per client address and per account.
    pub rate_limits: RateLimitSettings,
    /// External OpenID Connect providers users may sign in with.
    pub oidc: Vec<OidcProviderSettings>,
}

/// One token bucket: `per_window` requests, refilled evenly over `window_secs`.
/// `per_window = 0` means unlimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateRule {
    pub per_window: u32,
    pub window_secs: u64,
}

impl RateRule {
    pub const fn new(per_window: u32, window_secs: u64) -> Self {
        Self {
            per_window,
            window_secs,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitSettings {
    /// Login attempts per client address. Default 30 a minute.
    pub login_per_ip: RateRule,
    /// Login attempts per account name. Default 10 a minute.
    pub login_per_account: RateRule,
    /// Registrations per client address. Default 10 an hour.
    pub register_per_ip: RateRule,
    /// Token refreshes per client address. Default 60 a minute.
    pub refresh_per_ip: RateRule,
    /// Token refreshes per session. Default 20 a minute.
    pub refresh_per_session: RateRule,
    /// Uploads per client address. Default 600 a minute.
    pub upload_per_ip: RateRule,
    /// Uploads per account. Default 600 a minute.
    pub upload_per_account: RateRule,
    /// Password-reset requests per client address. Default 10 an hour.
    pub password_reset_per_ip: RateRule,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifierSettings {
    /// `log` (append to `<data_dir>/notifications.log`, mode 0600, never to the server
    /// log), `webhook` (POST JSON to `webhook_url`) or `none`. Default `log`.
    pub kind: String,
    /// Where `webhook` notifications are POSTed.
    pub webhook_url: String,
    /// Key for the `X-Framehouse-Signature: sha256=<hex HMAC of the body>` header.
    pub webhook_secret: Secret,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OidcProviderSettings {
    /// Short name used in URLs: `/api/v1/auth/oidc/{id}/login`.
    pub id: String,
    /// Label shown on the sign-in page.
    pub name: String,
    /// Issuer URL; `<issuer>/.well-known/openid-configuration` must exist.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Secret,
    /// Scopes requested. Default `openid email profile`.
    pub scopes: Vec<String>,
    /// Create an account on first sign-in when none matches. Default true.
    pub auto_register: bool,
    /// Link to an existing account whose email equals the provider's *verified* email.
    /// Default true.
    pub link_by_email: bool,
    /// ID-token claim holding roles or groups (a string or a list), e.g. `groups`.
    pub role_claim: Option<String>,
    /// Values of `role_claim` that make the user an admin; when `role_claim` is set the
    /// role follows the provider at every sign-in.
    pub admin_values: Vec<String>,
    /// Seconds the discovery document and signing keys are cached. Default 3600; an
    /// ID token signed by an unknown key triggers one early refresh.
    pub metadata_cache_secs: u64,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            jwt_secret: Secret::default(),
            jwt_previous_secrets: Vec::new(),
            access_token_ttl_secs: 900,
            refresh_token_ttl_secs: 30 * 86_400,
            revocation_check_secs: 10,
            open_registration: true,
            min_password_length: 8,
            lockout_threshold: 5,
            lockout_base_secs: 30,
            lockout_max_secs: 3600,
            password_reset_ttl_secs: 3600,
            session_max_lifetime_secs: 90 * 86_400,
            audit_retention_days: 365,
            notifier: NotifierSettings::default(),
            rate_limits: RateLimitSettings::default(),
            oidc: Vec::new(),
        }
    }
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            login_per_ip: RateRule::new(30, 60),
            login_per_account: RateRule::new(10, 60),
            register_per_ip: RateRule::new(10, 3600),
            refresh_per_ip: RateRule::new(60, 60),
            refresh_per_session: RateRule::new(20, 60),
            upload_per_ip: RateRule::new(600, 60),
            upload_per_account: RateRule::new(600, 60),
            password_reset_per_ip: RateRule::new(10, 3600),
        }
    }
}

impl Default for NotifierSettings {
    fn default() -> Self {
        Self {
            kind: "log".into(),
            webhook_url: String::new(),
            webhook_secret: Secret::default(),
        }
    }
}

impl Default for OidcProviderSettings {
    fn default() -> Self {
        Self {
            id: String::new(),
            name: String::new(),
            issuer: String::new(),
            client_id: String::new(),
            client_secret: Secret::default(),
            scopes: vec!["openid".into(), "email".into(), "profile".into()],
            auto_register: true,
            link_by_email: true,
            role_claim: None,
            admin_values: Vec::new(),
            metadata_cache_secs: 3600,
        }
    }
}

//! Typed configuration: embedded defaults ← optional TOML file ← `FRAMEHOUSE_…`
//! environment variables ← command-line flags (each layer overrides the one before).

use std::fmt;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize, Serializer};

/// A secret value: deserialised from config like a string, never printed.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "\"\""
        } else {
            "\"********\""
        })
    }
}

/// Secrets serialise masked, so `framehouse config` and logs never show them.
impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(if self.0.is_empty() { "" } else { "********" })
    }
}

/// Which parts of the application a process runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Api,
    Worker,
    Scheduler,
}

impl Role {
    /// Parses `all` or a comma-separated list such as `api,worker`.
    pub fn parse_list(text: &str) -> Result<Vec<Role>, String> {
        let mut roles = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "all" => roles.extend([Role::Api, Role::Worker, Role::Scheduler]),
                "api" => roles.push(Role::Api),
                "worker" => roles.push(Role::Worker),
                "scheduler" => roles.push(Role::Scheduler),
                other => {
                    return Err(format!(
                        "unknown role `{other}` (api, worker, scheduler, all)"
                    ))
                }
            }
        }
        roles.sort_by_key(|r| *r as u8);
        roles.dedup();
        if roles.is_empty() {
            return Err("no role given".into());
        }
        Ok(roles)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Address the HTTP server binds. Default `127.0.0.1:8080`.
    pub listen: String,
    /// Directory for the SQLite file, the local object store and temp files. Default `./data`.
    pub data_dir: PathBuf,
    /// Roles this process runs: any of `api`, `worker`, `scheduler` (a list, or a
    /// comma-separated string such as `FRAMEHOUSE_ROLES=api,worker`). Default all three.
    #[serde(deserialize_with = "roles_from_list_or_text")]
    pub roles: Vec<Role>,
    /// Seconds running jobs and requests get to finish on SIGTERM/SIGINT. Default 30.
    pub shutdown_grace_secs: u64,
    /// The URL users reach this server at (scheme, host, port; no trailing slash), used
    /// for OpenID Connect redirect URIs and links in notifications. Default
    /// `http://<listen>`.
    pub public_url: Option<String>,
    /// Addresses of reverse proxies whose `X-Forwarded-For` is believed when telling
    /// the client address (rate limits, audit log, view counting). Default none.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    pub database: DatabaseSettings,
    pub storage: StorageSettings,
    pub auth: AuthSettings,
    pub limits: LimitSettings,
    pub worker: WorkerSettings,
    pub delivery: DeliverySettings,
    pub gc: GcSettings,
    pub transform: TransformSettings,
    pub video: VideoSettings,
    pub playback: PlaybackSettings,
}

fn roles_from_list_or_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Role>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Roles {
        Text(String),
        List(Vec<Role>),
    }
    match Roles::deserialize(d)? {
        Roles::Text(text) => Role::parse_list(&text).map_err(serde::de::Error::custom),
        Roles::List(list) => Ok(list),
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `sqlite://…` or `postgres://…`. Default: SQLite at `<data_dir>/framehouse.db`.
    pub url: Option<Secret>,
    /// Connection pool size. Default 16.
    pub max_connections: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSettings {
    /// `local` (files under `<data_dir>/objects`) or `s3`. Default `local`.
    pub backend: String,
    /// S3 bucket name (backend `s3`).
    pub s3_bucket: String,
    /// S3 region. Default `us-east-1`.
    pub s3_region: String,
    /// S3 endpoint for non-AWS stores (Garage, MinIO, Ceph). Default: AWS.
    pub s3_endpoint: Option<String>,
    /// S3 access key id.
    pub s3_access_key_id: String,
    /// S3 secret access key.
    pub s3_secret_access_key: Secret,
    /// Allow plain-HTTP endpoints (local MinIO/Garage). Default false.
    pub s3_allow_http: bool,
}

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

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitSettings {
    /// Largest accepted upload body in bytes. Default 100 MiB.
    pub max_upload_bytes: u64,
    /// Largest accepted image area in pixels. Default 50,000,000.
    pub max_pixels: u64,
    /// Largest accepted image width or height. Default 12,000.
    pub max_side: u32,
    /// Most frames accepted in an animated image. Default 500.
    pub max_frames: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerSettings {
    /// Jobs run at once by this process. Default: the number of cores.
    pub concurrency: usize,
    /// Seconds a claimed job is leased before another worker may take it over. Default 30.
    pub lease_secs: u64,
    /// Attempts before a job is dead-lettered. Default 5.
    pub max_attempts: u32,
    /// Milliseconds an idle worker waits before polling the queue again. Default 500.
    pub poll_interval_ms: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliverySettings {
    /// Serve originals to anyone who may read the item, not only to its owner. Default false.
    pub public_originals: bool,
    /// Bytes of small derivatives kept in memory for hot delivery. Default 64 MiB.
    pub cache_bytes: u64,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            public_originals: false,
            cache_bytes: 64 * 1024 * 1024,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GcSettings {
    /// Seconds between garbage-collection sweeps run by the scheduler. Default 3600.
    pub sweep_interval_secs: u64,
    /// Temp files older than this many seconds are removed by the sweep. Default 86400.
    pub tmp_max_age_secs: u64,
    /// Objects without a blob row are removed once older than this many seconds (an
    /// upload moves its object in just before its transaction commits). Default 3600.
    pub orphan_min_age_secs: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("./data"),
            roles: vec![Role::Api, Role::Worker, Role::Scheduler],
            shutdown_grace_secs: 30,
            public_url: None,
            trusted_proxies: Vec::new(),
            database: DatabaseSettings::default(),
            storage: StorageSettings::default(),
            auth: AuthSettings::default(),
            limits: LimitSettings::default(),
            worker: WorkerSettings::default(),
            delivery: DeliverySettings::default(),
            gc: GcSettings::default(),
            transform: TransformSettings::default(),
            video: VideoSettings::default(),
            playback: PlaybackSettings::default(),
        }
    }
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: None,
            max_connections: 16,
        }
    }
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self {
            backend: "local".into(),
            s3_bucket: String::new(),
            s3_region: "us-east-1".into(),
            s3_endpoint: None,
            s3_access_key_id: String::new(),
            s3_secret_access_key: Secret::default(),
            s3_allow_http: false,
        }
    }
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

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            max_upload_bytes: 100 * 1024 * 1024,
            max_pixels: 50_000_000,
            max_side: 12_000,
            max_frames: 500,
        }
    }
}

impl Default for WorkerSettings {
    fn default() -> Self {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        Self {
            concurrency: cores,
            lease_secs: 30,
            max_attempts: 5,
            poll_interval_ms: 500,
        }
    }
}

impl Default for GcSettings {
    fn default() -> Self {
        Self {
            sweep_interval_secs: 3600,
            tmp_max_age_secs: 86_400,
            orphan_min_age_secs: 3600,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TransformSettings {
    /// HMAC-SHA256 keys for `/img` URLs. When any is set, every transform URL must carry
    /// `s=` (public presets excepted); the first key signs, every key verifies (rotation).
    /// Default: none (a generated key still signs the expiring URLs owners mint).
    pub signing_keys: Vec<Secret>,
    /// Named presets usable as `p_NAME`: `avatar = "w_128,h_128,fit_cover,g_smart"` or
    /// `avatar = { ops = "…", eager = true, public = true, formats = ["webp", "jpg"] }`.
    pub presets: std::collections::BTreeMap<String, PresetEntry>,
    /// Watermarks usable as `wm_NAME`: `{ image = "/path.png" }`, `{ media_id = "…" }` or
    /// `{ text = "© Me", font = "DejaVu Sans Bold 32", color = "ffffffcc" }`, each with
    /// optional `opacity` (percent, 100), `width_percent` (25) and `margin` (16 px).
    pub watermarks: std::collections::BTreeMap<String, WatermarkSettings>,
    /// Transforms computed at once. Default: the number of cores.
    pub concurrency: usize,
    /// Requests allowed to wait for a transform slot; beyond it the answer is 429 with
    /// `Retry-After`. Default 64.
    pub queue_limit: usize,
    /// Seconds one transform may run before it is cancelled. Default 15.
    pub timeout_secs: u64,
    /// Stored transform results not requested for this many days are removed. Default 30.
    pub unused_days: u64,
    /// Bytes of hot transform results kept in memory. Default 128 MiB.
    pub cache_bytes: u64,
    /// Longest lifetime of an expiring delivery URL an owner may mint. Default 7 days.
    pub max_url_ttl_secs: u64,
}

impl Default for TransformSettings {
    fn default() -> Self {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        Self {
            signing_keys: Vec::new(),
            presets: Default::default(),
            watermarks: Default::default(),
            concurrency: cores,
            queue_limit: 64,
            timeout_secs: 15,
            unused_days: 30,
            cache_bytes: 128 * 1024 * 1024,
            max_url_ttl_secs: 7 * 86_400,
        }
    }
}

/// A named transform preset: its options, and whether workers make it at upload
/// (`eager`) and whether it may be fetched without a signature (`public`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PresetEntry {
    Ops(String),
    Full {
        ops: String,
        #[serde(default)]
        eager: bool,
        #[serde(default)]
        public: bool,
        /// Formats made eagerly. Default webp and jpg.
        #[serde(default = "default_eager_formats")]
        formats: Vec<String>,
    },
}

fn default_eager_formats() -> Vec<String> {
    vec!["webp".into(), "jpg".into()]
}

impl PresetEntry {
    pub fn ops(&self) -> &str {
        match self {
            PresetEntry::Ops(ops) | PresetEntry::Full { ops, .. } => ops,
        }
    }
    pub fn eager_formats(&self) -> &[String] {
        match self {
            PresetEntry::Full {
                eager: true,
                formats,
                ..
            } => formats,
            _ => &[],
        }
    }
    pub fn public(&self) -> bool {
        matches!(self, PresetEntry::Full { public: true, .. })
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatermarkSettings {
    /// An image file on the server.
    pub image: Option<PathBuf>,
    /// Another media item (the caller must be able to read it).
    pub media_id: Option<String>,
    /// Text rendered with a system font.
    pub text: Option<String>,
    /// Pango font description for text. Default "DejaVu Sans Bold 48".
    #[serde(default = "default_font")]
    pub font: String,
    /// Text colour as RRGGBB or RRGGBBAA. Default "ffffffd9".
    #[serde(default = "default_text_color")]
    pub color: String,
    /// Opacity in percent. Default 100.
    #[serde(default = "default_opacity")]
    pub opacity: u8,
    /// Width as a percent of the output width. Default 25.
    #[serde(default = "default_width_percent")]
    pub width_percent: u8,
    /// Distance from the edges in pixels. Default 16.
    #[serde(default = "default_margin")]
    pub margin: u32,
}

fn default_font() -> String {
    "DejaVu Sans Bold 48".into()
}
fn default_text_color() -> String {
    "ffffffd9".into()
}
fn default_opacity() -> u8 {
    100
}
fn default_width_percent() -> u8 {
    25
}
fn default_margin() -> u32 {
    16
}

/// Command-line values that override every other layer (only those given).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<Role>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseOverride>,
}

#[derive(Clone, Debug, Serialize)]
pub struct DatabaseOverride {
    pub url: String,
}

impl Settings {
    /// Loads defaults ← `file` ← environment (`FRAMEHOUSE_LISTEN`, `FRAMEHOUSE_DATA_DIR`,
    /// `FRAMEHOUSE_DATABASE_URL`, nested keys as `FRAMEHOUSE_LIMITS__MAX_PIXELS`) ← CLI.
    pub fn load(
        file: Option<&Path>,
        overrides: &Overrides,
    ) -> Result<Settings, Box<figment::Error>> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(path) = file {
            if !path.exists() {
                let message = format!("config file {} does not exist", path.display());
                return Err(Box::new(figment::Error::from(message)));
            }
            figment = figment.merge(Toml::file(path));
        }
        let env = Env::prefixed("FRAMEHOUSE_")
            .map(|key| match key.as_str().to_ascii_lowercase().as_str() {
                "database_url" => "database.url".into(),
                other => other.replace("__", ".").into(),
            })
            // Variables read elsewhere (logging, the config path, the test harness).
            .ignore(&[
                "log",
                "log_format",
                "config",
                "test_postgres_url",
                "test_skip_postgres",
                "test_echo",
                "test_oidc_good",
                "test_oidc_rogue",
            ]);
        figment
            .merge(env)
            .merge(Serialized::defaults(overrides))
            .extract()
            .map_err(Box::new)
    }

    /// The public base URL in force, without a trailing slash.
    pub fn public_url(&self) -> String {
        match &self.public_url {
            Some(url) if !url.is_empty() => url.trim_end_matches('/').to_string(),
            _ => format!("http://{}", self.listen),
        }
    }

    /// The database URL in force: the configured one, else SQLite in the data dir.
    pub fn database_url(&self) -> String {
        match &self.database.url {
            Some(url) if !url.is_empty() => url.expose().to_string(),
            _ => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("framehouse.db").display()
            ),
        }
    }

    /// The effective configuration as TOML with secrets masked.
    pub fn to_masked_toml(&self) -> String {
        let mut copy = self.clone();
        // The URL is a Secret to keep it out of logs; show it with only its password masked.
        let url = copy
            .database
            .url
            .take()
            .map(|u| mask_url_password(u.expose()));
        let mut text = toml::to_string_pretty(&copy).unwrap_or_default();
        let line = match url {
            Some(url) => format!("url = {url:?}"),
            None => format!("# url unset: {}", self.database_url()),
        };
        text = text.replacen("[database]\n", &format!("[database]\n{line}\n"), 1);
        text
    }
}

fn mask_url_password(url: &str) -> String {
    // scheme://user:password@host → scheme://user:********@host
    if let Some((scheme, rest)) = url.split_once("://") {
        if let Some((creds, host)) = rest.split_once('@') {
            if let Some((user, _)) = creds.split_once(':') {
                return format!("{scheme}://{user}:********@{host}");
            }
        }
    }
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_all_and_lists() {
        assert_eq!(Role::parse_list("all").unwrap().len(), 3);
        assert_eq!(
            Role::parse_list("worker, api").unwrap(),
            vec![Role::Api, Role::Worker]
        );
        assert!(Role::parse_list("web").is_err());
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's closure type, not ours
    fn roles_come_from_a_comma_separated_environment_variable() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("FRAMEHOUSE_ROLES", "worker,scheduler");
            jail.set_env("FRAMEHOUSE_DATABASE_URL", "postgres://db/fh");
            let s = Settings::load(None, &Overrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(s.roles, vec![Role::Worker, Role::Scheduler]);
            assert_eq!(s.database_url(), "postgres://db/fh");
            Ok(())
        });
    }

    #[test]
    fn secrets_and_url_passwords_are_masked() {
        let mut s = Settings::default();
        s.auth.jwt_secret = Secret::new("topsecret");
        s.database.url = Some(Secret::new("postgres://fh:hunter2@db/fh"));
        let text = s.to_masked_toml();
        assert!(
            !text.contains("topsecret") && !text.contains("hunter2"),
            "{text}"
        );
        assert!(text.contains("postgres://fh:********@db/fh"), "{text}");
        assert!(format!("{:?}", s.auth).contains("********"));
    }
}

/// Video and audio: what uploads may contain and how they are transcoded.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VideoSettings {
    /// Accept video and audio uploads at all. Default true.
    pub enabled: bool,
    /// Longest accepted duration, in seconds. Default 14400 (4 h).
    pub max_duration_secs: f64,
    /// Largest accepted frame, long side × short side (either orientation). Default 7680.
    pub max_width: u32,
    /// Default 4320.
    pub max_height: u32,
    /// Highest accepted frame rate. Default 240.
    pub max_fps: f64,
    /// Highest accepted overall bit rate, in bits per second. Default 200000000.
    pub max_bit_rate: u64,
    /// Most streams in one container. Default 16.
    pub max_streams: u32,
    /// Seconds one ffprobe run may take. Default 30.
    pub probe_timeout_secs: u64,
    /// ffprobe runs at once in this process; more uploads wait. Default: number of cores.
    pub probe_concurrency: usize,
    /// ffmpeg transcodes at once in this process (each already uses every core). Default 1.
    pub transcode_concurrency: usize,
    /// Address-space limit of each ffmpeg/ffprobe process, in MiB (0: none). Default 4096.
    pub max_memory_mib: u64,
    /// A transcode step may take `timeout_floor_secs` + this × the media duration. Default 20.
    pub timeout_per_media_second: f64,
    /// Default 300.
    pub timeout_floor_secs: u64,
    /// HLS rendition heights (the short side), never above the source. Default 240,360,480,720,1080.
    pub ladder: Vec<u32>,
    /// libx264 preset for renditions. Default `veryfast`.
    pub x264_preset: String,
    /// Where the poster frame is taken, in seconds (clamped to the clip). Default 1.0.
    pub poster_offset_secs: f64,
    /// Make the sprite sheet + WebVTT track for seek previews. Default true.
    pub storyboard: bool,
    /// Make a progressive MP4 (faststart) for players without HLS. Default true.
    pub mp4_fallback: bool,
}

impl Default for VideoSettings {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            enabled: true,
            max_duration_secs: 4.0 * 3600.0,
            max_width: 7680,
            max_height: 4320,
            max_fps: 240.0,
            max_bit_rate: 200_000_000,
            max_streams: 16,
            probe_timeout_secs: 30,
            probe_concurrency: cores,
            transcode_concurrency: 1,
            max_memory_mib: 4096,
            timeout_per_media_second: 20.0,
            timeout_floor_secs: 300,
            ladder: vec![240, 360, 480, 720, 1080],
            x264_preset: "veryfast".into(),
            poster_offset_secs: 1.0,
            storyboard: true,
            mp4_fallback: true,
        }
    }
}

/// Playback: signed playlist tokens, resume positions and view counting.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PlaybackSettings {
    /// Lifetime of the token carried in a private item's playlist URLs, in seconds. Default 21600.
    pub token_ttl_secs: u64,
    /// Seconds of real play before a view counts (or the whole clip, if shorter). Default 5.
    pub view_after_secs: f64,
    /// A viewer adds at most one view per item in this many seconds. Default 3600.
    pub view_window_secs: u64,
}

impl Default for PlaybackSettings {
    fn default() -> Self {
        Self {
            token_ttl_secs: 6 * 3600,
            view_after_secs: 5.0,
            view_window_secs: 3600,
        }
    }
}

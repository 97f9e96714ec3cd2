//! Typed configuration: embedded defaults ← optional TOML file ← `FRAMEHOUSE_…`
//! environment variables ← command-line flags (each layer overrides the one before).
//!
//! The process-level fields live here; every other section is defined, documented and
//! defaulted by the kernel or the domain that reads it, and listed once below.

use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

pub use crate::events::amqp::BrokerSettings;
pub use crate::identity::settings::{
    AuthSettings, NotifierSettings, OidcProviderSettings, RateLimitSettings, RateRule,
};
pub use crate::kernel::cache::CacheSettings;
pub use crate::kernel::cors::HttpSettings;
pub use crate::kernel::db::DatabaseSettings;
pub use crate::kernel::net::ResolverSettings;
pub use crate::kernel::nodes::ClusterSettings;
pub use crate::kernel::outbox::settings::EventSettings;
pub use crate::kernel::secret::Secret;
pub use crate::kernel::storage::StorageSettings;
pub use crate::media::settings::{DeliverySettings, GcSettings, LimitSettings};
pub use crate::playback::settings::PlaybackSettings;
pub use crate::transform::settings::{PresetEntry, TransformSettings, WatermarkSettings};
pub use crate::ui::settings::UiSettings;
pub use crate::uploads::settings::UploadSettings;
pub use crate::video::settings::VideoSettings;
pub use crate::webhooks::settings::WebhookSettings;

/// Which parts of the application a process runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Api,
    Worker,
    Scheduler,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Api => "api",
            Role::Worker => "worker",
            Role::Scheduler => "scheduler",
        }
    }

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
    /// Addresses or CIDR ranges (`10.244.0.0/16`) of reverse proxies whose
    /// `X-Forwarded-For` is believed when telling the client address (rate limits, audit
    /// log, view counting). Default none.
    pub trusted_proxies: Vec<crate::kernel::netrange::NetRange>,
    pub worker: WorkerSettings,
    // Kernel sections.
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    pub storage: StorageSettings,
    pub events: EventSettings,
    pub resolver: ResolverSettings,
    pub cluster: ClusterSettings,
    pub cache: CacheSettings,
    // Domain sections, each defined in its domain's `settings` module.
    pub auth: AuthSettings,
    pub limits: LimitSettings,
    pub delivery: DeliverySettings,
    pub gc: GcSettings,
    pub transform: TransformSettings,
    pub video: VideoSettings,
    pub playback: PlaybackSettings,
    pub webhooks: WebhookSettings,
    pub broker: BrokerSettings,
    pub uploads: UploadSettings,
    pub ui: UiSettings,
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

/// `[worker]`: how this process runs jobs.
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

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("./data"),
            roles: vec![Role::Api, Role::Worker, Role::Scheduler],
            shutdown_grace_secs: 30,
            public_url: None,
            trusted_proxies: Vec::new(),
            worker: WorkerSettings::default(),
            http: HttpSettings::default(),
            database: DatabaseSettings::default(),
            storage: StorageSettings::default(),
            events: EventSettings::default(),
            resolver: ResolverSettings::default(),
            cluster: ClusterSettings::default(),
            cache: CacheSettings::default(),
            auth: AuthSettings::default(),
            limits: LimitSettings::default(),
            delivery: DeliverySettings::default(),
            gc: GcSettings::default(),
            transform: TransformSettings::default(),
            video: VideoSettings::default(),
            playback: PlaybackSettings::default(),
            webhooks: WebhookSettings::default(),
            broker: BrokerSettings::default(),
            uploads: UploadSettings::default(),
            ui: UiSettings::default(),
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
            // Variables read elsewhere: logging, the config path, the test harness.
            .filter(|key| !key.as_str().to_ascii_lowercase().starts_with("test_"))
            .ignore(&["log", "log_format", "config"]);
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

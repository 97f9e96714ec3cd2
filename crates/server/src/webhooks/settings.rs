//! The `[webhooks]` section.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookSettings {
    /// Let endpoints be loopback, private, link-local or metadata addresses (tests,
    /// receivers on the same private network). Default false.
    pub allow_private_targets: bool,
    /// Seconds a receiver has to answer one delivery. Default 10.
    pub timeout_secs: u64,
    /// Deliveries a worker process sends at once. Default 16.
    pub concurrency: usize,
    /// How long a delivery is retried before it is marked failed, in seconds. Default
    /// 86400 (24 h).
    pub retry_for_secs: u64,
    /// The first retry's delay in seconds; each further one doubles it (with jitter), up
    /// to `backoff_max_secs`. Default 5.
    pub backoff_base_secs: f64,
    /// Default 7200 (2 h).
    pub backoff_max_secs: f64,
    /// An endpoint whose deliveries have all failed for this long is disabled (with a
    /// `webhook.disabled` event). Default 432000 (5 days).
    pub disable_after_secs: u64,
    /// After a secret rotation, how long deliveries are signed with the old secret as well,
    /// in seconds. Default 86400.
    pub secret_overlap_secs: u64,
    /// Endpoints one user may register. Default 20.
    pub max_per_user: usize,
    /// Milliseconds between looks for due deliveries (a new event's delivery waits at
    /// most this long after the fan-out). Default 200.
    pub poll_interval_ms: u64,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            allow_private_targets: false,
            timeout_secs: 10,
            concurrency: 16,
            retry_for_secs: 86_400,
            backoff_base_secs: 5.0,
            backoff_max_secs: 7200.0,
            disable_after_secs: 5 * 86_400,
            secret_overlap_secs: 86_400,
            max_per_user: 20,
            poll_interval_ms: 200,
        }
    }
}

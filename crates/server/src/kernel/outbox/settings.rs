//! The `[events]` section: how long events are kept and how the outbox is read.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventSettings {
    /// Days events are kept (for `/api/v1/events`, stream resumption and slow
    /// subscribers; an event a subscriber has not handled yet is never removed). Default 7.
    pub retention_days: u64,
    /// Milliseconds between reads of the outbox when nothing woke the reader: the delivery
    /// delay on SQLite, a fallback on PostgreSQL (woken by LISTEN/NOTIFY). Default 100.
    pub poll_interval_ms: u64,
    /// Events handed to a subscriber at once. Default 500.
    pub batch_size: i64,
    /// Seconds a node holds a subscriber's lease without renewing it; another node takes
    /// over after that. Default 30.
    pub lease_secs: u64,
}

impl Default for EventSettings {
    fn default() -> Self {
        Self {
            retention_days: 7,
            poll_interval_ms: 100,
            batch_size: 500,
            lease_secs: 30,
        }
    }
}

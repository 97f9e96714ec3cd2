//! Wakes outbox readers when events may have arrived: PostgreSQL's `NOTIFY` (sent by a
//! trigger when a transaction that wrote events commits) through one `LISTEN` connection
//! per process. Readers also poll every `events.poll_interval_ms` — all SQLite has, and
//! what bounds the cost of a notification lost while the listener reconnects.

use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The channel the `events_notify` trigger (migrations/postgres) notifies.
pub const CHANNEL: &str = "framehouse_events";

/// A cheap handle: readers wait on it, the PostgreSQL listener rings it.
#[derive(Clone)]
pub struct Wake {
    tx: watch::Sender<u64>,
}

impl Default for Wake {
    fn default() -> Self {
        Wake {
            tx: watch::channel(0).0,
        }
    }
}

impl Wake {
    pub fn ring(&self) {
        self.tx.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub fn subscribe(&self) -> Waiter {
        let mut rx = self.tx.subscribe();
        rx.mark_unchanged();
        Waiter { rx }
    }

    /// Listens on PostgreSQL until `shutdown`, reconnecting after errors; every
    /// notification rings, and so does each (re)connect, since notifications sent while
    /// disconnected are lost.
    pub fn listen_postgres(&self, url: String, shutdown: CancellationToken) {
        let wake = self.clone();
        queue::listen_channel(url, CHANNEL, move || wake.ring(), shutdown);
    }
}

pub struct Waiter {
    rx: watch::Receiver<u64>,
}

impl Waiter {
    /// Returns when rung (since the last call) or after `poll`, whichever is first.
    pub async fn wait(&mut self, poll: Duration) {
        let _ = tokio::time::timeout(poll, self.rx.changed()).await;
    }
}

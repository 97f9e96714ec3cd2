//! Cross-node wake-ups on PostgreSQL: one `LISTEN framehouse_jobs` connection per process
//! (the `jobs_notify_*` triggers of `migrations/postgres/0007_jobs_notify.sql` notify on
//! commit), so a job enqueued on one node starts on an idle worker of another within
//! milliseconds instead of at its next poll. Polling stays as the safety net for
//! notifications lost while the listener reconnects, and for jobs whose `run_at` arrives.

use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::store::Queue;

/// The channel the triggers notify.
pub const CHANNEL: &str = "framehouse_jobs";

impl Queue {
    /// Listens on PostgreSQL at `url` until `shutdown`, waking this process's idle workers
    /// on every notification (see [`listen_channel`]).
    pub fn listen_postgres(&self, url: String, shutdown: CancellationToken) -> JoinHandle<()> {
        let queue = self.clone();
        listen_channel(url, CHANNEL, move || queue.notify(), shutdown)
    }
}

/// Listens on one PostgreSQL `channel` until `shutdown`, calling `on_notify` for every
/// notification and once after each (re)connect, since notifications sent while
/// disconnected are lost. Reconnects with backoff (200 ms doubling to 10 s) after errors.
/// Also what wakes the event outbox's readers.
pub fn listen_channel(
    url: String,
    channel: &'static str,
    on_notify: impl Fn() + Send + Sync + 'static,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut delay = Duration::from_millis(200);
        while !shutdown.is_cancelled() {
            match listen_once(&url, channel, &on_notify, &shutdown).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(error = %e, channel, "listener lost its connection; retrying");
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
            }
        }
    })
}

async fn listen_once(
    url: &str,
    channel: &str,
    on_notify: &(impl Fn() + Sync),
    shutdown: &CancellationToken,
) -> sqlx::Result<()> {
    let mut listener = tokio::time::timeout(Duration::from_secs(10), PgListener::connect(url))
        .await
        .map_err(|_| sqlx::Error::PoolTimedOut)??;
    listener.listen(channel).await?;
    on_notify();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            got = listener.recv() => { got?; on_notify(); }
        }
    }
}

//! The live feed of one node: a task tails the outbox from where it stood when the node
//! started and broadcasts each batch it reads, in stream order. Node-local consumers sit
//! on it — the event stream's clients and in-memory caches of other nodes' changes. A
//! consumer that falls behind the broadcast reads the outbox itself to catch up, so the
//! feed never has to buffer for anyone.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::settings::EventSettings;
use super::wake::Wake;
use super::{head, read_after, EventRecord, Filter};
use crate::kernel::db::Db;

/// Consecutive events as the feed read them.
pub struct Batch {
    pub events: Vec<EventRecord>,
}

/// A node-local reaction to events, run by the feed task in order.
#[async_trait::async_trait]
pub trait Listener: Send + Sync {
    /// The types it wants (`media.*`); empty: all.
    fn types(&self) -> &'static [&'static str] {
        &[]
    }
    async fn on_events(&self, events: &[&EventRecord]);
}

#[derive(Clone)]
pub struct Feed {
    tx: broadcast::Sender<Arc<Batch>>,
}

impl Default for Feed {
    fn default() -> Self {
        Feed {
            tx: broadcast::channel(256).0,
        }
    }
}

impl Feed {
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Batch>> {
        self.tx.subscribe()
    }

    /// Starts tailing the outbox until `shutdown`.
    pub fn start(
        &self,
        db: Db,
        settings: &EventSettings,
        wake: &Wake,
        listeners: Vec<Arc<dyn Listener>>,
        shutdown: CancellationToken,
    ) {
        let tx = self.tx.clone();
        let poll = Duration::from_millis(settings.poll_interval_ms.max(10));
        let mut waiter = wake.subscribe();
        let listeners: Vec<(Vec<String>, Arc<dyn Listener>)> = listeners
            .into_iter()
            .map(|l| (l.types().iter().map(|t| t.to_string()).collect(), l))
            .collect();
        tokio::spawn(async move {
            let mut position = loop {
                match head(&db).await {
                    Ok(p) => break p,
                    Err(e) => {
                        tracing::warn!(error = %e, "event feed cannot read the outbox head");
                        tokio::select! {
                            () = shutdown.cancelled() => return,
                            () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        }
                    }
                }
            };
            while !shutdown.is_cancelled() {
                match read_after(&db, position, &Filter::default(), 1000).await {
                    Ok(events) if !events.is_empty() => {
                        position = events.last().map_or(position, |e| e.position);
                        for (patterns, listener) in &listeners {
                            let mine: Vec<&EventRecord> =
                                events.iter().filter(|e| e.matches(patterns)).collect();
                            if !mine.is_empty() {
                                listener.on_events(&mine).await;
                            }
                        }
                        // No receiver is not an error: nobody is streaming right now.
                        let _ = tx.send(Arc::new(Batch { events }));
                        continue;
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "event feed read failed"),
                }
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = waiter.wait(poll) => {}
                }
            }
        });
    }
}

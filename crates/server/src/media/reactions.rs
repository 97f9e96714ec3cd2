//! How media reacts to other domains' events: a deleted account's items go
//! (`user.deleted`), and every api node forgets cached items another node changed.

use sqlx::AnyConnection;

use super::cache::DeliveryCache;
use super::{changes, repo};
use crate::kernel::outbox::feed::Listener;
use crate::kernel::outbox::relay::Subscriber;
use crate::kernel::outbox::EventRecord;
use crate::AppState;

/// Clears the shared item cache each time Redis comes back after this node lost it: the
/// invalidations this node sent meanwhile were lost. Returns at `shutdown`.
pub async fn forget_after_outages(state: AppState, shutdown: tokio_util::sync::CancellationToken) {
    let Some(mut recoveries) = state.redis.recoveries() else {
        return;
    };
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            changed = recoveries.changed() => {
                if changed.is_err() {
                    return;
                }
                state.media.cache.forget_shared_items().await;
            }
        }
    }
}

/// Items deleted per transaction: keeps the write lock short on SQLite.
const CHUNK: i64 = 100;

/// Deletes the items of deleted accounts, each with its `media.deleted` event and blob
/// collection (the account's row goes with the last item, see `identity::usage`).
pub struct DeleteAccountItems {
    pub state: AppState,
}

#[async_trait::async_trait]
impl Subscriber for DeleteAccountItems {
    fn name(&self) -> &'static str {
        "media.delete_account_items"
    }

    fn types(&self) -> &'static [&'static str] {
        &["user.deleted"]
    }

    async fn handle(
        &self,
        tx: &mut AnyConnection,
        events: &[EventRecord],
    ) -> anyhow::Result<usize> {
        let owner = &events[0].aggregate_id;
        // The chunk is locked first, in id order, so a blob turning ready meanwhile (which
        // locks its items the same way) neither deadlocks with this nor reports an item
        // after its deletion.
        let ids = repo::item_ids_of_owner(tx, owner, CHUNK, self.state.db.for_update()).await?;
        for id in &ids {
            changes::delete_item(&self.state, tx, id).await?;
        }
        if ids.len() as i64 == CHUNK {
            // More to delete: this event again, in the next transaction.
            return Ok(0);
        }
        self.state.queue.notify();
        Ok(1)
    }
}

/// Forgets cached items changed, processed or deleted anywhere, in this node's memory and
/// in the shared cache (this node's own edits are forgotten at once; this covers the
/// others, and the workers' status changes).
pub struct ForgetChangedItems {
    pub cache: DeliveryCache,
}

#[async_trait::async_trait]
impl Listener for ForgetChangedItems {
    fn types(&self) -> &'static [&'static str] {
        &[
            "media.updated",
            "media.ready",
            "media.failed",
            "media.deleted",
        ]
    }

    async fn on_events(&self, events: &[&EventRecord]) {
        for event in events {
            self.cache.invalidate_item(&event.aggregate_id).await;
        }
    }
}

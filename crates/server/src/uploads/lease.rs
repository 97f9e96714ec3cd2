//! The lease that serialises writes to one upload across every node: a row-level lock in
//! the database with an expiry, renewed each second while its PATCH runs. A request that
//! finds it held asks the holder to let go (at once on this node, through the row on
//! others), as tusd does, since the holder is usually a request its client gave up on;
//! after a crash the lease lapses `lock_ttl_secs` after its last renewal.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use tokio_util::sync::CancellationToken;

use super::repo;
use crate::kernel::error::{AppError, AppResult};
use crate::kernel::time::now_ms;
use crate::AppState;

/// The leases this process holds, by upload id, to cancel a holder without a round trip.
#[derive(Clone, Default)]
pub struct Holders(Arc<Mutex<HashMap<String, (String, CancellationToken)>>>);

pub struct Lease {
    state: AppState,
    pub id: String,
    pub token: String,
    /// Cancelled when the lease is lost or another request wants it: stop reading.
    pub lost: CancellationToken,
    renewer: tokio::task::JoinHandle<()>,
    released: bool,
}

impl Lease {
    /// Takes the lease of upload `id` (which exists), waiting `lock_wait_secs` for a
    /// holder to let go; 423 Locked when it does not.
    pub async fn take(state: &AppState, id: &str) -> AppResult<Lease> {
        let settings = &state.settings.uploads;
        let ttl = Duration::from_secs(settings.lock_ttl_secs.max(1));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(settings.lock_wait_secs);
        let token = uuid::Uuid::new_v4().to_string();
        let mut asked = false;
        while !repo::acquire(&state.db, id, &token, now_ms(), ttl.as_millis() as i64).await? {
            if !asked {
                asked = true;
                let local = state
                    .uploads
                    .holders
                    .0
                    .lock()
                    .expect("not poisoned")
                    .get(id)
                    .cloned();
                if let Some((_, holder)) = local {
                    holder.cancel();
                }
                repo::want(&state.db, id).await?;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(AppError::new(
                    StatusCode::LOCKED,
                    "upload_locked",
                    "another request is writing to this upload; retry shortly",
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let lost = CancellationToken::new();
        state
            .uploads
            .holders
            .0
            .lock()
            .expect("not poisoned")
            .insert(id.to_string(), (token.clone(), lost.clone()));
        let renewer = tokio::spawn(renew(
            state.clone(),
            id.to_string(),
            token.clone(),
            ttl,
            lost.clone(),
        ));
        Ok(Lease {
            state: state.clone(),
            id: id.to_string(),
            token,
            lost,
            renewer,
            released: false,
        })
    }

    /// Lets go of the lease now (dropping it does the same, in the background).
    pub async fn release(mut self) {
        self.forget();
        if let Err(e) = repo::release(&self.state.db, &self.id, &self.token).await {
            tracing::warn!(error = %e, upload = self.id, "could not release an upload lease");
        }
        self.released = true;
    }

    fn forget(&self) {
        self.renewer.abort();
        let mut holders = self.state.uploads.holders.0.lock().expect("not poisoned");
        if holders.get(&self.id).is_some_and(|(t, _)| *t == self.token) {
            holders.remove(&self.id);
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        self.forget();
        let (db, id, token) = (self.state.db.clone(), self.id.clone(), self.token.clone());
        tokio::spawn(async move {
            let _ = repo::release(&db, &id, &token).await;
        });
    }
}

async fn renew(state: AppState, id: String, token: String, ttl: Duration, lost: CancellationToken) {
    // Renewed until released (this task is aborted then), even once another request
    // wants it: the holder stops reading at once but may still be finishing the upload,
    // which must not be done twice.
    let mut every = tokio::time::interval(Duration::from_secs(1).min(ttl / 3));
    every.tick().await;
    loop {
        every.tick().await;
        match repo::renew(&state.db, &id, &token, now_ms() + ttl.as_millis() as i64).await {
            Ok(Some(false)) => {}
            Ok(Some(true)) => lost.cancel(),
            Ok(None) => {
                lost.cancel();
                return;
            }
            // The next renewal may succeed; the lease lasts `ttl` meanwhile.
            Err(e) => tracing::warn!(error = %e, upload = id, "renewing an upload lease failed"),
        }
    }
}

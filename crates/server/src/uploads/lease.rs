//! The lease that serialises writes to one upload across every node: a row-level lock in
//! the database with an expiry, renewed each second while its PATCH runs. A request that
//! finds it held asks the holder to let go (at once on this node, through the row on
//! others), as tusd does, since the holder is usually a request its client gave up on;
//! after a crash the lease lapses `lock_ttl_secs` after its last renewal.
//!
//! On SQLite there is one process by construction, so the lease is this process's
//! alone (the map of holders), which spares each PATCH two synced database writes.

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

impl Holders {
    /// Whether a request of this process holds upload `id`.
    pub fn holds(&self, id: &str) -> bool {
        self.0.lock().expect("not poisoned").contains_key(id)
    }
}

pub struct Lease {
    state: AppState,
    pub id: String,
    pub token: String,
    /// Whether the lease is a database row (PostgreSQL) rather than this process's.
    pub shared: bool,
    /// Cancelled when the lease is lost or another request wants it: stop reading.
    pub lost: CancellationToken,
    renewer: Option<tokio::task::JoinHandle<()>>,
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
        if state.db.backend == queue::Backend::Sqlite {
            return Lease::take_here(state, id, token, deadline).await;
        }
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
                return Err(locked());
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
            shared: true,
            lost,
            renewer: Some(renewer),
            released: false,
        })
    }

    /// The lease in this process only: the holder (if any) is asked to let go at once.
    async fn take_here(
        state: &AppState,
        id: &str,
        token: String,
        deadline: tokio::time::Instant,
    ) -> AppResult<Lease> {
        let lost = CancellationToken::new();
        loop {
            {
                let mut holders = state.uploads.holders.0.lock().expect("not poisoned");
                match holders.get(id) {
                    Some((_, holder)) => holder.cancel(),
                    None => {
                        holders.insert(id.to_string(), (token.clone(), lost.clone()));
                        break;
                    }
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(locked());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(Lease {
            state: state.clone(),
            id: id.to_string(),
            token,
            shared: false,
            lost,
            renewer: None,
            released: false,
        })
    }

    /// Lets go of the lease now (dropping it does the same, in the background).
    pub async fn release(mut self) {
        self.forget();
        if self.shared {
            if let Err(e) = repo::release(&self.state.db, &self.id, &self.token).await {
                tracing::warn!(error = %e, upload = self.id, "could not release an upload lease");
            }
        }
        self.released = true;
    }

    /// The token a recorded write must match: the row's lease, or none in this process.
    pub fn row_token(&self) -> Option<&str> {
        self.shared.then_some(self.token.as_str())
    }

    fn forget(&self) {
        if let Some(renewer) = &self.renewer {
            renewer.abort();
        }
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
        if !self.shared {
            return;
        }
        let (db, id, token) = (self.state.db.clone(), self.id.clone(), self.token.clone());
        tokio::spawn(async move {
            let _ = repo::release(&db, &id, &token).await;
        });
    }
}

fn locked() -> AppError {
    AppError::new(
        StatusCode::LOCKED,
        "upload_locked",
        "another request is writing to this upload; retry shortly",
    )
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

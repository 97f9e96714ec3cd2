//! What a domain contributes to the application. Each domain implements [`Domain`] in
//! its own folder and is listed once in [`crate::DOMAINS`]; the application asks the list
//! for routes (with their OpenAPI entries), job kinds, periodic jobs, event subscribers,
//! live listeners, media kinds and metrics, and never names a domain's parts itself.

use std::sync::Arc;

use futures::future::BoxFuture;
use queue::{JobHandler, Periodic};
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;

use crate::kernel::error::AppResult;
use crate::kernel::outbox::feed::Listener;
use crate::kernel::outbox::relay::Subscriber;
use crate::media::kinds::MediaKind;
use crate::settings::Settings;
use crate::AppState;

/// A job kind and the handler that runs it.
pub type Job = (&'static str, Arc<dyn JobHandler>);

pub trait Domain: Sync {
    /// Its name, as in the layering rules of `docs/ARCHITECTURE.md`.
    fn name(&self) -> &'static str;

    /// Its HTTP routes, each registered together with its OpenAPI entry.
    fn routes(&self) -> OpenApiRouter<AppState> {
        OpenApiRouter::new()
    }

    /// Its byte-serving routes (files, transforms, playlists), registered with their
    /// OpenAPI entries and open to every origin (`kernel::cors::delivery`).
    fn delivery(&self) -> OpenApiRouter<AppState> {
        OpenApiRouter::new()
    }

    /// Its pages for browsers (HTML, outside the API document), served by the api role.
    fn pages(&self, _state: &AppState) -> axum::Router<AppState> {
        axum::Router::new()
    }

    /// The scope an API key needs to read its events (`social:read`); `None`: any
    /// credential reads its own.
    fn event_scope(&self) -> Option<&'static str> {
        None
    }

    /// The event types it writes to the outbox.
    fn event_types(&self) -> &'static [&'static str] {
        &[]
    }

    /// The job kinds its workers run.
    fn jobs(&self, _state: &AppState) -> Vec<Job> {
        Vec::new()
    }

    /// The jobs the scheduler enqueues periodically.
    fn periodic(&self, _settings: &Settings) -> Vec<Periodic> {
        Vec::new()
    }

    /// Durable event subscribers, run by the worker role.
    fn subscribers(&self, _state: &AppState) -> Vec<Arc<dyn Subscriber>> {
        Vec::new()
    }

    /// Reactions to the live feed, run on every api node.
    fn listeners(&self, _state: &AppState) -> Vec<Arc<dyn Listener>> {
        Vec::new()
    }

    /// What it knows of users and items that the media read rule needs (friends,
    /// blocks, grants); at most one domain provides it.
    fn relations(&self) -> Option<Arc<dyn crate::media::access::Relations>> {
        None
    }

    /// Kinds of media it adds to the media registry.
    fn media_kinds(&self) -> Vec<Arc<dyn MediaKind>> {
        Vec::new()
    }

    /// Long-running loops of the worker role besides job handlers (webhook delivery),
    /// each returning when `shutdown` is cancelled and its work is handed back.
    fn worker_loops(
        &self,
        _state: &AppState,
        _shutdown: CancellationToken,
    ) -> Vec<BoxFuture<'static, ()>> {
        Vec::new()
    }

    /// Long-running loops of the api role (revocation notices, flushing view counters),
    /// each returning when `shutdown` is cancelled, its work saved.
    fn api_loops(
        &self,
        _state: &AppState,
        _shutdown: CancellationToken,
    ) -> Vec<BoxFuture<'static, ()>> {
        Vec::new()
    }

    /// Sets its gauges at scrape time (read from the database, so every node agrees).
    fn gauges<'a>(&self, _state: &'a AppState) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }

    /// Its figures for the admin overview (`GET /api/v1/admin/overview`): counts and
    /// bytes of what it keeps, read from the database at request time.
    fn figures<'a>(&self, _state: &'a AppState) -> BoxFuture<'a, AppResult<Vec<Figure>>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}

/// One number of the admin overview.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Figure {
    /// The domain that reports it.
    pub domain: &'static str,
    /// A stable name, such as `items.video` or `bytes.originals`.
    pub name: String,
    /// What a person reads beside the number.
    pub label: String,
    pub value: i64,
    /// `count`, `bytes` or `seconds`.
    pub unit: &'static str,
}

impl Figure {
    fn new(
        domain: &'static str,
        name: impl Into<String>,
        label: impl Into<String>,
        value: i64,
        unit: &'static str,
    ) -> Figure {
        Figure {
            domain,
            name: name.into(),
            label: label.into(),
            value,
            unit,
        }
    }

    pub fn count(
        domain: &'static str,
        name: impl Into<String>,
        label: impl Into<String>,
        value: i64,
    ) -> Figure {
        Figure::new(domain, name, label, value, "count")
    }

    pub fn bytes(
        domain: &'static str,
        name: impl Into<String>,
        label: impl Into<String>,
        value: i64,
    ) -> Figure {
        Figure::new(domain, name, label, value, "bytes")
    }

    pub fn seconds(
        domain: &'static str,
        name: impl Into<String>,
        label: impl Into<String>,
        value: i64,
    ) -> Figure {
        Figure::new(domain, name, label, value, "seconds")
    }
}

/// One number from a query of one `BIGINT` with its integer parameters `$1…` (a
/// `COUNT`, or a `SUM` cast to `BIGINT`, which PostgreSQL would otherwise widen to
/// `NUMERIC`; NULL reads as 0).
pub async fn scalar(state: &AppState, sql: &str, binds: &[i64]) -> AppResult<i64> {
    let mut query = sqlx::query_scalar::<_, Option<i64>>(sql);
    for b in binds {
        query = query.bind(*b);
    }
    Ok(query.fetch_one(&state.db.pool).await?.unwrap_or(0))
}

//! Webhooks: endpoints registered through the API receive the events that concern their
//! owner as signed HTTP POSTs (Standard Webhooks), fed from the outbox by a durable
//! fan-out and sent by a worker-role loop with retries, backoff and a per-attempt
//! timeout. Targets are guarded against SSRF at registration and at every delivery.

pub mod api;
mod dispatch;
mod fanout;
mod repo;
pub mod settings;
pub mod signing;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use queue::{ClaimedJob, JobContext, JobError, JobHandler, NewJob, Periodic, PRIORITY_BATCH};
use tokio_util::sync::CancellationToken;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::domain::{Domain, Job};
use crate::kernel::db::Db;
use crate::kernel::net::Guard;
use crate::kernel::outbox::relay::Subscriber;
use crate::kernel::time::now_ms;
use crate::settings::Settings;
use crate::AppState;

/// The webhooks domain's registration.
pub struct Webhooks;

const PRUNE_DELIVERIES: &str = "prune_webhook_deliveries";
/// Finished deliveries are kept this long for `GET …/deliveries`.
const KEEP_DELIVERIES_MS: i64 = 30 * 86_400_000;

impl Domain for Webhooks {
    fn name(&self) -> &'static str {
        "webhooks"
    }

    fn figures<'a>(
        &self,
        state: &'a AppState,
    ) -> futures::future::BoxFuture<'a, crate::kernel::error::AppResult<Vec<crate::domain::Figure>>>
    {
        use crate::domain::{scalar, Figure};
        Box::pin(async move {
            let d = "webhooks";
            Ok(vec![
                Figure::count(
                    d,
                    "endpoints",
                    "Webhook endpoints",
                    scalar(state, "SELECT COUNT(*) FROM webhooks", &[]).await?,
                ),
                Figure::count(
                    d,
                    "endpoints.disabled",
                    "Disabled endpoints",
                    scalar(
                        state,
                        "SELECT COUNT(*) FROM webhooks WHERE enabled = 0",
                        &[],
                    )
                    .await?,
                ),
                Figure::count(
                    d,
                    "deliveries.pending",
                    "Deliveries waiting",
                    scalar(
                        state,
                        "SELECT COUNT(*) FROM webhook_deliveries WHERE state = 'pending'",
                        &[],
                    )
                    .await?,
                ),
                Figure::count(
                    d,
                    "deliveries.failed",
                    "Deliveries given up",
                    scalar(
                        state,
                        "SELECT COUNT(*) FROM webhook_deliveries WHERE state = 'failed'",
                        &[],
                    )
                    .await?,
                ),
            ])
        })
    }

    fn routes(&self) -> OpenApiRouter<AppState> {
        use api::*;
        OpenApiRouter::new()
            .routes(routes!(create_webhook, list_webhooks))
            .routes(routes!(get_webhook, update_webhook, delete_webhook))
            .routes(routes!(rotate_secret))
            .routes(routes!(list_deliveries))
            .routes(routes!(retry_delivery))
            .routes(routes!(ping_webhook))
    }

    fn event_types(&self) -> &'static [&'static str] {
        &["webhook.disabled"]
    }

    fn jobs(&self, state: &AppState) -> Vec<Job> {
        vec![(
            PRUNE_DELIVERIES,
            Arc::new(PruneDeliveries {
                db: state.db.clone(),
            }),
        )]
    }

    fn periodic(&self, _settings: &Settings) -> Vec<Periodic> {
        let job = NewJob::new(PRUNE_DELIVERIES, serde_json::json!({})).priority(PRIORITY_BATCH);
        vec![Periodic::new(
            PRUNE_DELIVERIES,
            Duration::from_secs(3600),
            job,
        )]
    }

    fn subscribers(&self, state: &AppState) -> Vec<Arc<dyn Subscriber>> {
        vec![Arc::new(fanout::FanOut {
            retry_for_ms: state.settings.webhooks.retry_for_secs as i64 * 1000,
        })]
    }

    fn worker_loops(
        &self,
        state: &AppState,
        shutdown: CancellationToken,
    ) -> Vec<BoxFuture<'static, ()>> {
        vec![Box::pin(dispatch::run(state.clone(), shutdown))]
    }
}

/// The outbound side: the SSRF guard and the client that only connects where it allows.
#[derive(Clone)]
pub struct WebhookState {
    pub guard: Guard,
    pub client: reqwest::Client,
}

impl WebhookState {
    pub fn new(settings: &Settings) -> anyhow::Result<WebhookState> {
        let w = &settings.webhooks;
        let guard = Guard::new(&settings.resolver, w.allow_private_targets)?;
        let client = guard.client(Duration::from_secs(w.timeout_secs.max(1)))?;
        Ok(WebhookState { guard, client })
    }
}

/// Removes finished deliveries after a month.
struct PruneDeliveries {
    db: Db,
}

#[async_trait::async_trait]
impl JobHandler for PruneDeliveries {
    async fn run(&self, _job: &ClaimedJob, _ctx: &JobContext) -> Result<(), JobError> {
        repo::prune(&self.db, now_ms() - KEEP_DELIVERIES_MS)
            .await
            .map(drop)
            .map_err(JobError::retryable)
    }
}

//! `GET /api/v1/admin/overview`: the storage and queue figures of the admin page — what
//! every domain reports through `Domain::figures`, plus the queue by state, the outbox
//! and each event subscriber's backlog, and which engines this deployment runs on.

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::domain::Figure;
use crate::identity::Admin;
use crate::kernel::error::{AppResult, ErrorBody};
use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(overview))
}

#[derive(Serialize, ToSchema)]
pub struct Overview {
    /// `sqlite` or `postgres`.
    pub database: String,
    /// `local` or `s3`.
    pub object_store: String,
    /// Whether the object store answered just now.
    pub object_store_up: bool,
    /// `up`, `down` or `disabled`.
    pub redis: String,
    /// Every figure, grouped by the domain that reports it, lowest domain first.
    pub figures: Vec<Figure>,
}

#[utoipa::path(get, path = "/api/v1/admin/overview", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = Overview), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn overview(
    State(state): State<AppState>,
    Admin(_admin): Admin,
) -> AppResult<Json<Overview>> {
    let mut figures = Vec::new();
    for domain in crate::DOMAINS {
        figures.extend(domain.figures(&state).await?);
    }
    figures.extend(queue_figures(&state).await?);
    Ok(Json(Overview {
        database: match state.db.backend {
            queue::Backend::Sqlite => "sqlite",
            queue::Backend::Postgres => "postgres",
        }
        .into(),
        object_store: state.settings.storage.backend.clone(),
        object_store_up: state.storage.ping().await,
        redis: state.redis.status().to_string(),
        figures,
    }))
}

/// The job queue by state, the events the outbox still holds back (PostgreSQL), and how
/// many events each durable subscriber has yet to handle.
async fn queue_figures(state: &AppState) -> AppResult<Vec<Figure>> {
    let d = "ops";
    let counts = state.queue.counts_by_state().await?;
    let mut out: Vec<Figure> = queue::JobState::ALL
        .iter()
        .map(|s| {
            let n = counts
                .iter()
                .find(|(name, _)| name == s.as_str())
                .map_or(0, |(_, n)| *n);
            Figure::count(
                d,
                format!("jobs.{}", s.as_str()),
                format!("Jobs {}", s.as_str()),
                n,
            )
        })
        .collect();
    let (held, waited) = crate::kernel::outbox::held_back(&state.db).await?;
    out.push(Figure::count(
        d,
        "outbox.held_back",
        "Events held back by open transactions",
        held,
    ));
    out.push(Figure::seconds(
        d,
        "outbox.held_back_seconds",
        "Oldest held-back event",
        waited as i64,
    ));
    let backlog: Vec<(String, i64)> = sqlx::query_as(
        "SELECT c.subscriber, (SELECT COUNT(*) FROM events e WHERE e.id > c.event_id) \
         FROM event_cursors c ORDER BY c.subscriber",
    )
    .fetch_all(&state.db.pool)
    .await?;
    for (subscriber, n) in backlog {
        out.push(Figure::count(
            d,
            format!("subscriber.{subscriber}"),
            format!("Events waiting for {subscriber}"),
            n,
        ));
    }
    Ok(out)
}

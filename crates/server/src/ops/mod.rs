//! Operations endpoints: liveness, readiness, Prometheus metrics and the OpenAPI document,
//! plus the request-metrics middleware.

mod errors;
mod nodes;
mod overview;

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;

/// The operations routes; the base of the OpenAPI document every domain adds to.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics_text))
}

/// The operations routes only the api role serves (they need a signed-in admin).
pub fn api_routes() -> OpenApiRouter<AppState> {
    nodes::routes().merge(overview::routes())
}

/// `/api/v1/openapi.json`, serving the document the routes made.
pub fn openapi_router(document: utoipa::openapi::OpenApi) -> Router<AppState> {
    let body = Arc::new(serde_json::to_vec(&document).expect("the OpenAPI document serialises"));
    Router::new().route(
        "/api/v1/openapi.json",
        get(move || {
            let body = body.clone();
            async move { openapi_json(body).await }
        }),
    )
}

/// The process-wide Prometheus recorder (metrics' recorder is global, so one per process
/// even when tests start several applications).
pub fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("duration_seconds".into()),
                    &[
                        0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                        120.0,
                    ],
                )
                .expect("static bucket list is valid");
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (embedding); then ours just renders.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Counts requests by route template and status, and times them.
pub async fn track_requests(request: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    // Only standard methods become label values: arbitrary ones would grow the series.
    let method: &'static str = match *request.method() {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    };
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("http_requests_total", "method" => method, "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route)
        .record(start.elapsed().as_secs_f64());
    response
}

#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "the process is alive")))]
pub async fn healthz() -> &'static str {
    "ok"
}

#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "database and object store reachable (`redis` reports `up`, `down` or `disabled` and never makes a node unready)"), (status = 503, description = "not ready")))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let (db, store) = tokio::join!(state.db.ping(), state.storage.ping());
    // Redis is reported but never makes a node unready: without it the node degrades to
    // per-node caches and limits.
    let body = serde_json::json!({
        "database": db,
        "object_store": store,
        "redis": state.redis.status(),
    });
    let status = if db && store {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition format", content_type = "text/plain")))]
pub async fn metrics_text(State(state): State<AppState>) -> Response {
    // Gauges read from the database at scrape time, so every node reports the same truth.
    if let Ok(counts) = state.queue.counts_by_state().await {
        for s in queue::JobState::ALL {
            let n = counts
                .iter()
                .find(|(name, _)| name == s.as_str())
                .map_or(0, |(_, n)| *n);
            metrics::gauge!("queue_jobs", "state" => s.as_str()).set(n as f64);
        }
    }
    if let Ok((held, waited)) = crate::kernel::outbox::held_back(&state.db).await {
        metrics::gauge!("outbox_events_held_back").set(held as f64);
        metrics::gauge!("outbox_held_back_seconds").set(waited);
    }
    for domain in crate::DOMAINS {
        domain.gauges(&state).await;
    }
    let text = state.metrics.render();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Framehouse", description = "Self-hosted media platform API"),
    paths(openapi_json),
    modifiers(&BearerAuth),
    tags((name = "auth"), (name = "admin"), (name = "media"), (name = "delivery"), (name = "transforms"),
        (name = "jobs"), (name = "playback"), (name = "events"), (name = "webhooks"), (name = "social"), (name = "operations"))
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "operations",
    responses((status = 200, description = "this OpenAPI 3.1 document")))]
async fn openapi_json(body: Arc<Vec<u8>>) -> Response {
    let json = HeaderValue::from_static("application/json");
    ([(header::CONTENT_TYPE, json)], body.as_ref().clone()).into_response()
}

/// The finished document: what the routes registered, plus the error responses every
/// operation can give because of what it takes (see [`errors::declare`]).
pub fn document(mut api: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    errors::declare(&mut api);
    api
}

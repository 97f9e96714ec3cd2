//! Operations: health, readiness, metrics, OpenAPI, request ids.

use reqwest::StatusCode;
use serde_json::Value;

use crate::both_backends;
use crate::fixtures;
use crate::helpers::{spawn_app, Backend};

async fn operations_endpoints_report_health_metrics_and_the_api(backend: Backend) {
    let app = spawn_app(backend).await;
    if let Backend::Sqlite = backend {
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&app.state.db.pool)
            .await
            .unwrap();
        assert_eq!(mode, "wal", "SQLite runs in WAL mode");
    }
    assert_eq!(app.get(None, "/healthz").await.status(), StatusCode::OK);
    let ready: Value = app.get(None, "/readyz").await.json().await.unwrap();
    assert_eq!(
        ready,
        serde_json::json!({ "database": true, "object_store": true })
    );

    let token = app.user("alice").await;
    let item = app.upload_ok(&token, fixtures::jpeg(300, 300), "").await;
    app.wait_processed(&token, item["id"].as_str().unwrap())
        .await;

    let resp = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "req-123")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "req-123");
    let generated = app.get(None, "/healthz").await;
    assert!(!generated.headers()["x-request-id"].is_empty());

    let metrics = app.get(None, "/metrics").await.text().await.unwrap();
    for needle in [
        "http_requests_total{",
        "route=\"/api/v1/media\"",
        "http_request_duration_seconds_bucket",
        "queue_jobs{state=\"succeeded\"}",
        "job_duration_seconds",
        "stored_bytes",
        "audit_events_total{kind=\"login_succeeded\"}",
    ] {
        assert!(
            metrics.contains(needle),
            "metrics lack {needle}:\n{metrics}"
        );
    }

    let doc: Value = app
        .get(None, "/api/v1/openapi.json")
        .await
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/api/v1/auth/register",
        "/api/v1/auth/login",
        "/api/v1/media",
        "/api/v1/media/{id}",
        "/media/{id}/{file}",
        "/api/v1/jobs/{id}",
        "/api/v1/jobs",
        "/healthz",
        "/readyz",
        "/metrics",
        "/api/v1/openapi.json",
        "/img/{id}/{file}",
        "/api/v1/media/{id}/signed-url",
        "/api/v1/media/{id}/similar",
    ] {
        assert!(doc["paths"][path].is_object(), "OpenAPI lacks {path}");
    }
    assert!(doc["components"]["schemas"]["MediaItem"].is_object());
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
}

both_backends!(operations_endpoints_report_health_metrics_and_the_api);

//! Operations: health, readiness, metrics, OpenAPI, request ids.

use std::collections::{BTreeMap, BTreeSet};

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
        serde_json::json!({ "database": true, "object_store": true, "redis": "disabled" })
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

    let doc = app.openapi().await;
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

impl crate::helpers::TestApp {
    /// The served OpenAPI document.
    async fn openapi(&self) -> Value {
        self.get(None, "/api/v1/openapi.json")
            .await
            .json()
            .await
            .unwrap()
    }
}

/// `(path, method)` of every route the served router has, read from its `Debug` form —
/// axum has no other way to list routes — so a route added without its OpenAPI entry
/// (a plain `.route()`) is caught.
fn routed(router: &axum::Router) -> BTreeSet<(String, String)> {
    let text = format!("{router:?}");
    // The fallback router numbers its routes separately: only the path router counts.
    let text = text.split("fallback_router:").next().unwrap_or_default();
    let mut paths: BTreeMap<String, String> = BTreeMap::new();
    let mut methods: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut rest = text;
    while let Some(i) = rest.find("RouteId(") {
        rest = &rest[i + "RouteId(".len()..];
        let Some((id, after)) = rest.split_once(")") else {
            break;
        };
        let after = after.trim_start_matches(": ");
        if let Some(path) = after.strip_prefix('"') {
            let path = path.split('"').next().unwrap_or_default();
            paths.insert(id.to_string(), path.to_string());
        } else if after.starts_with("MethodRouter") {
            let allow = after
                .split_once("allow_header: Bytes(b\"")
                .map(|(_, a)| a.split('"').next().unwrap_or_default())
                .unwrap_or_default();
            let list = allow
                .split(',')
                .filter(|m| !m.is_empty() && *m != "HEAD")
                .map(str::to_ascii_lowercase)
                .collect();
            methods.insert(id.to_string(), list);
        }
    }
    let mut out = BTreeSet::new();
    for (id, path) in paths {
        for method in methods.get(&id).cloned().unwrap_or_default() {
            out.insert((path.clone(), method));
        }
    }
    out
}

fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "patch", "delete", "options"] {
            if item.get(method).is_some() {
                out.insert((path.clone(), method.to_string()));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_is_documented_and_every_documented_operation_is_routed() {
    let app = spawn_app(Backend::Sqlite).await;
    // The pages for browsers (`Domain::pages`) are not API operations.
    let router = server::api_router(&app.state).with_state(app.state.clone());
    let routes = routed(&router);
    assert!(routes.len() > 40, "the router walk found only {routes:?}");
    let doc = app.openapi().await;
    let documented = documented(&doc);
    let undocumented: Vec<_> = routes.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routes).collect();
    assert!(
        undocumented.is_empty() && unrouted.is_empty(),
        "routed but not documented: {undocumented:?}\ndocumented but not routed: {unrouted:?}"
    );
}

/// Every operation declares its credential, the errors of what it takes, and its
/// parameters where they are (a query parameter documented `in: path` misleads clients).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_declares_the_errors_its_inputs_can_cause() {
    let app = spawn_app(Backend::Sqlite).await;
    let doc = app.openapi().await;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            let declares = |code: &str| responses.contains_key(code);
            if op["requestBody"]["content"]["application/json"].is_object() {
                for code in ["400", "413", "415", "422"] {
                    assert!(declares(code), "{method} {path} lacks {code}");
                }
            }
            // OPTIONS describes the server (tus), whatever the resource.
            if path.contains('{') && method != "options" {
                assert!(declares("404"), "{method} {path} lacks 404");
            }
            for param in op["parameters"].as_array().into_iter().flatten() {
                let name = param["name"].as_str().unwrap();
                let in_template = path.contains(&format!("{{{name}}}"));
                assert_eq!(
                    param["in"] == "path",
                    in_template,
                    "{method} {path}: parameter {name} is `in: {}`",
                    param["in"]
                );
            }
            if op["security"].is_array() {
                assert!(
                    declares("401") && declares("403"),
                    "{method} {path} lacks 401/403"
                );
            }
        }
    }
}

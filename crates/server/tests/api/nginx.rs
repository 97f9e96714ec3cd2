//! `deploy/nginx/framehouse.conf` in front of two api nodes, run by a real nginx: uploads
//! through it, request ids, the client address through `trusted_proxies`, the cache of
//! public derivatives (and never of private ones), and failover when a node stops.

use reqwest::StatusCode;
use server::settings::{DatabaseSettings, Secret};

use crate::fixtures;
use crate::helpers::{fresh_postgres_url, spawn_app_with, Backend, TestApp};
use crate::nginx_server::Nginx;

async fn api_node(url: &str, data_dir: Option<std::path::PathBuf>) -> TestApp {
    let url = url.to_string();
    spawn_app_with(Backend::Sqlite, move |s| {
        s.database = DatabaseSettings {
            url: Some(Secret::new(url)),
            max_connections: 10,
            ..DatabaseSettings::default()
        };
        s.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
        if let Some(dir) = data_dir {
            s.data_dir = dir;
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(skip_postgres, ignore = "FRAMEHOUSE_TEST_SKIP_POSTGRES=1")]
#[cfg_attr(skip_nginx, ignore = "FRAMEHOUSE_TEST_SKIP_NGINX=1")]
async fn nginx_in_front_of_two_api_nodes_streams_caches_public_answers_and_fails_over() {
    let url = fresh_postgres_url().await;
    let one = api_node(&url, None).await;
    let two = api_node(&url, Some(one.data_dir.clone())).await;
    let (a, b) = (
        one.base.trim_start_matches("http://").to_string(),
        two.base.trim_start_matches("http://").to_string(),
    );
    let nginx = Nginx::start(&[&a, &b]).await;
    let client = reqwest::Client::new();
    let via = |path: &str| format!("{}{path}", nginx.base);

    // Sign up and upload through nginx; the request id we send comes back.
    let resp = client
        .post(via("/api/v1/auth/register"))
        .json(&serde_json::json!({"username": "alice", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let token = one.login("alice", "correct horse battery").await;
    let bytes = fixtures::jpeg(1600, 1200);
    let resp = client
        .post(via("/api/v1/media?visibility=public"))
        .bearer_auth(&token)
        .header("x-request-id", "upload-through-nginx-1")
        .header("content-type", "application/octet-stream")
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    assert_eq!(resp.headers()["x-request-id"], "upload-through-nginx-1");
    let item: serde_json::Value = resp.json().await.unwrap();
    let public_id = item["id"].as_str().unwrap().to_string();
    one.wait_processed(&token, &public_id).await;
    // Without one, nginx makes a request id and passes it on.
    let resp = client.get(via("/healthz")).send().await.unwrap();
    let made = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(made.len(), 32, "nginx's $request_id: {made}");

    // Public derivatives: a miss, then hits served by nginx, byte for byte.
    let path = format!("/media/{public_id}/thumb.webp");
    let first = client.get(via(&path)).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(first.headers()["x-cache-status"], "MISS");
    let first_bytes = first.bytes().await.unwrap();
    let second = client.get(via(&path)).send().await.unwrap();
    assert_eq!(second.headers()["x-cache-status"], "HIT");
    assert_eq!(second.bytes().await.unwrap(), first_bytes);
    let direct = one.get(None, &path).await.bytes().await.unwrap();
    assert_eq!(
        direct, first_bytes,
        "the same bytes as from a node directly"
    );
    // A range of a cached object.
    let ranged = client
        .get(via(&path))
        .header("range", "bytes=0-15")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(ranged.bytes().await.unwrap(), first_bytes.slice(0..16));

    // Private: never stored, never served to someone else.
    let private = one.upload_ok(&token, bytes.clone(), "").await;
    let private_id = private["id"].as_str().unwrap().to_string();
    one.wait_processed(&token, &private_id).await;
    let path = format!("/media/{private_id}/thumb.webp");
    for _ in 0..2 {
        let resp = client
            .get(via(&path))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["x-cache-status"], "BYPASS");
    }
    let anonymous = client.get(via(&path)).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::NOT_FOUND);
    assert_ne!(anonymous.headers()["x-cache-status"], "HIT");

    // The client's address reaches the audit log through X-Forwarded-For.
    let resp = client
        .post(via("/api/v1/auth/login"))
        .header("x-forwarded-for", "203.0.113.7")
        .json(&serde_json::json!({"username": "alice", "password": "wrong wrong wrong"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let ip: Option<String> = sqlx::query_scalar(
        "SELECT ip FROM audit_log WHERE kind = 'login_failed' ORDER BY at DESC LIMIT 1",
    )
    .fetch_one(&one.state.db.pool)
    .await
    .unwrap();
    assert_eq!(ip.as_deref(), Some("203.0.113.7"));

    // One node stops: idempotent requests keep succeeding through the other.
    two.stop().await;
    for _ in 0..10 {
        let resp = client
            .get(via(&format!("/api/v1/media/{private_id}")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }
}

/// A resumable upload through nginx to two api nodes on one database and data dir: the
/// `Location` names nginx's address, and PATCHes that nginx spreads over both nodes
/// continue one upload at its recorded offset.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(skip_postgres, ignore = "FRAMEHOUSE_TEST_SKIP_POSTGRES=1")]
#[cfg_attr(skip_nginx, ignore = "FRAMEHOUSE_TEST_SKIP_NGINX=1")]
async fn a_resumable_upload_through_nginx_moves_between_api_nodes() {
    let url = fresh_postgres_url().await;
    let one = api_node(&url, None).await;
    let two = api_node(&url, Some(one.data_dir.clone())).await;
    let (a, b) = (
        one.base.trim_start_matches("http://").to_string(),
        two.base.trim_start_matches("http://").to_string(),
    );
    let nginx = Nginx::start(&[&a, &b]).await;
    let client = reqwest::Client::new();
    let token = one.user("alice").await;
    let bytes = fixtures::jpeg(2400, 1800);
    let resp = client
        .post(format!("{}/api/v1/uploads/", nginx.base))
        .bearer_auth(&token)
        .header("tus-resumable", "1.0.0")
        .header("upload-length", bytes.len().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(
        location.starts_with(&format!("{}/api/v1/uploads/", nginx.base)),
        "{location} is not under {}",
        nginx.base
    );
    let mut offset = 0;
    let mut media = None;
    for chunk in bytes.chunks(bytes.len().div_ceil(6)) {
        let resp = client
            .patch(&location)
            .bearer_auth(&token)
            .header("tus-resumable", "1.0.0")
            .header("content-type", "application/offset+octet-stream")
            .header("upload-offset", offset.to_string())
            .body(chunk.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
        offset += chunk.len();
        media = resp.headers().get("framehouse-media-id").cloned();
    }
    let media = media.expect("the last PATCH names the item");
    let item = one.get_item(Some(&token), media.to_str().unwrap()).await;
    let item: serde_json::Value = item.json().await.unwrap();
    assert_eq!(item["bytes"], bytes.len());
    let served = one
        .get(
            Some(&token),
            &format!("/media/{}/original", item["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(served.bytes().await.unwrap(), bytes);
}

//! Delivery: ETag/304, single ranges (206/416), HEAD, cache headers, GC.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use crate::both_backends;
use crate::fixtures;
use crate::helpers::{spawn_app, spawn_app_with, Backend};

async fn conditional_range_and_head_requests_follow_http(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.user("alice").await;
    let item = app
        .upload_ok(&token, fixtures::jpeg(900, 600), "visibility=public")
        .await;
    let id = item["id"].as_str().unwrap();
    app.wait_processed(&token, id).await;
    let url = app.url(&format!("/media/{id}/small.webp"));

    let full = app.client.get(&url).send().await.unwrap();
    assert_eq!(full.status(), StatusCode::OK);
    assert_eq!(full.headers()["content-type"], "image/webp");
    assert_eq!(
        full.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    let etag = full.headers()["etag"].to_str().unwrap().to_string();
    assert!(
        etag.starts_with('"') && etag.ends_with('"'),
        "strong etag {etag}"
    );
    let length: usize = full.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body = full.bytes().await.unwrap();
    assert_eq!(body.len(), length);

    let not_modified = app
        .client
        .get(&url)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(not_modified.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(not_modified.headers()["etag"].to_str().unwrap(), etag);
    assert!(not_modified.bytes().await.unwrap().is_empty());

    let part = app
        .client
        .get(&url)
        .header("range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        part.headers()["content-range"],
        format!("bytes 10-19/{length}").as_str()
    );
    assert_eq!(part.bytes().await.unwrap(), body.slice(10..20));

    let suffix = app
        .client
        .get(&url)
        .header("range", "bytes=-4")
        .send()
        .await
        .unwrap();
    assert_eq!(suffix.bytes().await.unwrap(), body.slice(length - 4..));

    let beyond = app
        .client
        .get(&url)
        .header("range", format!("bytes={length}-"))
        .send()
        .await
        .unwrap();
    assert_eq!(beyond.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(
        beyond.headers()["content-range"],
        format!("bytes */{length}").as_str()
    );

    let head = app.client.head(&url).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(
        head.headers()["content-length"],
        length.to_string().as_str()
    );
    assert_eq!(head.headers()["etag"].to_str().unwrap(), etag);

    let original = app
        .get(Some(&token), &format!("/media/{id}/original"))
        .await;
    assert_eq!(original.headers()["content-type"], "image/jpeg");
    assert_eq!(
        original.headers()["etag"].to_str().unwrap(),
        format!("\"{}\"", item["sha256"].as_str().unwrap())
    );

    // Private items are never cached by shared caches.
    let private = app.upload_ok(&token, fixtures::jpeg(901, 600), "").await;
    let pid = private["id"].as_str().unwrap();
    app.wait_processed(&token, pid).await;
    let resp = app
        .get(Some(&token), &format!("/media/{pid}/thumb.jpg"))
        .await;
    assert_eq!(resp.headers()["cache-control"], "private, no-store");
    assert_eq!(
        app.get(Some(&token), &format!("/media/{pid}/thumb.gif"))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get(Some(&token), &format!("/media/{pid}/huge.jpg"))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
}

async fn deleting_the_last_reference_collects_blob_and_derivatives(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let bytes = fixtures::jpeg(700, 500);
    let a: Value = app.upload_ok(&alice, bytes.clone(), "").await;
    let b: Value = app.upload_ok(&bob, bytes, "").await;
    app.wait_processed(&alice, a["id"].as_str().unwrap()).await;
    assert_eq!(
        app.files_under("objects").len(),
        9,
        "original + 6 derivatives + the two transform proxies"
    );

    let del = |token: String, id: String| {
        let app = &app;
        async move {
            let resp = app
                .client
                .delete(app.url(&format!("/api/v1/media/{id}")))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::NO_CONTENT);
        }
    };
    del(alice.clone(), a["id"].as_str().unwrap().to_string()).await;
    // The blob's collection ran (and kept it: bob's item still uses it).
    app.wait_for_job("gc_blob").await;
    assert_eq!(
        app.files_under("objects").len(),
        9,
        "still referenced by bob's item"
    );
    let still: Value = app
        .get_item(Some(&bob), b["id"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(still["status"], "ready");

    del(bob.clone(), b["id"].as_str().unwrap().to_string()).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !app.files_under("objects").is_empty() || app.count("blobs").await != 0 {
        assert!(
            Instant::now() < deadline,
            "GC did not run: {:?}",
            app.files_under("objects")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(app.count("variants").await, 0);
}

async fn making_an_item_private_stops_anonymous_delivery_at_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.user("alice").await;
    let item = app
        .upload_ok(&token, fixtures::jpeg(500, 400), "visibility=public")
        .await;
    let id = item["id"].as_str().unwrap();
    app.wait_processed(&token, id).await;
    let path = format!("/media/{id}/thumb.webp");
    assert_eq!(app.get(None, &path).await.status(), StatusCode::OK);
    assert_eq!(
        app.get(None, &path).await.status(),
        StatusCode::OK,
        "served from the cache"
    );
    let resp = app
        .client
        .patch(app.url(&format!("/api/v1/media/{id}")))
        .bearer_auth(&token)
        .json(&serde_json::json!({ "visibility": "private" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(app.get(None, &path).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.get(Some(&token), &path).await.status(), StatusCode::OK);
}

both_backends!(
    making_an_item_private_stops_anonymous_delivery_at_once,
    conditional_range_and_head_requests_follow_http,
    deleting_the_last_reference_collects_blob_and_derivatives
);

async fn the_sweep_removes_rowless_objects_and_stale_temp_files_only(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.gc.tmp_max_age_secs = 0;
        s.gc.orphan_min_age_secs = 0;
    })
    .await;
    let sweeps_done = |n: i64| {
        let app = &app;
        async move {
            let deadline = Instant::now() + Duration::from_secs(20);
            while app
                .count("jobs WHERE kind = 'gc_sweep' AND state = 'succeeded'")
                .await
                < n
            {
                assert!(Instant::now() < deadline, "sweep {n} did not run");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    // The scheduler's first sweep runs at start; wait for it so it cannot meet our upload.
    sweeps_done(1).await;
    let token = app.user("alice").await;
    let item = app.upload_ok(&token, fixtures::jpeg(640, 480), "").await;
    app.wait_processed(&token, item["id"].as_str().unwrap())
        .await;
    let live = app.files_under("objects");
    assert_eq!(live.len(), 9);
    let stray = app.data_dir.join("objects/originals/0000-no-such-blob");
    std::fs::write(&stray, b"left by a crash").unwrap();
    let stray_derivative = app
        .data_dir
        .join("objects/derivatives/0000-no-such-blob/thumb.webp");
    std::fs::create_dir_all(stray_derivative.parent().unwrap()).unwrap();
    std::fs::write(&stray_derivative, b"left by a crash").unwrap();
    let temp = app.data_dir.join("tmp/upload-crashed.part");
    std::fs::write(&temp, b"half an upload").unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;

    app.state
        .queue
        .enqueue(server::media::gc::gc_sweep_job())
        .await
        .unwrap();
    sweeps_done(2).await;
    assert!(!stray.exists() && !stray_derivative.exists() && !temp.exists());
    let mut after = app.files_under("objects");
    let mut before = live;
    after.sort();
    before.sort();
    assert_eq!(after, before, "live objects untouched");
}

both_backends!(the_sweep_removes_rowless_objects_and_stale_temp_files_only);

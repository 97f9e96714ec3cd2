//! On-the-fly transforms through the API: options, formats, presets, signatures,
//! visibility, coalescing, overload, eager presets, near-duplicate search.

use std::sync::atomic::Ordering;

use reqwest::StatusCode;
use serde_json::{json, Value};
use server::settings::{PresetEntry, Secret};

use crate::both_backends;
use crate::fixtures::{self, decode};
use crate::helpers::{error_code, spawn_app, spawn_app_with, Backend, TestApp};

async fn ready_item(app: &TestApp, token: &str, bytes: Vec<u8>, query: &str) -> String {
    let item = app.upload_ok(token, bytes, query).await;
    let id = item["id"].as_str().unwrap().to_string();
    assert_eq!(app.wait_processed(token, &id).await["status"], "ready");
    id
}

async fn transforms_resize_encode_and_follow_visibility(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let private = ready_item(&app, &alice, fixtures::jpeg(1200, 800), "").await;
    let resp = app
        .get(Some(&alice), &format!("/img/{private}/w_300.jpg"))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "image/jpeg");
    assert_eq!(resp.headers()["cache-control"], "private, no-store");
    let (format, w, h) = decode(&resp.bytes().await.unwrap());
    assert_eq!((format, w, h), (image::ImageFormat::Jpeg, 300, 200));
    let resp = app
        .get(
            Some(&alice),
            &format!("/img/{private}/w_100,h_100,fit_cover.webp"),
        )
        .await;
    assert_eq!(
        decode(&resp.bytes().await.unwrap()),
        (image::ImageFormat::WebP, 100, 100)
    );
    let png = app
        .get(Some(&alice), &format!("/img/{private}/h_50.png"))
        .await;
    assert_eq!(
        decode(&png.bytes().await.unwrap()),
        (image::ImageFormat::Png, 75, 50)
    );

    assert_eq!(
        app.get(None, &format!("/img/{private}/w_300.jpg"))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get(Some(&bob), &format!("/img/{private}/w_300.jpg"))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );

    let public = ready_item(&app, &alice, fixtures::jpeg(1000, 500), "visibility=public").await;
    let resp = app.get(None, &format!("/img/{public}/w_200.jpg")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    let etag = resp.headers()["etag"].to_str().unwrap().to_string();
    let again = app
        .client
        .get(app.url(&format!("/img/{public}/w_200.jpg")))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);

    let (status, code) = error_code(app.get(None, &format!("/img/{public}/w_0.jpg")).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "invalid_transform")
    );
    let body: Value = app
        .get(None, &format!("/img/{public}/w_300,zoom_2.jpg"))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("zoom_2"),
        "{body}"
    );
    assert_eq!(
        error_code(app.get(None, &format!("/img/{public}/w_300.bmp")).await)
            .await
            .1,
        "invalid_format"
    );

    let auto = app
        .client
        .get(app.url(&format!("/img/{public}/w_200.auto")))
        .header("accept", "image/webp,*/*")
        .send()
        .await
        .unwrap();
    assert_eq!(auto.headers()["content-type"], "image/webp");
    assert_eq!(auto.headers()["vary"], "Accept");
    let plain = app
        .client
        .get(app.url(&format!("/img/{public}/w_200.auto")))
        .header("accept", "*/*")
        .send()
        .await
        .unwrap();
    assert_eq!(plain.headers()["content-type"], "image/jpeg");
}

async fn fifty_identical_requests_compute_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.user("alice").await;
    let id = ready_item(
        &app,
        &token,
        fixtures::jpeg(2000, 1500),
        "visibility=public",
    )
    .await;
    let before = app.state.transform.computed.load(Ordering::SeqCst);
    let url = app.url(&format!("/img/{id}/w_321,blur_2.webp"));
    let requests = (0..50).map(|_| {
        let (client, url) = (app.client.clone(), url.clone());
        tokio::spawn(async move { client.get(url).send().await.unwrap().bytes().await.unwrap() })
    });
    let bodies: Vec<_> = futures::future::join_all(requests)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert!(bodies.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(
        app.state.transform.computed.load(Ordering::SeqCst) - before,
        1,
        "computed once"
    );
    let stored = app.count("transform_results").await;
    assert_eq!(stored, 1);
}

async fn overload_answers_429_with_retry_after_and_never_5xx(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.transform.concurrency = 1;
        s.transform.queue_limit = 2;
    })
    .await;
    let token = app.user("alice").await;
    let id = ready_item(
        &app,
        &token,
        fixtures::jpeg(2400, 1600),
        "visibility=public",
    )
    .await;
    let requests = (0..24).map(|i| {
        let (client, url) = (
            app.client.clone(),
            app.url(&format!("/img/{id}/w_{},sharpen_1.jpg", 300 + i)),
        );
        tokio::spawn(async move {
            let resp = client.get(url).send().await.unwrap();
            (resp.status(), resp.headers().get("retry-after").is_some())
        })
    });
    let results: Vec<_> = futures::future::join_all(requests)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert!(
        results
            .iter()
            .all(|(s, _)| *s == StatusCode::OK || *s == StatusCode::TOO_MANY_REQUESTS),
        "{results:?}"
    );
    assert!(results.iter().any(|(s, _)| *s == StatusCode::OK));
    assert!(
        results
            .iter()
            .any(|(s, retry)| *s == StatusCode::TOO_MANY_REQUESTS && *retry),
        "{results:?}"
    );
}

fn signed_settings(s: &mut server::settings::Settings) {
    s.transform.signing_keys = vec![Secret::new("new-key"), Secret::new("old-key")];
    s.transform.presets.insert(
        "avatar".into(),
        PresetEntry::Full {
            ops: "w_128,h_128,fit_cover,g_smart".into(),
            eager: false,
            public: true,
            formats: vec![],
        },
    );
}

async fn signed_urls_are_required_verified_and_expire(backend: Backend) {
    let app = spawn_app_with(backend, signed_settings).await;
    let token = app.user("alice").await;
    let id = ready_item(&app, &token, fixtures::jpeg(800, 600), "visibility=public").await;
    let signer = |key: &str, msg: &str| {
        server::kernel::keyring::Keyring::new(vec![key.as_bytes().to_vec()], vec![]).sign(msg)
    };
    let path = format!("/img/{id}/w_200.jpg");
    assert_eq!(
        error_code(app.get(None, &path).await).await,
        (StatusCode::FORBIDDEN, "signature_required".into())
    );
    let good = signer("new-key", &path);
    assert_eq!(
        app.get(None, &format!("{path}?s={good}")).await.status(),
        StatusCode::OK
    );
    // Reordered options canonicalise to the same signed path.
    let canon = format!("/img/{id}/h_150,w_200.jpg");
    let sig = signer("new-key", &format!("/img/{id}/h_150,w_200.jpg"));
    assert_eq!(
        app.get(None, &format!("/img/{id}/w_200,h_150.jpg?s={sig}"))
            .await
            .status(),
        StatusCode::OK,
        "{canon}"
    );
    let rotated = signer("old-key", &path);
    assert_eq!(
        app.get(None, &format!("{path}?s={rotated}")).await.status(),
        StatusCode::OK
    );
    let retired = signer("older-key", &path);
    assert_eq!(
        error_code(app.get(None, &format!("{path}?s={retired}")).await)
            .await
            .1,
        "invalid_signature"
    );
    let tampered = format!("/img/{id}/w_201.jpg?s={good}");
    assert_eq!(
        error_code(app.get(None, &tampered).await).await.1,
        "invalid_signature"
    );
    assert_eq!(
        error_code(app.get(None, &format!("{path}?s={good}&s={good}")).await)
            .await
            .1,
        "invalid_signature"
    );
    let past = 1_000_000_000;
    let expired = signer("new-key", &format!("{path}?exp={past}"));
    assert_eq!(
        error_code(
            app.get(None, &format!("{path}?exp={past}&s={expired}"))
                .await
        )
        .await
        .1,
        "signature_expired"
    );
    let preset = app.get(None, &format!("/img/{id}/p_avatar.webp")).await;
    assert_eq!(
        preset.status(),
        StatusCode::OK,
        "public presets need no signature"
    );
    assert_eq!(
        decode(&preset.bytes().await.unwrap()),
        (image::ImageFormat::WebP, 128, 128)
    );
    assert_eq!(
        error_code(
            app.get(None, &format!("/img/{id}/p_avatar,w_64.webp"))
                .await
        )
        .await
        .1,
        "signature_required"
    );
}

async fn owners_mint_expiring_urls_for_private_items(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let id = ready_item(&app, &alice, fixtures::jpeg(800, 600), "").await;
    let mint = |token: &str, body: Value| {
        app.client
            .post(app.url(&format!("/api/v1/media/{id}/signed-url")))
            .bearer_auth(token.to_string())
            .json(&body)
            .send()
    };
    assert_eq!(
        mint(&bob, json!({"ops": "w_100"})).await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    let resp = mint(
        &alice,
        json!({"ops": "w_100", "format": "png", "ttl_secs": 60}),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let minted: Value = resp.json().await.unwrap();
    let url = minted["url"].as_str().unwrap();
    let got = app.get(None, url).await;
    assert_eq!(got.status(), StatusCode::OK, "{url}");
    assert_eq!(got.headers()["cache-control"], "private, no-store");
    assert_eq!(
        decode(&got.bytes().await.unwrap()),
        (image::ImageFormat::Png, 100, 75)
    );
    // The same options without the capability stay private.
    assert_eq!(
        app.get(None, &format!("/img/{id}/w_100.png"))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    let bad = mint(&alice, json!({"ops": "w_100", "ttl_secs": 999_999_999}))
        .await
        .unwrap();
    assert_eq!(error_code(bad).await.1, "invalid_ttl");
}

async fn eager_presets_are_made_at_upload(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.transform.presets.insert(
            "card".into(),
            PresetEntry::Full {
                ops: "w_400,h_300,fit_cover".into(),
                eager: true,
                public: false,
                formats: vec!["webp".into()],
            },
        );
    })
    .await;
    let token = app.user("alice").await;
    let id = ready_item(&app, &token, fixtures::jpeg(1600, 1000), "").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while app.count("transform_results").await < 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "eager preset not made"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let before = app.state.transform.computed.load(Ordering::SeqCst);
    let resp = app
        .get(Some(&token), &format!("/img/{id}/p_card.webp"))
        .await;
    assert_eq!(
        decode(&resp.bytes().await.unwrap()),
        (image::ImageFormat::WebP, 400, 300)
    );
    assert_eq!(
        app.state.transform.computed.load(Ordering::SeqCst),
        before,
        "served from the stored result"
    );
}

async fn unused_results_are_removed_by_the_scheduler_job(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.transform.unused_days = 0).await;
    let token = app.user("alice").await;
    let id = ready_item(&app, &token, fixtures::jpeg(600, 400), "").await;
    assert_eq!(
        app.get(Some(&token), &format!("/img/{id}/w_50.jpg"))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(app.count("transform_results").await, 1);
    assert_eq!(
        app.files_under("objects/derivatives")
            .iter()
            .filter(|p| p.to_string_lossy().contains("/t/"))
            .count(),
        1
    );
    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    let removed = app.state.transform.remove_unused().await.unwrap();
    assert_eq!(removed, 1);
    assert_eq!(app.count("transform_results").await, 0);
    assert_eq!(
        app.files_under("objects/derivatives")
            .iter()
            .filter(|p| p.to_string_lossy().contains("/t/"))
            .count(),
        0
    );
}

async fn similar_finds_near_duplicates_the_caller_may_see(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    // A picture with structure at several scales, as perceptual hashes expect.
    let photo = image::RgbImage::from_fn(800, 600, |x, y| {
        let (fx, fy) = (x as f32 / 800.0, y as f32 / 600.0);
        let wave = ((fx * 9.0).sin() * (fy * 7.0).cos() * 100.0 + 128.0) as u8;
        let disc = if (fx - 0.3).powi(2) + (fy - 0.6).powi(2) < 0.02 {
            255
        } else {
            0
        };
        image::Rgb([wave, wave.saturating_add(disc), (fx * 255.0) as u8])
    });
    let original = ready_item(
        &app,
        &alice,
        fixtures::encode(
            &image::DynamicImage::ImageRgb8(photo.clone()),
            image::ImageFormat::Jpeg,
        ),
        "",
    )
    .await;
    let brighter = image::DynamicImage::ImageRgb8(photo.clone())
        .brighten(12)
        .resize_exact(640, 480, image::imageops::FilterType::Triangle);
    let near = ready_item(
        &app,
        &alice,
        fixtures::encode(&brighter, image::ImageFormat::Png),
        "",
    )
    .await;
    let other = image::RgbImage::from_fn(800, 600, |x, y| {
        image::Rgb([((x * y) % 251) as u8, (x % 200) as u8, (y % 97) as u8])
    });
    let unrelated = ready_item(
        &app,
        &alice,
        fixtures::encode(
            &image::DynamicImage::ImageRgb8(other),
            image::ImageFormat::Jpeg,
        ),
        "",
    )
    .await;
    let bobs_private = ready_item(
        &app,
        &bob,
        fixtures::encode(
            &image::DynamicImage::ImageRgb8(photo.clone()),
            image::ImageFormat::Png,
        ),
        "",
    )
    .await;

    let page: Value = app
        .get(Some(&alice), &format!("/api/v1/media/{original}/similar"))
        .await
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["item"]["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&near.as_str()), "{page}");
    assert!(
        !ids.contains(&unrelated.as_str()) && !ids.contains(&original.as_str()),
        "{page}"
    );
    assert!(
        !ids.contains(&bobs_private.as_str()),
        "bob's private item stays hidden: {page}"
    );
    assert!(page["items"][0]["distance"].as_u64().unwrap() <= 10);
    assert_eq!(
        app.get(Some(&bob), &format!("/api/v1/media/{original}/similar"))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
}

both_backends!(
    transforms_resize_encode_and_follow_visibility,
    fifty_identical_requests_compute_once,
    overload_answers_429_with_retry_after_and_never_5xx,
    signed_urls_are_required_verified_and_expire,
    owners_mint_expiring_urls_for_private_items,
    eager_presets_are_made_at_upload,
    unused_results_are_removed_by_the_scheduler_job,
    similar_finds_near_duplicates_the_caller_may_see,
);

async fn small_transforms_start_from_the_proxy_and_large_ones_from_the_original(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.user("alice").await;
    let id = ready_item(&app, &token, fixtures::jpeg(3000, 2000), "").await;
    let item: Value = app.get_item(Some(&token), &id).await.json().await.unwrap();
    assert!(
        item["variants"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| !v["preset"].as_str().unwrap().starts_with("proxy")),
        "the proxy is internal: {item}"
    );
    assert_eq!(
        app.get(Some(&token), &format!("/media/{id}/proxy-1280.jpg"))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get(Some(&token), &format!("/media/{id}/proxy.jpg"))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    // The proxy is 2560×1707: outputs inside it start there; larger ones and crops
    // (in source coordinates) start from the original.
    let cases = [
        ("w_1000", 1000, 667, 1),
        ("w_2000", 2000, 1333, 1),
        ("w_700,dpr_2", 1400, 933, 1),
        ("w_2600", 2600, 1733, 0),
        ("w_1300,dpr_2", 2600, 1733, 0),
        ("w_300,crop_0:0:1500:1000", 300, 200, 0),
    ];
    for (ops, w, h, proxied) in cases {
        let before = app.state.transform.from_proxy.load(Ordering::SeqCst);
        let resp = app.get(Some(&token), &format!("/img/{id}/{ops}.jpg")).await;
        assert_eq!(resp.status(), StatusCode::OK, "{ops}");
        let (_, ow, oh) = decode(&resp.bytes().await.unwrap());
        assert_eq!((ow, oh), (w, h), "{ops}");
        let used = app.state.transform.from_proxy.load(Ordering::SeqCst) - before;
        assert_eq!(used, proxied, "{ops} started from the proxy");
    }
}

both_backends!(small_transforms_start_from_the_proxy_and_large_ones_from_the_original);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_private_watermark_item_makes_the_result_private() {
    // First run: upload the watermark (private) and a public photo; then restart with a
    // watermark preset naming that item, on the same data dir and database.
    let shared = tempfile::tempdir().unwrap();
    let data_dir = shared.path().join("data");
    let dir = data_dir.clone();
    let first = spawn_app_with(Backend::Sqlite, move |s| s.data_dir = dir).await;
    let token = first.user("alice").await;
    let mark = ready_item(&first, &token, fixtures::png(200, 100), "").await;
    let photo = ready_item(
        &first,
        &token,
        fixtures::jpeg(800, 600),
        "visibility=public",
    )
    .await;
    first.stop().await;

    let dir = data_dir.clone();
    let app = spawn_app_with(Backend::Sqlite, move |s| {
        s.data_dir = dir;
        s.transform.watermarks.insert(
            "mark".into(),
            toml::from_str(&format!("media_id = \"{mark}\"")).unwrap(),
        );
    })
    .await;
    let token = app.login("alice", "correct horse battery").await;
    let plain = app.get(None, &format!("/img/{photo}/w_400.jpg")).await;
    assert_eq!(
        plain.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    let marked = app
        .get(Some(&token), &format!("/img/{photo}/w_400,wm_mark.jpg"))
        .await;
    assert_eq!(marked.status(), StatusCode::OK);
    assert_eq!(marked.headers()["cache-control"], "private, no-store");
    // Others may not use a watermark they cannot read.
    let anonymous = app
        .get(None, &format!("/img/{photo}/w_400,wm_mark.jpg"))
        .await;
    assert_eq!(error_code(anonymous).await.1, "invalid_transform");
}

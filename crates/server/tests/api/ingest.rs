//! Upload, validation, limits, dedup and processing.

use image::ImageFormat;
use reqwest::StatusCode;
use serde_json::Value;

use crate::both_backends;
use crate::fixtures::{self, contains, decode};
use crate::helpers::{error_code, spawn_app, spawn_app_with, Backend, TestApp};

async fn variant_bytes(
    app: &TestApp,
    token: &str,
    item: &Value,
    preset: &str,
    ext: &str,
) -> Vec<u8> {
    let id = item["id"].as_str().unwrap();
    let resp = app
        .get(Some(token), &format!("/media/{id}/{preset}.{ext}"))
        .await;
    assert_eq!(resp.status(), StatusCode::OK, "{preset}.{ext}");
    resp.bytes().await.unwrap().to_vec()
}

async fn every_accepted_format_gets_its_presets(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.user("alice").await;
    let formats = [
        (ImageFormat::Jpeg, "jpeg"),
        (ImageFormat::Png, "png"),
        (ImageFormat::Gif, "gif"),
        (ImageFormat::WebP, "webp"),
        (ImageFormat::Tiff, "tiff"),
        (ImageFormat::Bmp, "bmp"),
    ];
    for (format, name) in formats {
        let item = app
            .upload_ok(&token, fixtures::of_format(format, 1000, 500), "")
            .await;
        assert_eq!(item["status"], "processing");
        assert_eq!(item["format"], name);
        assert_eq!(
            (item["width"].as_i64(), item["height"].as_i64()),
            (Some(1000), Some(500))
        );
        if name == "gif" {
            assert_eq!(item["frames"], 3);
        }
        let item = app
            .wait_processed(&token, item["id"].as_str().unwrap())
            .await;
        assert_eq!(item["status"], "ready", "{name}: {item}");
        assert_eq!(item["variants"].as_array().unwrap().len(), 6, "{name}");
        for (preset, w, h) in [
            ("thumb", 256, 256),
            ("small", 640, 320),
            ("large", 1000, 500),
        ] {
            for (ext, out_format) in [("webp", ImageFormat::WebP), ("jpg", ImageFormat::Jpeg)] {
                let bytes = variant_bytes(&app, &token, &item, preset, ext).await;
                assert_eq!(decode(&bytes), (out_format, w, h), "{name} {preset}.{ext}");
            }
        }
    }
}

async fn exif_orientation_is_applied_and_metadata_stripped(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.user("alice").await;
    let original = fixtures::jpeg_with_exif_orientation_6(1200, 600);
    let item = app.upload_ok(&token, original.clone(), "").await;
    let item = app
        .wait_processed(&token, item["id"].as_str().unwrap())
        .await;
    assert_eq!(item["status"], "ready");
    assert_eq!(
        (item["width"].as_i64(), item["height"].as_i64()),
        (Some(600), Some(1200))
    );
    for (preset, w, h) in [
        ("thumb", 256, 256),
        ("small", 320, 640),
        ("large", 600, 1200),
    ] {
        for ext in ["webp", "jpg"] {
            let bytes = variant_bytes(&app, &token, &item, preset, ext).await;
            let (_, ow, oh) = decode(&bytes);
            assert_eq!((ow, oh), (w, h), "{preset}.{ext}");
            assert!(!contains(&bytes, b"Exif"), "{preset}.{ext} has EXIF");
            assert!(
                !contains(&bytes, fixtures::GPS_MARKER),
                "{preset}.{ext} has the GPS block"
            );
        }
    }
    // Left half red in the stored pixels → top half red once rotated 90° clockwise.
    let large = variant_bytes(&app, &token, &item, "large", "jpg").await;
    let img = image::load_from_memory(&large).unwrap().to_rgb8();
    let top = img.get_pixel(300, 200);
    let bottom = img.get_pixel(300, 1000);
    assert!(
        top[0] > 150 && top[2] < 100,
        "top pixel {top:?} should be red"
    );
    assert!(
        bottom[2] > 150 && bottom[0] < 100,
        "bottom pixel {bottom:?} should be blue"
    );
    // The original keeps its metadata.
    let id = item["id"].as_str().unwrap();
    let resp = app
        .get(Some(&token), &format!("/media/{id}/original"))
        .await;
    assert_eq!(resp.bytes().await.unwrap().to_vec(), original);
}

async fn identical_bytes_are_stored_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let bytes = fixtures::jpeg(640, 480);
    let first = app.upload_ok(&alice, bytes.clone(), "").await;
    let again = app.upload_ok(&alice, bytes.clone(), "").await;
    let second = app.upload_ok(&bob, bytes.clone(), "").await;
    assert_eq!(first["deduplicated"], false);
    assert_eq!(again["deduplicated"], true);
    // Bob is not told that someone else stored these bytes, nor shown their job.
    assert_eq!(second["deduplicated"], false);
    assert!(second["job_id"].is_null() && first["job_id"].is_string());
    assert_ne!(first["id"], second["id"]);
    assert_eq!(first["sha256"], second["sha256"]);
    assert_eq!(app.count("blobs").await, 1);
    assert_eq!(app.count("media").await, 3);
    assert_eq!(app.files_under("objects/originals").len(), 1);
    let ready = app
        .wait_processed(&bob, second["id"].as_str().unwrap())
        .await;
    assert_eq!(ready["status"], "ready");
}

/// Nothing of a rejected upload remains: no rows, no objects, no temp files.
async fn assert_nothing_stored(app: &TestApp) {
    assert_eq!(app.count("media").await, 0);
    assert_eq!(app.count("blobs").await, 0);
    assert_eq!(app.count("jobs WHERE kind = 'process_image'").await, 0);
    assert!(
        app.files_under("objects").is_empty(),
        "{:?}",
        app.files_under("objects")
    );
    assert!(
        app.files_under("tmp").is_empty(),
        "{:?}",
        app.files_under("tmp")
    );
}

async fn bad_uploads_are_refused_and_leave_nothing(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.limits.max_upload_bytes = 1 << 20).await;
    let token = app.user("alice").await;

    let big = vec![0xFFu8; 2 << 20];
    assert_eq!(
        error_code(app.upload(&token, big, "").await).await,
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large".into())
    );

    let bomb = fixtures::png_declaring(100_000, 100_000);
    assert_eq!(
        error_code(app.upload(&token, bomb, "").await).await,
        (StatusCode::UNPROCESSABLE_ENTITY, "image_too_large".into())
    );

    let mut truncated = fixtures::jpeg(800, 600);
    truncated.truncate(truncated.len() / 2);
    assert_eq!(
        error_code(app.upload(&token, truncated, "").await).await,
        (StatusCode::UNPROCESSABLE_ENTITY, "truncated_image".into())
    );

    let text = b"just some text, honestly a jpeg".to_vec();
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(text)
            .file_name("photo.jpg")
            .mime_str("image/jpeg")
            .unwrap(),
    );
    let resp = app
        .client
        .post(app.url("/api/v1/media"))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(resp).await,
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_format".into()
        )
    );

    assert_eq!(
        error_code(app.upload(&token, Vec::new(), "").await).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let anonymous = app
        .client
        .post(app.url("/api/v1/media"))
        .body(fixtures::jpeg(10, 10))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(anonymous).await.0, StatusCode::UNAUTHORIZED);
    assert_nothing_stored(&app).await;
}

async fn a_jpeg_named_png_is_accepted_as_jpeg(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.user("alice").await;
    let form = reqwest::multipart::Form::new()
        .text("title", "Sunset")
        .text("visibility", "public")
        .part(
            "file",
            reqwest::multipart::Part::bytes(fixtures::jpeg(300, 200))
                .file_name("sunset.png")
                .mime_str("image/png")
                .unwrap(),
        )
        .text("tags", "beach, evening");
    let resp = app
        .client
        .post(app.url("/api/v1/media"))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let item: Value = resp.json().await.unwrap();
    assert_eq!(item["format"], "jpeg");
    assert_eq!(item["mime"], "image/jpeg");
    assert_eq!(item["title"], "Sunset");
    assert_eq!(item["visibility"], "public");
    assert_eq!(item["tags"], serde_json::json!(["beach", "evening"]));
    let ready = app
        .wait_processed(&token, item["id"].as_str().unwrap())
        .await;
    // A 300×200 source is never upscaled by `large` or `small`.
    let large = ready["variants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["preset"] == "large")
        .unwrap();
    assert_eq!(
        (large["width"].as_i64(), large["height"].as_i64()),
        (Some(300), Some(200))
    );
}

async fn a_corrupt_body_behind_a_valid_header_ends_failed_with_a_reason(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.user("alice").await;
    // Valid header and end marker, garbage scan data: passes upload checks, fails decode.
    let mut bytes = fixtures::jpeg(400, 300);
    let len = bytes.len();
    for b in &mut bytes[len / 3..len - 2] {
        *b = 0x00;
    }
    let item = app.upload_ok(&token, bytes, "").await;
    let item = app
        .wait_processed(&token, item["id"].as_str().unwrap())
        .await;
    if item["status"] == "failed" {
        assert!(
            item["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{item}"
        );
        let job = app
            .get(
                Some(&token),
                &format!("/api/v1/jobs/{}", item["job_id"].as_str().unwrap()),
            )
            .await;
        let job: Value = job.json().await.unwrap();
        assert_eq!(job["state"], "dead", "{job}");
    } else {
        // libjpeg may decode zeroed scan data as grey without error: then it is ready.
        assert_eq!(item["status"], "ready", "{item}");
    }
}

async fn jobs_are_visible_to_their_owner_and_pollable(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let item = app.upload_ok(&alice, fixtures::jpeg(500, 400), "").await;
    let job_id = item["job_id"].as_str().unwrap().to_string();
    app.wait_processed(&alice, item["id"].as_str().unwrap())
        .await;
    let job: Value = app
        .get(Some(&alice), &format!("/api/v1/jobs/{job_id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(job["kind"], "process_image");
    // The item turns ready inside the job; the job row is marked right after.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut job = job;
    while job["state"] != "succeeded" {
        assert!(std::time::Instant::now() < deadline, "{job}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        job = app
            .get(Some(&alice), &format!("/api/v1/jobs/{job_id}"))
            .await
            .json()
            .await
            .unwrap();
    }
    assert_eq!(
        app.get(Some(&bob), &format!("/api/v1/jobs/{job_id}"))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get(None, &format!("/api/v1/jobs/{job_id}"))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get(Some(&alice), "/api/v1/jobs?state=dead")
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    let admin = app.admin("root").await;
    let page: Value = app
        .get(Some(&admin), "/api/v1/jobs?state=succeeded")
        .await
        .json()
        .await
        .unwrap();
    assert!(page["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .any(|j| j["id"] == job_id.as_str()));
}

both_backends!(
    every_accepted_format_gets_its_presets,
    exif_orientation_is_applied_and_metadata_stripped,
    identical_bytes_are_stored_once,
    bad_uploads_are_refused_and_leave_nothing,
    a_jpeg_named_png_is_accepted_as_jpeg,
    a_corrupt_body_behind_a_valid_header_ends_failed_with_a_reason,
    jobs_are_visible_to_their_owner_and_pollable,
);

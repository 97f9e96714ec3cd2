//! The storage contract, run against the local filesystem and against a real SeaweedFS
//! S3 gateway; then the whole upload → derivatives → delivery → GC path on SeaweedFS,
//! checked with aws-cli (an S3 client no one here wrote), and the store-URL modes.

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::StatusCode;
use serde_json::Value;
use server::kernel::storage::{Storage, StorageSettings};
use server::settings::Secret;

use crate::clients::aws;
use crate::fixtures;
use crate::helpers::{service_env, spawn_app_with, Backend};

#[derive(Clone, Copy, Debug)]
enum Store {
    Local,
    S3,
}

/// Runs `$scenario(Store)` once on the local filesystem and once on SeaweedFS (ignored
/// outside CI with `FRAMEHOUSE_TEST_SKIP_S3=1`).
macro_rules! both_stores {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn local() {
                super::$scenario(super::Store::Local).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            #[cfg_attr(skip_s3, ignore = "FRAMEHOUSE_TEST_SKIP_S3=1")]
            async fn s3() {
                super::$scenario(super::Store::S3).await
            }
        }
    )*};
}

both_stores!(
    small_objects_round_trip,
    large_files_stream_in_parts_and_read_by_range,
    listing_and_prefix_deletion,
);

/// SeaweedFS settings for one test: the shared test bucket, under a prefix of its own.
pub fn s3_settings() -> StorageSettings {
    StorageSettings {
        backend: "s3".into(),
        s3_bucket: service_env("FRAMEHOUSE_TEST_S3_BUCKET"),
        s3_endpoint: Some(service_env("FRAMEHOUSE_TEST_S3_ENDPOINT")),
        s3_access_key_id: service_env("FRAMEHOUSE_TEST_S3_KEY"),
        s3_secret_access_key: Secret::new(service_env("FRAMEHOUSE_TEST_S3_SECRET")),
        s3_prefix: format!("t-{}", uuid::Uuid::new_v4().simple()),
        s3_allow_http: true,
        ..StorageSettings::default()
    }
}

fn open(store: Store, dir: &Path) -> (Storage, StorageSettings) {
    let settings = match store {
        Store::Local => StorageSettings::default(),
        Store::S3 => s3_settings(),
    };
    let storage = Storage::open(dir, &settings).expect("store opens");
    (storage, settings)
}

/// Every key in the test bucket under `prefix`, as aws-cli lists them.
fn bucket_keys(prefix: &str) -> Vec<String> {
    let bucket = service_env("FRAMEHOUSE_TEST_S3_BUCKET");
    let out = aws(&[
        "s3api",
        "list-objects-v2",
        "--bucket",
        &bucket,
        "--prefix",
        &format!("{prefix}/"),
    ]);
    if out.iter().all(u8::is_ascii_whitespace) {
        return Vec::new(); // aws-cli prints nothing for an empty listing
    }
    let json: Value = serde_json::from_slice(&out).expect("listing JSON");
    let mut keys: Vec<String> = json["Contents"]
        .as_array()
        .map(|c| {
            c.iter()
                .map(|o| o["Key"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default();
    keys.sort();
    keys
}

/// One object's bytes and content type, fetched with aws-cli.
fn bucket_object(key: &str, dir: &Path) -> (Vec<u8>, String) {
    let bucket = service_env("FRAMEHOUSE_TEST_S3_BUCKET");
    let dest = dir.join(format!("aws-{}", uuid::Uuid::new_v4().simple()));
    let out = aws(&[
        "s3api",
        "get-object",
        "--bucket",
        &bucket,
        "--key",
        key,
        dest.to_str().unwrap(),
    ]);
    let meta: Value = serde_json::from_slice(&out).expect("get-object JSON");
    let bytes = std::fs::read(&dest).unwrap();
    (
        bytes,
        meta["ContentType"].as_str().unwrap_or("").to_string(),
    )
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

async fn small_objects_round_trip(store: Store) {
    let dir = tempfile::tempdir().unwrap();
    let (storage, settings) = open(store, dir.path());
    assert!(storage.ping().await, "a fresh store answers");
    let key = "derivatives/b1/thumb.webp";
    let bytes = Bytes::from(pattern(10_000));
    storage.put_bytes(key, bytes.clone()).await.unwrap();
    assert_eq!(storage.get_bytes(key).await.unwrap(), bytes);
    let ranged = storage
        .get(key, Some(100..250))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(ranged, bytes.slice(100..250), "a byte range");
    assert_eq!(storage.get_bytes_if_exists(key).await.unwrap(), Some(bytes));
    assert_eq!(
        storage
            .get_bytes_if_exists("derivatives/b1/none.webp")
            .await
            .unwrap(),
        None
    );
    assert!(matches!(
        storage.get("derivatives/b1/none.webp", None).await,
        Err(object_store::Error::NotFound { .. })
    ));
    // Overwrite in place (a re-made preset).
    storage
        .put_bytes(key, Bytes::from_static(b"second"))
        .await
        .unwrap();
    assert_eq!(&storage.get_bytes(key).await.unwrap()[..], b"second");
    if let Store::S3 = store {
        let (got, mime) = bucket_object(&format!("{}/{key}", settings.s3_prefix), dir.path());
        assert_eq!(got, b"second", "aws-cli reads what we wrote");
        assert_eq!(mime, "image/webp", "the object carries its type");
    }
    storage.delete(key).await.unwrap();
    storage.delete(key).await.expect("deleting twice is fine");
    assert_eq!(storage.get_bytes_if_exists(key).await.unwrap(), None);
}

async fn large_files_stream_in_parts_and_read_by_range(store: Store) {
    let dir = tempfile::tempdir().unwrap();
    let (storage, settings) = open(store, dir.path());
    // 21 MiB + 5 bytes: three S3 parts, the last one short.
    let data = pattern(21 * 1024 * 1024 + 5);
    let spooled = storage.tmp_dir().join("upload");
    std::fs::write(&spooled, &data).unwrap();
    let key = "originals/big";
    storage
        .put_file(key, &spooled, Some("image/jpeg"))
        .await
        .unwrap();
    assert!(!spooled.exists(), "the spooled file is moved or removed");
    let whole = storage.get_bytes(key).await.unwrap();
    assert_eq!(whole.len(), data.len());
    assert!(whole[..] == data[..], "the bytes come back unchanged");
    // A range across the first part boundary (8 MiB), and the last bytes.
    let boundary: usize = 8 * 1024 * 1024;
    let across = storage
        .get(key, Some(boundary as u64 - 10..boundary as u64 + 10))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&across[..], &data[boundary - 10..boundary + 10]);
    let len = data.len() as u64;
    let tail = storage
        .get(key, Some(len - 5..len))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&tail[..], &data[data.len() - 5..]);
    let (path, temporary) = storage.fetch_to_path(key).await.unwrap();
    assert!(std::fs::read(&path).unwrap() == data, "fetched to a path");
    assert_eq!(temporary, matches!(store, Store::S3));
    if let Store::S3 = store {
        let (got, mime) = bucket_object(&format!("{}/{key}", settings.s3_prefix), dir.path());
        assert!(got == data, "aws-cli reads the multipart object whole");
        assert_eq!(mime, "image/jpeg");
    }
}

async fn listing_and_prefix_deletion(store: Store) {
    let dir = tempfile::tempdir().unwrap();
    let (storage, settings) = open(store, dir.path());
    let before = server::kernel::time::now_ms();
    for key in [
        "derivatives/b1/thumb.webp",
        "derivatives/b1/hls/360p-r1/index.m3u8",
        "derivatives/b1/hls/360p-r1/seg0.m4s",
        "derivatives/b2/thumb.webp",
        "originals/b1",
    ] {
        storage
            .put_bytes(key, Bytes::from(key.as_bytes().to_vec()))
            .await
            .unwrap();
    }
    let mut listed = storage.list("derivatives/b1").await.unwrap();
    listed.sort();
    let keys: Vec<&str> = listed.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "derivatives/b1/hls/360p-r1/index.m3u8",
            "derivatives/b1/hls/360p-r1/seg0.m4s",
            "derivatives/b1/thumb.webp",
        ]
    );
    for (key, modified) in &listed {
        // Stores keep whole seconds at best.
        assert!(
            *modified >= before - 2_000 && *modified <= server::kernel::time::now_ms() + 2_000,
            "{key} modified at {modified}"
        );
    }
    assert_eq!(storage.list("originals").await.unwrap().len(), 1);
    assert!(storage.list("nothing-here").await.unwrap().is_empty());
    storage.delete_prefix("derivatives/b1").await.unwrap();
    assert!(storage.list("derivatives/b1").await.unwrap().is_empty());
    assert_eq!(
        storage.list("derivatives").await.unwrap().len(),
        1,
        "b2 stays"
    );
    if let Store::S3 = store {
        assert_eq!(
            bucket_keys(&settings.s3_prefix),
            [
                format!("{}/derivatives/b2/thumb.webp", settings.s3_prefix),
                format!("{}/originals/b1", settings.s3_prefix),
            ],
            "the bucket as aws-cli sees it"
        );
    }
}

/// A store that does not answer is reported, within the configured bound.
#[tokio::test]
async fn an_unreachable_s3_store_fails_ping_promptly() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let dir = tempfile::tempdir().unwrap();
    let settings = StorageSettings {
        backend: "s3".into(),
        s3_bucket: "nowhere".into(),
        s3_endpoint: Some(format!("http://127.0.0.1:{port}")),
        s3_access_key_id: "k".into(),
        s3_secret_access_key: Secret::new("s"),
        s3_allow_http: true,
        s3_timeout_secs: 2,
        ..StorageSettings::default()
    };
    let storage = Storage::open(dir.path(), &settings).unwrap();
    let started = Instant::now();
    assert!(!storage.ping().await);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "ping gave up after {:?}",
        started.elapsed()
    );
}

#[test]
fn store_url_settings_are_checked_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let bad = [
        StorageSettings {
            public_delivery: "redirect".into(),
            ..StorageSettings::default()
        },
        StorageSettings {
            private_originals: "presign".into(),
            ..StorageSettings::default()
        },
        StorageSettings {
            public_base_url: Some("ftp://cdn.example.com".into()),
            ..StorageSettings::default()
        },
        StorageSettings {
            public_delivery: "sometimes".into(),
            ..StorageSettings::default()
        },
    ];
    for settings in bad {
        assert!(
            Storage::open(dir.path(), &settings).is_err(),
            "{settings:?} must be refused"
        );
    }
}

/// The blob behind an item, from the database.
async fn blob_of(app: &crate::helpers::TestApp, id: &str) -> String {
    sqlx::query_scalar::<_, String>("SELECT blob_id FROM media WHERE id = $1")
        .bind(id)
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap()
}

/// Upload → presets → delivery (whole and ranged) → delete → GC, on SeaweedFS, with the
/// bucket checked by aws-cli at each step.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(skip_s3, ignore = "FRAMEHOUSE_TEST_SKIP_S3=1")]
async fn media_lives_in_the_bucket_from_upload_to_collection() {
    let s3 = s3_settings();
    let prefix = s3.s3_prefix.clone();
    let app = spawn_app_with(Backend::Sqlite, |s| s.storage = s3).await;
    let alice = app.user("alice").await;
    let bytes = fixtures::jpeg(900, 600);
    let item = app.upload_ok(&alice, bytes.clone(), "").await;
    let id = item["id"].as_str().unwrap();
    let done = app.wait_processed(&alice, id).await;
    assert_eq!(done["status"], "ready", "{done}");
    let blob = blob_of(&app, id).await;

    let keys = bucket_keys(&prefix);
    let original = format!("{prefix}/originals/{blob}");
    assert!(keys.contains(&original), "original in the bucket: {keys:?}");
    let thumb_key = format!("{prefix}/derivatives/{blob}/thumb.webp");
    assert!(keys.contains(&thumb_key), "thumb in the bucket: {keys:?}");
    let dir = tempfile::tempdir().unwrap();
    let (stored, mime) = bucket_object(&original, dir.path());
    assert!(stored == bytes, "the original is stored byte for byte");
    assert_eq!(mime, "image/jpeg");

    // Delivery streams from the bucket: the same bytes aws-cli sees.
    let resp = app
        .get(Some(&alice), &format!("/media/{id}/thumb.webp"))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let served = resp.bytes().await.unwrap();
    let (in_bucket, mime) = bucket_object(&thumb_key, dir.path());
    assert_eq!(&served[..], &in_bucket[..]);
    assert_eq!(mime, "image/webp");
    assert_eq!(fixtures::decode(&served).1, 256, "a 256-wide thumb");
    let ranged = app
        .client
        .get(app.url(&format!("/media/{id}/original")))
        .bearer_auth(&alice)
        .header("range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(&ranged.bytes().await.unwrap()[..], &bytes[100..200]);

    // Deleting the item collects the blob: nothing of it stays in the bucket.
    let resp = app
        .client
        .delete(app.url(&format!("/api/v1/media/{id}")))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    app.wait_for_job("gc_blob").await;
    let left: Vec<String> = bucket_keys(&prefix)
        .into_iter()
        .filter(|k| k.contains(&blob))
        .collect();
    assert!(left.is_empty(), "left in the bucket: {left:?}");
}

/// `public_delivery = "redirect"` sends public derivatives to `public_base_url`, naming
/// the object that holds the bytes; private items still stream through. With
/// `private_originals = "presign"` the owner's original is a presigned GET that a plain
/// HTTP client can follow, and that stops working once it expires.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(skip_s3, ignore = "FRAMEHOUSE_TEST_SKIP_S3=1")]
async fn store_urls_redirect_public_derivatives_and_presign_private_originals() {
    let mut s3 = s3_settings();
    let prefix = s3.s3_prefix.clone();
    let bucket = s3.s3_bucket.clone();
    let endpoint = s3.s3_endpoint.clone().unwrap();
    s3.public_base_url = Some("https://cdn.example.test/".into());
    s3.public_delivery = "redirect".into();
    s3.private_originals = "presign".into();
    s3.presign_ttl_secs = 2;
    let app = spawn_app_with(Backend::Sqlite, |s| s.storage = s3).await;
    let alice = app.user("alice").await;
    let bytes = fixtures::jpeg(640, 480);
    let public = app
        .upload_ok(&alice, bytes.clone(), "visibility=public")
        .await;
    let public_id = public["id"].as_str().unwrap();
    app.wait_processed(&alice, public_id).await;
    let blob = blob_of(&app, public_id).await;

    let resp = app
        .get(None, &format!("/media/{public_id}/thumb.webp"))
        .await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(resp.headers()["cache-control"], "public, max-age=60");
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let key = format!("{prefix}/derivatives/{blob}/thumb.webp");
    let expected_start = format!("https://cdn.example.test/{key}?v=");
    assert!(
        location.starts_with(&expected_start),
        "{location} should start with {expected_start}"
    );
    let dir = tempfile::tempdir().unwrap();
    let (in_bucket, mime) = bucket_object(&key, dir.path());
    assert_eq!(mime, "image/webp");
    assert_eq!(
        fixtures::decode(&in_bucket).1,
        256,
        "the URL names the thumb"
    );

    // A private item's derivatives never leave through a shared URL.
    let private = app.upload_ok(&alice, bytes.clone(), "").await;
    let private_id = private["id"].as_str().unwrap();
    app.wait_processed(&alice, private_id).await;
    let resp = app
        .get(Some(&alice), &format!("/media/{private_id}/thumb.webp"))
        .await;
    assert_eq!(resp.status(), StatusCode::OK, "streamed, not redirected");
    assert_eq!(resp.headers()["cache-control"], "private, no-store");

    // The owner's original: a presigned GET straight at SeaweedFS.
    let resp = app
        .get(Some(&alice), &format!("/media/{private_id}/original"))
        .await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(resp.headers()["cache-control"], "private, no-store");
    let signed = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(
        signed.starts_with(&format!("{endpoint}/{bucket}/{prefix}/originals/")),
        "{signed}"
    );
    assert!(signed.contains("X-Amz-Signature="), "{signed}");
    let plain = reqwest::Client::new();
    let fetched = plain.get(&signed).send().await.unwrap();
    assert_eq!(fetched.status(), StatusCode::OK);
    assert_eq!(fetched.bytes().await.unwrap().to_vec(), bytes);
    // Others still get nothing, not even a URL.
    let bob = app.user("bob").await;
    let resp = app
        .get(Some(&bob), &format!("/media/{private_id}/original"))
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    // The URL expires (2 s here): poll until the store refuses it.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = plain.get(&signed).send().await.unwrap().status();
        if status == StatusCode::FORBIDDEN {
            break;
        }
        assert_eq!(status, StatusCode::OK);
        assert!(Instant::now() < deadline, "the presigned URL never expired");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

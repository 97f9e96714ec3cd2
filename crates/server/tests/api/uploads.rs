//! The tus 1.0 server, as the protocol text reads: every extension, the status codes
//! and headers it prescribes, offsets that survive interrupted requests, and completion
//! into the same item (and the same refusals) as `POST /api/v1/media` — on the local
//! store and on SeaweedFS.

use std::time::Duration;

use base64::Engine;
use reqwest::{Response, StatusCode};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::clients::aws;
use crate::helpers::{error_code, eventually, spawn_app_with, Backend, TestApp};
use crate::storage::s3_settings;

#[derive(Clone, Copy, Debug)]
enum Store {
    Local,
    S3,
}

async fn app_on(store: Store, backend: Backend) -> TestApp {
    spawn_app_with(backend, |s| {
        if let Store::S3 = store {
            s.storage = s3_settings();
        }
        s.uploads.part_mib = 5;
        s.uploads.lock_wait_secs = 1;
    })
    .await
}

/// An uncompressed 24-bit BMP of noise: `side`² × 3 bytes that no codec shrinks, made
/// in no time, and a format the image kind accepts.
fn noise_bmp(side: u32, seed: u64) -> Vec<u8> {
    let row = (side * 3).div_ceil(4) * 4;
    let size = 54 + row * side;
    let mut out = Vec::with_capacity(size as usize);
    out.extend_from_slice(b"BM");
    out.extend_from_slice(&size.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&54u32.to_le_bytes());
    out.extend_from_slice(&40u32.to_le_bytes());
    out.extend_from_slice(&(side as i32).to_le_bytes());
    out.extend_from_slice(&(side as i32).to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&24u16.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(row * side).to_le_bytes());
    out.extend_from_slice(&[0; 16]);
    let mut x = seed | 1;
    for _ in 0..side {
        for _ in 0..row {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            out.push(x as u8);
        }
    }
    out
}

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn header(resp: &Response, name: &str) -> String {
    resp.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} in {:?}", resp.headers()))
        .to_str()
        .unwrap()
        .to_string()
}

/// A tus client written from the protocol text, for the server's conformance; real
/// clients (tus-js-client, tuspy) are run by `crates/framehouse/tests/tus_clients.rs`.
struct Tus<'a> {
    app: &'a TestApp,
    token: String,
}

impl Tus<'_> {
    fn req(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        self.app
            .client
            .request(method, url)
            .bearer_auth(&self.token)
            .header("tus-resumable", "1.0.0")
    }

    async fn create(&self, headers: &[(&str, &str)]) -> Response {
        let mut req = self.req(reqwest::Method::POST, &self.app.url("/api/v1/uploads/"));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().await.unwrap()
    }

    /// Creates an upload of `length` bytes; its URL.
    async fn start(&self, length: usize, title: &str) -> String {
        let meta = format!("filename {},title {}", b64("noise.bmp"), b64(title));
        let resp = self
            .create(&[
                ("upload-length", &length.to_string()),
                ("upload-metadata", &meta),
            ])
            .await;
        assert_eq!(resp.status(), StatusCode::CREATED);
        header(&resp, "location")
    }

    async fn patch(
        &self,
        url: &str,
        offset: usize,
        bytes: Vec<u8>,
        extra: &[(&str, &str)],
    ) -> Response {
        let mut req = self
            .req(reqwest::Method::PATCH, url)
            .header("upload-offset", offset.to_string());
        if !extra.iter().any(|(k, _)| *k == "content-type") {
            req = req.header("content-type", "application/offset+octet-stream");
        }
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        req.body(bytes).send().await.unwrap()
    }

    async fn head(&self, url: &str) -> Response {
        self.req(reqwest::Method::HEAD, url).send().await.unwrap()
    }

    async fn offset(&self, url: &str) -> usize {
        let resp = self.head(url).await;
        assert_eq!(resp.status(), StatusCode::OK);
        header(&resp, "upload-offset").parse().unwrap()
    }
}

/// The original bytes an item serves.
async fn original(app: &TestApp, token: &str, id: &str) -> Vec<u8> {
    let resp = app.get(Some(token), &format!("/media/{id}/original")).await;
    assert_eq!(resp.status(), StatusCode::OK, "original of {id}");
    resp.bytes().await.unwrap().to_vec()
}

fn sha1_b64(bytes: &[u8]) -> String {
    use sha1::Digest as _;
    base64::engine::general_purpose::STANDARD.encode(sha1::Sha1::digest(bytes))
}

async fn nothing_staged(app: &TestApp, store: Store) {
    match store {
        Store::Local => {
            let left = app.files_under("uploads");
            assert!(left.is_empty(), "part files left: {left:?}");
        }
        Store::S3 => {
            let prefix = app.state.settings.storage.s3_prefix.clone();
            let bucket = app.state.settings.storage.s3_bucket.clone();
            let listed = aws(&[
                "s3api",
                "list-objects-v2",
                "--bucket",
                &bucket,
                "--prefix",
                &format!("{prefix}/uploads/"),
            ]);
            let listed: Value = serde_json::from_slice(&listed).unwrap_or(Value::Null);
            assert!(
                listed["Contents"].as_array().is_none_or(|c| c.is_empty()),
                "objects left: {listed}"
            );
            let open = aws(&[
                "s3api",
                "list-multipart-uploads",
                "--bucket",
                &bucket,
                "--prefix",
                &prefix,
            ]);
            let open: Value = serde_json::from_slice(&open).unwrap_or(Value::Null);
            assert!(
                open["Uploads"].as_array().is_none_or(|u| u.is_empty()),
                "multipart uploads left open: {open}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn options_advertise_the_version_every_extension_and_the_limits() {
    let app = app_on(Store::Local, Backend::Sqlite).await;
    let resp = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/api/v1/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&resp, "tus-version"), "1.0.0");
    assert_eq!(header(&resp, "tus-resumable"), "1.0.0");
    let extensions = header(&resp, "tus-extension");
    for ext in [
        "creation",
        "creation-with-upload",
        "creation-defer-length",
        "expiration",
        "checksum",
        "checksum-trailer",
        "termination",
        "concatenation",
    ] {
        assert!(
            extensions.split(',').any(|e| e == ext),
            "{ext} in {extensions}"
        );
    }
    assert_eq!(header(&resp, "tus-checksum-algorithm"), "sha1,sha256,md5");
    assert_eq!(
        header(&resp, "tus-max-size"),
        app.state.settings.limits.max_upload_bytes.to_string()
    );
}

/// Uneven chunks, some checksummed, make the same item a `POST` of the file would.
async fn chunked_upload_becomes_the_item(store: Store) {
    let app = app_on(store, Backend::Sqlite).await;
    let tus = Tus {
        app: &app,
        token: app.user("alice").await,
    };
    let file = noise_bmp(1700, 7); // 8.3 MiB: one full S3 part, then the tail
    let url = tus.start(file.len(), "Noise").await;
    assert!(url.starts_with(&app.base), "{url}");
    let mut offset = 0;
    for (i, chunk) in file.chunks(3 << 20).enumerate() {
        let checksum = format!("sha1 {}", sha1_b64(chunk));
        let extra: Vec<(&str, &str)> = if i % 2 == 0 {
            vec![("upload-checksum", &checksum)]
        } else {
            vec![]
        };
        let resp = tus.patch(&url, offset, chunk.to_vec(), &extra).await;
        assert_eq!(resp.status(), StatusCode::NO_CONTENT, "chunk {i}");
        offset += chunk.len();
        assert_eq!(header(&resp, "upload-offset"), offset.to_string());
        if offset < file.len() {
            assert!(resp.headers().contains_key("upload-expires"));
            assert_eq!(tus.offset(&url).await, offset);
        }
    }
    let head = tus.head(&url).await;
    let media = header(&head, "framehouse-media-id");
    assert_eq!(header(&head, "upload-length"), file.len().to_string());
    let item: Value = app
        .get_item(Some(&tus.token), &media)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(item["title"], "Noise");
    assert_eq!(item["bytes"], file.len());
    assert_eq!(item["sha256"], hex::encode(Sha256::digest(&file)));
    assert_eq!(original(&app, &tus.token, &media).await, file);
    let done = app.wait_processed(&tus.token, &media).await;
    assert_eq!(done["status"], "ready", "{done}");
    assert_eq!(done["width"], 1700);
    // The same bytes posted again are recognised as the same blob.
    let again = app.upload_ok(&tus.token, file.clone(), "").await;
    assert_eq!(again["deduplicated"], true, "{again}");
    nothing_staged(&app, store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_chunked_upload_becomes_the_item_a_post_would_make_on_the_local_store() {
    chunked_upload_becomes_the_item(Store::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(skip_s3, ignore = "FRAMEHOUSE_TEST_SKIP_S3=1")]
async fn a_chunked_upload_becomes_the_item_a_post_would_make_on_s3() {
    chunked_upload_becomes_the_item(Store::S3).await;
}

crate::both_backends!(status_codes_follow_the_tus_text);

async fn status_codes_follow_the_tus_text(backend: Backend) {
    let app = app_on(Store::Local, backend).await;
    let tus = Tus {
        app: &app,
        token: app.user("alice").await,
    };
    let file = noise_bmp(64, 1);
    let url = tus.start(file.len(), "x").await;
    // 412 on another protocol version, with the version the server speaks.
    let resp = app
        .client
        .head(&url)
        .bearer_auth(&tus.token)
        .header("tus-resumable", "0.2.2")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PRECONDITION_FAILED);
    assert_eq!(header(&resp, "tus-version"), "1.0.0");
    // 415 on a body of another type.
    let resp = tus
        .patch(
            &url,
            0,
            file[..10].to_vec(),
            &[("content-type", "application/octet-stream")],
        )
        .await;
    let resp_status = resp.status();
    assert_eq!(resp_status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // 409 on a wrong offset.
    let resp = tus.patch(&url, 5, file[..10].to_vec(), &[]).await;
    assert_eq!(
        error_code(resp).await,
        (StatusCode::CONFLICT, "offset_mismatch".into())
    );
    // 460 on a checksum mismatch, and nothing of that body kept.
    let wrong = format!("sha1 {}", sha1_b64(b"something else"));
    let resp = tus
        .patch(
            &url,
            0,
            file[..100].to_vec(),
            &[("upload-checksum", &wrong)],
        )
        .await;
    assert_eq!(resp.status().as_u16(), 460);
    assert_eq!(tus.offset(&url).await, 0);
    // 400 on an algorithm not offered.
    let resp = tus
        .patch(
            &url,
            0,
            file[..100].to_vec(),
            &[("upload-checksum", "crc32 AAAAAA==")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    // sha256 and md5 are offered too.
    let sha256 = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&file[..100]));
    let resp = tus
        .patch(
            &url,
            0,
            file[..100].to_vec(),
            &[("upload-checksum", &format!("sha256 {sha256}"))],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let md5 = {
        use md5::Digest as _;
        base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(&file[100..200]))
    };
    let resp = tus
        .patch(
            &url,
            100,
            file[100..200].to_vec(),
            &[("upload-checksum", &format!("md5 {md5}"))],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(tus.offset(&url).await, 200);
    // 413 past the declared length.
    let mut longer = file[200..].to_vec();
    longer.push(0);
    let resp = tus.patch(&url, 200, longer, &[]).await;
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // Another user sees nothing.
    let bob = Tus {
        app: &app,
        token: app.user("bob").await,
    };
    assert_eq!(bob.head(&url).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        bob.patch(&url, 200, vec![1], &[]).await.status(),
        StatusCode::NOT_FOUND
    );
    // 404 after termination.
    let resp = tus.req(reqwest::Method::DELETE, &url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(tus.head(&url).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        tus.patch(&url, 200, vec![1], &[]).await.status(),
        StatusCode::NOT_FOUND
    );
    assert!(app.files_under("uploads").is_empty());
    // 413 over Tus-Max-Size at creation; 400 on bad metadata or no length.
    let max = app.state.settings.limits.max_upload_bytes + 1;
    let resp = tus.create(&[("upload-length", &max.to_string())]).await;
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let resp = tus
        .create(&[("upload-length", "10"), ("upload-metadata", "filename ***")])
        .await;
    assert_eq!(
        error_code(resp).await,
        (StatusCode::BAD_REQUEST, "invalid_metadata".into())
    );
    let resp = tus.create(&[("upload-metadata", "filename eA==")]).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    // 400 on a deferred length declared twice.
    let resp = tus.create(&[("upload-defer-length", "1")]).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let deferred = header(&resp, "location");
    assert_eq!(
        header(&tus.head(&deferred).await, "upload-defer-length"),
        "1"
    );
    let resp = tus
        .patch(
            &deferred,
            0,
            file[..50].to_vec(),
            &[("upload-length", &file.len().to_string())],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let resp = tus
        .patch(
            &deferred,
            50,
            file[50..60].to_vec(),
            &[("upload-length", &(file.len() + 1).to_string())],
        )
        .await;
    assert_eq!(
        error_code(resp).await,
        (StatusCode::BAD_REQUEST, "length_already_set".into())
    );
    let resp = tus.patch(&deferred, 50, file[50..].to_vec(), &[]).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert!(resp.headers().contains_key("framehouse-media-id"));
    // A PATCH to a final upload is 403 (made below, from two partial uploads).
    let (a, b) = file.split_at(100);
    let mut parts = Vec::new();
    for half in [a, b] {
        let resp = tus
            .create(&[
                ("upload-length", &half.len().to_string()),
                ("upload-concat", "partial"),
            ])
            .await;
        let part = header(&resp, "location");
        assert_eq!(
            tus.patch(&part, 0, half.to_vec(), &[]).await.status(),
            StatusCode::NO_CONTENT
        );
        parts.push(part);
    }
    let concat = format!("final;{} {}", parts[0], parts[1]);
    let resp = tus.create(&[("upload-concat", &concat)]).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let fin = header(&resp, "location");
    assert_eq!(
        tus.patch(&fin, 0, vec![1], &[]).await.status(),
        StatusCode::FORBIDDEN
    );
    // Its partial uploads were used up.
    let resp = tus.create(&[("upload-concat", &concat)]).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

/// A file no upload would accept gets, at its last PATCH, the answer that upload would
/// get, and nothing of it stays.
async fn refused_file_is_refused_like_an_upload(store: Store) {
    let app = app_on(store, Backend::Sqlite).await;
    let tus = Tus {
        app: &app,
        token: app.user("alice").await,
    };
    let junk = vec![b'x'; 6 << 20];
    let posted = app.upload(&tus.token, junk.clone(), "").await;
    let (status, code) = error_code(posted).await;
    let url = tus.start(junk.len(), "junk").await;
    let first = tus.patch(&url, 0, junk[..1 << 20].to_vec(), &[]).await;
    assert_eq!(first.status(), StatusCode::NO_CONTENT);
    let last = tus
        .patch(&url, 1 << 20, junk[1 << 20..].to_vec(), &[])
        .await;
    assert_eq!(error_code(last).await, (status, code));
    assert_eq!(tus.head(&url).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.count("media").await, 0);
    assert_eq!(app.count("blobs").await, 0);
    assert_eq!(app.count("uploads").await, 0);
    nothing_staged(&app, store).await;
    if let Store::S3 = store {
        let prefix = app.state.settings.storage.s3_prefix.clone();
        let bucket = app.state.settings.storage.s3_bucket.clone();
        eventually(
            Duration::from_secs(10),
            "the refused original removed",
            || async {
                let listed = aws(&[
                    "s3api",
                    "list-objects-v2",
                    "--bucket",
                    &bucket,
                    "--prefix",
                    &format!("{prefix}/originals/"),
                ]);
                let listed: Value = serde_json::from_slice(&listed).unwrap_or(Value::Null);
                listed["Contents"].as_array().is_none_or(|c| c.is_empty())
            },
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_file_answers_its_last_patch_like_an_upload_and_leaves_nothing_locally() {
    refused_file_is_refused_like_an_upload(Store::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(skip_s3, ignore = "FRAMEHOUSE_TEST_SKIP_S3=1")]
async fn a_refused_file_answers_its_last_patch_like_an_upload_and_leaves_nothing_on_s3() {
    refused_file_is_refused_like_an_upload(Store::S3).await;
}

/// Four partial uploads sent at once become one item, byte for byte.
async fn partial_uploads_concatenate(store: Store) {
    let app = app_on(store, Backend::Sqlite).await;
    let tus = Tus {
        app: &app,
        token: app.user("alice").await,
    };
    let file = noise_bmp(2000, 3); // 11.4 MiB
    let quarter = file.len().div_ceil(4);
    let sends = file.chunks(quarter).map(|part| {
        let tus = &tus;
        async move {
            let resp = tus
                .create(&[
                    ("upload-length", &part.len().to_string()),
                    ("upload-concat", "partial"),
                ])
                .await;
            assert_eq!(resp.status(), StatusCode::CREATED);
            let url = header(&resp, "location");
            assert_eq!(header(&tus.head(&url).await, "upload-concat"), "partial");
            let resp = tus.patch(&url, 0, part.to_vec(), &[]).await;
            assert_eq!(resp.status(), StatusCode::NO_CONTENT);
            assert!(!resp.headers().contains_key("framehouse-media-id"));
            url
        }
    });
    let urls = futures::future::join_all(sends).await;
    let meta = format!("filename {}", b64("four.bmp"));
    let resp = tus
        .create(&[
            ("upload-concat", &format!("final;{}", urls.join(" "))),
            ("upload-metadata", &meta),
        ])
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let media = header(&resp, "framehouse-media-id");
    let fin = header(&resp, "location");
    let head = tus.head(&fin).await;
    assert_eq!(header(&head, "upload-offset"), file.len().to_string());
    assert!(header(&head, "upload-concat").starts_with("final;"));
    assert_eq!(original(&app, &tus.token, &media).await, file);
    for url in urls {
        assert_eq!(tus.head(&url).await.status(), StatusCode::NOT_FOUND);
    }
    nothing_staged(&app, store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partial_uploads_concatenate_into_one_item_on_the_local_store() {
    partial_uploads_concatenate(Store::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(skip_s3, ignore = "FRAMEHOUSE_TEST_SKIP_S3=1")]
async fn partial_uploads_concatenate_into_one_item_on_s3() {
    partial_uploads_concatenate(Store::S3).await;
}

/// creation-with-upload: the whole file in the POST.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_creation_with_the_whole_file_makes_the_item_at_once() {
    let app = app_on(Store::Local, Backend::Sqlite).await;
    let tus = Tus {
        app: &app,
        token: app.user("alice").await,
    };
    let file = noise_bmp(300, 9);
    let meta = format!("visibility {},tags {}", b64("public"), b64("a,b"));
    let resp = tus
        .req(reqwest::Method::POST, &app.url("/api/v1/uploads"))
        .header("upload-length", file.len().to_string())
        .header("upload-metadata", meta)
        .header("content-type", "application/offset+octet-stream")
        .body(file.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(header(&resp, "upload-offset"), file.len().to_string());
    let media = header(&resp, "framehouse-media-id");
    let item: Value = app.get_item(None, &media).await.json().await.unwrap();
    assert_eq!(item["visibility"], "public", "{item}");
    assert_eq!(item["tags"], serde_json::json!(["a", "b"]));
    let status: Value = app
        .get(
            Some(&tus.token),
            &format!(
                "/api/v1/uploads/{}",
                header(&resp, "location").rsplit('/').next().unwrap()
            ),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(status["state"], "done");
    assert_eq!(status["media_id"], media.as_str());
}

/// A body cut off mid-way keeps what arrived (no checksum was asked for), and the upload
/// resumes from the offset `HEAD` reports.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_interrupted_patch_keeps_what_arrived_and_resumes_there() {
    let app = app_on(Store::Local, Backend::Sqlite).await;
    let tus = Tus {
        app: &app,
        token: app.user("alice").await,
    };
    let file = noise_bmp(1500, 5); // 6.4 MiB
    let url = tus.start(file.len(), "cut").await;
    let sent = 3 << 20;
    let head_part = bytes::Bytes::copy_from_slice(&file[..sent]);
    let body = futures::stream::iter(vec![
        Ok::<_, std::io::Error>(head_part),
        Err(std::io::Error::other("the network went away")),
    ]);
    let cut = tus
        .req(reqwest::Method::PATCH, &url)
        .header("content-type", "application/offset+octet-stream")
        .header("upload-offset", "0")
        .header("content-length", file.len().to_string())
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await;
    assert!(cut.is_err() || cut.unwrap().status().is_client_error());
    // The interrupted request's lease goes as its handler ends; until then 423.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let offset = loop {
        let offset = tus.offset(&url).await;
        let resp = tus.patch(&url, offset, file[offset..].to_vec(), &[]).await;
        if resp.status() == StatusCode::NO_CONTENT {
            break offset;
        }
        // 423 while the cut request still holds the upload, 409 if it recorded more
        // after our HEAD.
        assert!(
            matches!(resp.status().as_u16(), 409 | 423),
            "{}",
            resp.status()
        );
        assert!(std::time::Instant::now() < deadline, "still locked");
    };
    assert!(offset > 0 && offset <= sent, "kept {offset} of {sent}");
    let media = header(&tus.head(&url).await, "framehouse-media-id");
    assert_eq!(original(&app, &tus.token, &media).await, file);
}

/// Two PATCHes at the same offset at once: one writes, the other is refused (409 or
/// 423), and the bytes are never interleaved.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_patches_of_one_upload_are_serialised() {
    let app = app_on(Store::Local, Backend::Sqlite).await;
    let tus = Tus {
        app: &app,
        token: app.user("alice").await,
    };
    let file = noise_bmp(1200, 11);
    let url = tus.start(file.len(), "race").await;
    let half = file.len() / 2;
    let mut other = file[..half].to_vec();
    other.reverse();
    let (a, b) = tokio::join!(
        tus.patch(&url, 0, file[..half].to_vec(), &[]),
        tus.patch(&url, 0, other.clone(), &[])
    );
    let statuses = [a.status().as_u16(), b.status().as_u16()];
    // One writes, or the later one interrupts the earlier (as tusd does) and then
    // finds the offset moved; each refusal is 409 or 423.
    assert!(
        statuses.iter().all(|s| matches!(s, 204 | 409 | 423)),
        "{statuses:?}"
    );
    assert!(
        statuses.iter().filter(|s| **s == 204).count() <= 1,
        "{statuses:?}"
    );
    let offset = tus.offset(&url).await;
    let id = url.rsplit('/').next().unwrap();
    let stored = std::fs::read(app.data_dir.join(format!("uploads/{id}.part"))).unwrap();
    assert_eq!(stored.len(), offset);
    assert!(
        stored[..] == file[..offset] || stored[..] == other[..offset],
        "the stored bytes mix the two bodies ({statuses:?}, {offset} bytes)"
    );
}

/// Incomplete uploads count against the quota of the next one, and a PATCH cannot
/// exceed it either.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_quota_counts_incomplete_uploads() {
    let app = app_on(Store::Local, Backend::Sqlite).await;
    let tus = Tus {
        app: &app,
        token: app.user("alice").await,
    };
    sqlx::query("UPDATE users SET quota_bytes = 1000000 WHERE username = 'alice'")
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    let resp = tus.create(&[("upload-length", "600000")]).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let resp = tus.create(&[("upload-length", "600000")]).await;
    assert_eq!(error_code(resp).await.1, "quota_exceeded");
    let resp = tus.create(&[("upload-defer-length", "1")]).await;
    let deferred = header(&resp, "location");
    let resp = tus
        .patch(
            &deferred,
            0,
            vec![0; 500_000],
            &[("upload-length", "500000")],
        )
        .await;
    assert_eq!(error_code(resp).await.1, "quota_exceeded");
}

/// `Location` names the host and scheme the client used when a trusted proxy forwards
/// them, and `public_url` otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn location_follows_a_trusted_proxy_and_nobody_else() {
    for trusted in [true, false] {
        let app = spawn_app_with(Backend::Sqlite, |s| {
            if trusted {
                s.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
            }
        })
        .await;
        let tus = Tus {
            app: &app,
            token: app.user("alice").await,
        };
        let resp = tus
            .create(&[
                ("upload-length", "10"),
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "media.example.org"),
            ])
            .await;
        let location = header(&resp, "location");
        if trusted {
            assert!(
                location.starts_with("https://media.example.org/api/v1/uploads/"),
                "{location}"
            );
        } else {
            assert!(
                location.starts_with(&format!("{}/api/v1/uploads/", app.base)),
                "{location}"
            );
        }
    }
}

/// Expired uploads lose their bytes, answer 410, and are announced.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_expired_upload_is_removed_by_the_scheduler_with_an_event() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.uploads.expire_after_secs = 1;
        s.uploads.expire_interval_secs = 1;
    })
    .await;
    let tus = Tus {
        app: &app,
        token: app.user("alice").await,
    };
    let url = tus.start(100, "soon gone").await;
    assert_eq!(
        tus.patch(&url, 0, vec![7; 40], &[]).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.files_under("uploads").len(), 1);
    eventually(Duration::from_secs(20), "the upload expired", || async {
        tus.head(&url).await.status() == StatusCode::GONE
    })
    .await;
    assert!(app.files_under("uploads").is_empty());
    assert_eq!(
        tus.patch(&url, 40, vec![7; 60], &[]).await.status(),
        StatusCode::GONE
    );
    let id = url.rsplit('/').next().unwrap().to_string();
    let events = app
        .wait_for_events(&tus.token, "types=upload.expired", |seen| !seen.is_empty())
        .await;
    assert_eq!(events[0]["data"]["id"], id.as_str(), "{events:?}");
    assert_eq!(events[0]["data"]["offset"], 40);
}

/// checksum-trailer: a chunked body whose `Upload-Checksum` comes after it, sent on a
/// raw connection since common HTTP clients cannot send trailers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_checksum_sent_as_a_trailer_is_verified() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = app_on(Store::Local, Backend::Sqlite).await;
    let tus = Tus {
        app: &app,
        token: app.user("alice").await,
    };
    let file = noise_bmp(40, 2);
    let url = tus.start(file.len(), "trailer").await;
    let path = url.trim_start_matches(&app.base).to_string();
    let host = app.base.trim_start_matches("http://").to_string();
    let send = |checksum: String, body: Vec<u8>| {
        let (path, host, token) = (path.clone(), host.clone(), tus.token.clone());
        async move {
            let mut conn = tokio::net::TcpStream::connect(&host).await.unwrap();
            let head = format!(
                "PATCH {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\
                 Tus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\n\
                 Upload-Offset: 0\r\nTrailer: Upload-Checksum\r\nTransfer-Encoding: chunked\r\n\
                 Connection: close\r\n\r\n{:x}\r\n",
                body.len()
            );
            conn.write_all(head.as_bytes()).await.unwrap();
            conn.write_all(&body).await.unwrap();
            conn.write_all(format!("\r\n0\r\nUpload-Checksum: {checksum}\r\n\r\n").as_bytes())
                .await
                .unwrap();
            let mut answer = String::new();
            conn.read_to_string(&mut answer).await.unwrap();
            answer
        }
    };
    let wrong = send(format!("sha1 {}", sha1_b64(b"nope")), file.clone()).await;
    assert!(wrong.starts_with("HTTP/1.1 460"), "{wrong}");
    assert_eq!(tus.offset(&url).await, 0);
    let right = send(format!("sha1 {}", sha1_b64(&file)), file.clone()).await;
    assert!(right.starts_with("HTTP/1.1 204"), "{right}");
    assert!(
        right.to_ascii_lowercase().contains("framehouse-media-id"),
        "{right}"
    );
}

/// Makes a direct-upload URL as `token`'s user with the JSON `body`.
async fn direct(app: &TestApp, token: &str, body: Value) -> Value {
    let resp = app
        .client
        .post(app.url("/api/v1/uploads/direct"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    resp.json().await.unwrap()
}

/// A tus creation at a direct-upload URL, without credentials.
async fn create_at(app: &TestApp, url: &str, length: usize, meta: &str) -> Response {
    app.client
        .post(url)
        .header("tus-resumable", "1.0.0")
        .header("upload-length", length.to_string())
        .header("upload-metadata", meta)
        .send()
        .await
        .unwrap()
}

/// A direct-upload URL takes one upload without credentials, with the owner, fields,
/// size limit and kinds fixed when it was made; then it refuses another, and an unused
/// one stops working when it expires.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_direct_upload_url_works_once_within_its_limits_and_expires() {
    let app = app_on(Store::Local, Backend::Sqlite).await;
    let alice = app.user("alice").await;
    let file = noise_bmp(200, 4);
    let made = direct(
        &app,
        &alice,
        serde_json::json!({"title": "From the browser", "visibility": "public", "tags": ["web"],
            "max_bytes": file.len() + 10, "kinds": ["image"]}),
    )
    .await;
    let url = made["url"].as_str().unwrap().to_string();
    assert!(url.starts_with(&app.base), "{url}");
    // Over its size limit: 413, and the URL is still unused.
    let resp = create_at(&app, &url, file.len() + 11, "").await;
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // The browser's metadata cannot change the fixed fields.
    let meta = format!("filename {},title {}", b64("x.bmp"), b64("Not this"));
    let resp = create_at(&app, &url, file.len(), &meta).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(header(&resp, "location"), url);
    let resp = app
        .client
        .patch(&url)
        .header("tus-resumable", "1.0.0")
        .header("content-type", "application/offset+octet-stream")
        .header("upload-offset", "0")
        .body(file.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let media = header(&resp, "framehouse-media-id");
    let item: Value = app.get_item(None, &media).await.json().await.unwrap();
    assert_eq!(item["title"], "From the browser");
    assert_eq!(item["visibility"], "public");
    assert_eq!(item["tags"], serde_json::json!(["web"]));
    let owner: String = sqlx::query_scalar(
        "SELECT u.username FROM media m JOIN users u ON u.id = m.owner_id WHERE m.id = $1",
    )
    .bind(&media)
    .fetch_one(&app.state.db.pool)
    .await
    .unwrap();
    assert_eq!(owner, "alice");
    // Used: a second creation and a PUT are refused.
    let again = create_at(&app, &url, file.len(), "").await;
    assert_eq!(
        error_code(again).await,
        (StatusCode::CONFLICT, "direct_upload_used".into())
    );
    let put = app
        .client
        .put(format!("{url}/file"))
        .body(file.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::CONFLICT);
    // Its owner sees it used, with the item; nobody else sees it.
    let path = format!("/api/v1/uploads/direct/{}", made["id"].as_str().unwrap());
    let status: Value = app.get(Some(&alice), &path).await.json().await.unwrap();
    assert_eq!(status["state"], "done", "{status}");
    assert_eq!(status["media_id"], media.as_str());
    assert!(
        status.get("url").is_none(),
        "the secret URL is shown once: {status}"
    );
    let bob = app.user("bob").await;
    assert_eq!(
        app.get(Some(&bob), &path).await.status(),
        StatusCode::NOT_FOUND
    );

    // A plain PUT, restricted to video: an image is refused and the URL stays usable.
    let video_only = direct(&app, &alice, serde_json::json!({"kinds": ["video"]})).await;
    let put_url = video_only["put_url"].as_str().unwrap().to_string();
    let put = app
        .client
        .put(&put_url)
        .body(file.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(put).await,
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "kind_not_allowed".into()
        )
    );
    let path = format!(
        "/api/v1/uploads/direct/{}",
        video_only["id"].as_str().unwrap()
    );
    let status: Value = app.get(Some(&alice), &path).await.json().await.unwrap();
    assert_eq!(status["state"], "waiting", "{status}");
    // The same by tus: refused at its last byte, and the URL can be used again.
    let tus_url = video_only["url"].as_str().unwrap().to_string();
    for _ in 0..2 {
        let resp = create_at(&app, &tus_url, file.len(), "").await;
        assert_eq!(resp.status(), StatusCode::CREATED);
        let resp = app
            .client
            .patch(&tus_url)
            .header("tus-resumable", "1.0.0")
            .header("content-type", "application/offset+octet-stream")
            .header("upload-offset", "0")
            .body(file.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(
            error_code(resp).await,
            (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "kind_not_allowed".into()
            )
        );
    }
    let images = direct(&app, &alice, serde_json::json!({"kinds": ["image"]})).await;
    let put_url = images["put_url"].as_str().unwrap().to_string();
    let put = app
        .client
        .put(&put_url)
        .body(noise_bmp(90, 8))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::CREATED);
    assert!(put.headers().contains_key("framehouse-media-id"));
    let put = app
        .client
        .put(&put_url)
        .body(noise_bmp(91, 8))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::CONFLICT);

    // A browser on another origin may use it (CORS, no credentials).
    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", "https://app.example")
        .header("access-control-request-method", "PATCH")
        .header(
            "access-control-request-headers",
            "tus-resumable,upload-offset,content-type",
        )
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    assert_eq!(header(&preflight, "access-control-allow-origin"), "*");

    // Unused past its expiry: 410.
    let brief = direct(&app, &alice, serde_json::json!({"expires_in_secs": 1})).await;
    let brief_url = brief["url"].as_str().unwrap().to_string();
    let path = format!("/api/v1/uploads/direct/{}", brief["id"].as_str().unwrap());
    app.wait_until_json(&alice, &path, |s| s["state"] == "expired")
        .await;
    let late = create_at(&app, &brief_url, 10, "").await;
    assert_eq!(
        error_code(late).await,
        (StatusCode::GONE, "direct_upload_expired".into())
    );
    // A made-up secret is unknown.
    let unknown = create_at(
        &app,
        &app.url("/api/v1/direct-uploads/not-a-secret"),
        10,
        "",
    )
    .await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
}

/// A web server on loopback serving a file, a redirect to the cloud metadata address, and
/// a 404; its base URL.
async fn file_server(file: Vec<u8>) -> String {
    use axum::routing::get;
    let router = axum::Router::new()
        .route("/photo.bmp", get(move || async move { file.clone() }))
        .route(
            "/moved",
            get(|| async { axum::response::Redirect::temporary("/photo.bmp") }),
        )
        .route(
            "/to-metadata",
            get(|| async { axum::response::Redirect::temporary("http://169.254.169.254/latest/") }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    base
}

async fn import(app: &TestApp, token: &str, body: Value) -> Response {
    app.client
        .post(app.url("/api/v1/media/import"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Imports fetch in a job through the SSRF guard: a loopback server is refused by
/// default; where private targets are allowed its file (through a redirect) becomes an
/// item, while a redirect to the metadata address and a 404 fail the import.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_import_by_url_fetches_through_the_ssrf_guard() {
    let file = noise_bmp(120, 6);
    let base = file_server(file.clone()).await;
    let strict = spawn_app_with(Backend::Sqlite, |_| {}).await;
    let token = strict.user("alice").await;
    let resp = import(
        &strict,
        &token,
        serde_json::json!({"url": format!("{base}/photo.bmp")}),
    )
    .await;
    assert_eq!(
        error_code(resp).await,
        (StatusCode::UNPROCESSABLE_ENTITY, "forbidden_target".into())
    );
    let resp = import(
        &strict,
        &token,
        serde_json::json!({"url": "file:///etc/passwd"}),
    )
    .await;
    assert_eq!(
        error_code(resp).await,
        (StatusCode::BAD_REQUEST, "invalid_url".into())
    );
    let resp = import(
        &strict,
        &token,
        serde_json::json!({"url": "http://169.254.169.254/latest/"}),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(strict.count("imports").await, 0);

    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.uploads.import_allow_private_targets = true
    })
    .await;
    let token = app.user("alice").await;
    let wait = |id: String| {
        let (app, token) = (&app, token.clone());
        async move {
            let path = format!("/api/v1/media/import/{id}");
            app.wait_until_json(&token, &path, |i| i["state"] != "queued")
                .await
        }
    };
    let resp = import(&app, &token, serde_json::json!({"url": format!("{base}/moved"), "title": "Fetched", "visibility": "public"})).await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let queued: Value = resp.json().await.unwrap();
    let done = wait(queued["id"].as_str().unwrap().to_string()).await;
    assert_eq!(done["state"], "done", "{done}");
    let media = done["media_id"].as_str().unwrap();
    let item: Value = app.get_item(None, media).await.json().await.unwrap();
    assert_eq!(item["title"], "Fetched");
    assert_eq!(item["sha256"], hex::encode(Sha256::digest(&file)));
    for (path, code) in [
        ("/to-metadata", "forbidden_target"),
        ("/nothing", "import_fetch_refused"),
    ] {
        let resp = import(
            &app,
            &token,
            serde_json::json!({"url": format!("{base}{path}")}),
        )
        .await;
        let queued: Value = resp.json().await.unwrap();
        let failed = wait(queued["id"].as_str().unwrap().to_string()).await;
        assert_eq!(failed["state"], "failed", "{failed}");
        assert_eq!(failed["error"]["code"], code, "{failed}");
    }
    // Another user cannot see the import.
    let bob = app.user("bob").await;
    let path = format!("/api/v1/media/import/{}", queued["id"].as_str().unwrap());
    assert_eq!(
        app.get(Some(&bob), &path).await.status(),
        StatusCode::NOT_FOUND
    );
}

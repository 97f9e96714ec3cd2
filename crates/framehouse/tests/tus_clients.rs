//! Real tus clients, unmodified, against the real binary: the official `tus-js-client`
//! under Node (`tests/tus-clients/upload.mjs`) and `tuspy` (`tests/python/tus_upload.py`)
//! each send a 200 MiB file in 8 MiB chunks while the server is killed with SIGKILL and
//! started again; the item's SHA-256 must be the file's. `tus-js-client` with
//! `parallelUploads: 4` (concatenation) too. On the local store and on SeaweedFS.
//! The services come from `scripts/with-test-services.sh`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};

// Shared with cli.rs and browser.rs, which use parts this file does not.
#[allow(dead_code)]
#[path = "support/server.rs"]
mod server;
use server::{service_env, sign_up, Server, Store};

const CHUNK: usize = 8 << 20;

/// A 200 MiB uncompressed BMP of noise (8400² pixels), made once per test run, and its
/// SHA-256.
fn big_file() -> &'static (PathBuf, String) {
    static FILE: OnceLock<(tempfile::TempDir, PathBuf, String)> = OnceLock::new();
    let (_, path, sha) = FILE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("noise.bmp");
        let side: u32 = 8400;
        let (header, row) = server::bmp_header(side);
        let mut out = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let mut hasher = Sha256::new();
        out.write_all(&header).unwrap();
        hasher.update(&header);
        let mut noise = std::fs::File::open("/dev/urandom").unwrap();
        let mut left = (row * side) as usize;
        let mut buf = vec![0u8; 1 << 20];
        while left > 0 {
            let n = left.min(buf.len());
            std::io::Read::read_exact(&mut noise, &mut buf[..n]).unwrap();
            out.write_all(&buf[..n]).unwrap();
            hasher.update(&buf[..n]);
            left -= n;
        }
        out.flush().unwrap();
        (dir, path, hex::encode(hasher.finalize()))
    });
    static VIEW: OnceLock<(PathBuf, String)> = OnceLock::new();
    VIEW.get_or_init(|| (path.clone(), sha.clone()))
}

/// Runs `client` (a command line ending with the file and chunk size) against a fresh
/// server, kills the server with SIGKILL once `kill_at` % has been sent (if set) and
/// starts it again, and checks the item the client reports.
async fn upload_with(
    store: Store,
    client_cmd: impl FnOnce(&str, &str, &Path) -> Command,
    kill_at: Option<u32>,
) {
    let (file, sha) = big_file();
    let mut server = Server::new(store);
    let http = reqwest::Client::new();
    server.wait_ready(&http).await;
    let token = sign_up(&http, &server.base()).await;
    let endpoint = format!("{}/api/v1/uploads/", server.base());
    let mut child = client_cmd(&endpoint, &token, file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the client starts");
    let mut rx = server::stdout_lines(&mut child);
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut killed = false;
    let mut last = 0;
    let media = loop {
        let line = tokio::time::timeout(Duration::from_secs(120), rx.recv())
            .await
            .expect("the client said nothing for two minutes");
        let Some(line) = line else {
            let out = child.wait_with_output().unwrap();
            panic!(
                "the client ended without finishing ({}): {}\nserver log:\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr),
                server.log()
            );
        };
        assert!(Instant::now() < deadline, "the upload took over 5 minutes");
        if let Some(pct) = line.strip_prefix("progress ") {
            last = pct.parse().unwrap();
            if !killed && kill_at.is_some_and(|at| last >= at) {
                killed = true;
                server.kill9();
                server.start();
            }
        } else if let Some(id) = line.strip_prefix("done ") {
            break id.to_string();
        }
    };
    let status = child.wait().unwrap();
    assert!(status.success(), "client exit {status}");
    assert_eq!(last, 100, "the progress reached 100 %");
    assert_eq!(killed, kill_at.is_some());
    server.wait_ready(&http).await;
    let item: Value = http
        .get(format!("{}/api/v1/media/{media}", server.base()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(item["sha256"], sha.as_str(), "{item}");
    assert_eq!(item["bytes"], std::fs::metadata(file).unwrap().len());
    let items: Value = http
        .get(format!("{}/api/v1/media", server.base()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        items["items"].as_array().map(Vec::len),
        Some(1),
        "exactly one item: {items}"
    );
}

fn tus_js(parallel: usize) -> impl FnOnce(&str, &str, &Path) -> Command {
    move |endpoint, token, file| {
        let mut cmd = Command::new("node");
        cmd.arg(service_env("FRAMEHOUSE_TEST_TUS_JS"))
            .args([endpoint, token])
            .arg(file)
            .args([CHUNK.to_string(), parallel.to_string()]);
        cmd
    }
}

fn tuspy(endpoint: &str, token: &str, file: &Path) -> Command {
    let mut cmd = Command::new(service_env("FRAMEHOUSE_TEST_PYTHON"));
    cmd.arg(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/python/tus_upload.py"
    ))
    .args([endpoint, token])
    .arg(file)
    .arg(CHUNK.to_string());
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tus_js_client_uploads_200_mib_through_a_kill_9_on_the_local_store() {
    upload_with(Store::Local, tus_js(1), Some(40)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(skip_s3, ignore = "FRAMEHOUSE_TEST_SKIP_S3=1")]
async fn tus_js_client_uploads_200_mib_through_a_kill_9_on_s3() {
    upload_with(Store::S3, tus_js(1), Some(40)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(skip_python, ignore = "FRAMEHOUSE_TEST_SKIP_PYTHON=1")]
async fn tuspy_uploads_200_mib_through_a_kill_9_on_the_local_store() {
    upload_with(Store::Local, tuspy, Some(40)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(any(skip_s3, skip_python), ignore = "FRAMEHOUSE_TEST_SKIP_S3/PYTHON=1")]
async fn tuspy_uploads_200_mib_through_a_kill_9_on_s3() {
    upload_with(Store::S3, tuspy, Some(40)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tus_js_client_with_four_parallel_uploads_concatenates_on_the_local_store() {
    upload_with(Store::Local, tus_js(4), None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(skip_s3, ignore = "FRAMEHOUSE_TEST_SKIP_S3=1")]
async fn tus_js_client_with_four_parallel_uploads_concatenates_on_s3() {
    upload_with(Store::S3, tus_js(4), None).await;
}

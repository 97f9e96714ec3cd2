//! The tus 1.0 client `framehouse upload` uses: creation with metadata, `HEAD` for the
//! stored offset, and PATCHes of fixed-size chunks, each with an `Upload-Checksum`
//! (sha1), retried with backoff across network drops and server restarts.
//!
//! Written here rather than taken from a crate: the Rust tus clients on crates.io are
//! unmaintained or blocking, and this one is small (the protocol is four requests).

use std::io::SeekFrom;
use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine;
use reqwest::{Method, StatusCode};
use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::api::{Api, Failure};

/// How long one upload keeps retrying before it gives up.
const RETRY_FOR: Duration = Duration::from_secs(600);

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `Upload-Metadata` from key/value pairs.
pub fn metadata(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k} {}", b64(v.as_bytes())))
        .collect::<Vec<_>>()
        .join(",")
}

/// Creates an upload of `length` bytes; its URL.
pub async fn create(api: &Api, length: u64, meta: &str) -> Result<String, Failure> {
    let resp = with_retries(|| async {
        api.send(Method::POST, "/api/v1/uploads/", |r| {
            r.header("tus-resumable", "1.0.0")
                .header("upload-length", length.to_string())
                .header("upload-metadata", meta)
        })
        .await
    })
    .await?;
    if resp.status() != StatusCode::CREATED {
        return Err(Failure::of(resp).await);
    }
    resp.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(String::from)
        .ok_or_else(|| Failure::new("protocol", "the server sent no Location"))
}

/// Where an upload stands.
pub enum Stored {
    /// Bytes stored so far; the item once complete.
    At(u64, Option<String>),
    /// Terminated or expired: start again.
    Gone,
}

pub async fn stored(api: &Api, url: &str) -> Result<Stored, Failure> {
    let resp = with_retries(|| async {
        api.send(Method::HEAD, url, |r| r.header("tus-resumable", "1.0.0"))
            .await
    })
    .await?;
    match resp.status() {
        StatusCode::OK => {
            let header = |name: &str| {
                resp.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(String::from)
            };
            let offset = header("upload-offset")
                .and_then(|o| o.parse().ok())
                .ok_or_else(|| Failure::new("protocol", "HEAD without Upload-Offset"))?;
            Ok(Stored::At(offset, header("framehouse-media-id")))
        }
        StatusCode::NOT_FOUND | StatusCode::GONE => Ok(Stored::Gone),
        _ => Err(Failure::of(resp).await),
    }
}

/// Sends `path` from `offset` in `chunk`-byte PATCHes, calling `progress` with the
/// stored offset after each; the item id the last one names.
pub async fn send(
    api: &Api,
    url: &str,
    path: &Path,
    mut offset: u64,
    length: u64,
    chunk: usize,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<String, Failure> {
    let io = |e: std::io::Error| Failure::new("io", format!("{}: {e}", path.display()));
    let mut file = tokio::fs::File::open(path).await.map_err(io)?;
    let started = Instant::now();
    let mut pause = Duration::from_millis(250);
    loop {
        let size = chunk.min((length - offset) as usize);
        let mut body = vec![0u8; size];
        file.seek(SeekFrom::Start(offset)).await.map_err(io)?;
        file.read_exact(&mut body).await.map_err(io)?;
        let checksum = format!("sha1 {}", b64(&Sha1::digest(&body)));
        let sent = api
            .send(Method::PATCH, url, |r| {
                r.header("tus-resumable", "1.0.0")
                    .header("content-type", "application/offset+octet-stream")
                    .header("upload-offset", offset.to_string())
                    .header("upload-checksum", &checksum)
                    .body(body.clone())
            })
            .await;
        let retry = match sent {
            Ok(resp) if resp.status() == StatusCode::NO_CONTENT => {
                let header = |name: &str| {
                    resp.headers()
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .map(String::from)
                };
                offset = header("upload-offset")
                    .and_then(|o| o.parse().ok())
                    .ok_or_else(|| Failure::new("protocol", "PATCH without Upload-Offset"))?;
                progress(offset);
                pause = Duration::from_millis(250);
                if let Some(media) = header("framehouse-media-id") {
                    return Ok(media);
                }
                if offset >= length {
                    return Err(Failure::new("protocol", "complete without an item"));
                }
                continue;
            }
            // The server restarting, a lease still held, a moved offset, a bad chunk.
            Ok(resp) if retriable(resp.status()) => Failure::of(resp).await,
            Ok(resp) => return Err(Failure::of(resp).await),
            Err(e) => e,
        };
        if started.elapsed() > RETRY_FOR {
            return Err(retry);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(5));
        match stored(api, url).await? {
            Stored::At(now, Some(media)) if now >= length => return Ok(media),
            Stored::At(now, _) => {
                offset = now;
                progress(offset);
            }
            Stored::Gone => {
                return Err(Failure::new(
                    "upload_gone",
                    "the upload expired or was terminated",
                ))
            }
        }
    }
}

fn retriable(status: StatusCode) -> bool {
    status.is_server_error() || matches!(status.as_u16(), 408 | 409 | 423 | 429 | 460)
}

/// Runs `request` until it gets an answer that is not a server error, for
/// [`RETRY_FOR`] at most (the server may be restarting). A 429 is an answer: its limit
/// (rate, or incomplete uploads) does not lift for being asked again at once.
async fn with_retries<F, Fut>(request: F) -> Result<reqwest::Response, Failure>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<reqwest::Response, Failure>>,
{
    let started = Instant::now();
    let mut pause = Duration::from_millis(250);
    loop {
        let failure = match request().await {
            Ok(resp) if !resp.status().is_server_error() => return Ok(resp),
            Ok(resp) => Failure::of(resp).await,
            Err(e) => e,
        };
        if started.elapsed() > RETRY_FOR {
            return Err(failure);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

//! Receiving a PATCH body into an upload, in bounded memory: on the local store appended
//! to the upload's part file; on S3 cut into equal parts of a multipart upload, the bytes
//! short of a part kept in a tail object until the next request. Without a checksum the
//! progress is recorded every part, and what arrived before a dropped connection is kept;
//! with one (`Upload-Checksum`, or announced as a trailer) nothing is recorded until the
//! whole body has been verified, and a mismatch keeps nothing.

use std::io::{Seek, Write};
use std::path::PathBuf;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::lease::Lease;
use super::protocol::{BodyDigest, Checksum};
use super::repo::{self, UploadRow};
use crate::kernel::error::{AppError, AppResult};
use crate::kernel::keys;
use crate::kernel::time::now_ms;
use crate::AppState;

/// How long a PATCH may send nothing before it is ended (what arrived is kept).
const BODY_IDLE: Duration = Duration::from_secs(60);
/// Bytes gathered before one blocking write + hash.
const BATCH: usize = 1 << 20;

/// How the checksum extension applies to this body.
pub enum Verify {
    None,
    Header(Checksum),
    /// `Trailer: Upload-Checksum` was announced: every offered digest is computed, since
    /// the algorithm is known only at the end.
    Trailer,
}

/// The local part file of upload `id`.
pub fn part_file(state: &AppState, id: &str) -> AppResult<PathBuf> {
    let dir = state
        .storage
        .staging_dir()
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("no staging dir on this store")))?;
    Ok(dir.join(format!("{id}.part")))
}

/// The object a multipart upload assembles: the original itself for a whole upload, a
/// staging object for a partial one.
pub fn target_key(upload: &UploadRow) -> String {
    match &upload.blob_id {
        Some(blob) if upload.concat != "partial" => keys::original(blob),
        _ => format!("uploads/{}/data", upload.id),
    }
}

/// The tail object that holds the bytes after the last full part, named by the offset
/// it ends at, so a newer tail never overwrites the one the row still points to.
fn tail_key(id: &str, end: u64) -> String {
    format!("uploads/{id}/tail-{end}")
}

/// The hashes and the local file, moved to a blocking thread for each batch.
struct Sink {
    file_hash: Option<Sha256>,
    digests: Vec<BodyDigest>,
    out: Option<std::fs::File>,
    /// The file offset the next batch is written at.
    at: u64,
}

impl Sink {
    fn absorb(mut self, batch: Bytes) -> std::io::Result<Sink> {
        if let Some(h) = self.file_hash.as_mut() {
            h.update(&batch);
        }
        for d in &mut self.digests {
            d.update(&batch);
        }
        if let Some(out) = self.out.as_mut() {
            out.write_all(&batch)?;
            start_writeback(out, self.at, batch.len());
        }
        self.at += batch.len() as u64;
        Ok(self)
    }
}

/// Where the bytes go beside the sink: S3's part buffer.
struct Parts {
    key: String,
    multipart_id: String,
    buffer: BytesMut,
    etags: Vec<String>,
    part: usize,
}

struct Receiver<'a> {
    state: &'a AppState,
    upload: &'a UploadRow,
    lease: &'a Lease,
    checkpoints: bool,
    /// The offset recorded in the row.
    recorded: u64,
    /// Bytes received from this body on top of `upload.received`.
    pos: u64,
    sink: Option<Sink>,
    pending: Option<tokio::task::JoinHandle<std::io::Result<Sink>>>,
    parts: Option<Parts>,
    /// Set when writing failed: what was received is then not known to be stored.
    broken: bool,
}

fn io(e: impl Into<anyhow::Error>) -> AppError {
    AppError::internal(e)
}

/// Receives `body` into `upload` (whose lease is held), at most up to `limit` bytes in
/// all; the new durable offset.
pub async fn receive(
    state: &AppState,
    upload: &UploadRow,
    lease: &Lease,
    verify: Verify,
    limit: u64,
    body: Body,
) -> AppResult<u64> {
    let start = upload.received as u64;
    let file_hash = match start {
        0 => Some(Sha256::new()),
        _ => (state.uploads.hashes.get(&upload.id))
            .filter(|(at, _)| *at == start)
            .map(|(_, h)| h),
    };
    let digests = match &verify {
        Verify::None => Vec::new(),
        Verify::Header(c) => vec![c.digest.clone()],
        Verify::Trailer => vec![
            BodyDigest::Sha1(Sha1::new()),
            BodyDigest::Sha256(Sha256::new()),
            BodyDigest::Md5(Md5::new()),
        ],
    };
    let (out, parts) = open(state, upload).await?;
    let mut rx = Receiver {
        state,
        upload,
        lease,
        checkpoints: matches!(verify, Verify::None),
        recorded: start,
        pos: start,
        sink: Some(Sink {
            file_hash,
            digests,
            out,
            at: start,
        }),
        pending: None,
        parts,
        broken: false,
    };
    let (result, trailers) = rx.read(body, limit).await;
    if rx.broken || (result.is_err() && !rx.checkpoints) {
        // Unverified bytes are never recorded: the next request starts at `recorded`.
        rx.settle().await.ok();
        return Err(result.unwrap_err());
    }
    let sink = rx.settle().await?;
    if result.is_ok() {
        match verify {
            Verify::None => {}
            Verify::Header(checksum) => {
                let digest = sink.digests.into_iter().next().expect("one digest");
                checksum.verify(digest)?;
            }
            Verify::Trailer => {
                let Some(value) = trailers.as_ref().and_then(|t| t.get("upload-checksum")) else {
                    return Err(AppError::bad_request(
                        "missing_checksum",
                        "Upload-Checksum was announced as a trailer but not sent",
                    ));
                };
                let checksum = Checksum::parse(value)?;
                let digest = sink
                    .digests
                    .into_iter()
                    .find(|d| std::mem::discriminant(d) == std::mem::discriminant(&checksum.digest))
                    .expect("every algorithm is computed");
                checksum.verify(digest)?;
            }
        }
    }
    let complete = upload.length == Some(rx.pos as i64);
    rx.commit(sink.file_hash, complete).await?;
    result.map(|()| rx.pos)
}

/// Opens the local part file at the recorded offset (cutting off anything a crashed
/// request wrote past it), or loads S3's tail into the part buffer.
async fn open(
    state: &AppState,
    upload: &UploadRow,
) -> AppResult<(Option<std::fs::File>, Option<Parts>)> {
    let start = upload.received as u64;
    if state.storage.is_local() {
        let path = part_file(state, &upload.id)?;
        let file = tokio::task::spawn_blocking(move || -> std::io::Result<std::fs::File> {
            let dir = path.parent().expect("part files live in a folder");
            let created = !path.exists();
            if created {
                std::fs::create_dir_all(dir)?;
            }
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)?;
            if created {
                // The new name must survive a crash as the offsets recorded in it will.
                std::fs::File::open(dir)?.sync_all()?;
            }
            let len = file.metadata()?.len();
            if len < start {
                // Never fill recorded bytes with zeros: this upload cannot go on.
                return Err(std::io::Error::other(format!(
                    "the part file has {len} bytes, {start} were recorded"
                )));
            }
            file.set_len(start)?;
            file.seek(std::io::SeekFrom::Start(start))?;
            Ok(file)
        })
        .await
        .map_err(io)?
        .map_err(io)?;
        return Ok((Some(file), None));
    }
    let multipart_id = upload
        .multipart_id
        .clone()
        .ok_or_else(|| io(anyhow::anyhow!("an S3 upload without a multipart id")))?;
    let mut buffer = BytesMut::new();
    if upload.tail > 0 {
        let tail = state
            .storage
            .get_bytes(&tail_key(&upload.id, start))
            .await
            .map_err(io)?;
        if tail.len() as i64 != upload.tail {
            return Err(io(anyhow::anyhow!(
                "the tail of upload {} has {} bytes, not {}",
                upload.id,
                tail.len(),
                upload.tail
            )));
        }
        buffer.extend_from_slice(&tail);
    }
    Ok((
        None,
        Some(Parts {
            key: target_key(upload),
            multipart_id,
            buffer,
            etags: upload.etag_list(),
            part: state.settings.uploads.part_bytes(),
        }),
    ))
}

impl Receiver<'_> {
    /// Reads the body to its end, a limit, a stall or the loss of the lease; the trailers.
    async fn read(&mut self, body: Body, limit: u64) -> (AppResult<()>, Option<HeaderMap>) {
        let mut body = body;
        let mut batch = BytesMut::with_capacity(BATCH);
        let mut trailers = None;
        // Whether the body ended (or broke) rather than being refused mid-way.
        let mut ended = false;
        let result = loop {
            let frame = tokio::select! {
                _ = self.lease.lost.cancelled() => break Err(AppError::new(
                    StatusCode::LOCKED,
                    "upload_superseded",
                    "another request took over this upload",
                )),
                frame = tokio::time::timeout(BODY_IDLE, body.frame()) => frame,
            };
            let frame = match frame {
                Err(_) => {
                    ended = true;
                    break Err(AppError::new(
                        StatusCode::REQUEST_TIMEOUT,
                        "upload_timeout",
                        "the upload stalled",
                    ));
                }
                Ok(None) => {
                    ended = true;
                    break Ok(());
                }
                Ok(Some(Err(e))) => {
                    ended = true;
                    break Err(AppError::bad_request(
                        "upload_interrupted",
                        format!("reading the upload failed: {e}"),
                    ));
                }
                Ok(Some(Ok(frame))) => frame,
            };
            let data = match frame.into_data() {
                Ok(data) => data,
                Err(frame) => {
                    trailers = frame.into_trailers().ok();
                    continue;
                }
            };
            if self.pos + data.len() as u64 > limit {
                break Err(AppError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    format!("the upload would exceed its length or limit of {limit} bytes"),
                ));
            }
            self.pos += data.len() as u64;
            batch.extend_from_slice(&data);
            if batch.len() >= BATCH {
                let full = std::mem::replace(&mut batch, BytesMut::with_capacity(BATCH));
                if let Err(e) = self.flush(full.freeze()).await {
                    self.broken = true;
                    break Err(e);
                }
            }
        };
        if !ended {
            // Refused mid-way (over the limit, or taken over): the client may still be
            // sending, and would get a reset instead of the answer.
            crate::media::ingest::linger_body(body).await;
        }
        if !batch.is_empty() && !self.broken {
            if let Err(e) = self.flush(batch.freeze()).await {
                self.broken = true;
                return (Err(e), trailers);
            }
        }
        (result, trailers)
    }

    /// Hands a batch to the sink (and S3's parts), recording progress at part boundaries.
    async fn flush(&mut self, batch: Bytes) -> AppResult<()> {
        let before = self.pos - batch.len() as u64;
        let part_bytes = self.state.settings.uploads.part_bytes() as u64;
        if let Some(job) = self.pending.take() {
            self.sink = Some(job.await.map_err(io)?.map_err(io)?);
        }
        if self.checkpoints && self.parts.is_none() && before - self.recorded >= part_bytes {
            let sink = self.sink.take().expect("sink is home");
            let sink = sync(sink).await?;
            let hash = sink.file_hash.clone();
            self.sink = Some(sink);
            self.record(before, &[], 0, hash).await?;
        }
        if let Some(parts) = self.parts.as_mut() {
            parts.buffer.extend_from_slice(&batch);
            let mut cut = false;
            while parts.buffer.len() >= parts.part {
                let part = parts.buffer.split_to(parts.part).freeze();
                let etag = self
                    .state
                    .storage
                    .put_part(&parts.key, &parts.multipart_id, parts.etags.len(), part)
                    .await
                    .map_err(io)?;
                parts.etags.push(etag);
                cut = true;
            }
            if cut && self.checkpoints {
                // What the parts hold: everything received but the bytes still buffered.
                let at = self.pos - parts.buffer.len() as u64;
                let etags = parts.etags.clone();
                self.record(at, &etags, 0, None).await?;
            }
        }
        let sink = self.sink.take().expect("sink is home");
        self.pending = Some(tokio::task::spawn_blocking(move || sink.absorb(batch)));
        Ok(())
    }

    /// Waits for the last batch; the sink, its file synced.
    async fn settle(&mut self) -> AppResult<Sink> {
        if let Some(job) = self.pending.take() {
            self.sink = Some(job.await.map_err(io)?.map_err(io)?);
        }
        sync(self.sink.take().expect("sink is home")).await
    }

    /// Records the end of this body: the local file's length, or S3's last part (when
    /// the upload is complete) or new tail.
    async fn commit(&mut self, file_hash: Option<Sha256>, complete: bool) -> AppResult<()> {
        let Some(parts) = self.parts.as_mut() else {
            return self.record(self.pos, &[], 0, file_hash).await;
        };
        let mut tail = 0;
        if complete && !parts.buffer.is_empty() {
            let last = std::mem::take(&mut parts.buffer).freeze();
            let etag = self
                .state
                .storage
                .put_part(&parts.key, &parts.multipart_id, parts.etags.len(), last)
                .await
                .map_err(io)?;
            parts.etags.push(etag);
        } else if !parts.buffer.is_empty() {
            tail = parts.buffer.len() as i64;
            let bytes = parts.buffer.clone().freeze();
            self.state
                .storage
                .put_bytes(&tail_key(&self.upload.id, self.pos), bytes)
                .await
                .map_err(io)?;
        }
        let etags = parts.etags.clone();
        self.record(self.pos, &etags, tail, None).await
    }

    async fn record(
        &mut self,
        at: u64,
        etags: &[String],
        tail: i64,
        file_hash: Option<Sha256>,
    ) -> AppResult<()> {
        let expires = now_ms() + self.state.settings.uploads.expire_after_secs as i64 * 1000;
        let kept = repo::record(
            &self.state.db,
            &self.upload.id,
            self.lease.row_token(),
            at as i64,
            etags,
            tail,
            expires,
        )
        .await?;
        if !kept {
            return Err(AppError::new(
                StatusCode::LOCKED,
                "upload_superseded",
                "another request took over this upload",
            ));
        }
        let previous_tail = (self.upload.tail > 0 && self.recorded == self.upload.received as u64)
            .then(|| tail_key(&self.upload.id, self.recorded));
        self.recorded = at;
        match file_hash {
            Some(h) => self
                .state
                .uploads
                .hashes
                .insert(self.upload.id.clone(), (at, h)),
            None => self.state.uploads.hashes.invalidate(&self.upload.id),
        }
        if let Some(old) = previous_tail.filter(|old| *old != tail_key(&self.upload.id, at)) {
            // The row no longer points at it; the upload's folder goes at the end anyway.
            self.state.storage.delete(&old).await.ok();
        }
        Ok(())
    }
}

/// Asks the kernel to start writing the batch just written (`sync_file_range` without
/// waiting), so the disk works while the rest of the body arrives and the fsync that
/// ends the request has less left to wait for: a PATCH is acknowledged only once its
/// bytes are on disk, so without this the disk would idle while each body is received.
fn start_writeback(file: &std::fs::File, start: u64, len: usize) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: a plain system call on a file descriptor this function borrows; it
        // only schedules writeback and touches no memory of ours.
        unsafe {
            libc::sync_file_range(
                file.as_raw_fd(),
                start as libc::off64_t,
                len as libc::off64_t,
                libc::SYNC_FILE_RANGE_WRITE,
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, start, len);
}

async fn sync(sink: Sink) -> AppResult<Sink> {
    tokio::task::spawn_blocking(move || -> std::io::Result<Sink> {
        if let Some(out) = &sink.out {
            out.sync_data()?;
        }
        Ok(sink)
    })
    .await
    .map_err(io)?
    .map_err(io)
}

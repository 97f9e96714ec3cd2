//! The `process_video` job. Steps run in the order a viewer needs them, and each one is
//! skipped when its result is already published, so a job that restarts after a crash
//! resumes where the last run stopped:
//! poster (+ image presets) → lowest rendition (the item becomes `ready` and plays) →
//! storyboard → the rest of the ladder → progressive MP4. Audio-only items get a
//! waveform poster, one audio rendition and an M4A instead.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use queue::{ClaimedJob, JobContext, JobError, JobHandler, NewJob};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::container_of;
use super::repo::{self, FileRow, RenditionRow};
use super::watermark::BurnSpec;
use crate::kernel::db::Db;
use crate::kernel::keys;
use crate::kernel::storage::Storage;
use crate::kernel::time::now_ms;
use crate::media::process::{mark_failed, mark_ready, save_presets};
use crate::media::repo::{self as media_repo, BlobRow};
use crate::AppState;

pub const PROCESS_VIDEO: &str = "process_video";
/// Below image processing (a photo's thumbnails should not wait behind a film), above
/// batch work.
const PRIORITY_VIDEO: i64 = 50;

#[derive(Deserialize)]
struct Payload {
    blob_id: String,
}

pub fn process_job(blob_id: &str, max_attempts: u32) -> NewJob {
    NewJob::new(PROCESS_VIDEO, serde_json::json!({ "blob_id": blob_id }))
        .priority(PRIORITY_VIDEO)
        .unique_key(format!("process:{blob_id}"))
        .max_attempts(max_attempts.max(1))
}

pub struct ProcessVideoHandler {
    pub state: AppState,
}

#[async_trait::async_trait]
impl JobHandler for ProcessVideoHandler {
    async fn run(&self, job: &ClaimedJob, ctx: &JobContext) -> Result<(), JobError> {
        let payload: Payload = serde_json::from_value(job.payload.clone())
            .map_err(|e| JobError::Permanent(format!("bad payload: {e}")))?;
        let Some(blob) = media_repo::blob(&self.state.db, &payload.blob_id)
            .await
            .map_err(retry)?
        else {
            return Ok(()); // deleted before we got to it
        };
        let last_attempt = job.attempts >= job.max_attempts;
        let progress = ProgressReporter::start(ctx);
        let result = self.process(&blob, &progress).await;
        progress.stop().await;
        match result {
            Ok(()) => Ok(()),
            Err(JobError::Permanent(reason)) => {
                mark_failed(&self.state, &blob.id, &reason).await?;
                Err(JobError::Permanent(reason))
            }
            Err(JobError::Retryable(reason)) if last_attempt && !ctx.is_cancelled() => {
                mark_failed(&self.state, &blob.id, &reason).await?;
                Err(JobError::Retryable(reason))
            }
            Err(other) => Err(other),
        }
    }
}

/// A temp file or directory of this job, removed when the job ends however it ends.
struct Scratch {
    dir: tempfile::TempDir,
    original: Option<PathBuf>,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(path) = &self.original {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl ProcessVideoHandler {
    async fn process(&self, blob: &BlobRow, progress: &ProgressReporter) -> Result<(), JobError> {
        let container = container_of(&blob.format)
            .ok_or_else(|| JobError::Permanent(format!("unknown container {}", blob.format)))?;
        let dir = tempfile::Builder::new()
            .prefix("video-")
            .tempdir_in(self.state.storage.tmp_dir())
            .map_err(retry)?;
        let (path, is_temp) = self
            .state
            .storage
            .fetch_to_path(&keys::original(&blob.id))
            .await
            .map_err(retry)?;
        let scratch = Scratch {
            dir,
            original: is_temp.then(|| path.clone()),
        };
        let probe = video::probe(&path, container, &self.state.video.limits)
            .await
            .map_err(|e| JobError::Permanent(format!("the file cannot be read: {e}")))?;
        let input = video::Input {
            path: &path,
            container,
            probe: &probe,
        };
        let work = Work {
            handler: self,
            blob,
            input,
            dir: scratch.dir.path(),
            progress,
        };
        if blob.kind == "audio" {
            work.audio().await?;
        } else {
            work.video().await?;
        }
        work.remove_unpublished().await;
        Ok(())
    }
}

/// One run of the job over one blob.
struct Work<'a> {
    handler: &'a ProcessVideoHandler,
    blob: &'a BlobRow,
    input: video::Input<'a>,
    dir: &'a Path,
    progress: &'a ProgressReporter,
}

impl Work<'_> {
    fn db(&self) -> &Db {
        &self.handler.state.db
    }

    fn runner(&self) -> &video::Runner {
        &self.handler.state.video.runner
    }

    fn cancel(&self) -> &CancellationToken {
        &self.progress.cancel
    }

    async fn video(&self) -> Result<(), JobError> {
        let settings = &self.handler.state.settings.video;
        if !self.has_poster().await? {
            let png = self.dir.join("poster.png");
            self.runner()
                .poster(
                    &self.input,
                    settings.poster_offset_secs,
                    &png,
                    self.cancel(),
                )
                .await
                .map_err(video_error)?;
            self.save_poster(&png).await?;
        }
        self.progress.set(0.05);
        let rungs = video::plan_ladder(self.input.probe, &settings.ladder);
        let published = repo::renditions(self.db(), &self.blob.id)
            .await
            .map_err(retry)?;
        let missing: Vec<video::Rung> = rungs
            .iter()
            .filter(|r| !published.iter().any(|p| p.name == r.name))
            .cloned()
            .collect();
        let mut made = Vec::new();
        let watermark = if missing.is_empty() {
            None
        } else {
            self.watermark().await?
        };
        // The lowest rendition alone first: playback can start before the ladder is done.
        let lowest: Option<String> = rungs.first().map(|r| r.name.clone());
        let first = missing
            .first()
            .filter(|r| lowest.as_ref() == Some(&r.name))
            .cloned();
        if let Some(first) = first {
            let step = ("first", (0.05, 0.25));
            made.extend(
                self.encode(std::slice::from_ref(&first), watermark.as_ref(), step)
                    .await?,
            );
        }
        self.mark_ready().await?;
        if settings.storyboard && !self.has_file("storyboard.jpg").await? {
            self.storyboard().await?;
        }
        self.progress.set(0.30);
        let rest: Vec<video::Rung> = missing
            .into_iter()
            .filter(|r| !made.iter().any(|m| m.name == r.name))
            .collect();
        if !rest.is_empty() {
            let step = ("rest", (0.30, 0.95));
            made.extend(self.encode(&rest, watermark.as_ref(), step).await?);
        }
        if settings.mp4_fallback && !self.has_file("video.mp4").await? {
            self.progressive_mp4().await?;
        }
        self.progress.set(1.0);
        Ok(())
    }

    /// Encodes `rungs` in one ffmpeg run into the work dir subfolder `name`, reporting
    /// progress over `span` of the job, and publishes each rendition.
    async fn encode(
        &self,
        rungs: &[video::Rung],
        watermark: Option<&video::Watermark>,
        (name, span): (&str, (f64, f64)),
    ) -> Result<Vec<video::Rendition>, JobError> {
        let out = self.dir.join(name);
        let part = self.progress.part(span.0, span.1);
        let renditions = self
            .runner()
            .hls(&self.input, rungs, watermark, &out, self.cancel(), &part)
            .await
            .map_err(video_error)?;
        for r in &renditions {
            self.publish_rendition(r).await?;
        }
        Ok(renditions)
    }

    async fn audio(&self) -> Result<(), JobError> {
        if !self.has_poster().await? {
            let png = self.dir.join("poster.png");
            self.runner()
                .waveform(&self.input, &png, 1280, 360, self.cancel())
                .await
                .map_err(video_error)?;
            self.save_poster(&png).await?;
        }
        self.progress.set(0.05);
        let published = repo::renditions(self.db(), &self.blob.id)
            .await
            .map_err(retry)?;
        if published.is_empty() {
            let part = self.progress.part(0.05, 0.80);
            let rendition = self
                .runner()
                .audio_hls(&self.input, &self.dir.join("audio"), self.cancel(), &part)
                .await
                .map_err(video_error)?;
            self.publish_rendition(&rendition).await?;
        }
        self.mark_ready().await?;
        if !self.has_file("audio.m4a").await? {
            let out = self.dir.join("audio.m4a");
            let part = self.progress.part(0.80, 1.0);
            self.runner()
                .extract_audio(
                    &self.input,
                    video::AudioFormat::M4a,
                    &out,
                    self.cancel(),
                    &part,
                )
                .await
                .map_err(video_error)?;
            self.publish_file("audio.m4a", &out, "audio/mp4", None)
                .await?;
        }
        self.progress.set(1.0);
        Ok(())
    }

    /// The blob's watermark as a PNG in the work dir, made from the watermark item's
    /// original by the image engine (any accepted format in, alpha kept, at most
    /// 1920 px wide — the widest rung).
    async fn watermark(&self) -> Result<Option<video::Watermark>, JobError> {
        let Some(text) = &self.blob.watermark else {
            return Ok(None);
        };
        let spec: BurnSpec = serde_json::from_str(text)
            .map_err(|e| JobError::Permanent(format!("bad watermark spec: {e}")))?;
        let format = imaging::ImageFormat::parse(&spec.format)
            .ok_or_else(|| JobError::Permanent("the watermark is not an image".into()))?;
        let storage = &self.handler.state.storage;
        let (path, is_temp) = match storage.fetch_to_path(&keys::original(&spec.blob_id)).await {
            Ok(found) => found,
            Err(e) => {
                let exists = media_repo::blob(self.db(), &spec.blob_id)
                    .await
                    .map_err(retry)?;
                return Err(if exists.is_some() {
                    retry(e)
                } else {
                    JobError::Permanent("the watermark image was deleted".into())
                });
            }
        };
        let png = self.dir.join("watermark.png");
        let source = path.clone();
        let encoded = tokio::task::spawn_blocking(move || {
            let resize = imaging::transform::TransformSpec::parse("w_1920")
                .expect("a constant transform spec parses");
            imaging::transform::transform_file(
                &source,
                format,
                &resize,
                None,
                imaging::transform::TransformFormat::Png,
                &imaging::transform::TransformLimits::default(),
            )
        })
        .await
        .map_err(|e| JobError::Retryable(format!("image task panicked: {e}")))?;
        if is_temp {
            tokio::fs::remove_file(&path).await.ok();
        }
        let encoded = encoded
            .map_err(|e| JobError::Permanent(format!("the watermark cannot be read: {e}")))?;
        tokio::fs::write(&png, encoded.bytes).await.map_err(retry)?;
        Ok(Some(video::Watermark {
            png,
            gravity: spec.gravity,
            margin: spec.margin,
            opacity: spec.opacity,
            scale: spec.scale,
        }))
    }

    async fn has_poster(&self) -> Result<bool, JobError> {
        media_repo::has_variants(self.db(), &self.blob.id)
            .await
            .map_err(retry)
    }

    async fn has_file(&self, name: &str) -> Result<bool, JobError> {
        Ok(repo::file(self.db(), &self.blob.id, name)
            .await
            .map_err(retry)?
            .is_some())
    }

    /// The poster goes through the image engine: presets, proxies and a perceptual hash,
    /// exactly as for an uploaded photo.
    async fn save_poster(&self, png: &Path) -> Result<(), JobError> {
        let presets = self.handler.state.media.presets.clone();
        let path = png.to_path_buf();
        let processed = tokio::task::spawn_blocking(move || {
            imaging::process_file(&path, imaging::ImageFormat::Png, &presets)
        })
        .await
        .map_err(|e| JobError::Retryable(format!("image task panicked: {e}")))?
        .map_err(|e| JobError::Permanent(format!("the poster cannot be processed: {e}")))?;
        save_presets(&self.handler.state, &self.blob.id, processed, false).await?;
        Ok(())
    }

    /// Made from the lowest rendition, not the source: decoding 240p instead of every
    /// 1080p frame costs a few percent of the ladder instead of an eighth, and 160 px
    /// tiles lose nothing.
    async fn storyboard(&self) -> Result<(), JobError> {
        let published = repo::renditions(self.db(), &self.blob.id)
            .await
            .map_err(retry)?;
        let Some(lowest) = published.iter().min_by_key(|r| r.height) else {
            return Ok(());
        };
        let local = self.local_rendition(lowest).await?;
        let joined = self.dir.join("lowest.mp4");
        join_fragments(&local, &joined).await?;
        let probe = video::probe(
            &joined,
            video::Container::Mp4,
            &self.handler.state.video.limits,
        )
        .await
        .map_err(|e| JobError::Retryable(format!("probing the lowest rendition: {e}")))?;
        let input = video::Input {
            path: &joined,
            container: video::Container::Mp4,
            probe: &probe,
        };
        let sprite = self.dir.join("storyboard.jpg");
        let board = self
            .runner()
            .storyboard(&input, &sprite, self.cancel())
            .await
            .map_err(video_error)?;
        let meta = serde_json::to_string(&board).map_err(retry)?;
        self.publish_file("storyboard.jpg", &sprite, "image/jpeg", Some(meta))
            .await
    }

    /// The progressive MP4 is remuxed from the highest published rendition.
    async fn progressive_mp4(&self) -> Result<(), JobError> {
        let published = repo::renditions(self.db(), &self.blob.id)
            .await
            .map_err(retry)?;
        let Some(top) = published.iter().max_by_key(|r| r.height) else {
            return Ok(());
        };
        let local = self.local_rendition(top).await?;
        let out = self.dir.join("video.mp4");
        self.runner()
            .mp4_from_rendition(&local, &out, self.cancel())
            .await
            .map_err(video_error)?;
        self.publish_file("video.mp4", &out, "video/mp4", None)
            .await
    }

    /// A published rendition as local files: read in place from a local store (only
    /// read, never written), else downloaded into the work dir.
    async fn local_rendition(&self, r: &RenditionRow) -> Result<video::Rendition, JobError> {
        let stored = self.handler.state.storage.local_path(&r.prefix);
        let dir = match stored {
            Some(dir) => dir,
            None => self.fetch_rendition(r).await?,
        };
        Ok(video::Rendition {
            name: r.name.clone(),
            width: r.width as u32,
            height: r.height as u32,
            bandwidth: r.bandwidth as u64,
            average_bandwidth: r.average_bandwidth as u64,
            codecs: r.codecs.clone(),
            frame_rate: r.frame_rate.as_deref().and_then(|f| f.parse().ok()),
            dir,
            files: r.files.keys().cloned().collect(),
        })
    }

    async fn fetch_rendition(&self, r: &RenditionRow) -> Result<PathBuf, JobError> {
        let dir = self.dir.join(format!("fetched-{}", r.name));
        tokio::fs::create_dir_all(&dir).await.map_err(retry)?;
        for name in r.files.keys() {
            let bytes = self
                .handler
                .state
                .storage
                .get_bytes(&format!("{}/{name}", r.prefix))
                .await
                .map_err(retry)?;
            tokio::fs::write(dir.join(name), bytes)
                .await
                .map_err(retry)?;
        }
        Ok(dir)
    }

    /// Moves a rendition's files into the store under a prefix unique to this run —
    /// segments first, the playlist last — and only then records the row. A crash at
    /// any point leaves nothing a player can reach; the prefix is swept later.
    async fn publish_rendition(&self, r: &video::Rendition) -> Result<(), JobError> {
        let run = &uuid::Uuid::new_v4().simple().to_string()[..12];
        let prefix = keys::rendition(&self.blob.id, &r.name, run);
        let mut files = BTreeMap::new();
        // The playlist last: a reader that finds it finds every segment it lists.
        let mut names: Vec<String> = r.files.clone();
        names.sort_by_key(|n| n == "index.m3u8");
        for name in names {
            let path = r.dir.join(&name);
            let size = tokio::fs::metadata(&path).await.map_err(retry)?.len();
            self.handler
                .state
                .storage
                .put_file(&format!("{prefix}/{name}"), &path, None)
                .await
                .map_err(retry)?;
            files.insert(name, size as i64);
        }
        let row = RenditionRow {
            name: r.name.clone(),
            prefix: prefix.clone(),
            width: i64::from(r.width),
            height: i64::from(r.height),
            bandwidth: r.bandwidth as i64,
            average_bandwidth: r.average_bandwidth as i64,
            codecs: r.codecs.clone(),
            frame_rate: r.frame_rate.map(|f| format!("{f:.3}")),
            files,
        };
        let mut tx = self.db().begin_write().await.map_err(retry)?;
        let alive = media_repo::blob_exists(&mut tx, &self.blob.id)
            .await
            .map_err(retry)?;
        if alive {
            repo::insert_rendition(&mut tx, &self.blob.id, &row, now_ms())
                .await
                .map_err(retry)?;
            tx.commit().await.map_err(retry)?;
            return Ok(());
        }
        drop(tx);
        self.handler
            .state
            .storage
            .delete_prefix(&prefix)
            .await
            .map_err(retry)?;
        Err(JobError::Permanent("the item was deleted".into()))
    }

    async fn publish_file(
        &self,
        name: &str,
        path: &Path,
        mime: &str,
        meta: Option<String>,
    ) -> Result<(), JobError> {
        let storage = &self.handler.state.storage;
        publish_file(self.db(), storage, &self.blob.id, name, path, mime, meta).await
    }

    async fn mark_ready(&self) -> Result<(), JobError> {
        mark_ready(&self.handler.state, &self.blob.id).await
    }

    /// Objects under `hls/` and `files/` that no published row names: left by runs that
    /// crashed or were cancelled mid-upload, or by a file replaced since.
    async fn remove_unpublished(&self) {
        let result: anyhow::Result<()> = async {
            let renditions = repo::renditions(self.db(), &self.blob.id).await?;
            let files = repo::files(self.db(), &self.blob.id).await?;
            let storage = &self.handler.state.storage;
            for area in ["hls", "files"] {
                for (key, _) in storage
                    .list(&format!("{}/{area}", keys::derivatives(&self.blob.id)))
                    .await?
                {
                    let used = renditions
                        .iter()
                        .any(|r| key.starts_with(&format!("{}/", r.prefix)))
                        || files.iter().any(|f| f.object_key == key);
                    if !used {
                        storage.delete(&key).await?;
                    }
                }
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(blob_id = %self.blob.id, error = %e, "could not sweep unpublished video objects");
        }
    }
}

/// init.mp4 + the segments in order: one fragmented MP4 the `mov` demuxer reads.
async fn join_fragments(r: &video::Rendition, out: &Path) -> Result<(), JobError> {
    let mut segments: Vec<&String> = r.files.iter().filter(|f| f.ends_with(".m4s")).collect();
    segments.sort();
    let mut joined = tokio::fs::read(r.dir.join("init.mp4"))
        .await
        .map_err(retry)?;
    for name in segments {
        joined.extend(tokio::fs::read(r.dir.join(name)).await.map_err(retry)?);
    }
    tokio::fs::write(out, joined).await.map_err(retry)
}

/// Moves one finished file into the store under a fresh key, then records it (replacing
/// an earlier file of that name). The old object is swept by the next job run or GC.
pub(super) async fn publish_file(
    db: &Db,
    storage: &Storage,
    blob_id: &str,
    name: &str,
    path: &Path,
    mime: &str,
    meta: Option<String>,
) -> Result<(), JobError> {
    let run = &uuid::Uuid::new_v4().simple().to_string()[..12];
    let key = keys::blob_file(blob_id, run, name);
    let size = tokio::fs::metadata(path).await.map_err(retry)?.len();
    storage
        .put_file(&key, path, Some(mime))
        .await
        .map_err(retry)?;
    let row = FileRow {
        name: name.to_string(),
        etag: hex::encode(&Sha256::digest(key.as_bytes())[..16]),
        object_key: key.clone(),
        mime: mime.to_string(),
        size: size as i64,
        meta,
    };
    if !repo::upsert_file(db, blob_id, &row, now_ms())
        .await
        .map_err(retry)?
    {
        storage.delete(&key).await.ok();
        return Err(JobError::Permanent("the item was deleted".into()));
    }
    Ok(())
}

/// Turns ffmpeg's per-step fractions into the job's percent, written at most once a
/// second. A write that finds the lease gone (the job was cancelled or reclaimed)
/// cancels the running ffmpeg.
pub(super) struct ProgressReporter {
    fraction: Arc<AtomicU64>,
    pub(super) cancel: CancellationToken,
    ticker: tokio::task::JoinHandle<()>,
}

impl ProgressReporter {
    pub(super) fn start(ctx: &JobContext) -> ProgressReporter {
        let fraction = Arc::new(AtomicU64::new(0f64.to_bits()));
        let cancel = ctx.cancellation_token().child_token();
        let (shared, token, ctx) = (fraction.clone(), cancel.clone(), ctx.clone());
        let ticker = tokio::spawn(async move {
            let mut last = -1i64;
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = token.cancelled() => return,
                }
                let percent = (f64::from_bits(shared.load(Ordering::Relaxed)) * 100.0) as i64;
                if percent == last {
                    continue;
                }
                match ctx.set_progress(percent.min(99)).await {
                    Ok(()) => last = percent,
                    Err(queue::QueueError::LeaseLost(_)) => {
                        tracing::info!("job cancelled or reclaimed; stopping ffmpeg");
                        token.cancel();
                        return;
                    }
                    Err(e) => tracing::warn!(error = %e, "could not record progress"),
                }
            }
        });
        ProgressReporter {
            fraction,
            cancel,
            ticker,
        }
    }

    fn set(&self, fraction: f64) {
        let f = fraction.clamp(0.0, 1.0);
        self.fraction.store(f.to_bits(), Ordering::Relaxed);
    }

    /// A callback mapping a step's own 0–1 onto `from`–`to` of the whole job.
    pub(super) fn part(&self, from: f64, to: f64) -> impl Fn(f64) + Send + Sync + 'static {
        let shared = self.fraction.clone();
        move |f: f64| {
            let value = from + (to - from) * f.clamp(0.0, 1.0);
            shared.store(value.to_bits(), Ordering::Relaxed);
        }
    }

    pub(super) async fn stop(self) {
        self.ticker.abort();
        let _ = self.ticker.await;
    }
}

pub(super) fn video_error(e: video::VideoError) -> JobError {
    use video::VideoError as E;
    match e {
        E::Cancelled => JobError::Retryable("cancelled".into()),
        E::Timeout => JobError::Retryable("ffmpeg ran past its time limit".into()),
        E::Io(e) => JobError::Retryable(format!("i/o error: {e}")),
        // A file that probed fine but fails to transcode: retried within the attempt
        // budget (memory limits and full disks are not permanent), then marked failed.
        other => JobError::Retryable(other.to_string()),
    }
}

pub(super) fn retry(e: impl std::fmt::Display) -> JobError {
    JobError::Retryable(e.to_string())
}

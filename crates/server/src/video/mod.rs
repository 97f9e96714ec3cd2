//! Video and audio: upload validation (sniff, structure, a bounded ffprobe), the
//! `process_video` job (poster, storyboard, HLS ladder, MP4 fallback), audio
//! extraction, and playback delivery (HLS playlists and segments behind signed tokens).

pub(crate) mod audio;
pub(crate) mod files;
pub(crate) mod hls;
mod job;
mod kind;
pub(crate) mod repo;
pub mod settings;
mod structure;
pub mod token;
pub(crate) mod watermark;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use tokio::sync::Semaphore;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::domain::{scalar, Domain, Figure, Job};
use crate::kernel::error::{AppError, AppResult};
use crate::media::kinds::MediaKind;
use crate::settings::Settings;
use crate::AppState;
pub use audio::{ExtractAudioHandler, EXTRACT_AUDIO};
pub use job::{ProcessVideoHandler, PROCESS_VIDEO};

/// The video domain's registration.
pub struct Video;

impl Domain for Video {
    fn name(&self) -> &'static str {
        "video"
    }

    fn figures<'a>(
        &self,
        state: &'a AppState,
    ) -> futures::future::BoxFuture<'a, crate::kernel::error::AppResult<Vec<crate::domain::Figure>>>
    {
        Box::pin(figures(state))
    }

    fn routes(&self) -> OpenApiRouter<AppState> {
        OpenApiRouter::new()
            .routes(routes!(audio::request_audio))
            .routes(routes!(token::create_playback_token))
            .routes(routes!(
                watermark::get_watermark,
                watermark::put_watermark,
                watermark::delete_watermark
            ))
    }

    fn delivery(&self) -> OpenApiRouter<AppState> {
        OpenApiRouter::new()
            .routes(routes!(hls::master_playlist))
            .routes(routes!(hls::rendition_file))
    }

    fn jobs(&self, state: &AppState) -> Vec<Job> {
        vec![
            (
                PROCESS_VIDEO,
                Arc::new(ProcessVideoHandler {
                    state: state.clone(),
                }),
            ),
            (
                EXTRACT_AUDIO,
                Arc::new(ExtractAudioHandler {
                    state: state.clone(),
                }),
            ),
        ]
    }

    fn media_kinds(&self) -> Vec<Arc<dyn MediaKind>> {
        vec![Arc::new(kind::VideoKind)]
    }
}

/// The process-wide video machinery: limits, and the permits that bound how many
/// ffprobe and ffmpeg processes run at once.
pub struct VideoEngine {
    pub limits: video::ProbeLimits,
    pub runner: video::Runner,
    probe_permits: Semaphore,
    /// Published renditions never change (a blob id is never reused), so segment
    /// requests look their rendition up here rather than in the database.
    renditions: moka::future::Cache<(String, String), Arc<repo::RenditionRow>>,
}

impl VideoEngine {
    /// `tmp_dir` holds ffmpeg's working directories, so the GC sweep removes what a
    /// killed process left there.
    pub fn new(settings: &Settings, tmp_dir: &Path) -> VideoEngine {
        let v = &settings.video;
        let limits = video::ProbeLimits {
            max_duration_secs: v.max_duration_secs,
            max_width: v.max_width,
            max_height: v.max_height,
            max_fps: v.max_fps,
            max_bit_rate: v.max_bit_rate,
            max_streams: v.max_streams,
            timeout: Duration::from_secs(v.probe_timeout_secs.max(1)),
        };
        let mut runner = video::Runner::new(v.transcode_concurrency.max(1));
        runner.max_memory_bytes = v.max_memory_mib * 1024 * 1024;
        runner.x264_preset = v.x264_preset.clone();
        runner.timeout_floor = Duration::from_secs(v.timeout_floor_secs);
        runner.timeout_per_media_second = v.timeout_per_media_second;
        runner.work_root = Some(tmp_dir.to_path_buf());
        VideoEngine {
            limits,
            runner,
            probe_permits: Semaphore::new(v.probe_concurrency.max(1)),
            renditions: moka::future::Cache::builder()
                .max_capacity(10_000)
                .time_to_idle(Duration::from_secs(600))
                .build(),
        }
    }

    /// A published rendition, from memory when possible. Absent ones are not cached:
    /// they appear while the job works.
    pub async fn rendition(
        &self,
        db: &crate::kernel::db::Db,
        blob_id: &str,
        name: &str,
    ) -> AppResult<Option<Arc<repo::RenditionRow>>> {
        let key = (blob_id.to_string(), name.to_string());
        if let Some(hit) = self.renditions.get(&key).await {
            return Ok(Some(hit));
        }
        let Some(row) = repo::rendition(db, blob_id, name).await? else {
            return Ok(None);
        };
        let row = Arc::new(row);
        self.renditions.insert(key, row.clone()).await;
        Ok(Some(row))
    }

    /// Checks the container structure, then probes under a permit. Every refusal is a
    /// 4xx naming the problem; nothing about the file is kept.
    pub async fn validate_upload(
        &self,
        path: &Path,
        container: video::Container,
    ) -> AppResult<video::Probe> {
        let owned = path.to_path_buf();
        let truncated = tokio::task::spawn_blocking(move || structure::check(&owned, container))
            .await
            .map_err(AppError::internal)?
            .map_err(AppError::internal)?;
        if let Some(reason) = truncated {
            return Err(AppError::unprocessable("truncated_media", reason));
        }
        let _permit = self
            .probe_permits
            .acquire()
            .await
            .map_err(AppError::internal)?;
        video::probe(path, container, &self.limits)
            .await
            .map_err(probe_error)
    }
}

fn probe_error(e: video::VideoError) -> AppError {
    use video::VideoError as E;
    match e {
        E::Unsupported => AppError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_format",
            "the bytes are not an accepted video or audio container",
        ),
        E::UnsupportedCodec(codec) => AppError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_codec",
            format!("unsupported codec: {codec}"),
        ),
        E::TooLarge(what) => AppError::unprocessable("media_too_large", what),
        E::Timeout => AppError::unprocessable(
            "invalid_media",
            "the file could not be read in the time allowed",
        ),
        E::Corrupt(reason) => AppError::unprocessable(
            "invalid_media",
            format!("the file cannot be read: {reason}"),
        ),
        other => AppError::internal(anyhow::anyhow!("probing failed: {other}")),
    }
}

/// The `blobs.format` stored for a container.
pub fn format_name(container: video::Container) -> &'static str {
    use video::Container as C;
    match container {
        C::Mp4 => "mp4",
        C::Mov => "mov",
        C::Webm => "webm",
        C::Mkv => "mkv",
        C::Mp3 => "mp3",
        C::M4a => "m4a",
        C::Ogg => "ogg",
        C::Wav => "wav",
    }
}

/// The container a stored `blobs.format` names (the inverse of [`format_name`]).
pub fn container_of(format: &str) -> Option<video::Container> {
    use video::Container as C;
    Some(match format {
        "mp4" => C::Mp4,
        "mov" => C::Mov,
        "webm" => C::Webm,
        "mkv" => C::Mkv,
        "mp3" => C::Mp3,
        "m4a" => C::M4a,
        "ogg" => C::Ogg,
        "wav" => C::Wav,
        _ => return None,
    })
}

/// MIME type of an original video or audio file.
pub fn container_mime(format: &str) -> Option<&'static str> {
    Some(match format {
        "mp4" => "video/mp4",
        "mov" => "video/quicktime",
        "webm" => "video/webm",
        "mkv" => "video/x-matroska",
        "mp3" => "audio/mpeg",
        "m4a" => "audio/mp4",
        "ogg" => "audio/ogg",
        "wav" => "audio/wav",
        _ => return None,
    })
}

/// Video's figures for the admin overview: HLS renditions and their bytes (summed from
/// each rendition's file list, read row by row), and the other published files.
async fn figures(state: &AppState) -> AppResult<Vec<Figure>> {
    use futures::TryStreamExt;
    let d = "video";
    let (mut renditions, mut bytes) = (0i64, 0i64);
    let mut rows =
        sqlx::query_scalar::<_, String>("SELECT files FROM renditions").fetch(&state.db.pool);
    while let Some(files) = rows.try_next().await? {
        renditions += 1;
        let sizes: std::collections::HashMap<String, i64> =
            serde_json::from_str(&files).unwrap_or_default();
        bytes += sizes.values().sum::<i64>();
    }
    Ok(vec![
        Figure::count(d, "renditions", "HLS renditions", renditions),
        Figure::bytes(d, "bytes.renditions", "HLS segments and playlists", bytes),
        Figure::bytes(
            d,
            "bytes.files",
            "Posters, storyboards, MP4s and audio",
            scalar(
                state,
                "SELECT CAST(SUM(size) AS BIGINT) FROM blob_files",
                &[],
            )
            .await?,
        ),
    ])
}

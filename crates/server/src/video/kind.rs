//! Video and audio as media kinds: what the media registry asks of them — sniffing,
//! validation (container framing, a bounded ffprobe, limits, the watermark an upload
//! asks for), the processing job, their files at `/media/{id}/…` and the `playback` part
//! of the item JSON.

use std::collections::HashMap;

use queue::NewJob;
use sqlx::AnyConnection;

use super::{container_mime, files, format_name, job, repo, watermark};
use crate::kernel::error::{AppError, AppResult};
use crate::media::delivery::Target;
use crate::media::kinds::{BurnIn, Described, MediaKind, Upload};
use crate::media::repo::ItemRow;
use crate::media::{Playback, RenditionInfo};
use crate::AppState;

pub struct VideoKind;

#[async_trait::async_trait]
impl MediaKind for VideoKind {
    fn kinds(&self) -> &'static [&'static str] {
        &["video", "audio"]
    }

    fn sniff(&self, state: &AppState, head: &[u8]) -> bool {
        state.settings.video.enabled && video::sniff(head).is_some()
    }

    fn formats(&self) -> &'static str {
        "MP4, MOV, WebM, MKV; MP3, M4A, Ogg, WAV"
    }

    async fn describe(&self, state: &AppState, upload: &Upload<'_>) -> AppResult<Described> {
        let container = video::sniff(upload.head).ok_or_else(|| {
            AppError::unprocessable("invalid_media", "the container is not recognised")
        })?;
        let probe = state.video.validate_upload(upload.path, container).await?;
        let burn_in = match &probe.video {
            Some(_) => {
                let param = upload.meta.watermark.as_deref();
                match watermark::for_upload(state, upload.caller, param).await? {
                    Some(w) => Some(BurnIn {
                        dedup_key: w.dedup_key(upload.sha256)?,
                        json: serde_json::to_string(&w).map_err(AppError::internal)?,
                    }),
                    None => None,
                }
            }
            None => None,
        };
        let (width, height) = probe.video.as_ref().map_or((0, 0), |v| {
            // Stored as shown on screen: a portrait phone clip is portrait.
            if v.rotation % 180 == 0 {
                (v.width, v.height)
            } else {
                (v.height, v.width)
            }
        });
        let fps = probe.video.as_ref().map_or(0.0, |v| v.fps);
        Ok(Described {
            kind: if probe.video.is_some() {
                "video"
            } else {
                "audio"
            },
            format: format_name(probe.container),
            width: i64::from(width),
            height: i64::from(height),
            frames: (probe.duration_secs * fps).round() as i64,
            duration_ms: Some((probe.duration_secs * 1000.0).round() as i64),
            media_info: Some(serde_json::to_string(&probe).map_err(AppError::internal)?),
            burn_in,
        })
    }

    fn process_job(&self, blob_id: &str, max_attempts: u32) -> NewJob {
        job::process_job(blob_id, max_attempts)
    }

    fn job_kinds(&self) -> &'static [&'static str] {
        &[job::PROCESS_VIDEO]
    }

    fn mime(&self, format: &str) -> Option<&'static str> {
        container_mime(format)
    }

    fn files(&self) -> &'static [&'static str] {
        files::NAMES
    }

    async fn file(
        &self,
        state: &AppState,
        item: &ItemRow,
        file: &str,
        token: Option<&str>,
    ) -> AppResult<Option<Target>> {
        files::file_target(state, item, file, token).await
    }

    async fn playback(
        &self,
        _state: &AppState,
        conn: &mut AnyConnection,
        items: &[&ItemRow],
    ) -> AppResult<HashMap<String, Playback>> {
        let blob_ids: Vec<&str> = items.iter().map(|i| i.blob_id.as_str()).collect();
        let renditions = repo::summaries(conn, &blob_ids).await?;
        Ok(items
            .iter()
            .map(|row| {
                let playback = Playback {
                    hls_url: format!("/media/{}/hls/master.m3u8", row.id),
                    progressive_url: if row.kind == "audio" {
                        format!("/media/{}/audio.m4a", row.id)
                    } else {
                        format!("/media/{}/video.mp4", row.id)
                    },
                    storyboard_url: (row.kind == "video")
                        .then(|| format!("/media/{}/storyboard.vtt", row.id)),
                    renditions: renditions
                        .iter()
                        .filter(|r| r.blob_id == row.blob_id)
                        .map(|r| RenditionInfo {
                            name: r.name.clone(),
                            width: r.width,
                            height: r.height,
                            bandwidth: r.bandwidth,
                        })
                        .collect(),
                };
                (row.id.clone(), playback)
            })
            .collect())
    }
}

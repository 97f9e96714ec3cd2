//! Audio extraction: `POST /api/v1/media/{id}/audio` with `{"format":"m4a|mp3|opus"}`
//! queues an `extract_audio` job (or answers at once when the file exists); the result
//! is served at `/media/{id}/audio.{ext}` like any other file of the item.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use queue::{ClaimedJob, JobContext, JobError, JobHandler, NewJob, PRIORITY_INTERACTIVE};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::job::{publish_file, retry, video_error, ProgressReporter};
use super::{container_of, repo};
use crate::identity::{Viewer, Writer};
use crate::kernel::db::Db;
use crate::kernel::error::{AppError, AppJson, AppResult, ErrorBody};
use crate::kernel::keys;
use crate::AppState;

pub const EXTRACT_AUDIO: &str = "extract_audio";

#[derive(Deserialize, ToSchema)]
pub struct AudioRequest {
    /// `m4a` (AAC), `mp3` or `opus` (Ogg Opus).
    pub format: String,
}

#[derive(Serialize, ToSchema)]
pub struct AudioExport {
    pub format: String,
    /// `ready`, or `processing` while the job runs.
    pub status: &'static str,
    /// Where the file is (or will be) served.
    pub url: String,
    /// The job to poll while processing.
    pub job_id: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Payload {
    blob_id: String,
    media_id: String,
    format: video::AudioFormat,
}

#[utoipa::path(post, path = "/api/v1/media/{id}/audio", tag = "media", security(("bearer" = [])),
    params(("id" = String, Path, description = "media item id")),
    request_body = AudioRequest,
    responses((status = 200, body = AudioExport, description = "already extracted"),
        (status = 202, body = AudioExport, description = "extraction queued"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "not a video or audio item, or it has no audio track")))]
pub async fn request_audio(
    State(state): State<AppState>,
    Writer(caller): Writer,
    Path(id): Path<String>,
    AppJson(body): AppJson<AudioRequest>,
) -> AppResult<(StatusCode, Json<AudioExport>)> {
    let viewer = Viewer(Some(caller));
    let (item, _) = crate::media::writable_item(&state, &id, &viewer).await?;
    let format = video::AudioFormat::parse(&body.format).ok_or_else(|| {
        AppError::unprocessable("invalid_format", "format must be m4a, mp3 or opus")
    })?;
    if item.kind == "image" {
        return Err(AppError::unprocessable(
            "not_audio",
            "only video and audio items have audio to extract",
        ));
    }
    if !has_audio(&state.db, &item.blob_id).await? {
        return Err(AppError::unprocessable(
            "no_audio",
            "this video has no audio track",
        ));
    }
    let ext = format.extension();
    let mut export = AudioExport {
        format: ext.to_string(),
        status: "ready",
        url: format!("/media/{}/audio.{ext}", item.id),
        job_id: None,
    };
    if repo::file(&state.db, &item.blob_id, &format!("audio.{ext}"))
        .await?
        .is_some()
    {
        return Ok((StatusCode::OK, Json(export)));
    }
    let payload = Payload {
        blob_id: item.blob_id.clone(),
        media_id: item.id.clone(),
        format,
    };
    let job = NewJob::new(
        EXTRACT_AUDIO,
        serde_json::to_value(&payload).map_err(AppError::internal)?,
    )
    .priority(PRIORITY_INTERACTIVE)
    .unique_key(format!("audio:{}:{ext}", item.blob_id))
    .max_attempts(state.settings.worker.max_attempts.max(1));
    let job_id = state.queue.enqueue(job).await?;
    export.status = "processing";
    export.job_id = Some(job_id.to_string());
    Ok((StatusCode::ACCEPTED, Json(export)))
}

/// Whether ffprobe found an audio stream when the blob was uploaded.
async fn has_audio(db: &Db, blob_id: &str) -> AppResult<bool> {
    let info = crate::media::repo::media_info(db, blob_id).await?;
    let info: serde_json::Value = info
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default();
    Ok(info.get("audio").is_some_and(|a| !a.is_null()))
}

pub struct ExtractAudioHandler {
    pub state: AppState,
}

#[async_trait::async_trait]
impl JobHandler for ExtractAudioHandler {
    async fn run(&self, job: &ClaimedJob, ctx: &JobContext) -> Result<(), JobError> {
        let payload: Payload = serde_json::from_value(job.payload.clone())
            .map_err(|e| JobError::Permanent(format!("bad payload: {e}")))?;
        let blob = crate::media::repo::blob(&self.state.db, &payload.blob_id)
            .await
            .map_err(retry)?;
        let Some(blob) = blob else {
            return Ok(()); // the blob is gone
        };
        let container = container_of(&blob.format)
            .ok_or_else(|| JobError::Permanent(format!("unknown container {}", blob.format)))?;
        let dir = tempfile::Builder::new()
            .prefix("audio-")
            .tempdir_in(self.state.storage.tmp_dir())
            .map_err(retry)?;
        let (path, is_temp) = self
            .state
            .storage
            .fetch_to_path(&keys::original(&payload.blob_id))
            .await
            .map_err(retry)?;
        let progress = ProgressReporter::start(ctx);
        let result = self
            .extract(&payload, container, &path, dir.path(), &progress)
            .await;
        progress.stop().await;
        if is_temp {
            tokio::fs::remove_file(&path).await.ok();
        }
        result
    }
}

impl ExtractAudioHandler {
    async fn extract(
        &self,
        payload: &Payload,
        container: video::Container,
        path: &std::path::Path,
        dir: &std::path::Path,
        progress: &ProgressReporter,
    ) -> Result<(), JobError> {
        let probe = video::probe(path, container, &self.state.video.limits)
            .await
            .map_err(|e| JobError::Permanent(format!("the file cannot be read: {e}")))?;
        let input = video::Input {
            path,
            container,
            probe: &probe,
        };
        let ext = payload.format.extension();
        let out = dir.join(format!("audio.{ext}"));
        let part = progress.part(0.0, 1.0);
        self.state
            .video
            .runner
            .extract_audio(&input, payload.format, &out, &progress.cancel, &part)
            .await
            .map_err(|e| match e {
                video::VideoError::NoAudio => JobError::Permanent("no audio track".into()),
                other => video_error(other),
            })?;
        let name = format!("audio.{ext}");
        let mime = payload.format.mime();
        publish_file(
            &self.state.db,
            &self.state.storage,
            &payload.blob_id,
            &name,
            &out,
            mime,
            None,
        )
        .await
    }
}

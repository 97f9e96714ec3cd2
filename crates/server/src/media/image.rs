//! Images, the kind media knows itself: sniffed by magic bytes, validated from the header
//! (dimensions, frames) and a structural walk before anything is decoded, processed by
//! `process_image`.

use queue::NewJob;

use super::kinds::{Described, MediaKind, Upload};
use super::{process, structure};
use crate::kernel::error::{AppError, AppResult};
use crate::AppState;

pub struct ImageKind;

#[async_trait::async_trait]
impl MediaKind for ImageKind {
    fn kinds(&self) -> &'static [&'static str] {
        &["image"]
    }

    fn sniff(&self, _state: &AppState, head: &[u8]) -> bool {
        imaging::sniff(head).is_some()
    }

    fn formats(&self) -> &'static str {
        "JPEG, PNG, GIF, WebP, TIFF, BMP, AVIF, HEIC"
    }

    async fn describe(&self, state: &AppState, upload: &Upload<'_>) -> AppResult<Described> {
        let format = imaging::sniff(upload.head).ok_or_else(|| {
            AppError::unprocessable("invalid_image", "the image format is not recognised")
        })?;
        let path = upload.path.to_path_buf();
        let l = &state.settings.limits;
        let limits = imaging::Limits {
            max_pixels: l.max_pixels,
            max_side: l.max_side,
            max_frames: l.max_frames,
        };
        let probe = tokio::task::spawn_blocking(move || -> AppResult<imaging::Probe> {
            let probe = imaging::probe_file(&path, format).map_err(|e| {
                AppError::unprocessable(
                    "invalid_image",
                    format!("the image header cannot be read: {e}"),
                )
            })?;
            imaging::check_limits(&probe, &limits)
                .map_err(|e| AppError::unprocessable("image_too_large", e.to_string()))?;
            if let Some(reason) = structure::check(&path, format).map_err(AppError::internal)? {
                return Err(AppError::unprocessable("truncated_image", reason));
            }
            Ok(probe)
        })
        .await
        .map_err(AppError::internal)??;
        Ok(Described {
            kind: "image",
            format: probe.format.as_str(),
            width: probe.width as i64,
            height: probe.height as i64,
            frames: probe.frames as i64,
            duration_ms: None,
            media_info: None,
            burn_in: None,
        })
    }

    fn process_job(&self, blob_id: &str, max_attempts: u32) -> NewJob {
        process::process_job(blob_id, max_attempts)
    }

    fn job_kinds(&self) -> &'static [&'static str] {
        &[process::PROCESS_IMAGE]
    }

    fn mime(&self, format: &str) -> Option<&'static str> {
        imaging::ImageFormat::parse(format).map(|f| f.mime())
    }
}

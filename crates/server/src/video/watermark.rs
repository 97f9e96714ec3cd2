//! Watermarks burned into video renditions: the owner's default
//! (`PUT /api/v1/account/watermark`) or the one an upload asks for (`?watermark=`).
//! The watermark is part of the blob's identity: the same clip uploaded with and
//! without one gets two blobs, since their renditions differ.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::repo;
use crate::identity::{Caller, Writer};
use crate::kernel::error::{AppError, AppJson, AppResult, ErrorBody};
use crate::AppState;

/// Placement of a watermark image (one of the owner's image items).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WatermarkSettings {
    /// An image item of the owner; its original is used (PNG alpha is kept).
    pub media_id: String,
    /// n, s, e, w, ne, nw, se, sw or center. Default se.
    #[serde(default = "default_position")]
    pub position: String,
    /// Pixels from the edges, in the rendition. Default 24.
    #[serde(default = "default_margin")]
    pub margin: u32,
    /// 0–1. Default 0.8.
    #[serde(default = "default_opacity")]
    pub opacity: f32,
    /// Watermark width as a fraction of the video width, 0.01–1. Default 0.15.
    #[serde(default = "default_scale")]
    pub scale: f32,
}

fn default_position() -> String {
    "se".into()
}
fn default_margin() -> u32 {
    24
}
fn default_opacity() -> f32 {
    0.8
}
fn default_scale() -> f32 {
    0.15
}

/// What a blob records: the watermark image's blob and its placement.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BurnSpec {
    pub blob_id: String,
    pub format: String,
    pub gravity: video::Gravity,
    pub margin: u32,
    pub opacity: f32,
    pub scale: f32,
}

impl BurnSpec {
    /// The dedup key of a blob with this watermark burned in.
    pub fn dedup_key(&self, content_sha256: &str) -> AppResult<String> {
        let spec = serde_json::to_string(self).map_err(AppError::internal)?;
        Ok(hex::encode(Sha256::digest(format!(
            "{content_sha256}\n{spec}"
        ))))
    }
}

/// Checks the settings and resolves their image to a blob the caller may use.
async fn resolve(state: &AppState, caller: &Caller, s: &WatermarkSettings) -> AppResult<BurnSpec> {
    let gravity = video::Gravity::parse(&s.position).ok_or_else(|| {
        AppError::unprocessable(
            "invalid_watermark",
            "position must be n, s, e, w, ne, nw, se, sw or center",
        )
    })?;
    if !(0.0..=1.0).contains(&s.opacity) || !(0.01..=1.0).contains(&s.scale) || s.margin > 1000 {
        return Err(AppError::unprocessable(
            "invalid_watermark",
            "opacity must be 0–1, scale 0.01–1 and margin at most 1000",
        ));
    }
    let item = crate::media::repo::item(&state.db, &s.media_id).await?;
    let item = item
        .filter(|i| i.owner_id == caller.user_id || caller.is_admin)
        .ok_or_else(|| {
            AppError::unprocessable(
                "invalid_watermark",
                "the watermark image is not one of your items",
            )
        })?;
    if item.kind != "image" || item.status == "failed" {
        return Err(AppError::unprocessable(
            "invalid_watermark",
            "the watermark must be an image item that processed",
        ));
    }
    Ok(BurnSpec {
        blob_id: item.blob_id,
        format: item.format,
        gravity,
        margin: s.margin,
        opacity: s.opacity,
        scale: s.scale,
    })
}

async fn stored_settings(state: &AppState, user_id: &str) -> AppResult<Option<WatermarkSettings>> {
    let text = repo::account_watermark(&state.db, user_id).await?;
    Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
}

/// The watermark an upload gets: `none`, the owner's default (`auto` or absent), or
/// the image item named by `param` placed as in the owner's settings.
pub async fn for_upload(
    state: &AppState,
    caller: &Caller,
    param: Option<&str>,
) -> AppResult<Option<BurnSpec>> {
    let stored = stored_settings(state, &caller.user_id).await?;
    let settings = match param.map(str::trim) {
        Some("none") => return Ok(None),
        None | Some("") | Some("auto") => match stored {
            Some(s) => s,
            None => return Ok(None),
        },
        Some(media_id) => {
            let mut s = stored.unwrap_or(WatermarkSettings {
                media_id: String::new(),
                position: default_position(),
                margin: default_margin(),
                opacity: default_opacity(),
                scale: default_scale(),
            });
            s.media_id = media_id.to_string();
            s
        }
    };
    resolve(state, caller, &settings).await.map(Some)
}

#[utoipa::path(put, path = "/api/v1/account/watermark", tag = "media", security(("bearer" = [])), request_body = WatermarkSettings,
    responses((status = 200, body = WatermarkSettings), (status = 401, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn put_watermark(
    State(state): State<AppState>,
    Writer(caller): Writer,
    AppJson(body): AppJson<WatermarkSettings>,
) -> AppResult<Json<WatermarkSettings>> {
    resolve(&state, &caller, &body).await?;
    let text = serde_json::to_string(&body).map_err(AppError::internal)?;
    repo::set_account_watermark(&state.db, &caller.user_id, Some(&text)).await?;
    Ok(Json(body))
}

#[utoipa::path(get, path = "/api/v1/account/watermark", tag = "media", security(("bearer" = [])),
    responses((status = 200, body = WatermarkSettings), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "no default watermark")))]
pub async fn get_watermark(
    State(state): State<AppState>,
    caller: Caller,
) -> AppResult<Json<WatermarkSettings>> {
    stored_settings(&state, &caller.user_id)
        .await?
        .map(Json)
        .ok_or_else(|| AppError::not_found("watermark"))
}

#[utoipa::path(delete, path = "/api/v1/account/watermark", tag = "media", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = ErrorBody)))]
pub async fn delete_watermark(
    State(state): State<AppState>,
    Writer(caller): Writer,
) -> AppResult<StatusCode> {
    repo::set_account_watermark(&state.db, &caller.user_id, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

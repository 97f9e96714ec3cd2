//! `POST /api/v1/media/{id}/playback-token`: mints a playback token (see
//! `media::access`) for players that cannot send an `Authorization` header.

use axum::extract::{Path, State};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::identity::Viewer;
use crate::kernel::error::{AppResult, ErrorBody};
use crate::kernel::time::{now_ms, rfc3339};
use crate::media::access::{mint, readable_item, token_ttl, with_token, Grant};
use crate::AppState;

#[derive(Serialize, ToSchema)]
pub struct PlaybackToken {
    pub token: String,
    pub expires_at: String,
    /// The master playlist URL with the token, ready for a player.
    pub hls_url: String,
    /// The progressive MP4 (or M4A for audio) with the token.
    pub progressive_url: String,
}

#[utoipa::path(post, path = "/api/v1/media/{id}/playback-token", tag = "playback", security((), ("bearer" = [])),
    params(("id" = String, Path, description = "media item id")),
    responses((status = 200, body = PlaybackToken), (status = 404, body = ErrorBody)))]
pub async fn create_playback_token(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> AppResult<Json<PlaybackToken>> {
    let item = readable_item(&state, &id, &viewer).await?;
    let exp = now_ms() / 1000 + token_ttl(&state);
    let token = mint(
        &state.keyring,
        &item.id,
        exp,
        &Grant::of_viewer(&item, &viewer),
    );
    let progressive = if item.kind == "audio" {
        "audio.m4a"
    } else {
        "video.mp4"
    };
    Ok(Json(PlaybackToken {
        hls_url: with_token(&format!("/media/{}/hls/master.m3u8", item.id), Some(&token)),
        progressive_url: with_token(&format!("/media/{}/{progressive}", item.id), Some(&token)),
        expires_at: rfc3339(exp * 1000),
        token,
    }))
}

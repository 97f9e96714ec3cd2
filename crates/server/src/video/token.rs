//! Playback tokens: a private item's playlists carry `?token=EXP.SIG` in every URL they
//! list, so a player that cannot send an `Authorization` header can still fetch the
//! segments. SIG is HMAC-SHA256 over the item id and the expiry with the URL-signing
//! keys (rotation works as for signed transform URLs); verification is constant-time.

use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::db::now_ms;
use crate::error::{AppError, AppResult, ErrorBody};
use crate::identity::Viewer;
use crate::media::{can_read, repo::ItemRow};
use crate::transform::signing::Signer;
use crate::AppState;

fn message(media_id: &str, exp: i64) -> String {
    format!("play:{media_id}:{exp}")
}

/// A token for `media_id` valid until `exp` (Unix seconds).
pub fn mint(signer: &Signer, media_id: &str, exp: i64) -> String {
    format!("{exp}.{}", signer.sign(&message(media_id, exp)))
}

/// Whether `token` opens `media_id` at `now` (Unix seconds).
pub fn verify(signer: &Signer, media_id: &str, token: &str, now: i64) -> bool {
    let Some((exp, sig)) = token.split_once('.') else {
        return false;
    };
    let Ok(exp) = exp.parse::<i64>() else {
        return false;
    };
    exp >= now && signer.verify(&message(media_id, exp), sig)
}

/// `?token=` on playback URLs.
#[derive(Default, Deserialize, IntoParams)]
pub struct TokenQuery {
    /// A playback token from a playlist or `POST /api/v1/media/{id}/playback-token`.
    pub token: Option<String>,
}

/// How a request was allowed to play an item, and the token its playlists must carry.
pub struct Playable {
    pub item: std::sync::Arc<ItemRow>,
    /// `Some` for private items: the token to append to every URL handed out.
    pub token: Option<String>,
}

/// Loads an item for playback: readable by the viewer, or opened by a valid token.
/// Anything else is a 404, so private ids cannot be probed.
pub async fn playable(
    state: &AppState,
    id: &str,
    viewer: &Viewer,
    token: Option<&str>,
) -> AppResult<Playable> {
    let Some(item) = state.delivery_cache.item(&state.db, id).await? else {
        return Err(AppError::not_found("media item"));
    };
    let signer = &state.transforms.signer;
    let now = now_ms() / 1000;
    let valid_token = token.filter(|t| verify(signer, &item.id, t, now));
    if !can_read(&item, viewer) && valid_token.is_none() {
        return Err(AppError::not_found("media item"));
    }
    let token = if item.visibility == "private" {
        Some(match valid_token {
            Some(t) => t.to_string(),
            None => mint(signer, &item.id, now + ttl(state)),
        })
    } else {
        None
    };
    Ok(Playable { item, token })
}

fn ttl(state: &AppState) -> i64 {
    state.settings.playback.token_ttl_secs.clamp(60, 7 * 86400) as i64
}

/// Appends the token (if any) to a URL that has no query yet.
pub fn with_token(url: &str, token: Option<&str>) -> String {
    match token {
        Some(t) => format!("{url}?token={t}"),
        None => url.to_string(),
    }
}

#[derive(Serialize, ToSchema)]
pub struct PlaybackToken {
    pub token: String,
    pub expires_at: String,
    /// The master playlist URL with the token, ready for a player.
    pub hls_url: String,
    /// The progressive MP4 (or M4A for audio) with the token.
    pub progressive_url: String,
}

#[utoipa::path(post, path = "/api/v1/media/{id}/playback-token", tag = "playback",
    params(("id" = String, Path, description = "media item id")),
    responses((status = 200, body = PlaybackToken), (status = 404, body = ErrorBody)))]
pub async fn create_playback_token(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> AppResult<Json<PlaybackToken>> {
    let item = crate::media::readable_item(&state, &id, &viewer).await?;
    let exp = now_ms() / 1000 + ttl(&state);
    let token = mint(&state.transforms.signer, &item.id, exp);
    let progressive = if item.kind == "audio" {
        "audio.m4a"
    } else {
        "video.mp4"
    };
    Ok(Json(PlaybackToken {
        hls_url: with_token(&format!("/media/{}/hls/master.m3u8", item.id), Some(&token)),
        progressive_url: with_token(&format!("/media/{}/{progressive}", item.id), Some(&token)),
        expires_at: crate::db::rfc3339(exp * 1000),
        token,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_opens_its_item_until_it_expires() {
        let signer = Signer::new(vec![], b"k".to_vec());
        let t = mint(&signer, "m1", 1000);
        assert!(verify(&signer, "m1", &t, 999));
        assert!(verify(&signer, "m1", &t, 1000));
        assert!(!verify(&signer, "m1", &t, 1001));
        assert!(!verify(&signer, "m2", &t, 999));
        let forged = t.replace("1000.", "9999.");
        assert!(!verify(&signer, "m1", &forged, 999));
        assert!(!verify(&signer, "m1", "garbage", 0));
    }
}

//! Who may read or change an item — the one place these decisions are made — and
//! playback tokens. What higher domains know about the viewer and the owner (friends,
//! blocks, album and conversation grants) reaches the rule through [`Relations`], which
//! the social domain implements and registers at start-up. Playback tokens: a private item's playlists and file URLs carry `?token=EXP.SIG` so a
//! player that cannot send an `Authorization` header can still fetch them. SIG is the
//! keyring's HMAC over the item id and the expiry; verification is constant-time.

use futures::future::BoxFuture;
use serde::Deserialize;
use utoipa::IntoParams;

use super::repo::{self, ItemRow};
use crate::identity::{Caller, Viewer};
use crate::kernel::db::Db;
use crate::kernel::error::{AppError, AppResult};
use crate::kernel::ids::MediaId;
use crate::kernel::keyring::Keyring;
use crate::kernel::time::now_ms;
use crate::AppState;

fn is_owner_or_admin(item: &ItemRow, caller: &Caller) -> bool {
    caller.is_admin || caller.user_id == item.owner_id
}

/// What is known of a signed-in viewer and an item's owner beyond the item itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Relation {
    /// One of the two blocked the other: the item does not exist for the viewer.
    pub blocked: bool,
    /// They are accepted friends: `friends` items are readable.
    pub friends: bool,
    /// The viewer holds a grant on this very item (an album it is in, a conversation
    /// it was shared in): readable whatever its visibility.
    pub granted: bool,
}

/// The relations a higher domain keeps between users and items, asked for a signed-in
/// viewer who neither owns the item nor is an admin, and for an anonymous one (`None`)
/// when the item is not open (an album open to anyone may grant it).
pub trait Relations: Send + Sync {
    fn relation<'a>(
        &'a self,
        db: &'a Db,
        item: &'a ItemRow,
        viewer_id: Option<&'a str>,
    ) -> BoxFuture<'a, AppResult<Relation>>;
}

/// No social domain: nobody is related.
pub struct NoRelations;

impl Relations for NoRelations {
    fn relation<'a>(
        &'a self,
        _db: &'a Db,
        _item: &'a ItemRow,
        _viewer_id: Option<&'a str>,
    ) -> BoxFuture<'a, AppResult<Relation>> {
        Box::pin(async { Ok(Relation::default()) })
    }
}

/// Whether anyone with the link may read the item (`public`, `unlisted`).
pub fn is_open(item: &ItemRow) -> bool {
    matches!(item.visibility.as_str(), "public" | "unlisted")
}

/// Read access, the one rule: owners and admins read everything; anonymous viewers
/// read open items and items granted to anyone; any other signed-in viewer reads open
/// items, `friends` items of a friend and items granted to them, and nothing at all of
/// someone either of them blocked.
pub async fn can_read(state: &AppState, item: &ItemRow, viewer: &Viewer) -> AppResult<bool> {
    let relations = &state.media.relations;
    let Some(caller) = viewer.0.as_ref() else {
        if is_open(item) {
            return Ok(true);
        }
        return Ok(relations.relation(&state.db, item, None).await?.granted);
    };
    if is_owner_or_admin(item, caller) {
        return Ok(true);
    }
    let rel = relations
        .relation(&state.db, item, Some(&caller.user_id))
        .await?;
    Ok(decide(item, rel))
}

fn decide(item: &ItemRow, rel: Relation) -> bool {
    !rel.blocked && (is_open(item) || rel.granted || (item.visibility == "friends" && rel.friends))
}

/// Loads an item the viewer may read. Items it may not read do not exist for it (404),
/// so private ids cannot be probed.
pub async fn readable_item(state: &AppState, id: &str, viewer: &Viewer) -> AppResult<ItemRow> {
    let id = MediaId::parse(id).ok_or_else(|| AppError::not_found("media item"))?;
    match repo::item(&state.db, id.as_str()).await? {
        Some(item) if can_read(state, &item, viewer).await? => Ok(item),
        _ => Err(AppError::not_found("media item")),
    }
}

/// Loads an item the viewer may change: 401 anonymous, 404 unreadable, 403 read-only.
pub async fn writable_item(
    state: &AppState,
    id: &str,
    viewer: &Viewer,
) -> AppResult<(ItemRow, Caller)> {
    let item = readable_item(state, id, viewer).await?;
    let Some(caller) = viewer.0.clone() else {
        return Err(AppError::unauthorized("sign in to change media"));
    };
    if !is_owner_or_admin(&item, &caller) {
        return Err(AppError::forbidden(
            "only the owner or an admin may change this item",
        ));
    }
    Ok((item, caller))
}

fn message(media_id: &str, exp: i64) -> String {
    format!("play:{media_id}:{exp}")
}

/// A token for `media_id` valid until `exp` (Unix seconds).
pub fn mint(keyring: &Keyring, media_id: &str, exp: i64) -> String {
    format!("{exp}.{}", keyring.sign(&message(media_id, exp)))
}

/// Whether `token` opens `media_id` at `now` (Unix seconds).
pub fn verify(keyring: &Keyring, media_id: &str, token: &str, now: i64) -> bool {
    let Some((exp, sig)) = token.split_once('.') else {
        return false;
    };
    let Ok(exp) = exp.parse::<i64>() else {
        return false;
    };
    exp >= now && keyring.verify(&message(media_id, exp), sig)
}

/// `?token=` on playback URLs.
#[derive(Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TokenQuery {
    /// A playback token from a playlist or `POST /api/v1/media/{id}/playback-token`.
    pub token: Option<String>,
}

/// How a request was allowed to play an item, and the token its playlists must carry.
pub struct Playable {
    pub item: std::sync::Arc<ItemRow>,
    /// `Some` for items not open to anyone: the token to append to every URL handed out.
    pub token: Option<String>,
    /// Whether the viewer may read it without the token.
    pub readable: bool,
}

/// Loads an item for playback: readable by the viewer, or opened by a valid token.
/// Anything else is a 404, so private ids cannot be probed.
pub async fn playable(
    state: &AppState,
    id: &str,
    viewer: &Viewer,
    token: Option<&str>,
) -> AppResult<Playable> {
    let Some(item) = state.media.cache.item(&state.db, id).await? else {
        return Err(AppError::not_found("media item"));
    };
    let keyring = &state.keyring;
    let now = now_ms() / 1000;
    let valid_token = token.filter(|t| verify(keyring, &item.id, t, now));
    let readable = can_read(state, &item, viewer).await?;
    if !readable && valid_token.is_none() {
        return Err(AppError::not_found("media item"));
    }
    let token = if !is_open(&item) {
        Some(match valid_token {
            Some(t) => t.to_string(),
            None => mint(keyring, &item.id, now + token_ttl(state)),
        })
    } else {
        None
    };
    Ok(Playable {
        item,
        token,
        readable,
    })
}

/// How long a playback token minted now lives, in seconds.
pub fn token_ttl(state: &AppState) -> i64 {
    (state.settings.delivery.playback_token_ttl_secs).clamp(60, 7 * 86400) as i64
}

/// Appends the token (if any) to a URL that has no query yet.
pub fn with_token(url: &str, token: Option<&str>) -> String {
    match token {
        Some(t) => format!("{url}?token={t}"),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_opens_its_item_until_it_expires() {
        let keyring = Keyring::new(vec![], b"k".to_vec());
        let t = mint(&keyring, "m1", 1000);
        assert!(verify(&keyring, "m1", &t, 999));
        assert!(verify(&keyring, "m1", &t, 1000));
        assert!(!verify(&keyring, "m1", &t, 1001));
        assert!(!verify(&keyring, "m2", &t, 999));
        let forged = t.replace("1000.", "9999.");
        assert!(!verify(&keyring, "m1", &forged, 999));
        assert!(!verify(&keyring, "m1", "garbage", 0));
    }
}

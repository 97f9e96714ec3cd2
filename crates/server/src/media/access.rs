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

    /// Whether the share link `link_id` still opens `item` (live, not revoked, and the
    /// item still among what it shares): `Some(show_metadata)`, or `None`.
    fn link_opens<'a>(
        &'a self,
        db: &'a Db,
        item: &'a ItemRow,
        link_id: &'a str,
    ) -> BoxFuture<'a, AppResult<Option<bool>>>;
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

    fn link_opens<'a>(
        &'a self,
        _db: &'a Db,
        _item: &'a ItemRow,
        _link_id: &'a str,
    ) -> BoxFuture<'a, AppResult<Option<bool>>> {
        Box::pin(async { Ok(None) })
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
    match viewer.0.as_ref() {
        Some(caller) if is_owner_or_admin(item, caller) => Ok(true),
        Some(caller) => can_read_as(state, item, Some(&caller.user_id)).await,
        None => can_read_as(state, item, None).await,
    }
}

/// The read rule for a viewer known by id only (`None`: anonymous), as a playback
/// token names it.
async fn can_read_as(state: &AppState, item: &ItemRow, viewer_id: Option<&str>) -> AppResult<bool> {
    let relations = &state.media.relations;
    match viewer_id {
        None if is_open(item) => Ok(true),
        None => Ok(relations.relation(&state.db, item, None).await?.granted),
        Some(id) if id == item.owner_id => Ok(true),
        Some(id) => Ok(decide(
            item,
            relations.relation(&state.db, item, Some(id)).await?,
        )),
    }
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

/// On whose behalf a playback token was minted. Every use checks the grant again, so a
/// token ends as soon as what granted it does (an unfriending, a removal from an album,
/// a revoked share link), not only when it expires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Grant {
    /// The owner's or an admin's own decision to open the item until the expiry.
    Owner,
    /// A reader's right to the item (`None`: an anonymous one), checked again by the
    /// read rule as that reader.
    Reader(Option<String>),
    /// A share link, checked again against the live link.
    Link(String),
}

impl Grant {
    /// The token's middle part: empty for `Owner`, `u{id}` or `u`, `l{id}`.
    fn tag(&self) -> String {
        match self {
            Grant::Owner => String::new(),
            Grant::Reader(id) => format!("u{}", id.as_deref().unwrap_or("")),
            Grant::Link(id) => format!("l{id}"),
        }
    }

    fn of_tag(tag: &str) -> Option<Grant> {
        let (kind, id) = tag.split_at_checked(1)?;
        match kind {
            "u" if id.is_empty() => Some(Grant::Reader(None)),
            "u" => Some(Grant::Reader(Some(id.to_string()))),
            "l" if !id.is_empty() => Some(Grant::Link(id.to_string())),
            _ => None,
        }
    }

    /// The grant a viewer who may read the item earns for its URLs.
    pub fn of_viewer(item: &ItemRow, viewer: &Viewer) -> Grant {
        match viewer.0.as_ref() {
            Some(c) if is_owner_or_admin(item, c) => Grant::Owner,
            Some(c) => Grant::Reader(Some(c.user_id.clone())),
            None => Grant::Reader(None),
        }
    }
}

fn message(media_id: &str, exp: i64, grant: &Grant) -> String {
    match grant {
        Grant::Owner => format!("play:{media_id}:{exp}"),
        other => format!("play:{media_id}:{exp}:{}", other.tag()),
    }
}

/// A token for `media_id` valid until `exp` (Unix seconds): `EXP.SIG` for the owner's
/// grant, `EXP.TAG.SIG` for the others.
pub fn mint(keyring: &Keyring, media_id: &str, exp: i64, grant: &Grant) -> String {
    let sig = keyring.sign(&message(media_id, exp, grant));
    match grant {
        Grant::Owner => format!("{exp}.{sig}"),
        other => format!("{exp}.{}.{sig}", other.tag()),
    }
}

/// The grant `token` carries for `media_id` at `now` (Unix seconds), if its signature
/// holds and it has not expired. The grant itself is still to be checked.
pub fn verify(keyring: &Keyring, media_id: &str, token: &str, now: i64) -> Option<Grant> {
    let (exp, rest) = token.split_once('.')?;
    let exp = exp.parse::<i64>().ok()?;
    let (grant, sig) = match rest.split_once('.') {
        None => (Grant::Owner, rest),
        Some((tag, sig)) => (Grant::of_tag(tag)?, sig),
    };
    (exp >= now && keyring.verify(&message(media_id, exp, &grant), sig)).then_some(grant)
}

/// What a valid token's grant still opens now.
async fn grant_holds(state: &AppState, item: &ItemRow, grant: &Grant) -> AppResult<Opened> {
    let shown = Opened {
        opens: true,
        metadata: true,
    };
    match grant {
        Grant::Owner => Ok(shown),
        Grant::Reader(None) => Ok(Opened {
            opens: can_read_as(state, item, None).await?,
            metadata: true,
        }),
        Grant::Reader(Some(id)) if *id == item.owner_id => Ok(shown),
        Grant::Reader(Some(id)) => Ok(Opened {
            opens: can_read_as(state, item, Some(id)).await?,
            metadata: true,
        }),
        Grant::Link(link) => {
            let relations = &state.media.relations;
            Ok(match relations.link_opens(&state.db, item, link).await? {
                Some(metadata) => Opened {
                    opens: true,
                    metadata,
                },
                None => Opened::default(),
            })
        }
    }
}

#[derive(Clone, Copy, Default)]
struct Opened {
    opens: bool,
    metadata: bool,
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
    /// Whether titles, descriptions and tags may be shown: false only when a share link
    /// that hides them is all that opens the item.
    pub metadata: bool,
}

/// Loads an item for playback: readable by the viewer, or opened by a valid token whose
/// grant still holds. Anything else is a 404, so private ids cannot be probed. A
/// signed-out request with a token that holds skips the viewer's own check: the token
/// already opens the derivatives, and an anonymous viewer reads no more than open items.
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
    let mut opened = Opened::default();
    let mut valid_token = None;
    if let Some((t, grant)) = token.and_then(|t| Some((t, verify(keyring, &item.id, t, now)?))) {
        opened = grant_holds(state, &item, &grant).await?;
        valid_token = opened.opens.then_some(t);
    }
    let readable = if opened.opens && viewer.0.is_none() {
        is_open(&item)
    } else {
        can_read(state, &item, viewer).await?
    };
    if !readable && !opened.opens {
        return Err(AppError::not_found("media item"));
    }
    let token = if !is_open(&item) {
        Some(match valid_token {
            Some(t) => t.to_string(),
            None => {
                let grant = Grant::of_viewer(&item, viewer);
                mint(keyring, &item.id, now + token_ttl(state), &grant)
            }
        })
    } else {
        None
    };
    Ok(Playable {
        metadata: readable || opened.metadata,
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
        let t = mint(&keyring, "m1", 1000, &Grant::Owner);
        assert_eq!(verify(&keyring, "m1", &t, 999), Some(Grant::Owner));
        assert_eq!(verify(&keyring, "m1", &t, 1000), Some(Grant::Owner));
        assert_eq!(verify(&keyring, "m1", &t, 1001), None);
        assert_eq!(verify(&keyring, "m2", &t, 999), None);
        let forged = t.replace("1000.", "9999.");
        assert_eq!(verify(&keyring, "m1", &forged, 999), None);
        assert_eq!(verify(&keyring, "m1", "garbage", 0), None);
    }

    #[test]
    fn a_token_carries_its_grant_and_the_grant_cannot_be_swapped() {
        let keyring = Keyring::new(vec![], b"k".to_vec());
        for grant in [
            Grant::Reader(Some("u1".into())),
            Grant::Reader(None),
            Grant::Link("l1".into()),
        ] {
            let t = mint(&keyring, "m1", 1000, &grant);
            assert_eq!(verify(&keyring, "m1", &t, 999), Some(grant.clone()));
            // The same signature under another grant, or with the grant cut out, fails.
            let (exp, rest) = t.split_once('.').unwrap();
            let sig = rest.rsplit_once('.').unwrap().1;
            for forged in [
                format!("{exp}.{sig}"),
                format!("{exp}.uu2.{sig}"),
                format!("{exp}.l.{sig}"),
            ] {
                assert_eq!(verify(&keyring, "m1", &forged, 999), None, "{forged}");
            }
        }
    }
}

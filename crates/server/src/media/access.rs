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
    /// it was shared in): readable whatever its visibility. Asked only when it could
    /// change the answer; false otherwise.
    pub granted: bool,
}

/// The relations a higher domain keeps between users and items. The read rule asks
/// them in batches, so that a page of items costs one query for the owners and at most
/// one for the grants, whatever its length; a single item is a batch of one.
pub trait Relations: Send + Sync {
    /// `blocked` and `friends` between the signed-in viewer and each of `owners` (none
    /// of them the viewer), in the order of `owners`; `granted` is left false.
    fn pairs<'a>(
        &'a self,
        db: &'a Db,
        viewer_id: &'a str,
        owners: &'a [&'a str],
    ) -> BoxFuture<'a, AppResult<Vec<Relation>>>;

    /// Whether the viewer (`None`: anonymous) holds a grant on each of `items`, in
    /// their order.
    fn grants<'a>(
        &'a self,
        db: &'a Db,
        viewer_id: Option<&'a str>,
        items: &'a [&'a ItemRow],
    ) -> BoxFuture<'a, AppResult<Vec<bool>>>;

    /// Whether the share link `link_id` still opens `item` (live, not revoked, and the
    /// item still among what it shares): `Some(show_metadata)`, or `None`.
    fn link_opens<'a>(
        &'a self,
        db: &'a Db,
        item: &'a ItemRow,
        link_id: &'a str,
    ) -> BoxFuture<'a, AppResult<Option<bool>>>;

    /// A friendship or block between `a` and `b` began or ended and is committed: an
    /// implementation that keeps [`pairs`](Relations::pairs) answers must drop theirs
    /// now, so that this node's own changes take effect at once.
    fn forget_pair(&self, _a: &str, _b: &str) {}

    /// The same for every pair `user` is in (a deleted account).
    fn forget_user(&self, _user: &str) {}
}

/// No social domain: nobody is related.
pub struct NoRelations;

impl Relations for NoRelations {
    fn pairs<'a>(
        &'a self,
        _db: &'a Db,
        _viewer_id: &'a str,
        owners: &'a [&'a str],
    ) -> BoxFuture<'a, AppResult<Vec<Relation>>> {
        Box::pin(async { Ok(vec![Relation::default(); owners.len()]) })
    }

    fn grants<'a>(
        &'a self,
        _db: &'a Db,
        _viewer_id: Option<&'a str>,
        items: &'a [&'a ItemRow],
    ) -> BoxFuture<'a, AppResult<Vec<bool>>> {
        Box::pin(async { Ok(vec![false; items.len()]) })
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
    Ok(readable_mask(state, &[item], viewer).await?[0])
}

/// The rows of `rows` the viewer may read, in their order: the same answers as
/// [`can_read`] row by row, in one query for the owners' relations (none when this
/// node has them cached) and one for the grants of the rows they leave undecided.
pub async fn filter_readable(
    state: &AppState,
    rows: Vec<ItemRow>,
    viewer: &Viewer,
) -> AppResult<Vec<ItemRow>> {
    let mask = readable_mask(state, &rows.iter().collect::<Vec<_>>(), viewer).await?;
    Ok((rows.into_iter().zip(mask))
        .filter_map(|(row, readable)| readable.then_some(row))
        .collect())
}

async fn readable_mask(
    state: &AppState,
    items: &[&ItemRow],
    viewer: &Viewer,
) -> AppResult<Vec<bool>> {
    match viewer.0.as_ref() {
        Some(caller) => readable_as(state, items, Some(&caller.user_id), caller.is_admin).await,
        None => readable_as(state, items, None, false).await,
    }
}

/// The read rule for a viewer known by id only (`None`: anonymous), as a playback
/// token names it.
async fn can_read_as(state: &AppState, item: &ItemRow, viewer_id: Option<&str>) -> AppResult<bool> {
    Ok(readable_as(state, &[item], viewer_id, false).await?[0])
}

/// The read rule over many items for one viewer: the facts each item needs — none for
/// the viewer's own items (or an admin's), the viewer's relation to the owner for the
/// others (signed in), a grant only where one could change the answer — gathered a
/// batch at a time, then [`decide`]d item by item.
async fn readable_as(
    state: &AppState,
    items: &[&ItemRow],
    viewer_id: Option<&str>,
    is_admin: bool,
) -> AppResult<Vec<bool>> {
    let relations = &state.media.relations;
    let privileged = |item: &ItemRow| is_admin || viewer_id == Some(item.owner_id.as_str());
    // `None`: the viewer reads the item whatever else is true.
    let mut facts: Vec<Option<Relation>> = (items.iter())
        .map(|item| (!privileged(item)).then_some(Relation::default()))
        .collect();
    if let Some(viewer_id) = viewer_id {
        let mut owners: Vec<&str> = (items.iter().zip(&facts))
            .filter(|(_, fact)| fact.is_some())
            .map(|(item, _)| item.owner_id.as_str())
            .collect();
        owners.sort_unstable();
        owners.dedup();
        if !owners.is_empty() {
            let pairs = relations.pairs(&state.db, viewer_id, &owners).await?;
            for (item, fact) in items.iter().zip(facts.iter_mut()) {
                if let Some(fact) = fact {
                    if let Ok(i) = owners.binary_search(&item.owner_id.as_str()) {
                        *fact = pairs[i];
                    }
                }
            }
        }
    }
    let undecided: Vec<usize> = (0..items.len())
        .filter(|&i| facts[i].is_some_and(|rel| grant_decides(items[i], rel)))
        .collect();
    if !undecided.is_empty() {
        let asked: Vec<&ItemRow> = undecided.iter().map(|&i| items[i]).collect();
        let granted = relations.grants(&state.db, viewer_id, &asked).await?;
        for (&i, granted) in undecided.iter().zip(granted) {
            if let Some(rel) = facts[i].as_mut() {
                rel.granted = granted;
            }
        }
    }
    Ok((items.iter().zip(facts))
        .map(|(item, fact)| fact.is_none_or(|rel| decide(item, rel)))
        .collect())
}

/// The one place the facts are combined.
fn decide(item: &ItemRow, rel: Relation) -> bool {
    !rel.blocked && (is_open(item) || rel.granted || (item.visibility == "friends" && rel.friends))
}

/// Whether a grant on the item could still change what [`decide`] answers, given the
/// viewer's relation to its owner: not when a block hides it anyway, nor when it is
/// open or a friend's `friends` item already. Grants cost a query; this saves it.
fn grant_decides(item: &ItemRow, rel: Relation) -> bool {
    let with = |granted| decide(item, Relation { granted, ..rel });
    with(true) != with(false)
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

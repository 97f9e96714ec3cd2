//! Albums: an owner's collection of items with members as `viewer`, `contributor` (adds
//! their own items, removes what they added) or `editor` (adds any item they may read,
//! removes any), and a visibility of its own (`private` to members, `friends`,
//! `unlisted`, `public`). Adding an item leaves the item's visibility alone; the album
//! grants its readers the items their owners put in it, while they are in it (the
//! grant is part of `media::access::can_read`, through `graph::GraphRelations`).
//! Who may do what to an album is decided in [`role_of`] and [`Album::may`] alone.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, Row};
use utoipa::{IntoParams, ToSchema};

use super::graph;
use super::profiles::{addressable, cards, UserCard};
use crate::identity::{Caller, SocialReader, SocialViewer, SocialWriter, Viewer};
use crate::kernel::error::{AppError, AppJson, AppQuery, AppResult, ErrorBody};
use crate::kernel::ids::new_id;
use crate::kernel::outbox::Event;
use crate::kernel::paging::{Page, PageQuery};
use crate::kernel::time::{now_ms, rfc3339};
use crate::media::item::MediaItem;
use crate::AppState;

/// Members an album may have.
const MAX_MEMBERS: i64 = 200;
/// Items one request may add or remove.
const MAX_BATCH: usize = 500;
const VISIBILITIES: &[&str] = &["private", "friends", "unlisted", "public"];
const SORTS: &[&str] = &["added_desc", "added_asc"];
const ROLES: &[&str] = &["viewer", "contributor", "editor"];

#[derive(Clone, Debug)]
struct AlbumRow {
    id: String,
    owner_id: String,
    title: String,
    description: Option<String>,
    cover_id: Option<String>,
    sort: String,
    visibility: String,
    created_at: i64,
    updated_at: i64,
}

fn album_of(r: &sqlx::any::AnyRow) -> Result<AlbumRow, sqlx::Error> {
    Ok(AlbumRow {
        id: r.try_get("id")?,
        owner_id: r.try_get("owner_id")?,
        title: r.try_get("title")?,
        description: r.try_get("description")?,
        cover_id: r.try_get("cover_id")?,
        sort: r.try_get("sort")?,
        visibility: r.try_get("visibility")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// What a viewer is to an album.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Role {
    /// Reads it because it is open, or because they are a friend of the owner.
    Reader,
    Viewer,
    Contributor,
    Editor,
    Owner,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Viewer => "viewer",
            Role::Contributor => "contributor",
            Role::Editor => "editor",
            Role::Owner => "owner",
        }
    }
}

/// What one may do to an album.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Act {
    Edit,
    Add,
    RemoveAny,
    Manage,
}

/// An album with the caller's role in it.
struct Album {
    row: AlbumRow,
    role: Role,
    /// An admin who is not the owner acts with the owner's rights.
    admin: bool,
}

impl Album {
    fn may(&self, act: Act) -> bool {
        let needed = match act {
            Act::Add => Role::Contributor,
            Act::Edit | Act::RemoveAny => Role::Editor,
            Act::Manage => Role::Owner,
        };
        self.admin || self.role >= needed
    }

    fn require(&self, act: Act) -> AppResult<()> {
        if self.may(act) {
            Ok(())
        } else {
            Err(AppError::forbidden(match act {
                Act::Add => "only the album's owner, editors and contributors add items",
                Act::Edit | Act::RemoveAny => "only the album's owner and editors may do this",
                Act::Manage => "only the album's owner may do this",
            }))
        }
    }
}

/// The role of `viewer` in `album`, or `None` when the album does not exist for them:
/// not a member, not open, not a friend of the owner of a `friends` album, or either
/// side blocked.
async fn role_of(state: &AppState, album: &AlbumRow, viewer: &Viewer) -> AppResult<Option<Role>> {
    let open = matches!(album.visibility.as_str(), "public" | "unlisted");
    let Some(caller) = viewer.0.as_ref() else {
        return Ok(open.then_some(Role::Reader));
    };
    if caller.user_id == album.owner_id {
        return Ok(Some(Role::Owner));
    }
    let standing = graph::standing(&state.db, &caller.user_id, &album.owner_id).await?;
    if standing.hidden() && !caller.is_admin {
        return Ok(None);
    }
    let member: Option<String> =
        sqlx::query_scalar("SELECT role FROM album_members WHERE album_id = $1 AND user_id = $2")
            .bind(&album.id)
            .bind(&caller.user_id)
            .fetch_optional(&state.db.pool)
            .await?;
    Ok(match member.as_deref() {
        Some("editor") => Some(Role::Editor),
        Some("contributor") => Some(Role::Contributor),
        Some(_) => Some(Role::Viewer),
        None if open || caller.is_admin => Some(Role::Reader),
        None if album.visibility == "friends" && standing.friends => Some(Role::Reader),
        None => None,
    })
}

async fn album_row(state: &AppState, id: &str) -> Result<Option<AlbumRow>, sqlx::Error> {
    sqlx::query("SELECT * FROM albums WHERE id = $1")
        .bind(id)
        .fetch_optional(&state.db.pool)
        .await?
        .as_ref()
        .map(album_of)
        .transpose()
}

/// The album `id` as `viewer` may see it; 404 when it may not.
async fn album(state: &AppState, id: &str, viewer: &Viewer) -> AppResult<Album> {
    let row = album_row(state, id)
        .await?
        .ok_or_else(|| AppError::not_found("album"))?;
    let role = role_of(state, &row, viewer)
        .await?
        .ok_or_else(|| AppError::not_found("album"))?;
    let admin = viewer.0.as_ref().is_some_and(|c| c.is_admin);
    Ok(Album { row, role, admin })
}

fn viewer_of(caller: &Caller) -> Viewer {
    Viewer(Some(caller.clone()))
}

/// A member and their role.
#[derive(Serialize, ToSchema)]
pub struct MemberView {
    #[serde(flatten)]
    pub user: UserCard,
    /// `viewer`, `contributor` or `editor`.
    pub role: String,
    pub added_at: String,
}

/// An album as the API shows it.
#[derive(Serialize, ToSchema)]
pub struct AlbumView {
    pub id: String,
    pub title: String,
    pub description: Option<String>,
    pub owner: UserCard,
    /// `private` (members), `friends`, `unlisted` or `public`.
    pub visibility: String,
    /// `added_desc` or `added_asc`.
    pub sort: String,
    pub cover_id: Option<String>,
    pub cover_url: Option<String>,
    pub items: i64,
    /// The caller's part: `owner`, `editor`, `contributor`, `viewer` (members) or
    /// `reader` (reads it without being a member).
    pub role: String,
    /// Shown to the owner and members only.
    pub members: Vec<MemberView>,
    pub created_at: String,
    pub updated_at: String,
}

async fn members(state: &AppState, album_id: &str) -> AppResult<Vec<MemberView>> {
    let rows = sqlx::query(
        "SELECT user_id, role, added_at FROM album_members WHERE album_id = $1 ORDER BY added_at",
    )
    .bind(album_id)
    .fetch_all(&state.db.pool)
    .await?;
    let ids: Vec<String> = rows
        .iter()
        .map(|r| r.try_get("user_id"))
        .collect::<Result<_, _>>()?;
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let cards = cards(state, &refs).await?;
    let mut out = Vec::new();
    for (row, id) in rows.iter().zip(&ids) {
        if let Some(card) = cards.get(id) {
            out.push(MemberView {
                user: card.clone(),
                role: row.try_get("role")?,
                added_at: rfc3339(row.try_get("added_at")?),
            });
        }
    }
    Ok(out)
}

async fn view(state: &AppState, album: &Album) -> AppResult<AlbumView> {
    let row = &album.row;
    let owner = cards(state, &[row.owner_id.as_str()])
        .await?
        .remove(&row.owner_id)
        .ok_or_else(|| AppError::not_found("album"))?;
    let items: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM album_items WHERE album_id = $1")
        .bind(&row.id)
        .fetch_one(&state.db.pool)
        .await?;
    let members = if album.role > Role::Reader || album.admin {
        members(state, &row.id).await?
    } else {
        Vec::new()
    };
    Ok(AlbumView {
        id: row.id.clone(),
        title: row.title.clone(),
        description: row.description.clone(),
        owner,
        visibility: row.visibility.clone(),
        sort: row.sort.clone(),
        cover_url: row
            .cover_id
            .as_ref()
            .map(|id| format!("/img/{id}/w_512,h_512,fit_cover.jpg")),
        cover_id: row.cover_id.clone(),
        items,
        role: album.role.as_str().into(),
        members,
        created_at: rfc3339(row.created_at),
        updated_at: rfc3339(row.updated_at),
    })
}

fn one_of(value: &str, allowed: &[&str], field: &str) -> AppResult<()> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(AppError::unprocessable(
            "invalid_album",
            format!("{field} is one of {}", allowed.join(", ")),
        ))
    }
}

fn title(value: &str) -> AppResult<String> {
    let t = value.trim();
    if t.is_empty() || t.chars().count() > 200 {
        return Err(AppError::unprocessable(
            "invalid_album",
            "the title is 1–200 characters",
        ));
    }
    Ok(t.to_string())
}

fn description(value: Option<String>) -> AppResult<Option<String>> {
    let d = value
        .map(|d| d.trim().to_string())
        .filter(|d| !d.is_empty());
    if d.as_ref().is_some_and(|d| d.chars().count() > 5000) {
        return Err(AppError::unprocessable(
            "invalid_album",
            "the description is at most 5000 characters",
        ));
    }
    Ok(d)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAlbum {
    pub title: String,
    pub description: Option<String>,
    /// Default `private`.
    pub visibility: Option<String>,
    /// Default `added_desc`.
    pub sort: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/albums", tag = "social", security(("bearer" = [])), request_body = NewAlbum,
    responses((status = 201, body = AlbumView), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_album(
    State(state): State<AppState>,
    SocialWriter(caller): SocialWriter,
    AppJson(req): AppJson<NewAlbum>,
) -> AppResult<(StatusCode, Json<AlbumView>)> {
    let visibility = req.visibility.unwrap_or_else(|| "private".into());
    one_of(&visibility, VISIBILITIES, "visibility")?;
    let sort = req.sort.unwrap_or_else(|| "added_desc".into());
    one_of(&sort, SORTS, "sort")?;
    let now = now_ms();
    let row = AlbumRow {
        id: new_id(),
        owner_id: caller.user_id.clone(),
        title: title(&req.title)?,
        description: description(req.description)?,
        cover_id: None,
        sort,
        visibility,
        created_at: now,
        updated_at: now,
    };
    sqlx::query(
        "INSERT INTO albums (id, owner_id, title, description, sort, visibility, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
    )
    .bind(&row.id)
    .bind(&row.owner_id)
    .bind(&row.title)
    .bind(row.description.as_deref())
    .bind(&row.sort)
    .bind(&row.visibility)
    .bind(now)
    .execute(&state.db.pool)
    .await?;
    let album = Album {
        row,
        role: Role::Owner,
        admin: false,
    };
    Ok((StatusCode::CREATED, Json(view(&state, &album).await?)))
}

#[derive(Serialize, ToSchema)]
pub struct AlbumPage {
    pub albums: Vec<AlbumView>,
    pub next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/albums", tag = "social", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = AlbumPage, description = "the caller's albums and those they are a member of, newest first"),
        (status = 401, body = ErrorBody)))]
pub async fn list_albums(
    State(state): State<AppState>,
    SocialReader(caller): SocialReader,
    AppQuery(q): AppQuery<PageQuery>,
) -> AppResult<Json<AlbumPage>> {
    let page = Page::of(q)?;
    let mut rows: Vec<AlbumRow> = sqlx::query(
        "SELECT * FROM albums WHERE (owner_id = $1
            OR id IN (SELECT album_id FROM album_members WHERE user_id = $1))
            AND ($2 = '' OR id < $2)
         ORDER BY id DESC LIMIT $3",
    )
    .bind(&caller.user_id)
    .bind(page.cursor.as_deref().unwrap_or(""))
    .bind(page.fetch())
    .fetch_all(&state.db.pool)
    .await?
    .iter()
    .map(album_of)
    .collect::<Result<_, _>>()?;
    let next = page.finish(&mut rows, |r| r.id.clone());
    let viewer = viewer_of(&caller);
    let mut albums = Vec::new();
    for row in rows {
        if let Some(role) = role_of(&state, &row, &viewer).await? {
            let album = Album {
                row,
                role,
                admin: false,
            };
            albums.push(view(&state, &album).await?);
        }
    }
    Ok(Json(AlbumPage {
        albums,
        next_cursor: next,
    }))
}

#[utoipa::path(get, path = "/api/v1/albums/{id}", tag = "social", security((), ("bearer" = [])),
    params(("id" = String, Path, description = "album id")),
    responses((status = 200, body = AlbumView), (status = 404, body = ErrorBody)))]
pub async fn get_album(
    State(state): State<AppState>,
    SocialViewer(viewer): SocialViewer,
    Path(id): Path<String>,
) -> AppResult<Json<AlbumView>> {
    let album = album(&state, &id, &viewer).await?;
    Ok(Json(view(&state, &album).await?))
}

/// Fields to change; `null` clears the description or the cover.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlbumPatch {
    pub title: Option<String>,
    #[serde(default, deserialize_with = "crate::kernel::error::present")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    /// An item of the album.
    #[serde(default, deserialize_with = "crate::kernel::error::present")]
    #[schema(value_type = Option<String>)]
    pub cover_id: Option<Option<String>>,
    pub sort: Option<String>,
    /// The owner's alone to change.
    pub visibility: Option<String>,
}

#[utoipa::path(patch, path = "/api/v1/albums/{id}", tag = "social", security(("bearer" = [])),
    params(("id" = String, Path, description = "album id")), request_body = AlbumPatch,
    responses((status = 200, body = AlbumView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "not the owner or an editor (visibility: not the owner)"),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_album(
    State(state): State<AppState>,
    SocialWriter(caller): SocialWriter,
    Path(id): Path<String>,
    AppJson(patch): AppJson<AlbumPatch>,
) -> AppResult<Json<AlbumView>> {
    let mut album = album(&state, &id, &viewer_of(&caller)).await?;
    album.require(Act::Edit)?;
    let row = &mut album.row;
    if let Some(t) = patch.title {
        row.title = title(&t)?;
    }
    if let Some(d) = patch.description {
        row.description = description(d)?;
    }
    if let Some(s) = patch.sort {
        one_of(&s, SORTS, "sort")?;
        row.sort = s;
    }
    if let Some(v) = patch.visibility {
        one_of(&v, VISIBILITIES, "visibility")?;
        if v != row.visibility && !(album.role == Role::Owner || album.admin) {
            return Err(AppError::forbidden(
                "only the album's owner changes who may see it",
            ));
        }
        album.row.visibility = v;
    }
    let row = &mut album.row;
    if let Some(cover) = patch.cover_id {
        if let Some(c) = &cover {
            let inside: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM album_items WHERE album_id = $1 AND media_id = $2",
            )
            .bind(&row.id)
            .bind(c)
            .fetch_one(&state.db.pool)
            .await?;
            if inside == 0 {
                return Err(AppError::unprocessable(
                    "invalid_album",
                    "the cover must be an item of the album",
                ));
            }
        }
        row.cover_id = cover;
    }
    row.updated_at = now_ms();
    sqlx::query(
        "UPDATE albums SET title = $1, description = $2, cover_id = $3, sort = $4,
            visibility = $5, updated_at = $6 WHERE id = $7",
    )
    .bind(&row.title)
    .bind(row.description.as_deref())
    .bind(row.cover_id.as_deref())
    .bind(&row.sort)
    .bind(&row.visibility)
    .bind(row.updated_at)
    .bind(&row.id)
    .execute(&state.db.pool)
    .await?;
    Ok(Json(view(&state, &album).await?))
}

#[utoipa::path(delete, path = "/api/v1/albums/{id}", tag = "social", security(("bearer" = [])),
    params(("id" = String, Path, description = "album id")),
    responses((status = 204, description = "gone, with its members and entries; the items stay"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_album(
    State(state): State<AppState>,
    SocialWriter(caller): SocialWriter,
    Path(id): Path<String>,
) -> AppResult<StatusCode> {
    let album = album(&state, &id, &viewer_of(&caller)).await?;
    album.require(Act::Manage)?;
    let mut tx = state.db.begin_write().await?;
    sqlx::query("DELETE FROM albums WHERE id = $1")
        .bind(&album.row.id)
        .execute(&mut *tx)
        .await?;
    super::comments::forget_target(&mut tx, &album.row.id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlbumItems {
    /// 1–500 media item ids.
    pub media_ids: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct AlbumItemsChanged {
    /// How many were added (or removed); ones already in (or not in) do not count.
    pub changed: i64,
    pub items: i64,
}

fn batch(ids: &[String]) -> AppResult<()> {
    if ids.is_empty() || ids.len() > MAX_BATCH {
        return Err(AppError::unprocessable(
            "invalid_album",
            format!("media_ids holds 1–{MAX_BATCH} ids"),
        ));
    }
    Ok(())
}

async fn count_items(conn: &mut AnyConnection, album_id: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM album_items WHERE album_id = $1")
        .bind(album_id)
        .fetch_one(&mut *conn)
        .await
}

#[utoipa::path(post, path = "/api/v1/albums/{id}/items", tag = "social", security(("bearer" = [])),
    params(("id" = String, Path, description = "album id")), request_body = AlbumItems,
    responses((status = 200, body = AlbumItemsChanged), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "a viewer, or a contributor adding an item not their own"),
        (status = 404, body = ErrorBody, description = "no such album, or an item the caller may not read"),
        (status = 422, body = ErrorBody)))]
pub async fn add_items(
    State(state): State<AppState>,
    SocialWriter(caller): SocialWriter,
    Path(id): Path<String>,
    AppJson(req): AppJson<AlbumItems>,
) -> AppResult<Json<AlbumItemsChanged>> {
    let album = album(&state, &id, &viewer_of(&caller)).await?;
    album.require(Act::Add)?;
    batch(&req.media_ids)?;
    let viewer = viewer_of(&caller);
    let mut items = Vec::new();
    for media_id in &req.media_ids {
        let item = crate::media::readable_item(&state, media_id, &viewer).await?;
        if album.role == Role::Contributor && item.owner_id != caller.user_id && !album.admin {
            return Err(AppError::forbidden(
                "a contributor adds only their own items",
            ));
        }
        items.push(item);
    }
    let now = now_ms();
    let mut tx = state.db.begin_write().await?;
    let mut changed = 0;
    for item in &items {
        let done = sqlx::query(
            "INSERT INTO album_items (album_id, media_id, added_by, added_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT DO NOTHING",
        )
        .bind(&album.row.id)
        .bind(&item.id)
        .bind(&caller.user_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        changed += done.rows_affected() as i64;
    }
    if changed > 0 {
        // Everyone in the album but the one who added hears of it.
        let mut told: Vec<String> =
            sqlx::query_scalar("SELECT user_id FROM album_members WHERE album_id = $1")
                .bind(&album.row.id)
                .fetch_all(&mut *tx)
                .await?;
        told.push(album.row.owner_id.clone());
        let data = serde_json::json!({
            "album_id": album.row.id, "title": album.row.title, "added": changed,
            "by": cards(&state, &[caller.user_id.as_str()]).await?.remove(&caller.user_id),
        });
        for user in told.iter().filter(|u| **u != caller.user_id) {
            Event::new("album.items_added", &album.row.id)
                .user(user)
                .data(&data)
                .emit(&mut tx)
                .await?;
        }
        sqlx::query("UPDATE albums SET updated_at = $1 WHERE id = $2")
            .bind(now)
            .bind(&album.row.id)
            .execute(&mut *tx)
            .await?;
    }
    let total = count_items(&mut tx, &album.row.id).await?;
    tx.commit().await?;
    Ok(Json(AlbumItemsChanged {
        changed,
        items: total,
    }))
}

#[utoipa::path(delete, path = "/api/v1/albums/{id}/items", tag = "social", security(("bearer" = [])),
    params(("id" = String, Path, description = "album id")), request_body = AlbumItems,
    responses((status = 200, body = AlbumItemsChanged), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "a viewer, or a contributor removing what someone else added"),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn remove_items(
    State(state): State<AppState>,
    SocialWriter(caller): SocialWriter,
    Path(id): Path<String>,
    AppJson(req): AppJson<AlbumItems>,
) -> AppResult<Json<AlbumItemsChanged>> {
    batch(&req.media_ids)?;
    let ids: Vec<&str> = req.media_ids.iter().map(String::as_str).collect();
    // The owner of an item may always take it out again, whatever their part in the
    // album is now (a contributor removed, demoted or blocked included).
    let found = crate::media::repo::items_by_ids(&state.db, &ids).await?;
    let own_only = found.len() == ids.len() && found.iter().all(|r| r.owner_id == caller.user_id);
    let (album_id, check_others) = match album(&state, &id, &viewer_of(&caller)).await {
        Ok(a) if a.may(Act::RemoveAny) || own_only => (a.row.id, false),
        Ok(a) => {
            a.require(Act::Add)?;
            (a.row.id, true)
        }
        Err(e) if own_only => match album_row(&state, &id).await? {
            Some(row) => (row.id, false),
            None => return Err(e),
        },
        Err(e) => return Err(e),
    };
    let mut tx = state.db.begin_write().await?;
    if check_others {
        let sql = format!(
            "SELECT COUNT(*) AS n FROM album_items WHERE album_id = $1 AND added_by <> $2
               AND media_id IN ({})",
            crate::kernel::db::placeholders(3, ids.len())
        );
        let mut query = sqlx::query(&sql).bind(&album_id).bind(&caller.user_id);
        for id in &ids {
            query = query.bind(*id);
        }
        let others: i64 = query.fetch_one(&mut *tx).await?.try_get("n")?;
        if others > 0 {
            return Err(AppError::forbidden(
                "a contributor removes only what they added",
            ));
        }
    }
    let sql = format!(
        "DELETE FROM album_items WHERE album_id = $1 AND media_id IN ({})",
        crate::kernel::db::placeholders(2, ids.len())
    );
    let mut query = sqlx::query(&sql).bind(&album_id);
    for id in &ids {
        query = query.bind(*id);
    }
    let changed = query.execute(&mut *tx).await?.rows_affected() as i64;
    sqlx::query("UPDATE albums SET cover_id = NULL WHERE id = $1 AND cover_id NOT IN (SELECT media_id FROM album_items WHERE album_id = $1)")
        .bind(&album_id)
        .execute(&mut *tx)
        .await?;
    let total = count_items(&mut tx, &album_id).await?;
    tx.commit().await?;
    Ok(Json(AlbumItemsChanged {
        changed,
        items: total,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct AlbumItemPage {
    /// The album's items the caller may read, in the album's order.
    pub items: Vec<MediaItem>,
    pub next_cursor: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlbumItemQuery {
    /// 1–200. Default 50.
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/albums/{id}/items", tag = "social", security((), ("bearer" = [])),
    params(("id" = String, Path, description = "album id"), AlbumItemQuery),
    responses((status = 200, body = AlbumItemPage), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_album_items(
    State(state): State<AppState>,
    SocialViewer(viewer): SocialViewer,
    Path(id): Path<String>,
    AppQuery(q): AppQuery<AlbumItemQuery>,
) -> AppResult<Json<AlbumItemPage>> {
    let album = album(&state, &id, &viewer).await?;
    let page = Page::parse(q.limit, q.cursor)?;
    // The cursor is `added_at.media_id` of the last entry shown.
    let (at, after) = match page.cursor.as_deref() {
        None => (None, String::new()),
        Some(c) => {
            let (at, media) = c
                .split_once('.')
                .and_then(|(a, m)| Some((a.parse::<i64>().ok()?, m.to_string())))
                .ok_or_else(|| {
                    AppError::bad_request("invalid_cursor", "not a cursor of this list")
                })?;
            (Some(at), media)
        }
    };
    let desc = album.row.sort == "added_desc";
    let (cmp, order) = if desc { ("<", "DESC") } else { (">", "ASC") };
    let sql = format!(
        "SELECT media_id, added_at FROM album_items WHERE album_id = $1
           AND ($2 = 0 OR added_at {cmp} $3 OR (added_at = $3 AND media_id {cmp} $4))
         ORDER BY added_at {order}, media_id {order} LIMIT $5"
    );
    let mut entries: Vec<(String, i64)> = sqlx::query(&sql)
        .bind(&album.row.id)
        .bind(at.is_some() as i64)
        .bind(at.unwrap_or(0))
        .bind(&after)
        .bind(page.fetch())
        .fetch_all(&state.db.pool)
        .await?
        .iter()
        .map(|r| Ok((r.try_get("media_id")?, r.try_get("added_at")?)))
        .collect::<Result<_, sqlx::Error>>()?;
    let next = page.finish(&mut entries, |(m, a)| format!("{a}.{m}"));
    let ids: Vec<&str> = entries.iter().map(|(m, _)| m.as_str()).collect();
    let mut rows: HashMap<String, _> = crate::media::repo::items_by_ids(&state.db, &ids)
        .await?
        .into_iter()
        .map(|r| (r.id.clone(), r))
        .collect();
    let in_order = ids.iter().filter_map(|id| rows.remove(*id)).collect();
    let readable = crate::media::filter_readable(&state, in_order, &viewer).await?;
    let mut conn = state.db.pool.acquire().await?;
    let items = crate::media::item::items_json(&state, &mut conn, readable).await?;
    Ok(Json(AlbumItemPage {
        items,
        next_cursor: next,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberRole {
    /// `viewer`, `contributor` or `editor`.
    pub role: String,
}

#[utoipa::path(put, path = "/api/v1/albums/{id}/members/{name}", tag = "social", security(("bearer" = [])),
    params(("id" = String, Path, description = "album id"), ("name" = String, Path, description = "username")),
    request_body = MemberRole,
    responses((status = 200, body = MemberView, description = "a member in this role (an invitation when new: `album.invited` to them)"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "not the owner"),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "the album has 200 members"),
        (status = 422, body = ErrorBody)))]
pub async fn put_member(
    State(state): State<AppState>,
    SocialWriter(caller): SocialWriter,
    Path((id, name)): Path<(String, String)>,
    AppJson(req): AppJson<MemberRole>,
) -> AppResult<Json<MemberView>> {
    let album = album(&state, &id, &viewer_of(&caller)).await?;
    album.require(Act::Manage)?;
    one_of(&req.role, ROLES, "role")?;
    let user = addressable(&state, &album.row.owner_id, &name).await?;
    if user.id == album.row.owner_id {
        return Err(AppError::unprocessable(
            "invalid_album",
            "the owner is not a member of their own album",
        ));
    }
    let now = now_ms();
    let mut tx = state.db.begin_write().await?;
    let had: Option<String> =
        sqlx::query_scalar("SELECT role FROM album_members WHERE album_id = $1 AND user_id = $2")
            .bind(&album.row.id)
            .bind(&user.id)
            .fetch_optional(&mut *tx)
            .await?;
    if had.is_none() {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM album_members WHERE album_id = $1")
            .bind(&album.row.id)
            .fetch_one(&mut *tx)
            .await?;
        if n >= MAX_MEMBERS {
            return Err(AppError::conflict(
                "too_many_members",
                format!("an album has at most {MAX_MEMBERS} members"),
            ));
        }
    }
    sqlx::query(
        "INSERT INTO album_members (album_id, user_id, role, added_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (album_id, user_id) DO UPDATE SET role = $3",
    )
    .bind(&album.row.id)
    .bind(&user.id)
    .bind(&req.role)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let card = cards(&state, &[user.id.as_str()])
        .await?
        .remove(&user.id)
        .ok_or_else(|| AppError::not_found("user"))?;
    if had.is_none() {
        let owner = cards(&state, &[album.row.owner_id.as_str()]).await?;
        Event::new("album.invited", &album.row.id)
            .user(&user.id)
            .data(serde_json::json!({
                "album_id": album.row.id, "title": album.row.title, "role": req.role,
                "by": owner.get(&album.row.owner_id),
            }))
            .emit(&mut tx)
            .await?;
    }
    tx.commit().await?;
    Ok(Json(MemberView {
        user: card,
        role: req.role,
        added_at: rfc3339(now),
    }))
}

#[utoipa::path(delete, path = "/api/v1/albums/{id}/members/{name}", tag = "social", security(("bearer" = [])),
    params(("id" = String, Path, description = "album id"), ("name" = String, Path, description = "username")),
    responses((status = 204, description = "no longer a member (the owner removes anyone; a member may leave)"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn remove_member(
    State(state): State<AppState>,
    SocialWriter(caller): SocialWriter,
    Path((id, name)): Path<(String, String)>,
) -> AppResult<StatusCode> {
    let album = album(&state, &id, &viewer_of(&caller)).await?;
    let user = crate::identity::users::find_by_username(&state.db, &name)
        .await?
        .ok_or_else(|| AppError::not_found("member"))?;
    if user.id != caller.user_id {
        album.require(Act::Manage)?;
    }
    let done = sqlx::query("DELETE FROM album_members WHERE album_id = $1 AND user_id = $2")
        .bind(&album.row.id)
        .bind(&user.id)
        .execute(&state.db.pool)
        .await?;
    if done.rows_affected() == 0 {
        return Err(AppError::not_found("member"));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// What a share link of an album shows: its title, description and owner, and the ids
/// of the items their own owners put in it (the ones the album may grant), in album
/// order, at most `limit`.
pub(super) struct SharedAlbum {
    pub owner_id: String,
    pub title: String,
    pub description: Option<String>,
    pub cover_id: Option<String>,
    /// `(media id, added_by)`, for the caller to keep those added by the item's owner.
    pub entries: Vec<(String, String)>,
}

pub(super) async fn shared(
    state: &AppState,
    id: &str,
    limit: i64,
) -> AppResult<Option<SharedAlbum>> {
    let Some(row) = album_row(state, id).await? else {
        return Ok(None);
    };
    let order = if row.sort == "added_asc" {
        "ASC"
    } else {
        "DESC"
    };
    let entries = sqlx::query(&format!(
        "SELECT media_id, added_by FROM album_items WHERE album_id = $1
         ORDER BY added_at {order}, media_id {order} LIMIT $2"
    ))
    .bind(&row.id)
    .bind(limit)
    .fetch_all(&state.db.pool)
    .await?
    .iter()
    .map(|r| Ok((r.try_get("media_id")?, r.try_get("added_by")?)))
    .collect::<Result<_, sqlx::Error>>()?;
    Ok(Some(SharedAlbum {
        owner_id: row.owner_id,
        title: row.title,
        description: row.description,
        cover_id: row.cover_id,
        entries,
    }))
}

/// The owner of album `id` if `viewer` may see it (404 otherwise), for comments and
/// likes on it.
pub(super) async fn readable_owner(
    state: &AppState,
    id: &str,
    viewer: &Viewer,
) -> AppResult<String> {
    Ok(album(state, id, viewer).await?.row.owner_id)
}

//! Comments and likes on items and albums, for whoever may see the item or album (the
//! read rule of media, or the album's): list, write and delete comments, like and
//! unlike, count. The owner may turn comments off and delete any comment on what is
//! theirs; authors delete their own. New comments and likes tell the owner
//! (`comment.created`, `like.created`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use utoipa::ToSchema;

use super::albums;
use super::profiles::{cards, UserCard};
use crate::identity::settings::RateRule;
use crate::identity::{SocialViewer, SocialWriter, Viewer};
use crate::kernel::error::{AppError, AppJson, AppQuery, AppResult, ErrorBody};
use crate::kernel::ids::new_id;
use crate::kernel::outbox::Event;
use crate::kernel::paging::{Page, PageQuery};
use crate::kernel::time::{now_ms, rfc3339};
use crate::AppState;

/// Comments one user may write a minute.
const COMMENTS_PER_MINUTE: RateRule = RateRule::new(30, 60);

/// What is commented on or liked, as the caller may see it.
struct Target {
    kind: &'static str,
    id: String,
    owner_id: String,
}

/// The item or album `id` if `viewer` may see it; 404 otherwise.
async fn target(
    state: &AppState,
    kind: &'static str,
    id: &str,
    viewer: &Viewer,
) -> AppResult<Target> {
    let owner_id = if kind == "item" {
        crate::media::readable_item(state, id, viewer)
            .await?
            .owner_id
    } else {
        albums::readable_owner(state, id, viewer).await?
    };
    Ok(Target {
        kind,
        id: id.to_string(),
        owner_id,
    })
}

fn may_moderate(target: &Target, viewer: &Viewer) -> bool {
    viewer
        .0
        .as_ref()
        .is_some_and(|c| c.is_admin || c.user_id == target.owner_id)
}

async fn comments_on(state: &AppState, target: &Target) -> Result<bool, sqlx::Error> {
    let off: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM comments_off WHERE target_id = $1")
        .bind(&target.id)
        .fetch_one(&state.db.pool)
        .await?;
    Ok(off == 0)
}

#[derive(Serialize, ToSchema)]
pub struct CommentView {
    pub id: String,
    pub author: UserCard,
    pub body: String,
    pub created_at: String,
    /// Whether the caller may delete it (its author, the owner, an admin).
    pub can_delete: bool,
}

#[derive(Serialize, ToSchema)]
pub struct CommentPage {
    /// Oldest first.
    pub comments: Vec<CommentView>,
    pub comments_enabled: bool,
    pub next_cursor: Option<String>,
}

async fn list(
    state: &AppState,
    kind: &'static str,
    id: &str,
    viewer: &Viewer,
    q: PageQuery,
) -> AppResult<Json<CommentPage>> {
    let target = target(state, kind, id, viewer).await?;
    let page = Page::of(q)?;
    let rows = sqlx::query(
        "SELECT id, author_id, body, created_at FROM comments
         WHERE target_id = $1 AND id > $2 ORDER BY id LIMIT $3",
    )
    .bind(&target.id)
    .bind(page.cursor.as_deref().unwrap_or(""))
    .bind(page.fetch())
    .fetch_all(&state.db.pool)
    .await?;
    let mut found = super::authored(&rows, "author_id")?;
    let next = page.finish(&mut found, |c| c.0.clone());
    // Comments of anyone either side blocked are not shown to the viewer.
    let authors: Vec<&str> = found.iter().map(|c| c.1.as_str()).collect();
    let hidden = match &viewer.0 {
        Some(c) => super::graph::hidden_among(&state.db, &c.user_id, &authors).await?,
        None => Vec::new(),
    };
    let cards = cards(state, &authors).await?;
    let moderator = may_moderate(&target, viewer);
    let me = viewer.0.as_ref().map(|c| c.user_id.as_str());
    let comments = found
        .iter()
        .filter(|c| !hidden.contains(&c.1))
        .filter_map(|(id, author, body, at)| {
            Some(CommentView {
                id: id.clone(),
                author: cards.get(author)?.clone(),
                body: body.clone(),
                created_at: rfc3339(*at),
                can_delete: moderator || me == Some(author.as_str()),
            })
        })
        .collect();
    Ok(Json(CommentPage {
        comments,
        comments_enabled: comments_on(state, &target).await?,
        next_cursor: next,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewComment {
    /// 1–2000 characters.
    pub body: String,
}

async fn write(
    state: &AppState,
    kind: &'static str,
    id: &str,
    caller: crate::identity::Caller,
    req: NewComment,
) -> AppResult<(StatusCode, Json<CommentView>)> {
    let viewer = Viewer(Some(caller.clone()));
    let target = target(state, kind, id, &viewer).await?;
    let body = req.body.trim().to_string();
    if body.is_empty() || body.chars().count() > 2000 {
        return Err(AppError::unprocessable(
            "invalid_comment",
            "a comment is 1–2000 characters",
        ));
    }
    if !comments_on(state, &target).await? {
        return Err(AppError::forbidden_code(
            "comments_off",
            "the owner turned comments off here",
        ));
    }
    crate::identity::rate_limit(state, "comment", &caller.user_id, &COMMENTS_PER_MINUTE).await?;
    let now = now_ms();
    let author = cards(state, &[caller.user_id.as_str()])
        .await?
        .remove(&caller.user_id)
        .ok_or_else(|| AppError::not_found("user"))?;
    let view = CommentView {
        id: new_id(),
        author,
        body,
        created_at: rfc3339(now),
        can_delete: true,
    };
    let mut tx = state.db.begin_write().await?;
    sqlx::query(
        "INSERT INTO comments (id, target_kind, target_id, author_id, body, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&view.id)
    .bind(target.kind)
    .bind(&target.id)
    .bind(&caller.user_id)
    .bind(&view.body)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    if target.owner_id != caller.user_id {
        Event::new("comment.created", &view.id)
            .user(&target.owner_id)
            .data(serde_json::json!({
                "target": target.kind, "target_id": target.id, "comment": &view,
            }))
            .emit(&mut tx)
            .await?;
    }
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(view)))
}

#[utoipa::path(get, path = "/api/v1/media/{id}/comments", tag = "social", security((), ("bearer" = [])),
    params(("id" = String, Path, description = "media item id"), PageQuery),
    responses((status = 200, body = CommentPage), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_item_comments(
    State(state): State<AppState>,
    SocialViewer(viewer): SocialViewer,
    Path(id): Path<String>,
    AppQuery(q): AppQuery<PageQuery>,
) -> AppResult<Json<CommentPage>> {
    list(&state, "item", &id, &viewer, q).await
}

#[utoipa::path(post, path = "/api/v1/media/{id}/comments", tag = "social", security(("bearer" = [])),
    params(("id" = String, Path, description = "media item id")), request_body = NewComment,
    responses((status = 201, body = CommentView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "comments are off"), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn comment_item(
    State(state): State<AppState>,
    SocialWriter(caller): SocialWriter,
    Path(id): Path<String>,
    AppJson(req): AppJson<NewComment>,
) -> AppResult<(StatusCode, Json<CommentView>)> {
    write(&state, "item", &id, caller, req).await
}

#[utoipa::path(get, path = "/api/v1/albums/{id}/comments", tag = "social", security((), ("bearer" = [])),
    params(("id" = String, Path, description = "album id"), PageQuery),
    responses((status = 200, body = CommentPage), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_album_comments(
    State(state): State<AppState>,
    SocialViewer(viewer): SocialViewer,
    Path(id): Path<String>,
    AppQuery(q): AppQuery<PageQuery>,
) -> AppResult<Json<CommentPage>> {
    list(&state, "album", &id, &viewer, q).await
}

#[utoipa::path(post, path = "/api/v1/albums/{id}/comments", tag = "social", security(("bearer" = [])),
    params(("id" = String, Path, description = "album id")), request_body = NewComment,
    responses((status = 201, body = CommentView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "comments are off"), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn comment_album(
    State(state): State<AppState>,
    SocialWriter(caller): SocialWriter,
    Path(id): Path<String>,
    AppJson(req): AppJson<NewComment>,
) -> AppResult<(StatusCode, Json<CommentView>)> {
    write(&state, "album", &id, caller, req).await
}

#[utoipa::path(delete, path = "/api/v1/comments/{id}", tag = "social", security(("bearer" = [])),
    params(("id" = String, Path, description = "comment id")),
    responses((status = 204), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "neither its author nor the owner of what it is on"),
        (status = 404, body = ErrorBody)))]
pub async fn delete_comment(
    State(state): State<AppState>,
    SocialWriter(caller): SocialWriter,
    Path(id): Path<String>,
) -> AppResult<StatusCode> {
    let row = sqlx::query("SELECT target_kind, target_id, author_id FROM comments WHERE id = $1")
        .bind(&id)
        .fetch_optional(&state.db.pool)
        .await?
        .ok_or_else(|| AppError::not_found("comment"))?;
    let kind: String = row.try_get("target_kind")?;
    let target_id: String = row.try_get("target_id")?;
    let author: String = row.try_get("author_id")?;
    let viewer = Viewer(Some(caller.clone()));
    let kind = if kind == "album" { "album" } else { "item" };
    // Whoever can no longer see the target does not learn the comment exists.
    let target = target(&state, kind, &target_id, &viewer)
        .await
        .map_err(|_| AppError::not_found("comment"))?;
    if author != caller.user_id && !may_moderate(&target, &viewer) {
        return Err(AppError::forbidden(
            "only its author or the owner deletes a comment",
        ));
    }
    sqlx::query("DELETE FROM comments WHERE id = $1")
        .bind(&id)
        .execute(&state.db.pool)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommentSettings {
    pub enabled: bool,
}

#[utoipa::path(put, path = "/api/v1/media/{id}/comments/settings", tag = "social", security(("bearer" = [])),
    params(("id" = String, Path, description = "media item id")), request_body = CommentSettings,
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "not the owner"),
        (status = 404, body = ErrorBody)))]
pub async fn item_comment_settings(
    State(state): State<AppState>,
    SocialWriter(caller): SocialWriter,
    Path(id): Path<String>,
    AppJson(req): AppJson<CommentSettings>,
) -> AppResult<StatusCode> {
    let viewer = Viewer(Some(caller));
    let target = target(&state, "item", &id, &viewer).await?;
    if !may_moderate(&target, &viewer) {
        return Err(AppError::forbidden(
            "only the owner turns comments on or off",
        ));
    }
    if req.enabled {
        sqlx::query("DELETE FROM comments_off WHERE target_id = $1")
            .bind(&target.id)
            .execute(&state.db.pool)
            .await?;
    } else {
        sqlx::query(
            "INSERT INTO comments_off (target_id, target_kind, created_at) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
        )
        .bind(&target.id)
        .bind(target.kind)
        .bind(now_ms())
        .execute(&state.db.pool)
        .await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
pub struct LikeSummary {
    pub likes: i64,
    pub liked_by_me: bool,
    /// The first 50 who liked it that the caller may see.
    pub users: Vec<UserCard>,
}

async fn summary(state: &AppState, target: &Target, viewer: &Viewer) -> AppResult<LikeSummary> {
    let likes: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM likes WHERE target_id = $1")
        .bind(&target.id)
        .fetch_one(&state.db.pool)
        .await?;
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT user_id FROM likes WHERE target_id = $1 ORDER BY created_at LIMIT 50",
    )
    .bind(&target.id)
    .fetch_all(&state.db.pool)
    .await?;
    let me = viewer.0.as_ref().map(|c| c.user_id.as_str());
    let liked_by_me = match me {
        Some(me) => {
            let n: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM likes WHERE target_id = $1 AND user_id = $2",
            )
            .bind(&target.id)
            .bind(me)
            .fetch_one(&state.db.pool)
            .await?;
            n > 0
        }
        None => false,
    };
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let hidden = match me {
        Some(me) => super::graph::hidden_among(&state.db, me, &refs).await?,
        None => Vec::new(),
    };
    let cards = cards(state, &refs).await?;
    let users = ids
        .iter()
        .filter(|id| !hidden.contains(id))
        .filter_map(|id| cards.get(id).cloned())
        .collect();
    Ok(LikeSummary {
        likes,
        liked_by_me,
        users,
    })
}

async fn like(
    state: &AppState,
    kind: &'static str,
    id: &str,
    caller: crate::identity::Caller,
    on: bool,
) -> AppResult<Json<LikeSummary>> {
    let viewer = Viewer(Some(caller.clone()));
    let target = target(state, kind, id, &viewer).await?;
    let mut tx = state.db.begin_write().await?;
    if on {
        let added = sqlx::query(
            "INSERT INTO likes (target_kind, target_id, user_id, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT DO NOTHING",
        )
        .bind(target.kind)
        .bind(&target.id)
        .bind(&caller.user_id)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        if added.rows_affected() == 1 && target.owner_id != caller.user_id {
            let by = cards(state, &[caller.user_id.as_str()]).await?;
            Event::new("like.created", &target.id)
                .user(&target.owner_id)
                .data(serde_json::json!({
                    "target": target.kind, "target_id": target.id, "by": by.get(&caller.user_id),
                }))
                .emit(&mut tx)
                .await?;
        }
    } else {
        sqlx::query("DELETE FROM likes WHERE target_id = $1 AND user_id = $2")
            .bind(&target.id)
            .bind(&caller.user_id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(Json(summary(state, &target, &viewer).await?))
}

#[utoipa::path(get, path = "/api/v1/media/{id}/likes", tag = "social", security((), ("bearer" = [])),
    params(("id" = String, Path, description = "media item id")),
    responses((status = 200, body = LikeSummary), (status = 404, body = ErrorBody)))]
pub async fn item_likes(
    State(state): State<AppState>,
    SocialViewer(viewer): SocialViewer,
    Path(id): Path<String>,
) -> AppResult<Json<LikeSummary>> {
    let target = target(&state, "item", &id, &viewer).await?;
    Ok(Json(summary(&state, &target, &viewer).await?))
}

#[utoipa::path(put, path = "/api/v1/media/{id}/likes", tag = "social", security(("bearer" = [])),
    params(("id" = String, Path, description = "media item id")),
    responses((status = 200, body = LikeSummary, description = "liked (also when it was)"), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn like_item(
    State(state): State<AppState>,
    SocialWriter(caller): SocialWriter,
    Path(id): Path<String>,
) -> AppResult<Json<LikeSummary>> {
    like(&state, "item", &id, caller, true).await
}

#[utoipa::path(delete, path = "/api/v1/media/{id}/likes", tag = "social", security(("bearer" = [])),
    params(("id" = String, Path, description = "media item id")),
    responses((status = 200, body = LikeSummary, description = "not liked (also when it was not)"), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn unlike_item(
    State(state): State<AppState>,
    SocialWriter(caller): SocialWriter,
    Path(id): Path<String>,
) -> AppResult<Json<LikeSummary>> {
    like(&state, "item", &id, caller, false).await
}

#[utoipa::path(put, path = "/api/v1/albums/{id}/likes", tag = "social", security(("bearer" = [])),
    params(("id" = String, Path, description = "album id")),
    responses((status = 200, body = LikeSummary), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn like_album(
    State(state): State<AppState>,
    SocialWriter(caller): SocialWriter,
    Path(id): Path<String>,
) -> AppResult<Json<LikeSummary>> {
    like(&state, "album", &id, caller, true).await
}

#[utoipa::path(delete, path = "/api/v1/albums/{id}/likes", tag = "social", security(("bearer" = [])),
    params(("id" = String, Path, description = "album id")),
    responses((status = 200, body = LikeSummary), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn unlike_album(
    State(state): State<AppState>,
    SocialWriter(caller): SocialWriter,
    Path(id): Path<String>,
) -> AppResult<Json<LikeSummary>> {
    like(&state, "album", &id, caller, false).await
}

#[utoipa::path(get, path = "/api/v1/albums/{id}/likes", tag = "social", security((), ("bearer" = [])),
    params(("id" = String, Path, description = "album id")),
    responses((status = 200, body = LikeSummary), (status = 404, body = ErrorBody)))]
pub async fn album_likes(
    State(state): State<AppState>,
    SocialViewer(viewer): SocialViewer,
    Path(id): Path<String>,
) -> AppResult<Json<LikeSummary>> {
    let target = target(&state, "album", &id, &viewer).await?;
    Ok(Json(summary(&state, &target, &viewer).await?))
}

/// Removes everything said of a target that is gone.
pub async fn forget_target(conn: &mut sqlx::AnyConnection, id: &str) -> Result<(), sqlx::Error> {
    for sql in [
        "DELETE FROM comments WHERE target_id = $1",
        "DELETE FROM likes WHERE target_id = $1",
        "DELETE FROM comments_off WHERE target_id = $1",
    ] {
        sqlx::query(sql).bind(id).execute(&mut *conn).await?;
    }
    Ok(())
}

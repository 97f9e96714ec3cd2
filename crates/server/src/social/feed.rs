//! `GET /api/v1/feed`: the newest ready items of the caller's friends (`public` and
//! `friends`) and of the users they follow (`public`), cursor-paged, newest first — the
//! signed-in home page. Unlisted items never appear; blocks removed the edges already,
//! and every row still passes media's read rule before it is shown (the page at once:
//! one query for its owners at most, none when this node has their relations cached).

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::graph::{self, EdgeKind};
use crate::identity::{SocialReader, Viewer};
use crate::kernel::error::{AppQuery, AppResult, ErrorBody};
use crate::kernel::paging::{Page, PageQuery};
use crate::media::item::MediaItem;
use crate::AppState;

/// Friends and followees a feed draws from at most, each.
const MAX_SOURCES: i64 = 10_000;

#[derive(Serialize, ToSchema)]
pub struct FeedPage {
    pub items: Vec<MediaItem>,
    pub next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/feed", tag = "social", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = FeedPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn feed(
    State(state): State<AppState>,
    SocialReader(caller): SocialReader,
    AppQuery(q): AppQuery<PageQuery>,
) -> AppResult<Json<FeedPage>> {
    let page = Page::of(q)?;
    let me = caller.user_id.as_str();
    let friends = graph::edges(&state.db, EdgeKind::Friends, me, None, MAX_SOURCES).await?;
    let followed = graph::edges(&state.db, EdgeKind::Following, me, None, MAX_SOURCES).await?;
    let friend_ids: Vec<&str> = friends.iter().map(|e| e.user_id.as_str()).collect();
    let followed_ids: Vec<&str> = (followed.iter())
        .map(|e| e.user_id.as_str())
        .filter(|id| !friend_ids.contains(id))
        .collect();
    let mut rows = crate::media::repo::feed_items(
        &state.db,
        &friend_ids,
        &followed_ids,
        page.cursor.as_deref(),
        page.fetch(),
    )
    .await?;
    let next = page.finish(&mut rows, |r| r.id.clone());
    let viewer = Viewer(Some(caller.clone()));
    let shown = crate::media::filter_readable(&state, rows, &viewer).await?;
    let mut conn = state.db.pool.acquire().await?;
    let items = crate::media::item::items_json(&state, &mut conn, shown).await?;
    Ok(Json(FeedPage {
        items,
        next_cursor: next,
    }))
}

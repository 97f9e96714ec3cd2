//! The library: a grid of the signed-in person's items, newest first, filtered by kind
//! and visibility, paged by cursor. The first screen is rendered here; the next pages
//! come as HTML fragments of the same cards (`?fragment=1`) that `library.js` appends as
//! the person scrolls, and the "More" link works without JavaScript.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use super::{error_page, Shell, Visit};
use crate::kernel::error::AppError;
use crate::kernel::paging::Page;
use crate::media::item::{items_json, MediaItem};
use crate::media::repo;
use crate::AppState;

pub fn pages() -> Router<AppState> {
    Router::new().route("/library", get(library))
}

/// Items per page: enough to fill a large screen twice.
const PAGE: i64 = 60;

#[derive(Deserialize, Default)]
struct LibraryQuery {
    cursor: Option<String>,
    kind: Option<String>,
    visibility: Option<String>,
    #[serde(default)]
    fragment: bool,
}

/// One card of the grid.
pub struct Card {
    pub id: String,
    pub kind: String,
    pub status: String,
    pub visibility: String,
    pub title: String,
    pub width: i64,
    pub height: i64,
    /// The smallest image rendition, the `src` for browsers without `srcset`.
    pub src: Option<String>,
    /// `url widthw, …` of the WebP renditions.
    pub srcset: String,
    pub duration: Option<String>,
    /// Base64 ThumbHash painted under the image until it loads; empty when none.
    pub thumbhash: String,
}

impl Card {
    fn of(item: MediaItem) -> Card {
        let pictures = super::Pictures::of(&item, None);
        let (width, height) = match &pictures.largest {
            Some((_, w, h)) => (*w, *h),
            None => (item.width.max(1), item.height.max(1)),
        };
        Card {
            src: pictures.smallest,
            srcset: pictures.srcset,
            width,
            height,
            title: item.title.clone().unwrap_or_default(),
            duration: item.duration.map(super::item::clock),
            thumbhash: item.thumbhash.clone().unwrap_or_default(),
            visibility: item.visibility.as_str().to_string(),
            id: item.id,
            kind: item.kind,
            status: item.status,
        }
    }

    pub fn label(&self) -> String {
        super::label(&self.title, &self.kind)
    }
}

#[derive(Template)]
#[template(path = "library.html")]
struct LibraryPage {
    shell: Shell,
    cards: Vec<Card>,
    next: Option<String>,
    kind: String,
    visibility: String,
}

#[derive(Template)]
#[template(path = "library_cards.html")]
struct LibraryCards {
    cards: Vec<Card>,
    next: Option<String>,
}

const KINDS: &[&str] = &["image", "video", "audio"];
const VISIBILITIES: &[&str] = &["private", "friends", "unlisted", "public"];

async fn library(
    State(state): State<AppState>,
    mut visit: Visit,
    Query(q): Query<LibraryQuery>,
) -> Response {
    let Some(person) = visit.person.as_ref() else {
        return Redirect::to("/signin").into_response();
    };
    let kind = q.kind.filter(|k| KINDS.contains(&k.as_str()));
    let visibility = q.visibility.filter(|v| VISIBILITIES.contains(&v.as_str()));
    let loaded = async {
        let page = Page::parse(Some(PAGE), q.cursor)?;
        let db = state.db.reader();
        let mut rows = repo::items_of_owner_filtered(
            &db,
            &person.user_id,
            page.cursor.as_deref(),
            page.fetch(),
            kind.as_deref(),
            visibility.as_deref(),
        )
        .await?;
        let next = page.finish(&mut rows, |r| r.id.clone());
        let mut conn = db.pool.acquire().await?;
        let items = items_json(&state, &mut conn, rows).await?;
        Ok::<_, AppError>((items.into_iter().map(Card::of).collect::<Vec<_>>(), next))
    }
    .await;
    let (cards, next) = match loaded {
        Ok(found) => found,
        Err(e) => return error_page(visit.person.take(), e),
    };
    let next = next.map(|cursor| {
        let mut url = url::form_urlencoded::Serializer::new(String::new());
        url.append_pair("cursor", &cursor);
        if let Some(k) = &kind {
            url.append_pair("kind", k);
        }
        if let Some(v) = &visibility {
            url.append_pair("visibility", v);
        }
        format!("/library?{}", url.finish())
    });
    if q.fragment {
        return visit.render(&state, StatusCode::OK, LibraryCards { cards, next });
    }
    let page = LibraryPage {
        shell: visit.shell(&state, "Library", "library"),
        cards,
        next,
        kind: kind.unwrap_or_default(),
        visibility: visibility.unwrap_or_default(),
    };
    visit.render(&state, StatusCode::OK, page)
}

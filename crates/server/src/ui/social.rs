//! The social pages: the feed (the signed-in home), friends and requests, profiles with
//! their follow, friend, block and message buttons, albums (grid, slideshow, members,
//! share links), the inbox, notifications, and the share-link page anonymous visitors
//! open. Each renders its frame here; `social.js` fills it from the JSON API, so what a
//! page can do a program with a session can do too. The share-link page needs no
//! account; every other page sends a signed-out visitor to sign in.

use askama::Template;
use axum::extract::Path;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

use super::{Shell, Visit};
use crate::AppState;

pub fn pages() -> Router<AppState> {
    Router::new()
        .route("/feed", get(feed))
        .route("/friends", get(friends))
        .route("/u/{name}", get(profile))
        .route("/albums", get(albums))
        .route("/albums/{id}", get(album))
        .route("/inbox", get(inbox))
        .route("/inbox/{id}", get(conversation))
        .route("/notifications", get(notifications))
        .route("/s/{slug}", get(shared))
}

#[derive(Template)]
#[template(path = "social.html")]
struct SocialPage {
    shell: Shell,
    /// Which view `social.js` draws: `feed`, `friends`, `profile`, `albums`, `album`,
    /// `inbox`, `conversation`, `notifications` or `shared`.
    view: &'static str,
    heading: String,
    /// The user name, album, conversation or slug the view is of.
    subject: String,
}

fn page(
    state: &AppState,
    mut visit: Visit,
    view: &'static str,
    heading: &str,
    subject: String,
    section: &'static str,
) -> Response {
    let signed_in = visit.person.is_some();
    if !signed_in && view != "shared" {
        return Redirect::to("/signin").into_response();
    }
    let page = SocialPage {
        shell: visit.shell(state, heading, section),
        view,
        heading: heading.to_string(),
        subject,
    };
    visit.render(state, StatusCode::OK, page)
}

/// The feed, also served at `/` for a signed-in visitor.
pub async fn feed(State(state): State<AppState>, visit: Visit) -> Response {
    page(&state, visit, "feed", "Feed", String::new(), "feed")
}

async fn friends(State(state): State<AppState>, visit: Visit) -> Response {
    page(
        &state,
        visit,
        "friends",
        "Friends",
        String::new(),
        "friends",
    )
}

async fn profile(
    State(state): State<AppState>,
    visit: Visit,
    Path(name): Path<String>,
) -> Response {
    let heading = name.clone();
    page(&state, visit, "profile", &heading, name, "friends")
}

async fn albums(State(state): State<AppState>, visit: Visit) -> Response {
    page(&state, visit, "albums", "Albums", String::new(), "albums")
}

async fn album(State(state): State<AppState>, visit: Visit, Path(id): Path<String>) -> Response {
    page(&state, visit, "album", "Album", id, "albums")
}

async fn inbox(State(state): State<AppState>, visit: Visit) -> Response {
    page(&state, visit, "inbox", "Inbox", String::new(), "inbox")
}

async fn conversation(
    State(state): State<AppState>,
    visit: Visit,
    Path(id): Path<String>,
) -> Response {
    page(&state, visit, "conversation", "Conversation", id, "inbox")
}

async fn notifications(State(state): State<AppState>, visit: Visit) -> Response {
    let heading = "Notifications";
    page(
        &state,
        visit,
        "notifications",
        heading,
        String::new(),
        "notifications",
    )
}

async fn shared(State(state): State<AppState>, visit: Visit, Path(slug): Path<String>) -> Response {
    page(&state, visit, "shared", "Shared with you", slug, "")
}

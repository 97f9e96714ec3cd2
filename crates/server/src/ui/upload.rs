//! The upload page: files and folders by drag and drop or by picker, sent with
//! tus-js-client to the resumable uploads API (per-file and total progress, pause and
//! resume, retries after a dropped connection, resumption after a reload), then each
//! item's processing followed live on the event stream until it is ready.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

use super::{Shell, Visit};
use crate::AppState;

pub fn pages() -> Router<AppState> {
    Router::new().route("/upload", get(upload_page))
}

#[derive(Template)]
#[template(path = "upload.html")]
struct UploadPage {
    shell: Shell,
    /// The largest upload the server takes, for the page to refuse bigger files early.
    max_bytes: u64,
    /// Bytes per PATCH: what a retry may have to send again.
    chunk_bytes: u64,
}

/// Bytes per PATCH request: small enough that a dropped connection costs little, large
/// enough that request overhead does not matter.
const CHUNK: u64 = 8 * 1024 * 1024;

async fn upload_page(State(state): State<AppState>, mut visit: Visit) -> Response {
    if visit.person.is_none() {
        return Redirect::to("/signin").into_response();
    }
    let page = UploadPage {
        shell: visit.shell(&state, "Upload", "upload"),
        max_bytes: state.settings.limits.max_upload_bytes,
        chunk_bytes: CHUNK,
    };
    visit.render(&state, StatusCode::OK, page)
}

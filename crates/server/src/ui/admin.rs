//! The admin page, for administrators only: storage and queue figures, users (role,
//! disable, quota), jobs and dead letters (retry, cancel), the audit log and the nodes of
//! the service registry — sections `admin.js` fills from the admin JSON API.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

use super::{error_page, Shell, Visit};
use crate::kernel::error::AppError;
use crate::AppState;

pub fn pages() -> Router<AppState> {
    Router::new().route("/admin", get(admin_page))
}

#[derive(Template)]
#[template(path = "admin.html")]
struct AdminPage {
    shell: Shell,
    /// The job states, for the jobs filter.
    job_states: Vec<&'static str>,
}

async fn admin_page(State(state): State<AppState>, mut visit: Visit) -> Response {
    match visit.person.as_ref() {
        None => return Redirect::to("/signin").into_response(),
        Some(p) if !p.is_admin => {
            return error_page(
                visit.person.take(),
                AppError::forbidden("this page is for administrators"),
            )
        }
        Some(_) => {}
    }
    let page = AdminPage {
        shell: visit.shell(&state, "Administration", "admin"),
        job_states: queue::JobState::ALL.iter().map(|s| s.as_str()).collect(),
    };
    visit.render(&state, StatusCode::OK, page)
}

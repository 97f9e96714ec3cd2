//! The account page: the profile, rendered here, and the sections `account.js` fills from
//! the JSON API — sessions (revoke), API keys (create with scopes, shown once; revoke),
//! password, the default video watermark, webhooks with their delivery log, and deleting
//! the account. What the page can do, a program with a session can do too.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

use super::{bytes, error_page, Shell, Visit};
use crate::identity::users;
use crate::kernel::error::AppError;
use crate::kernel::time::rfc3339;
use crate::AppState;

pub fn pages() -> Router<AppState> {
    Router::new().route("/account", get(account_page))
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    shell: Shell,
    user: Profile,
    /// The scopes an API key of this user may have.
    scopes: Vec<&'static str>,
    /// Every event type a webhook may ask for.
    event_types: Vec<&'static str>,
}

struct Profile {
    username: String,
    email: String,
    email_verified: bool,
    role: &'static str,
    joined: String,
    items: i64,
    used: String,
    quota: Option<String>,
    /// Percent of the quota in use, when there is one.
    used_percent: Option<i64>,
    has_password: bool,
}

async fn account_page(State(state): State<AppState>, mut visit: Visit) -> Response {
    let Some(person) = visit.person.as_ref() else {
        return Redirect::to("/signin").into_response();
    };
    let user = match users::find_by_id(&state.db, &person.user_id).await {
        Ok(Some(user)) => user,
        Ok(None) => return Redirect::to("/signin").into_response(),
        Err(e) => return error_page(visit.person.take(), AppError::from(e)),
    };
    let scopes = crate::identity::Scopes::of_user(user.is_admin).names();
    let mut event_types: Vec<&'static str> = state.outbox.types.to_vec();
    event_types.sort_unstable();
    let profile = Profile {
        email: user.email.clone().unwrap_or_default(),
        email_verified: user.email_verified,
        role: if user.is_admin {
            "administrator"
        } else {
            "user"
        },
        joined: rfc3339(user.created_at),
        items: user.item_count,
        used: bytes(user.used_bytes),
        quota: user.quota_bytes.map(bytes),
        used_percent: user
            .quota_bytes
            .filter(|q| *q > 0)
            .map(|q| (user.used_bytes.saturating_mul(100) / q).min(100)),
        has_password: !user.password_hash.is_empty(),
        username: user.username,
    };
    let page = AccountPage {
        shell: visit.shell(&state, "Account", "account"),
        user: profile,
        scopes,
        event_types,
    };
    visit.render(&state, StatusCode::OK, page)
}

//! The web UI: server-rendered pages (askama templates in `ui/templates`) with a little
//! JavaScript of our own and the npm libraries in `ui/package.json`, all built into the
//! binary (`assets`). It sits above every other domain and acts only through their
//! functions and the JSON API, so a page can do nothing a program cannot.
//!
//! Signing in gives the browser a session cookie (`identity::browser`); every form and
//! every script request that changes state carries the CSRF token of that cookie. Pages
//! are sent with a strict Content-Security-Policy: scripts and styles only from this
//! origin, none inline.

mod account;
mod admin;
pub mod assets;
mod embed;
mod item;
mod library;
pub mod settings;
mod sign_in;
mod social;
mod upload;

use askama::Template;
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use utoipa_axum::router::OpenApiRouter;

use crate::identity::browser::{self, PRE_COOKIE, SESSION_COOKIE};
use crate::identity::Caller;
use crate::kernel::error::AppError;
use crate::AppState;

/// The UI's registration.
pub struct Ui;

impl crate::domain::Domain for Ui {
    fn name(&self) -> &'static str {
        "ui"
    }

    fn routes(&self) -> OpenApiRouter<AppState> {
        OpenApiRouter::new()
            .merge(item::routes())
            .merge(embed::routes())
    }

    fn pages(&self, state: &AppState) -> Router<AppState> {
        let pages = Router::new()
            .route("/", get(home))
            .merge(sign_in::pages())
            .merge(library::pages())
            .merge(upload::pages())
            .merge(item::pages())
            .merge(account::pages())
            .merge(admin::pages())
            .merge(social::pages())
            .layer(axum::middleware::from_fn(page_headers));
        // Embeds are framed by other sites: their own headers.
        pages
            .merge(embed::pages(state))
            .layer(tower_http::compression::CompressionLayer::new())
            // Assets are compressed at build time and cached for good: no page headers.
            .route("/assets/{file}", get(assets::get_asset))
    }
}

/// The Content-Security-Policy of every page: nothing inline, nothing from elsewhere
/// (hls.js plays through `blob:` media and may start a `blob:` worker; thumbhash
/// placeholders are `data:` images).
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; \
    worker-src 'self' blob:; font-src 'self'; object-src 'none'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

/// Adds the security headers every page carries; a page is personal, so never cached.
async fn page_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    security_headers(response.headers_mut(), CSP, true);
    response
}

/// The CSP `csp`, `nosniff`, the referrer and opener policies, `X-Frame-Options: DENY`
/// unless the page may be `framed`, and `no-store` unless the page set its own caching.
fn security_headers(h: &mut HeaderMap, csp: &str, deny_framing: bool) {
    // A policy that is not a valid header value falls back to the strictest one: a page
    // is never sent without a CSP.
    let value = HeaderValue::from_str(csp).unwrap_or(HeaderValue::from_static(CSP));
    h.insert(header::CONTENT_SECURITY_POLICY, value);
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if deny_framing {
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        h.insert(
            header::HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        );
    }
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
}

/// An item's WebP renditions for `<img>`: the `srcset` (`url widthw, …`), the smallest
/// (the plain `src`) and the largest with its size, each URL with the share token if any.
pub struct Pictures {
    pub srcset: String,
    pub smallest: Option<String>,
    pub largest: Option<(String, i64, i64)>,
}

impl Pictures {
    pub fn of(item: &crate::media::item::MediaItem, token: Option<&str>) -> Pictures {
        let url = |u: &str| crate::media::access::with_token(u, token);
        let mut webp: Vec<_> = item
            .variants
            .iter()
            .filter(|v| v.format == "webp")
            .collect();
        webp.sort_by_key(|v| v.width);
        Pictures {
            srcset: webp
                .iter()
                .map(|v| format!("{} {}w", url(&v.url), v.width))
                .collect::<Vec<_>>()
                .join(", "),
            smallest: webp.first().map(|v| url(&v.url)),
            largest: webp.last().map(|v| (url(&v.url), v.width, v.height)),
        }
    }
}

/// What a person calls an item: its title, or "Untitled image".
pub fn label(title: &str, kind: &str) -> String {
    if title.is_empty() {
        format!("Untitled {kind}")
    } else {
        title.to_string()
    }
}

/// A size as people read it: `12.3 MB`.
pub fn bytes(n: i64) -> String {
    let n = n as f64;
    match n {
        n if n >= 1e9 => format!("{:.1} GB", n / 1e9),
        n if n >= 1e6 => format!("{:.1} MB", n / 1e6),
        n if n >= 1e3 => format!("{:.0} kB", n / 1e3),
        n => format!("{n} bytes"),
    }
}

/// The signed-in person a page is for.
pub struct Person {
    pub user_id: String,
    pub username: String,
    pub is_admin: bool,
    pub caller: Caller,
}

/// What the page layout (`base.html`) needs: title, the CSRF token for its forms and
/// scripts, and who is signed in.
pub struct Shell {
    pub title: String,
    pub csrf: String,
    pub person: Option<Person>,
    /// The nav entry to mark as current.
    pub section: &'static str,
}

impl Shell {
    pub fn asset(&self, name: &str) -> String {
        assets::url(name)
    }

    pub fn username(&self) -> &str {
        self.person.as_ref().map_or("", |p| p.username.as_str())
    }

    pub fn is_admin(&self) -> bool {
        self.person.as_ref().is_some_and(|p| p.is_admin)
    }

    pub fn signed_in(&self) -> bool {
        self.person.is_some()
    }

    pub fn current(&self, section: &str) -> &'static str {
        if self.section == section {
            "page"
        } else {
            "false"
        }
    }
}

/// A browser's visit: its session (if signed in) and the CSRF binding of its cookie. A
/// browser without either cookie is given a pre-session cookie by [`Visit::render`].
pub struct Visit {
    pub person: Option<Person>,
    binding: Option<String>,
    new_pre: Option<String>,
}

impl FromRequestParts<AppState> for Visit {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let person = match browser::cookie(&parts.headers, SESSION_COOKIE) {
            Some(secret) => match state.identity.auth.authenticate_browser(secret).await {
                Ok((caller, username)) => Some(Person {
                    user_id: caller.user_id.clone(),
                    username,
                    is_admin: caller.is_admin,
                    caller,
                }),
                // An ended session: forget the cookie and carry on signed out.
                Err(AppError::Client { .. }) => None,
                Err(e) => return Err(error_page(None, e)),
            },
            None => None,
        };
        // The same cookie `check_csrf` will bind to (an ended session's too, until a
        // sign-in replaces it), so the forms of this page pass.
        let (binding, new_pre) = match browser::binding(&parts.headers) {
            Some(b) => (Some(b.to_string()), None),
            None => {
                let pre = browser::new_pre_secret();
                (Some(pre.clone()), Some(pre))
            }
        };
        Ok(Visit {
            person,
            binding,
            new_pre,
        })
    }
}

impl Visit {
    /// The layout for a page titled `title`.
    pub fn shell(&mut self, state: &AppState, title: &str, section: &'static str) -> Shell {
        Shell {
            title: title.to_string(),
            csrf: self
                .binding
                .as_deref()
                .map(|b| browser::csrf_token(state, b))
                .unwrap_or_default(),
            person: self.person.take(),
            section,
        }
    }

    /// The page, with a pre-session cookie if this browser had none.
    pub fn render(&self, state: &AppState, status: StatusCode, page: impl Template) -> Response {
        let mut response = html(status, page);
        if let Some(pre) = &self.new_pre {
            response.headers_mut().append(
                header::SET_COOKIE,
                browser::set_cookie(state, PRE_COOKIE, Some(pre)),
            );
        }
        response
    }
}

fn html(status: StatusCode, page: impl Template) -> Response {
    match page.render() {
        Ok(body) => (status, Html(body)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "rendering a page");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal server error").into_response()
        }
    }
}

/// The status and the words a person sees for an error: the API's own message for
/// anything they caused, never internals.
pub fn shown(error: AppError) -> (StatusCode, String) {
    match error {
        AppError::Client {
            status, message, ..
        } => (status, message),
        AppError::TooMany { message, .. } => (StatusCode::TOO_MANY_REQUESTS, message),
        AppError::Busy { .. } => (
            StatusCode::TOO_MANY_REQUESTS,
            "the server is busy; try again in a moment".into(),
        ),
        AppError::Internal(err) => {
            tracing::error!(error = ?err, "internal error on a page");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "something went wrong on the server; try again later".into(),
            )
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    shell: Shell,
    message: String,
}

/// A whole page for an error.
pub fn error_page(person: Option<Person>, error: AppError) -> Response {
    let (status, message) = shown(error);
    let shell = Shell {
        title: status.canonical_reason().unwrap_or("Error").to_string(),
        csrf: String::new(),
        person,
        section: "",
    };
    html(status, ErrorPage { shell, message })
}

/// `/`: the feed when signed in, else the sign-in page.
async fn home(state: axum::extract::State<AppState>, visit: Visit) -> Response {
    match visit.person {
        Some(_) => social::feed(state, visit).await,
        None => Redirect::to("/signin").into_response(),
    }
}

/// The CSRF token of a form must match the browser's cookie.
pub fn check_form(state: &AppState, headers: &HeaderMap, token: &str) -> Result<(), AppError> {
    browser::check_csrf(state, headers, Some(token))
}

//! Sign in, sign up and sign out: forms that work without JavaScript, checked against
//! the browser's CSRF token, through identity's own functions (rate limits, lockout,
//! audit), ending in a session cookie. Also the end of an OpenID sign-in (the one-time
//! code from the provider's return, traded for a browser session) and the password
//! reset page.

use askama::Template;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

use super::{check_form, shown, Shell, Visit};
use crate::identity::auth::ClientInfo;
use crate::identity::browser::{self, PRE_COOKIE, SESSION_COOKIE};
use crate::identity::{self, AuditEvent, RegisterRequest};
use crate::AppState;

pub fn pages() -> Router<AppState> {
    Router::new()
        .route("/signin", get(sign_in_page).post(sign_in))
        .route("/signup", get(sign_up_page).post(sign_up))
        .route("/signout", post(sign_out))
        .route("/signin/oidc", get(oidc_page).post(oidc_finish))
        .route("/reset-password", get(reset_page))
}

/// Where an OpenID sign-in started from the sign-in page returns, its code in the
/// fragment.
const OIDC_RETURN: &str = "/signin/oidc";

#[derive(Template)]
#[template(path = "signin.html")]
struct SignInPage {
    shell: Shell,
    error: Option<String>,
    username: String,
    open_registration: bool,
    /// The configured OpenID providers: a button each.
    providers: Vec<identity::oidc::ProviderView>,
}

#[derive(Template)]
#[template(path = "signin_oidc.html")]
struct OidcPage {
    shell: Shell,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "reset.html")]
struct ResetPage {
    shell: Shell,
}

#[derive(Template)]
#[template(path = "signup.html")]
struct SignUpPage {
    shell: Shell,
    error: Option<String>,
    username: String,
    email: String,
}

impl SignInPage {
    fn new(state: &AppState, visit: &mut Visit, error: Option<String>, username: String) -> Self {
        SignInPage {
            shell: visit.shell(state, "Sign in", "signin"),
            error,
            username,
            open_registration: state.settings.auth.open_registration,
            providers: state
                .identity
                .oidc
                .views()
                .into_iter()
                .map(|mut p| {
                    p.login_url = format!("{}?redirect={OIDC_RETURN}", p.login_url);
                    p
                })
                .collect(),
        }
    }
}

impl SignUpPage {
    fn new(state: &AppState, visit: &mut Visit, error: Option<String>, form: SignUpForm) -> Self {
        SignUpPage {
            shell: visit.shell(state, "Create an account", "signup"),
            error,
            username: form.username,
            email: form.email,
        }
    }
}

#[derive(Deserialize)]
struct SignInForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

#[derive(Deserialize, Default)]
struct SignUpForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    email: String,
}

#[derive(Deserialize)]
struct CsrfOnly {
    #[serde(rename = "_csrf", default)]
    csrf: String,
}

async fn sign_in_page(State(state): State<AppState>, mut visit: Visit) -> Response {
    if visit.person.is_some() {
        return Redirect::to("/library").into_response();
    }
    let page = SignInPage::new(&state, &mut visit, None, String::new());
    visit.render(&state, StatusCode::OK, page)
}

async fn sign_in(
    State(state): State<AppState>,
    mut visit: Visit,
    client: ClientInfo,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    let done = async {
        check_form(&state, &headers, &form.csrf)?;
        let user = identity::check_password_sign_in(&state, &client, &form.username, form.password)
            .await?;
        start_session(&state, &user.id, "password", &client).await
    }
    .await;
    match done {
        Ok(secret) => signed_in(&state, &secret),
        Err(e) => {
            let (status, message) = shown(e);
            let page = SignInPage::new(&state, &mut visit, Some(message), form.username);
            visit.render(&state, status, page)
        }
    }
}

/// Opens a browser session after a password check, a sign-up or an OpenID sign-in
/// (`method`), audited as a login.
async fn start_session(
    state: &AppState,
    user_id: &str,
    method: &str,
    client: &ClientInfo,
) -> Result<String, crate::kernel::error::AppError> {
    let secret = browser::start(state, user_id, method, client).await?;
    AuditEvent::by_user("login_succeeded", user_id, client)
        .detail(serde_json::json!({ "method": method, "browser": true }))
        .record(&state.db)
        .await;
    Ok(secret)
}

/// To the library, with the session cookie set and the pre-session one dropped.
fn signed_in(state: &AppState, secret: &str) -> Response {
    let mut response = Redirect::to("/library").into_response();
    let h = response.headers_mut();
    h.append(
        header::SET_COOKIE,
        browser::set_cookie(state, SESSION_COOKIE, Some(secret)),
    );
    h.append(
        header::SET_COOKIE,
        browser::set_cookie(state, PRE_COOKIE, None),
    );
    response
}

async fn sign_up_page(State(state): State<AppState>, mut visit: Visit) -> Response {
    if visit.person.is_some() {
        return Redirect::to("/library").into_response();
    }
    let page = SignUpPage::new(&state, &mut visit, None, SignUpForm::default());
    visit.render(&state, StatusCode::OK, page)
}

async fn sign_up(
    State(state): State<AppState>,
    mut visit: Visit,
    client: ClientInfo,
    headers: HeaderMap,
    Form(form): Form<SignUpForm>,
) -> Response {
    let done = async {
        check_form(&state, &headers, &form.csrf)?;
        let req = RegisterRequest {
            username: form.username.clone(),
            password: form.password.clone(),
            email: Some(form.email.trim().to_string()).filter(|e| !e.is_empty()),
        };
        let user = identity::sign_up(&state, &client, req).await?;
        start_session(&state, &user.id, "password", &client).await
    }
    .await;
    match done {
        Ok(secret) => signed_in(&state, &secret),
        Err(e) => {
            let (status, message) = shown(e);
            let page = SignUpPage::new(&state, &mut visit, Some(message), form);
            visit.render(&state, status, page)
        }
    }
}

/// Ends the browser's session (the row is revoked, so the cookie is dead everywhere).
async fn sign_out(
    State(state): State<AppState>,
    visit: Visit,
    headers: HeaderMap,
    Form(form): Form<CsrfOnly>,
) -> Response {
    if let Err(e) = check_form(&state, &headers, &form.csrf) {
        return super::error_page(visit.person, e);
    }
    if let Some(id) = visit.person.as_ref().and_then(|p| p.caller.session_id()) {
        if let Err(e) = identity::sessions::revoke(&state.db, id, "signed_out").await {
            return super::error_page(None, e.into());
        }
        state.identity.auth.forget();
    }
    let mut response = Redirect::to("/signin").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        browser::set_cookie(&state, SESSION_COOKIE, None),
    );
    response
}

/// `GET /signin/oidc`: the page an OpenID sign-in returns to. Its script moves the code
/// from the fragment (never sent to servers, never in logs) into the form and sends it.
async fn oidc_page(State(state): State<AppState>, mut visit: Visit) -> Response {
    let page = OidcPage {
        shell: visit.shell(&state, "Signing in", "signin"),
        error: None,
    };
    visit.render(&state, StatusCode::OK, page)
}

#[derive(Deserialize)]
struct CodeForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    #[serde(default)]
    code: String,
}

/// `POST /signin/oidc`: trades the one-time code for a browser session.
async fn oidc_finish(
    State(state): State<AppState>,
    mut visit: Visit,
    client: ClientInfo,
    headers: HeaderMap,
    Form(form): Form<CodeForm>,
) -> Response {
    let done = async {
        check_form(&state, &headers, &form.csrf)?;
        let (user_id, method) = identity::oidc::redeem(&state, form.code.trim()).await?;
        start_session(&state, &user_id, &method, &client).await
    }
    .await;
    match done {
        Ok(secret) => signed_in(&state, &secret),
        Err(e) => {
            let (status, message) = shown(e);
            let page = OidcPage {
                shell: visit.shell(&state, "Signing in", "signin"),
                error: Some(message),
            };
            visit.render(&state, status, page)
        }
    }
}

/// `GET /reset-password`: asks for a reset link, or, opened from one (the token in the
/// fragment), sets the new password — both through the JSON API.
async fn reset_page(State(state): State<AppState>, mut visit: Visit) -> Response {
    let page = ResetPage {
        shell: visit.shell(&state, "Reset your password", "signin"),
    };
    visit.render(&state, StatusCode::OK, page)
}

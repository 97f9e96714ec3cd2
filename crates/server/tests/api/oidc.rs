//! OpenID Connect sign-in end to end against a real local provider (npm oidc-provider).
//!
//! `scripts/with-test-services.sh` (run by `make test`) starts two providers: GOOD signs
//! ID tokens with a key it publishes, ROGUE with a key its JWKS lacks. Each app here has
//! three entries: `good` (client `framehouse`), `bad` (client `framehouse-badnonce` on
//! GOOD, whose ID tokens carry a nonce Framehouse never sent) and `rogue` (on ROGUE).
//! The provider logs in the account named by `login_hint` without a form.

use std::collections::HashMap;

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use reqwest::{Client, Response, StatusCode, Url};
use serde_json::{json, Value};
use server::settings::{OidcProviderSettings, Secret};

use crate::both_backends;
use crate::helpers::{error_code, service_env, spawn_app_with, Backend, TestApp};
use crate::ui::csrf_of;

const PASSWORD: &str = "correct horse battery";

/// The GOOD and ROGUE issuer URLs of the test providers.
fn issuers() -> (String, String) {
    (
        service_env("FRAMEHOUSE_TEST_OIDC_GOOD"),
        service_env("FRAMEHOUSE_TEST_OIDC_ROGUE"),
    )
}

fn provider(id: &str, issuer: &str, client_id: &str) -> OidcProviderSettings {
    OidcProviderSettings {
        id: id.into(),
        issuer: issuer.into(),
        client_id: client_id.into(),
        client_secret: Secret::new("framehouse-secret"),
        scopes: ["openid", "email", "profile", "groups"]
            .map(String::from)
            .to_vec(),
        ..OidcProviderSettings::default()
    }
}

/// An app with the `good`, `bad` and `rogue` providers, `tweak` applied to `good`.
async fn oidc_app(backend: Backend, tweak: impl FnOnce(&mut OidcProviderSettings)) -> TestApp {
    let (good_issuer, rogue_issuer) = issuers();
    let mut good = provider("good", &good_issuer, "framehouse");
    tweak(&mut good);
    let providers = vec![
        good,
        provider("bad", &good_issuer, "framehouse-badnonce"),
        provider("rogue", &rogue_issuer, "framehouse"),
    ];
    spawn_app_with(backend, move |s| s.auth.oidc = providers).await
}

/// A browser: keeps cookies (the provider's and Framehouse's) and follows redirects,
/// except one to a URL `stop` picks, whose redirect response is then returned.
fn browser(stop: impl Fn(&Url) -> bool + Send + Sync + 'static) -> Client {
    Client::builder()
        .cookie_store(true)
        .redirect(Policy::custom(move |attempt| {
            if stop(attempt.url()) {
                attempt.stop()
            } else if attempt.previous().len() > 10 {
                attempt.error("too many redirects")
            } else {
                attempt.follow()
            }
        }))
        .build()
        .unwrap()
}

/// Opens `provider`'s login URL with `query` in `client` and follows the flow.
async fn start(app: &TestApp, client: &Client, provider: &str, query: &[(&str, &str)]) -> Response {
    client
        .get(app.url(&format!("/api/v1/auth/oidc/{provider}/login")))
        .query(query)
        .send()
        .await
        .unwrap()
}

/// Signs in at `provider` as its account `hint` in a fresh browser; the callback's answer.
async fn sign_in(app: &TestApp, provider: &str, hint: &str) -> Response {
    start(app, &browser(|_| false), provider, &[("login_hint", hint)]).await
}

/// The JSON of a 200 callback.
async fn tokens(resp: Response) -> Value {
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    assert_eq!(status, StatusCode::OK, "callback answered {body}");
    assert!(
        body["refresh_token"].is_string(),
        "no refresh token: {body}"
    );
    body
}

async fn account(app: &TestApp, token: &str) -> Value {
    let resp = app.get(Some(token), "/api/v1/account").await;
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.unwrap()
}

/// Signs in as `hint` and returns the account the tokens belong to.
async fn signed_in_account(app: &TestApp, provider: &str, hint: &str) -> Value {
    let body = tokens(sign_in(app, provider, hint).await).await;
    account(app, body["access_token"].as_str().unwrap()).await
}

/// Registers a local account with an email; returns its id.
async fn register_local(app: &TestApp, username: &str, email: &str) -> String {
    let body = json!({ "username": username, "password": PASSWORD, "email": email });
    let resp = app
        .client
        .post(app.url("/api/v1/auth/register"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED, "register {username}");
    let user: Value = resp.json().await.unwrap();
    user["id"].as_str().unwrap().to_string()
}

/// Marks the account's email as confirmed, as an operator does with
/// `framehouse user create --email`; registration alone verifies nothing.
async fn mark_verified(app: &TestApp, user_id: &str) {
    sqlx::query("UPDATE users SET email_verified = 1 WHERE id = $1")
        .bind(user_id)
        .execute(&app.state.db.pool)
        .await
        .unwrap();
}

/// `SELECT COUNT(*)` with one bound text parameter.
async fn count_where(app: &TestApp, sql: &str, param: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(sql)
        .bind(param)
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap()
}

async fn audits(app: &TestApp, kind: &str, user_id: &str) -> i64 {
    sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM audit_log WHERE kind = $1 AND user_id = $2")
        .bind(kind)
        .bind(user_id)
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap()
}

async fn first_sign_in_registers_the_account_and_the_next_finds_it(backend: Backend) {
    let app = oidc_app(backend, |_| {}).await;
    let first = tokens(sign_in(&app, "good", "carol").await).await;
    let me = account(&app, first["access_token"].as_str().unwrap()).await;
    assert_eq!(me["username"], "carol");
    assert_eq!(me["email"], "carol@example.test");
    assert_eq!(me["role"], "user");
    assert_eq!(me["has_password"], false);
    let id = me["id"].as_str().unwrap();
    let (user_id, email): (String, Option<String>) = sqlx::query_as(
        "SELECT user_id, email FROM identities WHERE provider = 'good' AND subject = 'carol'",
    )
    .fetch_one(&app.state.db.pool)
    .await
    .unwrap();
    assert_eq!(
        (user_id.as_str(), email.as_deref()),
        (id, Some("carol@example.test"))
    );
    let method: String = sqlx::query_scalar("SELECT method FROM sessions WHERE id = $1")
        .bind(first["session_id"].as_str().unwrap())
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap();
    assert_eq!(method, "oidc:good");
    assert_eq!(audits(&app, "user_registered", id).await, 1);

    let second = tokens(sign_in(&app, "good", "carol").await).await;
    assert_ne!(second["session_id"], first["session_id"]);
    let again = account(&app, second["access_token"].as_str().unwrap()).await;
    assert_eq!(again["id"], id);
    assert_eq!(app.count("users").await, 1);
    assert_eq!(app.count("identities").await, 1);
    assert_eq!(
        count_where(&app, "SELECT COUNT(*) FROM sessions WHERE user_id = $1", id).await,
        2
    );
}

async fn a_verified_email_links_the_local_account_and_an_unverified_one_does_not(backend: Backend) {
    let app = oidc_app(backend, |_| {}).await;
    // Somebody registered first with dave's address: they must not capture his sign-in.
    let mallory = register_local(&app, "mallory", "dave@example.test").await;
    let dave = register_local(&app, "dave", "dave@example.test").await;
    mark_verified(&app, &dave).await;
    let me = signed_in_account(&app, "good", "dave").await;
    assert_eq!(me["id"], dave.as_str());
    assert_eq!(me["has_password"], true);
    assert_eq!(audits(&app, "oidc_linked", &dave).await, 1);
    let linked = "SELECT COUNT(*) FROM identities WHERE subject = 'dave' AND user_id = $1";
    assert_eq!(count_where(&app, linked, &dave).await, 1);
    let captured = "SELECT COUNT(*) FROM identities WHERE user_id = $1";
    assert_eq!(count_where(&app, captured, &mallory).await, 0);
    // The password still works alongside the provider.
    app.login("dave", PASSWORD).await;
    assert_eq!(app.count("users").await, 2);

    let erin = register_local(&app, "unverified-erin", "unverified-erin@example.test").await;
    let other = signed_in_account(&app, "good", "unverified-erin").await;
    assert_ne!(other["id"], erin.as_str());
    assert_eq!(other["email"], Value::Null);
    assert!(
        other["username"]
            .as_str()
            .unwrap()
            .starts_with("unverified-erin-"),
        "{other}"
    );
    assert_eq!(audits(&app, "oidc_linked", &erin).await, 0);
    assert_eq!(
        count_where(
            &app,
            "SELECT COUNT(*) FROM identities WHERE user_id = $1",
            &erin
        )
        .await,
        0
    );
    assert_eq!(app.count("users").await, 4);

    // An administrator's verified address does not let a provider sign in as them.
    let ivan = register_local(&app, "ivan", "ivan@example.test").await;
    mark_verified(&app, &ivan).await;
    sqlx::query("UPDATE users SET is_admin = 1 WHERE id = $1")
        .bind(&ivan)
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    let (status, code) = error_code(sign_in(&app, "good", "ivan").await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::FORBIDDEN, "link_refused")
    );
    assert_eq!(count_where(&app, captured, &ivan).await, 0);
}

async fn without_auto_registration_an_unknown_identity_has_no_account(backend: Backend) {
    let app = oidc_app(backend, |p| p.auto_register = false).await;
    let (status, code) = error_code(sign_in(&app, "good", "olga").await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::FORBIDDEN, "no_account")
    );
    assert_eq!(app.count("users").await, 0);
    assert_eq!(app.count("identities").await, 0);
    assert_eq!(app.count("sessions").await, 0);

    // Linking an existing account by verified email is still allowed.
    let pat = register_local(&app, "pat", "pat@example.test").await;
    mark_verified(&app, &pat).await;
    assert_eq!(
        signed_in_account(&app, "good", "pat").await["id"],
        pat.as_str()
    );
    assert_eq!(app.count("users").await, 1);
}

async fn the_role_follows_the_mapped_group_claim_at_every_sign_in(backend: Backend) {
    let app = oidc_app(backend, |p| {
        p.role_claim = Some("groups".into());
        p.admin_values = vec!["fh-admins".into()];
    })
    .await;
    let body = tokens(sign_in(&app, "good", "admin-frank").await).await;
    let token = body["access_token"].as_str().unwrap();
    let frank = account(&app, token).await;
    assert_eq!(
        (&frank["role"], &frank["is_admin"]),
        (&json!("admin"), &json!(true))
    );
    assert_eq!(
        app.get(Some(token), "/api/v1/admin/users").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        audits(&app, "role_changed", frank["id"].as_str().unwrap()).await,
        1
    );

    let body = tokens(sign_in(&app, "good", "gina").await).await;
    let token = body["access_token"].as_str().unwrap();
    let gina = account(&app, token).await;
    assert_eq!(gina["role"], "user");
    let resp = app.get(Some(token), "/api/v1/admin/users").await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);

    // An admin granted locally is demoted at the next sign-in: the provider decides.
    let gina_id = gina["id"].as_str().unwrap();
    sqlx::query("UPDATE users SET is_admin = 1 WHERE id = $1")
        .bind(gina_id)
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    let again = signed_in_account(&app, "good", "gina").await;
    assert_eq!(again["role"], "user");
    assert_eq!(audits(&app, "role_changed", gina_id).await, 1);
}

async fn a_callback_whose_state_is_not_the_browsers_is_refused(backend: Backend) {
    let app = oidc_app(backend, |_| {}).await;
    let callback_path = "/api/v1/auth/oidc/good/callback";
    let victim = browser(move |url| url.path() == callback_path);
    let resp = start(&app, &victim, "good", &[("login_hint", "ivy")]).await;
    assert!(resp.status().is_redirection(), "{}", resp.status());
    let location = Url::parse(resp.headers()[LOCATION].to_str().unwrap()).unwrap();
    assert!(
        location.as_str().starts_with(&app.url(callback_path)),
        "{location}"
    );
    let params: HashMap<String, String> = location.query_pairs().into_owned().collect();
    let (code, state) = (params["code"].as_str(), params["state"].as_str());
    let callback = |client: &Client, state: &str| {
        client
            .get(app.url(callback_path))
            .query(&[("code", code), ("state", state)])
            .send()
    };

    let tampered = format!(
        "{}{}",
        if state.starts_with('A') { 'B' } else { 'A' },
        &state[1..]
    );
    let (status, err) = error_code(callback(&victim, &tampered).await.unwrap()).await;
    assert_eq!(
        (status, err.as_str()),
        (StatusCode::BAD_REQUEST, "invalid_state")
    );
    // The right state from a browser that did not start the login (no cookie).
    let (status, err) = error_code(callback(&Client::new(), state).await.unwrap()).await;
    assert_eq!(
        (status, err.as_str()),
        (StatusCode::BAD_REQUEST, "invalid_state")
    );
    assert_eq!(app.count("sessions").await, 0);
    assert_eq!(app.count("users").await, 0);

    // The browser that started it still finishes, once: the state is single use.
    tokens(callback(&victim, state).await.unwrap()).await;
    let replay = Client::new()
        .get(app.url(callback_path))
        .query(&[("code", code), ("state", state)])
        .header(COOKIE, format!("fh_oidc_state={state}"))
        .send()
        .await
        .unwrap();
    let (status, err) = error_code(replay).await;
    assert_eq!(
        (status, err.as_str()),
        (StatusCode::BAD_REQUEST, "invalid_state")
    );
    assert_eq!(app.count("sessions").await, 1);
}

async fn an_id_token_with_another_nonce_is_refused(backend: Backend) {
    let app = oidc_app(backend, |_| {}).await;
    let (status, code) = error_code(sign_in(&app, "bad", "jack").await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNAUTHORIZED, "invalid_id_token")
    );
    assert_eq!(app.count("sessions").await, 0);
    assert_eq!(app.count("users").await, 0);
    assert_eq!(app.count("identities").await, 0);
}

async fn an_id_token_signed_by_an_unpublished_key_is_refused(backend: Backend) {
    let app = oidc_app(backend, |_| {}).await;
    let (status, code) = error_code(sign_in(&app, "rogue", "kate").await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNAUTHORIZED, "invalid_id_token")
    );
    assert_eq!(app.count("sessions").await, 0);
    assert_eq!(app.count("users").await, 0);
}

async fn with_a_redirect_the_page_gets_a_one_time_code_for_the_tokens(backend: Backend) {
    let app = oidc_app(backend, |_| {}).await;
    let spa = browser(|url| url.path() == "/app");
    let query = [("login_hint", "hank"), ("redirect", "/app")];
    let resp = start(&app, &spa, "good", &query).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let location = resp.headers()[LOCATION].to_str().unwrap();
    let fragment = location
        .strip_prefix("/app#")
        .unwrap_or_else(|| panic!("redirected to {location}"));
    let params: HashMap<String, String> = Url::parse(&format!("http://x/?{fragment}"))
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    assert!(
        !location.contains("token"),
        "no token in the URL: {location}"
    );
    assert_eq!(
        app.count("sessions").await,
        0,
        "no session before the exchange"
    );
    let exchange = |code: String| {
        app.client
            .post(app.url("/api/v1/auth/oidc/exchange"))
            .json(&json!({ "code": code }))
            .send()
    };
    let resp = exchange(params["code"].clone()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let tokens: Value = resp.json().await.unwrap();
    assert!(tokens["refresh_token"].is_string());
    assert_eq!(
        account(&app, tokens["access_token"].as_str().unwrap()).await["username"],
        "hank"
    );
    // Once only.
    let (status, code) = error_code(exchange(params["code"].clone()).await.unwrap()).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "invalid_code")
    );
    assert_eq!(app.count("sessions WHERE method = 'oidc:good'").await, 1);

    for evil in ["https://evil.example/", "//evil.example/", "app"] {
        let resp = app
            .client
            .get(app.url("/api/v1/auth/oidc/good/login"))
            .query(&[("login_hint", "hank"), ("redirect", evil)])
            .send()
            .await
            .unwrap();
        let (status, code) = error_code(resp).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::BAD_REQUEST, "invalid_redirect"),
            "{evil}"
        );
    }
}

async fn the_providers_are_listed_and_an_unknown_one_is_not_found(backend: Backend) {
    let app = oidc_app(backend, |_| {}).await;
    let resp = app.get(None, "/api/v1/auth/oidc/providers").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let list: Value = resp.json().await.unwrap();
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["bad", "good", "rogue"]);
    assert_eq!(list[1]["login_url"], "/api/v1/auth/oidc/good/login");

    // The login sends the browser to the provider with the state in a cookie.
    let resp = app
        .get(None, "/api/v1/auth/oidc/good/login?login_hint=x")
        .await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let location = resp.headers()[LOCATION].to_str().unwrap();
    let (good_issuer, _) = issuers();
    assert!(
        location.starts_with(&format!("{good_issuer}/auth?")),
        "{location}"
    );
    let cookie = resp.headers()[SET_COOKIE].to_str().unwrap();
    assert!(
        cookie.starts_with("fh_oidc_state=") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    assert_eq!(app.count("oidc_logins").await, 1);

    for path in [
        "/api/v1/auth/oidc/nope/login",
        "/api/v1/auth/oidc/nope/callback?code=c&state=s",
    ] {
        let (status, code) = error_code(app.get(None, path).await).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::NOT_FOUND, "not_found"),
            "{path}"
        );
    }
}

async fn a_disabled_account_cannot_sign_in_through_the_provider(backend: Backend) {
    let app = oidc_app(backend, |_| {}).await;
    let leo = signed_in_account(&app, "good", "leo").await;
    sqlx::query("UPDATE users SET disabled_at = 1 WHERE id = $1")
        .bind(leo["id"].as_str().unwrap())
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    let (status, code) = error_code(sign_in(&app, "good", "leo").await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::FORBIDDEN, "account_disabled")
    );
    assert_eq!(app.count("sessions").await, 1);
}

async fn an_unreachable_provider_is_a_502_and_is_not_asked_again_at_once(backend: Backend) {
    // A port nothing listens on: bind one, then close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down = provider("down", &format!("http://127.0.0.1:{port}"), "framehouse");
    let app = spawn_app_with(backend, move |s| s.auth.oidc = vec![down]).await;
    for _ in 0..3 {
        let resp = app
            .get(None, "/api/v1/auth/oidc/down/login?login_hint=x")
            .await;
        let (status, code) = error_code(resp).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::BAD_GATEWAY, "provider_unavailable")
        );
    }
    assert_eq!(app.count("oidc_logins").await, 0);
}

both_backends!(@gated [cfg_attr(skip_oidc, ignore = "FRAMEHOUSE_TEST_SKIP_OIDC=1")]
    an_unreachable_provider_is_a_502_and_is_not_asked_again_at_once,
    first_sign_in_registers_the_account_and_the_next_finds_it,
    a_verified_email_links_the_local_account_and_an_unverified_one_does_not,
    without_auto_registration_an_unknown_identity_has_no_account,
    the_role_follows_the_mapped_group_claim_at_every_sign_in,
    a_callback_whose_state_is_not_the_browsers_is_refused,
    an_id_token_with_another_nonce_is_refused,
    an_id_token_signed_by_an_unpublished_key_is_refused,
    with_a_redirect_the_page_gets_a_one_time_code_for_the_tokens,
    the_sign_in_pages_button_ends_in_a_browser_session,
    the_providers_are_listed_and_an_unknown_one_is_not_found,
    a_disabled_account_cannot_sign_in_through_the_provider,
);

/// The text of `path` as `browser` gets it.
async fn page_text(app: &TestApp, browser: &Client, path: &str) -> String {
    let resp = browser.get(app.url(path)).send().await.unwrap();
    resp.text().await.unwrap()
}

async fn the_sign_in_pages_button_ends_in_a_browser_session(backend: Backend) {
    let app = oidc_app(backend, |_| {}).await;
    // One browser throughout: its pre-session cookie binds the CSRF token of the form.
    let browser = browser(|url| url.path() == "/signin/oidc");
    let html = page_text(&app, &browser, "/signin").await;
    assert!(html.contains("Sign in with good"), "{html}");
    assert!(html.contains("oidc/good/login?redirect="), "{html}");
    let query = [("login_hint", "ivy"), ("redirect", "/signin/oidc")];
    let resp = start(&app, &browser, "good", &query).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let location = resp.headers()[LOCATION].to_str().unwrap().to_string();
    let code = location
        .strip_prefix("/signin/oidc#code=")
        .unwrap_or_else(|| panic!("redirected to {location}"))
        .to_string();
    // The page the provider returns to: its script posts the code from the fragment.
    let html = page_text(&app, &browser, "/signin/oidc").await;
    assert!(html.contains("/assets/signin."), "{html}");
    let csrf = csrf_of(&html);
    let finish = |csrf: String, code: String| {
        browser
            .post(app.url("/signin/oidc"))
            .form(&[("_csrf", csrf), ("code", code)])
            .send()
    };
    let resp = finish(csrf, code.clone()).await.unwrap();
    assert_eq!(resp.url().path(), "/library", "signed in, to the library");
    assert_eq!(resp.status(), StatusCode::OK);
    let html = resp.text().await.unwrap();
    assert!(
        html.contains(r#"class="username" href="/u/ivy">ivy<"#),
        "{html}"
    );
    assert_eq!(
        app.count("sessions WHERE method = 'browser:oidc:good' AND cookie_hash IS NOT NULL")
            .await,
        1
    );
    // Once only (with the form's token of the new session).
    let html = page_text(&app, &browser, "/signin/oidc").await;
    let resp = finish(csrf_of(&html), code).await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp
        .text()
        .await
        .unwrap()
        .contains("invalid, used or expired"));
}

//! The web UI's server side, over HTTP as a browser sends it: the sign-up and sign-in
//! forms with their CSRF tokens, the session cookie's attributes, the cookie on the JSON
//! API (CSRF header on writes), the security headers, the library's owner scoping, the
//! account and admin pages with the figures and job retries behind them, and the
//! fingerprinted, pre-compressed assets. The browser suite (Chromium) drives the
//! same pages end to end.

use reqwest::header::{HeaderMap, CACHE_CONTROL, CONTENT_ENCODING, SET_COOKIE};
use reqwest::StatusCode;

use crate::fixtures;
use crate::helpers::{spawn_app, Backend, TestApp};

/// A browser's cookie jar for one test: the cookies it was given, sent back by hand so
/// the test sees every `Set-Cookie`.
#[derive(Default)]
struct Jar(Vec<(String, String)>);

impl Jar {
    fn take(&mut self, headers: &HeaderMap) {
        for value in headers.get_all(SET_COOKIE) {
            let text = value.to_str().unwrap();
            let pair = text.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            self.0.retain(|(n, _)| n != name);
            if !value.is_empty() && !text.contains("Max-Age=0") {
                self.0.push((name.to_string(), value.to_string()));
            }
        }
    }

    fn header(&self) -> String {
        self.0
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| n == name)
    }
}

/// The response's status, headers and body, its cookies put in the jar.
async fn kept(jar: &mut Jar, resp: reqwest::Response) -> (StatusCode, HeaderMap, String) {
    jar.take(resp.headers());
    let (status, headers) = (resp.status(), resp.headers().clone());
    (status, headers, resp.text().await.unwrap())
}

/// GETs a page with the jar, keeping its cookies; returns status, headers and body.
async fn page(app: &TestApp, jar: &mut Jar, path: &str) -> (StatusCode, HeaderMap, String) {
    let resp = app
        .client
        .get(app.url(path))
        .header("cookie", jar.header())
        .send()
        .await
        .unwrap();
    kept(jar, resp).await
}

async fn post_form(
    app: &TestApp,
    jar: &mut Jar,
    path: &str,
    form: &[(&str, &str)],
) -> (StatusCode, HeaderMap, String) {
    let resp = app
        .client
        .post(app.url(path))
        .header("cookie", jar.header())
        .form(form)
        .send()
        .await
        .unwrap();
    kept(jar, resp).await
}

/// The CSRF token a page rendered into its `<meta>`.
pub(crate) fn csrf_of(html: &str) -> String {
    let at = html
        .find(r#"name="csrf-token" content=""#)
        .expect("csrf meta")
        + 27;
    html[at..].split('"').next().unwrap().to_string()
}

/// Signs `name` up through the form; returns the browser's jar, signed in.
async fn sign_up(app: &TestApp, name: &str) -> Jar {
    let mut jar = Jar::default();
    let (status, _, html) = page(app, &mut jar, "/signup").await;
    assert_eq!(status, StatusCode::OK);
    let token = csrf_of(&html);
    let form = [
        ("_csrf", token.as_str()),
        ("username", name),
        ("password", "correct horse battery"),
    ];
    let (status, headers, _) = post_form(app, &mut jar, "/signup", &form).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "sign-up redirects");
    assert_eq!(headers["location"], "/library");
    assert!(jar.has("fh_session"), "signed in by a cookie");
    jar
}

crate::both_backends!(
    signing_up_by_the_form_gives_an_httponly_lax_session_cookie_that_the_api_accepts,
    a_form_or_an_api_write_without_the_csrf_token_is_refused,
);

async fn signing_up_by_the_form_gives_an_httponly_lax_session_cookie_that_the_api_accepts(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let mut jar = Jar::default();
    let (status, headers, html) = page(&app, &mut jar, "/signup").await;
    assert_eq!(status, StatusCode::OK);
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["referrer-policy"], "same-origin");
    assert!(!html.contains("<script>"), "no inline script");
    let token = csrf_of(&html);
    let form = [
        ("_csrf", token.as_str()),
        ("username", "ada"),
        ("password", "correct horse battery"),
    ];
    let resp = app
        .client
        .post(app.url("/signup"))
        .header("cookie", jar.header())
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let cookie = (resp.headers().get_all(SET_COOKIE).iter())
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("fh_session="))
        .expect("a session cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "plain http here: {cookie}");
    jar.take(resp.headers());

    // The library, the API and media delivery all know the browser by the cookie.
    let (status, _, html) = page(&app, &mut jar, "/library").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("ada") && html.contains("Nothing here yet"),
        "{html}"
    );
    let resp = app
        .client
        .get(app.url("/api/v1/account"))
        .header("cookie", jar.header())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let account: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(account["username"], "ada");

    // Signing out revokes the session: the same cookie no longer works.
    let (_, _, html) = page(&app, &mut jar, "/library").await;
    let token = csrf_of(&html);
    let old = jar.header();
    let (status, headers, _) = post_form(&app, &mut jar, "/signout", &[("_csrf", &token)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers["location"], "/signin");
    assert!(!jar.has("fh_session"));
    let resp = app
        .client
        .get(app.url("/api/v1/account"))
        .header("cookie", old)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

async fn a_form_or_an_api_write_without_the_csrf_token_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut jar = Jar::default();
    page(&app, &mut jar, "/signup").await;
    let form = [
        ("username", "mallory"),
        ("password", "correct horse battery"),
    ];
    let (status, _, html) = post_form(&app, &mut jar, "/signup", &form).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        html.contains("reload the page"),
        "the API's message is shown: {html}"
    );
    let wrong = [
        ("_csrf", "0000"),
        ("username", "mallory"),
        ("password", "correct horse battery"),
    ];
    let (status, _, _) = post_form(&app, &mut jar, "/signup", &wrong).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM users").await,
        0,
        "no account made"
    );

    // With the cookie, reads need nothing more; writes need the page's token.
    let mut jar = sign_up(&app, "ada").await;
    let item = app
        .upload_ok(
            &app.login("ada", "correct horse battery").await,
            fixtures::png(64, 48),
            "",
        )
        .await;
    let id = item["id"].as_str().unwrap();
    let cookies = jar.header();
    let change = || {
        app.client
            .patch(app.url(&format!("/api/v1/media/{id}")))
            .header("cookie", cookies.clone())
            .json(&serde_json::json!({ "title": "renamed" }))
    };
    let refused = change().send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let (_, code) = crate::helpers::error_code(refused).await;
    assert_eq!(code, "csrf_failed");
    let (_, _, html) = page(&app, &mut jar, "/library").await;
    let token = csrf_of(&html);
    let done = change()
        .header("x-csrf-token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), StatusCode::OK);
    // A token of another browser's cookie is no good either.
    let other = sign_up(&app, "bob").await;
    let resp = app
        .client
        .patch(app.url(&format!("/api/v1/media/{id}")))
        .header("cookie", other.header())
        .header("x-csrf-token", &token)
        .json(&serde_json::json!({ "title": "stolen" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_library_lists_only_the_signed_in_persons_items() {
    let app = spawn_app(Backend::Sqlite).await;
    let mut ada = sign_up(&app, "ada").await;
    let mut bob = sign_up(&app, "bob").await;
    let token = app.login("ada", "correct horse battery").await;
    let item = app
        .upload_ok(&token, fixtures::png(64, 48), "title=sunset")
        .await;
    let id = item["id"].as_str().unwrap().to_string();
    app.wait_processed(&token, &id).await;
    let (_, _, html) = page(&app, &mut ada, "/library").await;
    assert!(
        html.contains(&format!("/items/{id}")) && html.contains("sunset"),
        "{html}"
    );
    assert!(
        html.contains("srcset=") && html.contains("loading=\"lazy\""),
        "{html}"
    );
    // The card carries the item's ThumbHash for its placeholder.
    let item = app.wait_processed(&token, &id).await;
    let hash = item["thumbhash"]
        .as_str()
        .expect("a processed item has a thumbhash");
    assert!(
        html.contains(&format!("data-thumbhash=\"{hash}\"")),
        "{html}"
    );
    let (status, _, html) = page(&app, &mut ada, "/library?kind=video").await;
    assert_eq!(status, StatusCode::OK);
    assert!(!html.contains(&id), "filtered out by kind");
    let (status, _, html) = page(&app, &mut ada, "/library?kind=image&visibility=private").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(&id), "kept by kind and visibility");
    let (status, _, html) = page(&app, &mut ada, "/library?visibility=public").await;
    assert_eq!(status, StatusCode::OK);
    assert!(!html.contains(&id), "filtered out by visibility");
    let (_, _, html) = page(&app, &mut bob, "/library").await;
    assert!(!html.contains(&id), "bob does not see ada's private item");
    let resp = app
        .client
        .get(app.url(&format!("/api/v1/media/{id}")))
        .header("cookie", bob.header())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND, "nor by URL");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assets_are_fingerprinted_precompressed_and_cached_for_good() {
    let app = spawn_app(Backend::Sqlite).await;
    let mut jar = Jar::default();
    let (_, _, html) = page(&app, &mut jar, "/signin").await;
    let at = html.find("/assets/app.").expect("stylesheet link");
    let path = html[at..].split('"').next().unwrap().to_string();
    assert!(
        path.ends_with(".css") && path.len() > "/assets/app..css".len() + 8,
        "{path}"
    );
    let resp = app
        .client
        .get(app.url(&path))
        .header("accept-encoding", "gzip, br")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[CONTENT_ENCODING], "br");
    assert!(resp.headers()[CACHE_CONTROL]
        .to_str()
        .unwrap()
        .contains("immutable"));
    let plain = app.client.get(app.url(&path)).send().await.unwrap();
    assert!(plain.headers().get(CONTENT_ENCODING).is_none());
    assert!(plain.text().await.unwrap().contains("--accent"));
    let missing = app
        .client
        .get(app.url("/assets/app.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        missing.status(),
        StatusCode::NOT_FOUND,
        "only fingerprinted names"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_with_an_ended_session_still_sees_public_media_and_can_sign_in_again() {
    let app = spawn_app(Backend::Sqlite).await;
    let mut jar = sign_up(&app, "ada").await;
    let token = app.login("ada", "correct horse battery").await;
    let item = app
        .upload_ok(&token, fixtures::png(64, 48), "visibility=public")
        .await;
    let id = item["id"].as_str().unwrap().to_string();
    app.wait_processed(&token, &id).await;
    // The session ends elsewhere (revoked from another device); the cookie stays.
    sqlx::query("UPDATE sessions SET revoked_at = 1 WHERE cookie_hash IS NOT NULL")
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    app.state.identity.auth.forget();
    let resp = app
        .client
        .get(app.url(&format!("/media/{id}/thumb.webp")))
        .header("cookie", jar.header())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "a public image loads anyway");
    let (status, _, html) = page(&app, &mut jar, "/signin").await;
    assert_eq!(status, StatusCode::OK);
    let csrf = csrf_of(&html);
    let form = [
        ("_csrf", csrf.as_str()),
        ("username", "ada"),
        ("password", "correct horse battery"),
    ];
    let (status, headers, body) = post_form(&app, &mut jar, "/signin", &form).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "signed in again: {body}");
    assert_eq!(headers["location"], "/library");
    let (_, _, html) = page(&app, &mut jar, "/library").await;
    assert!(html.contains(&format!("/items/{id}")), "{html}");
}

/// Ada's processed PNG with `query` (e.g. `visibility=public`): her token and its id.
async fn ada_item(app: &TestApp, query: &str) -> (String, String) {
    let token = app.user("ada").await;
    let item = app.upload_ok(&token, fixtures::png(64, 48), query).await;
    let id = item["id"].as_str().unwrap().to_string();
    app.wait_processed(&token, &id).await;
    (token, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_answers_any_origin_without_credentials_and_the_api_only_configured_ones() {
    let app = crate::helpers::spawn_app_with(Backend::Sqlite, |s| {
        s.http.cors_origins = vec!["https://app.example".into()];
    })
    .await;
    let (token, id) = ada_item(&app, "visibility=public").await;
    // A preflight for a ranged read of a rendition.
    let resp = app
        .client
        .request(
            reqwest::Method::OPTIONS,
            app.url(&format!("/media/{id}/thumb.webp")),
        )
        .header("origin", "https://blog.example")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "range")
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let h = resp.headers();
    assert_eq!(h["access-control-allow-origin"], "*");
    assert!(h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .contains("range"));
    assert!(h.get("access-control-allow-credentials").is_none());
    let resp = app
        .client
        .get(app.url(&format!("/media/{id}/thumb.webp")))
        .header("origin", "https://blog.example")
        .header("range", "bytes=0-9")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    let h = resp.headers();
    assert_eq!(h["access-control-allow-origin"], "*");
    let exposed = h["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        exposed.contains("content-range") && exposed.contains("content-length"),
        "{exposed}"
    );
    assert_eq!(resp.bytes().await.unwrap().len(), 10);
    // Transforms too.
    let resp = app
        .client
        .get(app.url(&format!("/img/{id}/w_32.png")))
        .header("origin", "https://blog.example")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["access-control-allow-origin"], "*");
    // The API: the configured origin only.
    let api = |origin: &'static str| {
        app.client
            .get(app.url(&format!("/api/v1/media/{id}")))
            .bearer_auth(&token)
            .header("origin", origin)
            .send()
    };
    let allowed = api("https://app.example").await.unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let other = api("https://blog.example").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_share_link_opens_a_private_item_page_and_its_renditions_until_it_expires() {
    let app = spawn_app(Backend::Sqlite).await;
    let (token, id) = ada_item(&app, "").await;
    let mut stranger = Jar::default();
    let (status, _, _) = page(&app, &mut stranger, &format!("/items/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "private");
    let mint = |body: serde_json::Value| {
        app.client
            .post(app.url(&format!("/api/v1/media/{id}/share-link")))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let bad = mint(serde_json::json!({"ttl_secs": 5})).await.unwrap();
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let link: serde_json::Value = mint(serde_json::json!({"ttl_secs": 3600}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = link["url"].as_str().unwrap();
    let path = &url[url.find("/items/").unwrap()..];
    let (status, _, html) = page(&app, &mut stranger, path).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(!html.contains("id=\"edit\""), "no owner panels");
    let img = html.find("id=\"image\" src=\"").unwrap() + 16;
    let src = html[img..].split('"').next().unwrap().replace("&amp;", "&");
    assert!(src.contains("token="), "{src}");
    let resp = app.client.get(app.url(&src)).send().await.unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "the rendition opens with the token"
    );
    let original = app
        .client
        .get(app.url(&format!(
            "/media/{id}/original?{}",
            &src[src.find("token=").unwrap()..]
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(
        original.status(),
        StatusCode::NOT_FOUND,
        "never the original"
    );
    // A forged expiry fails.
    let forged = path.replace("token=", "token=9").to_string();
    let (status, _, _) = page(&app, &mut stranger, &forged).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Another user cannot mint one.
    let bob = app.user("bob").await;
    let resp = app
        .client
        .post(app.url(&format!("/api/v1/media/{id}/share-link")))
        .bearer_auth(&bob)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oembed_and_the_embed_page_serve_public_items_only_and_may_be_framed() {
    let app = spawn_app(Backend::Sqlite).await;
    let (token, public) = ada_item(&app, "visibility=public&title=Sunset").await;
    let private = app.upload_ok(&token, fixtures::png(20, 10), "").await;
    let private = private["id"].as_str().unwrap().to_string();
    let base = app.state.settings.public_url();
    let oembed = |url: String| {
        app.client
            .get(app.url("/oembed"))
            .query(&[("url", url.as_str()), ("maxwidth", "32")])
            .send()
    };
    let resp = oembed(format!("{base}/items/{public}")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let answer: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(answer["type"], "photo");
    assert_eq!(answer["version"], "1.0");
    assert_eq!(answer["title"], "Sunset");
    assert_eq!(
        (answer["width"].as_i64(), answer["height"].as_i64()),
        (Some(32), Some(24))
    );
    assert!(answer["url"].as_str().unwrap().starts_with(&base));
    let resp = oembed(format!("{base}/items/{private}")).await.unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::NOT_FOUND,
        "private items are not unfurled"
    );
    let resp = oembed("https://elsewhere.example/items/x".into())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    // The item page names its oEmbed; the embed page may be framed, other pages not.
    let mut jar = Jar::default();
    let (_, headers, html) = page(&app, &mut jar, &format!("/items/{public}")).await;
    assert!(html.contains("application/json+oembed"), "{html}");
    assert!(headers["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("frame-ancestors 'none'"));
    let (status, headers, html) = page(&app, &mut jar, &format!("/embed/{public}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("id=\"image\""), "{html}");
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors *"), "{csp}");
    assert!(headers.get("x-frame-options").is_none());
    let (status, _, _) = page(&app, &mut jar, &format!("/embed/{private}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Even for the owner's browser: an embed never uses the cookie.
    let mut ada = sign_up(&app, "ada2").await;
    let (status, _, _) = page(&app, &mut ada, &format!("/embed/{private}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upload_and_item_pages_are_for_their_owner() {
    let app = spawn_app(Backend::Sqlite).await;
    let mut anon = Jar::default();
    let (status, headers, _) = page(&app, &mut anon, "/upload").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers["location"], "/signin");
    let mut ada = sign_up(&app, "ada").await;
    let (status, _, html) = page(&app, &mut ada, "/upload").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("/assets/tus.") && html.contains("id=\"files\""),
        "{html}"
    );
    let token = app.login("ada", "correct horse battery").await;
    let item = app
        .upload_ok(&token, fixtures::png(64, 48), "title=Mine")
        .await;
    let id = item["id"].as_str().unwrap().to_string();
    app.wait_processed(&token, &id).await;
    let (status, _, html) = page(&app, &mut ada, &format!("/items/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("id=\"edit\"") && html.contains("Mine"),
        "{html}"
    );
    assert!(
        !html.contains("application/json+oembed"),
        "private: no oEmbed"
    );
    let mut bob = sign_up(&app, "bob").await;
    let (status, _, html) = page(&app, &mut bob, &format!("/items/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(!html.contains("Mine"));
    // The upload page follows processing on the event stream, by cookie.
    let stream = app
        .client
        .get(app.url("/api/v1/events/stream"))
        .header("cookie", ada.header())
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    assert!(stream.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    drop(stream);
    let anonymous = app
        .client
        .get(app.url("/api/v1/events/stream"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

async fn json_of(resp: reqwest::Response) -> (StatusCode, serde_json::Value) {
    let status = resp.status();
    (status, resp.json().await.unwrap_or_default())
}

#[tokio::test]
async fn the_account_page_is_for_the_signed_in_and_the_admin_page_for_admins() {
    let app = spawn_app(Backend::Sqlite).await;
    let mut anon = Jar::default();
    for path in ["/account", "/admin"] {
        let (status, headers, _) = page(&app, &mut anon, path).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(headers["location"], "/signin");
    }
    let mut ada = sign_up(&app, "ada").await;
    let (status, headers, html) = page(&app, &mut ada, "/account").await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("script-src 'self'"));
    assert!(html.contains("/assets/account.") && html.contains("id=\"profile-username\">ada<"));
    assert!(html.contains("value=\"media:write\"") && !html.contains("value=\"admin\""));
    assert!(
        html.contains("value=\"media.ready\""),
        "webhook event types"
    );
    assert!(html.contains("href=\"/account\"") && !html.contains("href=\"/admin\""));
    let (status, _, html) = page(&app, &mut ada, "/admin").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(html.contains("for administrators"), "{html}");
    // The page's own calls: an API key made by cookie with the CSRF header, not without.
    let (_, _, html) = page(&app, &mut ada, "/account").await;
    let token = csrf_of(&html);
    let create = |csrf: Option<&str>| {
        let mut req = app
            .client
            .post(app.url("/api/v1/api-keys"))
            .header("cookie", ada.header())
            .json(&serde_json::json!({ "name": "script", "scopes": ["media:read"] }));
        if let Some(t) = csrf {
            req = req.header("x-csrf-token", t);
        }
        req.send()
    };
    assert_eq!(create(None).await.unwrap().status(), StatusCode::FORBIDDEN);
    let (status, key) = json_of(create(Some(&token)).await.unwrap()).await;
    assert_eq!(status, StatusCode::CREATED);
    let key = key["key"].as_str().unwrap().to_string();
    assert_eq!(
        app.get(Some(&key), "/api/v1/media").await.status(),
        StatusCode::OK
    );
    // Made an admin: the nav and the page follow at once.
    sqlx::query("UPDATE users SET is_admin = 1 WHERE username = 'ada'")
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    app.state.identity.auth.forget();
    let (status, _, html) = page(&app, &mut ada, "/admin").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("/assets/admin.") && html.contains("<option value=\"dead\" selected>"));
    let (_, _, html) = page(&app, &mut ada, "/account").await;
    assert!(html.contains("href=\"/admin\"") && html.contains("value=\"admin\""));
}

crate::both_backends!(
    the_admin_overview_counts_what_each_domain_keeps,
    an_admin_retries_a_dead_job_and_only_a_dead_one,
);

async fn the_admin_overview_counts_what_each_domain_keeps(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = app.admin("root").await;
    let ada = app.user("ada").await;
    for (w, h) in [(64, 48), (80, 60)] {
        let item = app.upload_ok(&ada, fixtures::png(w, h), "").await;
        app.wait_processed(&ada, item["id"].as_str().unwrap()).await;
    }
    let (status, _) = json_of(app.get(Some(&ada), "/api/v1/admin/overview").await).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, o) = json_of(app.get(Some(&root), "/api/v1/admin/overview").await).await;
    assert_eq!(status, StatusCode::OK, "{o}");
    let figure = |name: &str| {
        o["figures"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .unwrap_or_else(|| panic!("no figure {name} in {o}"))["value"]
            .as_i64()
            .unwrap()
    };
    assert_eq!(figure("items"), 2);
    assert_eq!(figure("items.image"), 2);
    assert_eq!((figure("users"), figure("users.admin")), (2, 1));
    let originals = app
        .scalar("SELECT CAST(SUM(size) AS BIGINT) FROM blobs")
        .await;
    assert!(originals > 0);
    assert_eq!(figure("bytes.originals"), originals);
    assert_eq!(
        figure("bytes.variants"),
        app.scalar("SELECT CAST(SUM(size) AS BIGINT) FROM variants")
            .await
    );
    assert_eq!(figure("jobs.dead"), 0);
    assert_eq!(figure("bytes.renditions"), 0, "no video");
    assert_eq!(figure("endpoints"), 0, "no webhooks");
    let expected = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    assert_eq!(o["database"], expected);
    assert_eq!(
        (o["object_store"].as_str(), o["object_store_up"].as_bool()),
        (Some("local"), Some(true))
    );
}

async fn an_admin_retries_a_dead_job_and_only_a_dead_one(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = app.admin("root").await;
    let ada = app.user("ada").await;
    // A job of a kind no worker runs, claimed here and failed for good: a dead letter.
    let queue = &app.state.queue;
    let id = queue
        .enqueue(queue::NewJob::new("ui_test_broken", serde_json::json!({})).max_attempts(1))
        .await
        .unwrap();
    let job = queue
        .claim(
            "test",
            Some(&["ui_test_broken"]),
            std::time::Duration::from_secs(30),
        )
        .await
        .unwrap()
        .expect("claimed");
    queue.fail(&job, "it broke", false).await.unwrap();
    let (_, dead) = json_of(app.get(Some(&root), "/api/v1/jobs?state=dead").await).await;
    assert_eq!(dead["jobs"][0]["id"], id.as_str());
    assert_eq!(dead["jobs"][0]["last_error"], "it broke");
    let retry = |token: String| {
        app.client
            .post(app.url(&format!("/api/v1/jobs/{}/retry", id.as_str())))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(
        retry(ada.clone()).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    let (status, view) = json_of(retry(root.clone()).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(
        (view["state"].as_str(), view["attempts"].as_i64()),
        (Some("queued"), Some(0))
    );
    let (status, again) = json_of(retry(root.clone()).await.unwrap()).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(again["error"]["code"], "job_not_dead");
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM audit_log WHERE kind = 'job_retried'")
            .await,
        1
    );
    let (status, _) = json_of(retry(root).await.unwrap()).await;
    assert_eq!(status, StatusCode::CONFLICT);
}

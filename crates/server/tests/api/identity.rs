//! Identity: sessions and refresh-token rotation, access-token checks, API keys and
//! scopes, the admin API, abuse limits and the account lifecycle.

use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{json, Value};
use server::settings::{RateRule, Secret};
use sha2::Sha256;

use crate::both_backends;
use crate::fixtures;
use crate::helpers::{error_code, spawn_app, spawn_app_with, Backend, TestApp};

const SECRET: &str = "test-secret-test-secret-test-secret!";
const PASSWORD: &str = "correct horse battery";

impl TestApp {
    async fn post_json(&self, token: Option<&str>, path: &str, body: Value) -> reqwest::Response {
        let mut req = self.client.post(self.url(path)).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.unwrap()
    }

    /// Logs in and returns the whole token response.
    async fn sign_in(&self, name: &str, password: &str) -> Value {
        let resp = self
            .post_json(
                None,
                "/api/v1/auth/login",
                json!({"username": name, "password": password}),
            )
            .await;
        assert_eq!(resp.status(), StatusCode::OK, "login {name}");
        resp.json().await.unwrap()
    }

    async fn refresh(&self, refresh_token: &str) -> reqwest::Response {
        self.post_json(
            None,
            "/api/v1/auth/refresh",
            json!({ "refresh_token": refresh_token }),
        )
        .await
    }

    async fn account_status(&self, token: &str) -> StatusCode {
        self.get(Some(token), "/api/v1/account").await.status()
    }

    async fn user_id(&self, token: &str) -> String {
        let me: Value = self
            .get(Some(token), "/api/v1/account")
            .await
            .json()
            .await
            .unwrap();
        me["id"].as_str().unwrap().to_string()
    }

    async fn api_key(&self, token: &str, scopes: &[&str]) -> Value {
        let resp = self
            .post_json(
                Some(token),
                "/api/v1/api-keys",
                json!({"name": "ci", "scopes": scopes}),
            )
            .await;
        assert_eq!(resp.status(), StatusCode::CREATED);
        resp.json().await.unwrap()
    }

    /// `PATCH /api/v1/admin/users/{id}` as `admin`.
    fn admin_patch(
        &self,
        admin: &str,
        user_id: &str,
        body: Value,
    ) -> impl std::future::Future<Output = reqwest::Result<reqwest::Response>> {
        self.client
            .patch(self.url(&format!("/api/v1/admin/users/{user_id}")))
            .bearer_auth(admin)
            .json(&body)
            .send()
    }

    async fn audit_count(&self, kind: &str) -> i64 {
        self.count(&format!("audit_log WHERE kind = '{kind}'"))
            .await
    }
}

fn retry_after(resp: &reqwest::Response) -> u64 {
    resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

fn token_of(json: &Value, field: &str) -> String {
    json[field].as_str().unwrap().to_string()
}

async fn refresh_rotates_and_a_replayed_token_revokes_the_family(backend: Backend) {
    let app = spawn_app(backend).await;
    app.user("alice").await;
    let first = app.sign_in("alice", PASSWORD).await;
    let r1 = token_of(&first, "refresh_token");
    assert!(r1.starts_with("fhr_"));
    assert_eq!(first["expires_in"], 900);

    let resp = app.refresh(&r1).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let second: Value = resp.json().await.unwrap();
    let r2 = token_of(&second, "refresh_token");
    let a2 = token_of(&second, "access_token");
    assert_ne!(r1, r2);
    assert_eq!(second["session_id"], first["session_id"], "same family");
    assert_eq!(app.account_status(&a2).await, StatusCode::OK);

    // The old token again: someone copied it. The whole session ends.
    assert_eq!(
        error_code(app.refresh(&r1).await).await,
        (StatusCode::UNAUTHORIZED, "refresh_token_reused".into())
    );
    assert_eq!(
        error_code(app.refresh(&r2).await).await,
        (StatusCode::UNAUTHORIZED, "invalid_refresh_token".into())
    );
    assert_eq!(app.account_status(&a2).await, StatusCode::UNAUTHORIZED);
    assert_eq!(app.audit_count("token_reuse").await, 1);
    let reason: String = sqlx::query_scalar("SELECT revoked_reason FROM sessions WHERE id = $1")
        .bind(first["session_id"].as_str().unwrap())
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap();
    assert_eq!(reason, "refresh_token_reuse");
    // Another session of the same user is untouched.
    let other = app.sign_in("alice", PASSWORD).await;
    assert_eq!(
        app.refresh(&token_of(&other, "refresh_token"))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        error_code(app.refresh("fhr_never-issued").await).await,
        (StatusCode::UNAUTHORIZED, "invalid_refresh_token".into())
    );
}

fn forge(header: Value, claims: Value, key: &[u8]) -> String {
    let head = URL_SAFE_NO_PAD.encode(header.to_string());
    let body = URL_SAFE_NO_PAD.encode(claims.to_string());
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(format!("{head}.{body}").as_bytes());
    format!(
        "{head}.{body}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

async fn expired_tampered_wrong_kid_none_and_confused_tokens_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    app.user("alice").await;
    let session = app.sign_in("alice", PASSWORD).await;
    let good = token_of(&session, "access_token");
    let me: Value = app
        .get(Some(&good), "/api/v1/account")
        .await
        .json()
        .await
        .unwrap();
    let kid = server::identity::tokens::key_id(SECRET.as_bytes());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims = |exp: i64| {
        json!({"sub": me["id"], "sid": session["session_id"], "iss": "framehouse",
               "aud": "framehouse-api", "iat": now, "exp": exp})
    };
    let hs = |kid: &str| json!({"alg": "HS256", "typ": "JWT", "kid": kid});
    // The forger is right: a token it makes with the real key is accepted.
    let forged = forge(hs(&kid), claims(now + 600), SECRET.as_bytes());
    assert_eq!(app.account_status(&forged).await, StatusCode::OK);

    let mut tampered = good.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(json!({"alg": "none", "kid": kid}).to_string()),
        URL_SAFE_NO_PAD.encode(claims(now + 600).to_string())
    );
    let refused = [
        (
            "expired",
            forge(hs(&kid), claims(now - 60), SECRET.as_bytes()),
        ),
        ("tampered", tampered),
        (
            "wrong kid",
            forge(hs("0123456789abcdef"), claims(now + 600), SECRET.as_bytes()),
        ),
        (
            "no kid",
            forge(
                json!({"alg": "HS256"}),
                claims(now + 600),
                SECRET.as_bytes(),
            ),
        ),
        (
            "other key",
            forge(
                hs(&kid),
                claims(now + 600),
                b"some-other-key-some-other-key!!!",
            ),
        ),
        ("alg none", none),
        (
            "RS256 header",
            forge(
                json!({"alg": "RS256", "kid": kid}),
                claims(now + 600),
                SECRET.as_bytes(),
            ),
        ),
        (
            "HS512 header",
            forge(
                json!({"alg": "HS512", "kid": kid}),
                claims(now + 600),
                SECRET.as_bytes(),
            ),
        ),
        ("garbage", "not.a.jwt".to_string()),
    ];
    for (what, token) in refused {
        let (status, code) = error_code(app.get(Some(&token), "/api/v1/account").await).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::UNAUTHORIZED, "unauthorized"),
            "{what}"
        );
    }
}

async fn rotated_signing_keys_keep_old_tokens_valid_until_dropped(backend: Backend) {
    let old_secret = "the-old-signing-key-the-old-signing-key";
    let app = spawn_app_with(backend, |s| {
        s.auth.jwt_previous_secrets = vec![Secret::new(old_secret)];
    })
    .await;
    app.user("alice").await;
    let session = app.sign_in("alice", PASSWORD).await;
    let user_id = app.user_id(&token_of(&session, "access_token")).await;
    let sid = session["session_id"].as_str().unwrap();
    let before_rotation = server::identity::JwtKeys::new(old_secret.as_bytes(), &[], 60);
    let old_token = before_rotation.issue(&user_id, sid).unwrap();
    assert_eq!(app.account_status(&old_token).await, StatusCode::OK);
    // New tokens carry the new key's id.
    let header = jsonwebtoken::decode_header(&token_of(&session, "access_token")).unwrap();
    assert_eq!(
        header.kid.unwrap(),
        server::identity::tokens::key_id(SECRET.as_bytes())
    );

    // The same database, once the old key is dropped from the configuration.
    let url = app.state.settings.database_url();
    let dropped = spawn_app_with(backend, |s| s.database.url = Some(Secret::new(url))).await;
    let token = before_rotation.issue(&user_id, sid).unwrap();
    assert_eq!(
        dropped.account_status(&token).await,
        StatusCode::UNAUTHORIZED
    );
}

async fn logout_and_session_revocation_end_access_at_once(backend: Backend) {
    let app = spawn_app(backend).await;
    app.user("alice").await;
    let laptop = app.sign_in("alice", PASSWORD).await;
    let phone = app.sign_in("alice", PASSWORD).await;
    let laptop_token = token_of(&laptop, "access_token");
    let sessions: Value = app
        .get(Some(&laptop_token), "/api/v1/auth/sessions")
        .await
        .json()
        .await
        .unwrap();
    let sessions = sessions.as_array().unwrap();
    // The one from `app.user` plus these two.
    assert_eq!(sessions.len(), 3);
    let current: Vec<_> = sessions.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["id"], laptop["session_id"]);

    // Revoke the phone from the laptop.
    let phone_sid = phone["session_id"].as_str().unwrap();
    let resp = app
        .client
        .delete(app.url(&format!("/api/v1/auth/sessions/{phone_sid}")))
        .bearer_auth(&laptop_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.account_status(&token_of(&phone, "access_token")).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.refresh(&token_of(&phone, "refresh_token"))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );

    // Somebody else's session is not found.
    let bob = app.user("bob").await;
    let resp = app
        .client
        .delete(app.url(&format!(
            "/api/v1/auth/sessions/{}",
            laptop["session_id"].as_str().unwrap()
        )))
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);

    let resp = app
        .post_json(Some(&laptop_token), "/api/v1/auth/logout", json!({}))
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.account_status(&laptop_token).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.refresh(&token_of(&laptop, "refresh_token"))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

async fn api_keys_are_shown_once_hashed_and_limited_to_their_scopes(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.user("alice").await;
    let item = app.upload_ok(&alice, fixtures::jpeg(64, 48), "").await;
    let id = item["id"].as_str().unwrap();
    let created = app.api_key(&alice, &["media:read"]).await;
    let key = token_of(&created, "key");
    assert!(key.starts_with("fh_") && key.len() > 40, "{key}");
    assert_eq!(created["scopes"], json!(["media:read"]));
    let stored: String = sqlx::query_scalar("SELECT hash FROM api_keys WHERE id = $1")
        .bind(created["id"].as_str().unwrap())
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap();
    assert!(!stored.contains(&key[3..]), "stored hashed");
    let listed: Value = app
        .get(Some(&alice), "/api/v1/api-keys")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert!(listed[0].get("key").is_none());
    assert_eq!(listed[0]["hint"], key[..10]);

    // Reading works; writing and deleting do not.
    assert_eq!(app.get_item(Some(&key), id).await.status(), StatusCode::OK);
    assert_eq!(
        error_code(app.upload(&key, fixtures::jpeg(32, 32), "").await).await,
        (StatusCode::FORBIDDEN, "insufficient_scope".into())
    );
    let resp = app
        .client
        .delete(app.url(&format!("/api/v1/media/{id}")))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(resp).await,
        (StatusCode::FORBIDDEN, "insufficient_scope".into())
    );
    let resp = app
        .client
        .patch(app.url(&format!("/api/v1/media/{id}")))
        .bearer_auth(&key)
        .json(&json!({"title": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    // A key cannot mint keys or see sessions.
    let resp = app
        .post_json(
            Some(&key),
            "/api/v1/api-keys",
            json!({"name": "n", "scopes": ["media:read"]}),
        )
        .await;
    assert_eq!(
        error_code(resp).await,
        (StatusCode::FORBIDDEN, "session_required".into())
    );
    assert_eq!(
        app.get(Some(&key), "/api/v1/auth/sessions").await.status(),
        StatusCode::FORBIDDEN
    );

    // A write key uploads; a delete key deletes.
    let writer = token_of(&app.api_key(&alice, &["media:write"]).await, "key");
    assert_eq!(
        app.upload(&writer, fixtures::jpeg(40, 30), "")
            .await
            .status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(
        app.get_item(Some(&writer), id).await.status(),
        StatusCode::FORBIDDEN,
        "no media:read"
    );
    let deleter = token_of(&app.api_key(&alice, &["media:delete"]).await, "key");
    let resp = app
        .client
        .delete(app.url(&format!("/api/v1/media/{id}")))
        .bearer_auth(&deleter)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);

    // Last use is recorded (off the request path).
    let deadline = Instant::now() + Duration::from_secs(5);
    while app.count("api_keys WHERE last_used_at IS NOT NULL").await < 3 {
        assert!(Instant::now() < deadline, "last_used_at not recorded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Bad requests.
    let resp = app
        .post_json(
            Some(&alice),
            "/api/v1/api-keys",
            json!({"name": "n", "scopes": ["root"]}),
        )
        .await;
    assert_eq!(
        error_code(resp).await,
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_scope".into())
    );
    let resp = app
        .post_json(
            Some(&alice),
            "/api/v1/api-keys",
            json!({"name": "n", "scopes": ["admin"]}),
        )
        .await;
    assert_eq!(
        resp.status(),
        StatusCode::FORBIDDEN,
        "plain users get no admin keys"
    );

    // Revoked and expired keys stop.
    let resp = app
        .client
        .delete(app.url(&format!(
            "/api/v1/api-keys/{}",
            created["id"].as_str().unwrap()
        )))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.account_status(&key).await, StatusCode::UNAUTHORIZED);
    let expiring = app
        .post_json(
            Some(&alice),
            "/api/v1/api-keys",
            json!({"name": "e", "scopes": ["media:read"], "expires_in_days": 1}),
        )
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert!(expiring["expires_at"].is_string());
    let expiring_key = token_of(&expiring, "key");
    assert_eq!(app.account_status(&expiring_key).await, StatusCode::OK);
    sqlx::query("UPDATE api_keys SET expires_at = 1 WHERE id = $1")
        .bind(expiring["id"].as_str().unwrap())
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    app.state.identity.auth.forget();
    assert_eq!(
        app.account_status(&expiring_key).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.account_status("fh_made-up-key").await,
        StatusCode::UNAUTHORIZED
    );
}

async fn admin_endpoints_need_an_admin_and_the_admin_scope(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.user("alice").await;
    let root = app.admin("root").await;
    assert_eq!(
        error_code(app.get(Some(&alice), "/api/v1/admin/users").await).await,
        (StatusCode::FORBIDDEN, "forbidden".into())
    );
    let page: Value = app
        .get(Some(&root), "/api/v1/admin/users")
        .await
        .json()
        .await
        .unwrap();
    let names: Vec<_> = page["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].clone())
        .collect();
    assert_eq!(names, [json!("alice"), json!("root")]);
    let admin_key = token_of(&app.api_key(&root, &["admin"]).await, "key");
    assert_eq!(
        app.get(Some(&admin_key), "/api/v1/admin/users")
            .await
            .status(),
        StatusCode::OK
    );
    let read_key = token_of(&app.api_key(&root, &["media:read"]).await, "key");
    assert_eq!(
        error_code(app.get(Some(&read_key), "/api/v1/admin/users").await).await,
        (StatusCode::FORBIDDEN, "insufficient_scope".into())
    );

    // Admins see anyone's items; users only their own.
    let item = app.upload_ok(&alice, fixtures::jpeg(64, 48), "").await;
    let alice_id = app.user_id(&alice).await;
    let listed: Value = app
        .get(Some(&root), &format!("/api/v1/media?owner={alice_id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"][0]["id"], item["id"]);
    let root_id = app.user_id(&root).await;
    assert_eq!(
        app.get(Some(&alice), &format!("/api/v1/media?owner={root_id}"))
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.get_item(Some(&root), item["id"].as_str().unwrap())
            .await
            .status(),
        StatusCode::OK
    );

    // An admin's key without the `admin` scope does not act as admin.
    let private = item["id"].as_str().unwrap();
    assert_eq!(
        app.get_item(Some(&read_key), private).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get_item(Some(&admin_key), private).await.status(),
        StatusCode::FORBIDDEN,
        "no media:read"
    );

    // The last admin can neither leave nor be demoted.
    let resp = app
        .client
        .delete(app.url("/api/v1/account"))
        .bearer_auth(&root)
        .json(&json!({"password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(resp).await,
        (StatusCode::UNPROCESSABLE_ENTITY, "last_admin".into())
    );

    // Promotion takes effect on the next request; the audit log says so.
    let resp = app
        .admin_patch(&root, &alice_id, json!({"role": "admin"}))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        app.get(Some(&alice), "/api/v1/admin/users").await.status(),
        StatusCode::OK
    );
    let audit: Value = app
        .get(Some(&root), "/api/v1/admin/audit?kind=role_changed")
        .await
        .json()
        .await
        .unwrap();
    let events = audit["events"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["user_id"], json!(alice_id));
    assert_eq!(events[0]["actor_id"], json!(root_id));
    assert_eq!(events[0]["detail"]["role"], "admin");
    assert_eq!(
        app.get(Some(&alice), "/api/v1/admin/audit").await.status(),
        StatusCode::OK
    );
}

async fn disabling_a_user_stops_tokens_and_keys_within_the_bound(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.auth.revocation_check_secs = 1).await;
    let root = app.admin("root").await;
    let alice = app.user("alice").await;
    let alice_id = app.user_id(&alice).await;
    let key = token_of(&app.api_key(&alice, &["media:read"]).await, "key");
    // A second api node on the same database, which caches what it read.
    let url = app.state.settings.database_url();
    let other = spawn_app_with(backend, |s| {
        s.database.url = Some(Secret::new(url));
        s.auth.revocation_check_secs = 1;
    })
    .await;
    assert_eq!(other.account_status(&alice).await, StatusCode::OK);
    assert_eq!(other.account_status(&key).await, StatusCode::OK);

    let disable =
        |disabled: bool| app.admin_patch(&root, &alice_id, json!({ "disabled": disabled }));
    assert_eq!(disable(true).await.unwrap().status(), StatusCode::OK);
    // At once on the node that disabled her…
    assert_eq!(app.account_status(&alice).await, StatusCode::UNAUTHORIZED);
    assert_eq!(app.account_status(&key).await, StatusCode::UNAUTHORIZED);
    // …and within revocation_check_secs on the other.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(other.account_status(&alice).await, StatusCode::UNAUTHORIZED);
    assert_eq!(other.account_status(&key).await, StatusCode::UNAUTHORIZED);
    let resp = app
        .post_json(
            None,
            "/api/v1/auth/login",
            json!({"username": "alice", "password": PASSWORD}),
        )
        .await;
    assert_eq!(
        error_code(resp).await,
        (StatusCode::FORBIDDEN, "account_disabled".into())
    );
    assert_eq!(app.audit_count("user_disabled").await, 1);

    assert_eq!(disable(false).await.unwrap().status(), StatusCode::OK);
    // Sessions stay ended (disabling revoked them); keys work again; login works.
    assert_eq!(app.account_status(&alice).await, StatusCode::UNAUTHORIZED);
    assert_eq!(app.account_status(&key).await, StatusCode::OK);
    app.sign_in("alice", PASSWORD).await;
}

async fn the_login_after_the_limit_gets_429_with_retry_after(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.auth.rate_limits.login_per_account = RateRule::new(3, 60)
    })
    .await;
    app.user("alice").await; // one login
    app.sign_in("alice", PASSWORD).await;
    app.sign_in("alice", PASSWORD).await;
    let resp = app
        .post_json(
            None,
            "/api/v1/auth/login",
            json!({"username": "alice", "password": PASSWORD}),
        )
        .await;
    let retry = retry_after(&resp);
    assert!((1..=20).contains(&retry), "{retry}");
    assert_eq!(
        error_code(resp).await,
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited".into())
    );
    // Another account from the same address is not affected (per-IP limit is higher).
    app.user("bob").await;
}

async fn repeated_failed_logins_lock_the_account_with_backoff(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.auth.lockout_threshold = 3;
        s.auth.lockout_base_secs = 30;
    })
    .await;
    app.user("alice").await;
    let attempt = |password: &'static str| {
        app.post_json(
            None,
            "/api/v1/auth/login",
            json!({"username": "alice", "password": password}),
        )
    };
    for _ in 0..3 {
        assert_eq!(
            attempt("wrong password!").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let resp = attempt(PASSWORD).await;
    let retry = retry_after(&resp);
    assert!((25..=30).contains(&retry), "{retry}");
    assert_eq!(
        error_code(resp).await,
        (StatusCode::TOO_MANY_REQUESTS, "account_locked".into())
    );
    assert_eq!(app.audit_count("login_failed").await, 3);
    // Unlocked (as if the time passed), one more failure doubles the lock.
    sqlx::query("UPDATE users SET locked_until = 1 WHERE username = 'alice'")
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    assert_eq!(
        attempt("wrong again!!").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let resp = attempt(PASSWORD).await;
    let retry = retry_after(&resp);
    assert!((55..=60).contains(&retry), "{retry}");
}

async fn weak_passwords_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    for password in ["short", "password123", "12345678901", "alice123"] {
        let resp = app
            .post_json(
                None,
                "/api/v1/auth/register",
                json!({"username": "alice", "password": password}),
            )
            .await;
        assert_eq!(
            error_code(resp).await,
            (StatusCode::UNPROCESSABLE_ENTITY, "weak_password".into()),
            "{password}"
        );
    }
    assert_eq!(app.count("users").await, 0);
}

async fn changing_the_password_signs_out_other_sessions(backend: Backend) {
    let app = spawn_app(backend).await;
    app.user("alice").await;
    let here = app.sign_in("alice", PASSWORD).await;
    let elsewhere = app.sign_in("alice", PASSWORD).await;
    let here_token = token_of(&here, "access_token");
    let change = |current: &'static str| {
        app.post_json(
            Some(&here_token),
            "/api/v1/account/password",
            json!({"current_password": current, "new_password": "a brand new passphrase"}),
        )
    };
    assert_eq!(
        error_code(change("not it at all").await).await,
        (StatusCode::FORBIDDEN, "wrong_password".into())
    );
    assert_eq!(change(PASSWORD).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.account_status(&here_token).await, StatusCode::OK);
    assert_eq!(
        app.account_status(&token_of(&elsewhere, "access_token"))
            .await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.refresh(&token_of(&elsewhere, "refresh_token"))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let old = app
        .post_json(
            None,
            "/api/v1/auth/login",
            json!({"username": "alice", "password": PASSWORD}),
        )
        .await;
    assert_eq!(old.status(), StatusCode::UNAUTHORIZED);
    app.sign_in("alice", "a brand new passphrase").await;
}

/// A webhook receiver on a loopback port; returns its URL and the bodies it got.
async fn webhook_receiver() -> (
    String,
    tokio::sync::mpsc::UnboundedReceiver<(String, Value)>,
) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let tx = tx.clone();
                async move {
                    let signature = headers["x-framehouse-signature"]
                        .to_str()
                        .unwrap()
                        .to_string();
                    let mut mac =
                        Hmac::<Sha256>::new_from_slice(b"hook-secret-hook-secret").unwrap();
                    mac.update(&body);
                    assert_eq!(
                        signature,
                        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
                    );
                    tx.send((signature, serde_json::from_slice(&body).unwrap()))
                        .unwrap();
                    axum::http::StatusCode::NO_CONTENT
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, rx)
}

async fn password_reset_tokens_are_single_use_and_expire(backend: Backend) {
    let (hook, mut notices) = webhook_receiver().await;
    let app = spawn_app_with(backend, |s| {
        s.auth.notifier.kind = "webhook".into();
        s.auth.notifier.webhook_url = hook;
        s.auth.notifier.webhook_secret = Secret::new("hook-secret-hook-secret");
    })
    .await;
    app.user("alice").await;
    let other_session = app.sign_in("alice", PASSWORD).await;
    // Unknown accounts get the same answer and no notice.
    let resp = app
        .post_json(
            None,
            "/api/v1/auth/password-reset",
            json!({"login": "nobody"}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let resp = app
        .post_json(
            None,
            "/api/v1/auth/password-reset",
            json!({"login": "alice"}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let (_, notice) = tokio::time::timeout(Duration::from_secs(10), notices.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(notice["kind"], "password_reset");
    assert_eq!(notice["username"], "alice");
    let token = token_of(&notice, "token");
    assert!(notice["link"].as_str().unwrap().ends_with(&token));
    assert!(notices.try_recv().is_err(), "one notice only");

    let confirm = |token: String, password: &'static str| {
        app.post_json(
            None,
            "/api/v1/auth/password-reset/confirm",
            json!({"token": token, "new_password": password}),
        )
    };
    assert_eq!(
        error_code(confirm(token.clone(), "password").await).await,
        (StatusCode::UNPROCESSABLE_ENTITY, "weak_password".into())
    );
    assert_eq!(
        confirm(token.clone(), "reset to something long")
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        error_code(confirm(token, "and again something long").await).await,
        (StatusCode::BAD_REQUEST, "invalid_reset_token".into())
    );
    app.sign_in("alice", "reset to something long").await;
    assert_eq!(
        app.refresh(&token_of(&other_session, "refresh_token"))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );

    // An expired token is refused.
    app.post_json(
        None,
        "/api/v1/auth/password-reset",
        json!({"login": "alice"}),
    )
    .await;
    let (_, notice) = tokio::time::timeout(Duration::from_secs(10), notices.recv())
        .await
        .unwrap()
        .unwrap();
    sqlx::query("UPDATE password_resets SET expires_at = 1 WHERE used_at IS NULL")
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    assert_eq!(
        error_code(confirm(token_of(&notice, "token"), "reset to something else").await).await,
        (StatusCode::BAD_REQUEST, "invalid_reset_token".into())
    );
}

async fn the_log_notifier_writes_a_private_file_not_the_server_log(backend: Backend) {
    let app = spawn_app(backend).await;
    app.user("alice").await;
    app.post_json(
        None,
        "/api/v1/auth/password-reset",
        json!({"login": "alice"}),
    )
    .await;
    let path = app.data_dir.join("notifications.log");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !path.exists() {
        assert!(Instant::now() < deadline, "no notifications.log");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let text = std::fs::read_to_string(&path).unwrap();
    let notice: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert!(notice["token"].as_str().unwrap().starts_with("fhp_"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

async fn deleting_an_account_removes_its_items_and_gc_removes_their_blobs(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = app.admin("root").await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let own = app.upload_ok(&alice, fixtures::jpeg(64, 48), "").await;
    let shared_bytes = fixtures::jpeg(80, 60);
    let shared = app.upload_ok(&alice, shared_bytes.clone(), "").await;
    let bobs = app.upload_ok(&bob, shared_bytes, "").await;
    for item in [&own, &shared] {
        app.wait_processed(&alice, item["id"].as_str().unwrap())
            .await;
    }
    let key = token_of(&app.api_key(&alice, &["media:read"]).await, "key");
    let blob_of = |id: &str| {
        let id = id.to_string();
        let pool = app.state.db.pool.clone();
        async move {
            sqlx::query_scalar::<_, String>("SELECT blob_id FROM media WHERE id = $1")
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    let alice_id = app.user_id(&alice).await;
    let own_blob = blob_of(own["id"].as_str().unwrap()).await;
    let shared_blob = blob_of(bobs["id"].as_str().unwrap()).await;
    let original = |blob: &str| app.data_dir.join(format!("objects/originals/{blob}"));
    assert!(original(&own_blob).exists() && original(&shared_blob).exists());

    let resp = app
        .client
        .delete(app.url("/api/v1/account"))
        .bearer_auth(&alice)
        .json(&json!({"password": "wrong one"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let resp = app
        .client
        .delete(app.url("/api/v1/account"))
        .bearer_auth(&alice)
        .json(&json!({"password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.count("users WHERE username = 'alice'").await, 0);
    // The account's items go by reaction to `user.deleted`: wait for their events.
    let gone = [own["id"].clone(), shared["id"].clone()];
    let events = app
        .wait_for_events(
            &root,
            "all=true&types=media.deleted,user.deleted",
            |events| {
                gone.iter().all(|id| {
                    (events.iter())
                        .any(|e| e["type"] == "media.deleted" && e["aggregate_id"] == *id)
                })
            },
        )
        .await;
    let deleted_user = events.iter().find(|e| e["type"] == "user.deleted").unwrap();
    assert_eq!(deleted_user["aggregate_id"], alice_id.as_str());
    // The event keeps only what is left of the account: no name, no address.
    assert_ne!(deleted_user["data"]["username"], "alice");
    assert!(deleted_user["data"]["email"].is_null());
    assert_eq!(app.count("media").await, 1, "bob's item stays");
    // The row went with the last item, and with it everything identity kept.
    assert_eq!(
        app.count(&format!("users WHERE id = '{alice_id}'")).await,
        0
    );
    for table in ["sessions", "api_keys"] {
        assert_eq!(
            app.count(&format!("{table} WHERE user_id = '{alice_id}'"))
                .await,
            0,
            "{table}"
        );
    }
    assert_eq!(app.account_status(&alice).await, StatusCode::UNAUTHORIZED);
    assert_eq!(app.account_status(&key).await, StatusCode::UNAUTHORIZED);
    let resp = app
        .post_json(
            None,
            "/api/v1/auth/login",
            json!({"username": "alice", "password": PASSWORD}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    // GC removes the blob only alice used, keeps the one bob shares.
    let deadline = Instant::now() + Duration::from_secs(30);
    while original(&own_blob).exists()
        || app.count(&format!("blobs WHERE id = '{own_blob}'")).await > 0
    {
        assert!(Instant::now() < deadline, "alice's blob not collected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(original(&shared_blob).exists());
    assert_eq!(
        app.get_item(Some(&bob), bobs["id"].as_str().unwrap())
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(app.audit_count("user_deleted").await, 1);
}

async fn quotas_refuse_uploads_that_do_not_fit(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = app.admin("root").await;
    let alice = app.user("alice").await;
    let alice_id = app.user_id(&alice).await;
    let first = fixtures::jpeg(64, 48);
    let size = first.len() as i64;
    let resp = app
        .admin_patch(&root, &alice_id, json!({"quota_bytes": size + 10}))
        .await
        .unwrap();
    let view: Value = resp.json().await.unwrap();
    assert_eq!(view["quota_bytes"], size + 10);
    app.upload_ok(&alice, first, "").await;
    assert_eq!(
        error_code(app.upload(&alice, fixtures::jpeg(64, 64), "").await).await,
        (StatusCode::PAYLOAD_TOO_LARGE, "quota_exceeded".into())
    );
    let me: Value = app
        .get(Some(&alice), "/api/v1/account")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["used_bytes"], size);
    // `null` lifts the quota.
    let resp = app
        .admin_patch(&root, &alice_id, json!({"quota_bytes": null}))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        app.upload(&alice, fixtures::jpeg(64, 64), "")
            .await
            .status(),
        StatusCode::ACCEPTED
    );
}

async fn concurrent_uploads_cannot_together_exceed_the_quota(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = app.admin("root").await;
    let alice = app.user("alice").await;
    let alice_id = app.user_id(&alice).await;
    let images: Vec<Vec<u8>> = (0..4).map(|i| fixtures::jpeg(200 + i, 150)).collect();
    let largest = images.iter().map(Vec::len).max().unwrap() as i64;
    let smallest = images.iter().map(Vec::len).min().unwrap() as i64;
    assert!(2 * smallest > largest + 1, "any two exceed the quota");
    let resp = app
        .admin_patch(&root, &alice_id, json!({"quota_bytes": largest + 1}))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let uploads = images
        .into_iter()
        .map(|bytes| app.upload(&alice, bytes, ""));
    let statuses: Vec<StatusCode> = futures::future::join_all(uploads)
        .await
        .iter()
        .map(|r| r.status())
        .collect();
    let accepted = statuses
        .iter()
        .filter(|s| **s == StatusCode::ACCEPTED)
        .count();
    assert_eq!(accepted, 1, "{statuses:?}");
    assert!(statuses
        .iter()
        .all(|s| [StatusCode::ACCEPTED, StatusCode::PAYLOAD_TOO_LARGE].contains(s)));
    let me: Value = app
        .get(Some(&alice), "/api/v1/account")
        .await
        .json()
        .await
        .unwrap();
    assert!(me["used_bytes"].as_i64().unwrap() <= largest + 1);
    assert_eq!(app.count("media").await, 1);
}

async fn the_sweep_prunes_long_ended_sessions_and_spent_tokens(backend: Backend) {
    let app = spawn_app(backend).await;
    app.user("alice").await;
    let old = app.sign_in("alice", PASSWORD).await;
    let live = app.sign_in("alice", PASSWORD).await;
    app.refresh(&token_of(&live, "refresh_token")).await;
    sqlx::query("UPDATE sessions SET revoked_at = 1000 WHERE id = $1")
        .bind(old["session_id"].as_str().unwrap())
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE refresh_tokens SET used_at = 1000 WHERE used_at IS NOT NULL")
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    app.state
        .queue
        .enqueue(server::identity::prune_job())
        .await
        .unwrap();
    let sid = old["session_id"].as_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while app.count(&format!("sessions WHERE id = '{sid}'")).await > 0 {
        assert!(
            Instant::now() < deadline,
            "the sweep did not prune the session"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        app.count(&format!("refresh_tokens WHERE session_id = '{sid}'"))
            .await,
        0
    );
    assert_eq!(
        app.count("refresh_tokens WHERE used_at IS NOT NULL").await,
        0
    );
    // The live session and its current refresh token stay.
    assert_eq!(app.count("sessions WHERE revoked_at IS NULL").await, 2);
    assert_eq!(app.count("refresh_tokens WHERE used_at IS NULL").await, 2);
}

/// Every operation in the OpenAPI document that takes a credential refuses one of two
/// API keys (read-only; write + delete): each endpoint declares a scope.
async fn every_endpoint_that_takes_a_credential_declares_a_scope(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.user("alice").await;
    let reader = token_of(&app.api_key(&token, &["media:read"]).await, "key");
    let writer = token_of(
        &app.api_key(&token, &["media:write", "media:delete"]).await,
        "key",
    );
    let doc: Value = app
        .get(None, "/api/v1/openapi.json")
        .await
        .json()
        .await
        .unwrap();
    // Endpoints that take no credential at all.
    let public = [
        "/api/v1/auth/register",
        "/api/v1/auth/login",
        "/api/v1/auth/refresh",
        "/api/v1/auth/logout",
        "/api/v1/auth/password-reset",
        "/api/v1/auth/password-reset/confirm",
        "/api/v1/auth/oidc/providers",
        "/api/v1/auth/oidc/{provider}/login",
        "/api/v1/auth/oidc/{provider}/callback",
        "/api/v1/auth/oidc/exchange",
        "/healthz",
        "/readyz",
        "/metrics",
        "/api/v1/openapi.json",
        // oEmbed answers anonymous requests only, like the embed page.
        "/oembed",
        // A direct-upload URL's secret is its credential.
        "/api/v1/direct-uploads/{token}",
        "/api/v1/direct-uploads/{token}/file",
        // A share link's slug (and key, for a password) is its credential.
        "/api/v1/shared/{slug}",
        "/api/v1/shared/{slug}/unlock",
        "/api/v1/shared/{slug}/original/{id}",
    ];
    let mut checked = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        if public.contains(&path.as_str()) {
            continue;
        }
        let concrete: String = path
            .split('/')
            .map(|part| {
                if part.starts_with('{') {
                    "0192f0e0-0000-7000-8000-000000000000"
                } else {
                    part
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        // tus's OPTIONS describes the server to anyone; HEAD (no body to read a code
        // from) shares its credential check with the path's other methods.
        let checkable = |m: &&String| *m != "options" && *m != "head";
        for method in ops.as_object().unwrap().keys().filter(checkable) {
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let mut refusals = Vec::new();
            for key in [&reader, &writer] {
                let resp = app
                    .client
                    .request(method.clone(), app.url(&concrete))
                    .bearer_auth(key)
                    .json(&json!({}))
                    .send()
                    .await
                    .unwrap();
                if resp.status() == StatusCode::FORBIDDEN {
                    let (_, code) = error_code(resp).await;
                    refusals.push(code);
                }
            }
            assert!(
                !refusals.is_empty(),
                "{method} {path} accepts both a read-only and a write-only key"
            );
            for code in &refusals {
                assert!(
                    ["insufficient_scope", "session_required"].contains(&code.as_str()),
                    "{method} {path}: {code}"
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 30, "only {checked} operations checked");
}

both_backends!(
    concurrent_uploads_cannot_together_exceed_the_quota,
    every_endpoint_that_takes_a_credential_declares_a_scope,
    the_sweep_prunes_long_ended_sessions_and_spent_tokens,
    refresh_rotates_and_a_replayed_token_revokes_the_family,
    expired_tampered_wrong_kid_none_and_confused_tokens_are_refused,
    rotated_signing_keys_keep_old_tokens_valid_until_dropped,
    logout_and_session_revocation_end_access_at_once,
    api_keys_are_shown_once_hashed_and_limited_to_their_scopes,
    admin_endpoints_need_an_admin_and_the_admin_scope,
    disabling_a_user_stops_tokens_and_keys_within_the_bound,
    the_login_after_the_limit_gets_429_with_retry_after,
    repeated_failed_logins_lock_the_account_with_backoff,
    weak_passwords_are_refused,
    changing_the_password_signs_out_other_sessions,
    password_reset_tokens_are_single_use_and_expire,
    the_log_notifier_writes_a_private_file_not_the_server_log,
    deleting_an_account_removes_its_items_and_gc_removes_their_blobs,
    quotas_refuse_uploads_that_do_not_fit,
);

//! The access matrix: owner / another user / anonymous × private / unlisted / public ×
//! read / update / delete, for the item API and for delivery.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::both_backends;
use crate::fixtures;
use crate::helpers::{error_code, spawn_app, Backend, TestApp};

#[derive(Clone, Copy, Debug)]
enum Who {
    Owner,
    Other,
    Anonymous,
    Admin,
}

async fn status_of(app: &TestApp, token: Option<&str>, method: &str, id: &str) -> StatusCode {
    let url = app.url(&format!("/api/v1/media/{id}"));
    let mut req = match method {
        "read" => app.client.get(&url),
        "update" => app.client.patch(&url).json(&json!({ "title": "changed" })),
        "delete" => app.client.delete(&url),
        _ => unreachable!(),
    };
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap().status()
}

async fn access_matrix_holds(backend: Backend) {
    let app = spawn_app(backend).await;
    let owner = app.user("owner").await;
    let other = app.user("other").await;
    let admin = app.admin("admin").await;
    for visibility in ["private", "unlisted", "public"] {
        for who in [Who::Owner, Who::Other, Who::Anonymous, Who::Admin] {
            for method in ["read", "update", "delete"] {
                let bytes = fixtures::jpeg(64 + (visibility.len() as u32), 48);
                let item: Value = app
                    .upload_ok(&owner, bytes, &format!("visibility={visibility}"))
                    .await;
                let id = item["id"].as_str().unwrap();
                let token = match who {
                    Who::Owner => Some(owner.as_str()),
                    Who::Other => Some(other.as_str()),
                    Who::Anonymous => None,
                    Who::Admin => Some(admin.as_str()),
                };
                let got = status_of(&app, token, method, id).await;
                let privileged = matches!(who, Who::Owner | Who::Admin);
                let readable = privileged || visibility != "private";
                let expected = match (method, readable, privileged, who) {
                    // Changing anything needs a credential first, before any lookup.
                    ("update" | "delete", _, _, Who::Anonymous) => StatusCode::UNAUTHORIZED,
                    (_, false, _, _) => StatusCode::NOT_FOUND,
                    ("read", true, _, _) => StatusCode::OK,
                    (_, true, true, _) => {
                        if method == "delete" {
                            StatusCode::NO_CONTENT
                        } else {
                            StatusCode::OK
                        }
                    }
                    (_, true, false, Who::Anonymous) => StatusCode::UNAUTHORIZED,
                    (_, true, false, _) => StatusCode::FORBIDDEN,
                };
                assert_eq!(got, expected, "{who:?} {method} {visibility}");
                let thumb = {
                    let mut req = app.client.get(app.url(&format!("/media/{id}/original")));
                    if let Some(t) = token {
                        req = req.bearer_auth(t);
                    }
                    req.send().await.unwrap().status()
                };
                let deleted = method == "delete" && privileged;
                let original_expected = if !deleted && privileged {
                    StatusCode::OK
                } else {
                    StatusCode::NOT_FOUND
                };
                assert_eq!(
                    thumb, original_expected,
                    "original for {who:?} after {method} on {visibility}"
                );
            }
        }
    }
}

async fn owners_update_metadata_and_list_their_own_items(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let item = app.upload_ok(&alice, fixtures::jpeg(40 + i, 30), "").await;
        ids.push(item["id"].as_str().unwrap().to_string());
    }
    app.upload_ok(&bob, fixtures::jpeg(99, 30), "").await;
    let patch = json!({ "title": "Holiday", "description": "Day one", "tags": ["sea", "sun"], "visibility": "unlisted" });
    let resp = app
        .client
        .patch(app.url(&format!("/api/v1/media/{}", ids[0])))
        .bearer_auth(&alice)
        .json(&patch)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let item: Value = resp.json().await.unwrap();
    assert_eq!(item["title"], "Holiday");
    assert_eq!(item["tags"], json!(["sea", "sun"]));
    assert_eq!(item["visibility"], "unlisted");
    // The same shape everywhere: GET returns exactly what PATCH returned.
    let fetched: Value = app.get_item(None, &ids[0]).await.json().await.unwrap();
    assert_eq!(fetched["title"], item["title"]);
    assert_eq!(
        fetched.as_object().unwrap().keys().collect::<Vec<_>>(),
        item.as_object().unwrap().keys().collect::<Vec<_>>()
    );

    let bad = app
        .client
        .patch(app.url(&format!("/api/v1/media/{}", ids[0])))
        .bearer_auth(&alice)
        .json(&json!({"visibility": "secret"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // Cursor pagination over alice's items only, newest first.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/media?limit=2&cursor={c}"),
            None => "/api/v1/media?limit=2".to_string(),
        };
        let page: Value = app.get(Some(&alice), &path).await.json().await.unwrap();
        for item in page["items"].as_array().unwrap() {
            seen.push(item["id"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    ids.reverse();
    assert_eq!(seen, ids);
    assert_eq!(
        error_code(app.get(None, "/api/v1/media").await).await.0,
        StatusCode::UNAUTHORIZED
    );
}

async fn auth_rejects_bad_credentials_and_tokens(backend: Backend) {
    let app = spawn_app(backend).await;
    app.user("alice").await;
    let wrong = json!({ "username": "alice", "password": "not the password" });
    let resp = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .json(&wrong)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(resp).await,
        (StatusCode::UNAUTHORIZED, "unauthorized".into())
    );
    let dup = json!({ "username": "alice", "password": "another password" });
    let resp = app
        .client
        .post(app.url("/api/v1/auth/register"))
        .json(&dup)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(resp).await,
        (StatusCode::CONFLICT, "username_taken".into())
    );
    let weak = json!({ "username": "carol", "password": "short" });
    let resp = app
        .client
        .post(app.url("/api/v1/auth/register"))
        .json(&weak)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(resp).await,
        (StatusCode::UNPROCESSABLE_ENTITY, "weak_password".into())
    );
    let resp = app
        .client
        .get(app.url("/api/v1/media"))
        .bearer_auth("not.a.token")
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(resp).await.0, StatusCode::UNAUTHORIZED);
    let login: Value = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({ "username": "alice", "password": "correct horse battery" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(login["token_type"], "Bearer");
    assert_eq!(login["expires_in"], 900);
    let stored: String =
        sqlx::query_scalar("SELECT password_hash FROM users WHERE username = 'alice'")
            .fetch_one(&app.state.db.pool)
            .await
            .unwrap();
    assert!(stored.starts_with("$argon2id$"), "{stored}");
}

both_backends!(
    access_matrix_holds,
    owners_update_metadata_and_list_their_own_items,
    auth_rejects_bad_credentials_and_tokens
);

async fn malformed_requests_get_json_errors(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.user("alice").await;
    let item = app.upload_ok(&token, fixtures::jpeg(64, 48), "").await;
    let id = item["id"].as_str().unwrap();
    let resp = app
        .client
        .patch(app.url(&format!("/api/v1/media/{id}")))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(resp).await,
        (StatusCode::BAD_REQUEST, "invalid_json".into())
    );
    let resp = app
        .client
        .patch(app.url(&format!("/api/v1/media/{id}")))
        .bearer_auth(&token)
        .json(&json!({"visibility": "everyone"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(resp).await,
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_json".into())
    );
    let resp = app
        .client
        .post(app.url("/api/v1/media?visibility=bogus"))
        .bearer_auth(&token)
        .body(fixtures::jpeg(8, 8))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(resp).await,
        (StatusCode::BAD_REQUEST, "invalid_query".into())
    );
    assert_eq!(
        error_code(app.get(Some(&token), "/api/v1/media?limit=abc").await)
            .await
            .1,
        "invalid_query"
    );
}

both_backends!(malformed_requests_get_json_errors);

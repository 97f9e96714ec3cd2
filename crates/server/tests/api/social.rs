//! The social graph against the real router: friend requests from sending to unfriending
//! with a block in the middle, profiles and user search, and the access matrix grown by
//! the `friends` visibility and the friend / follower / blocked rows, for the item API
//! and for every byte-serving route of an image.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::both_backends;
use crate::fixtures;
use std::time::Duration;

use crate::helpers::{error_code, eventually, Backend, TestApp};

both_backends!(
    a_friend_request_lives_until_answered_and_a_block_ends_every_edge,
    profiles_and_search_show_what_each_viewer_may_see,
    the_access_matrix_holds_for_friends_followers_and_the_blocked,
    a_readers_playback_token_ends_with_the_friendship_that_earned_it,
    an_api_key_without_social_read_sees_no_social_things_and_no_social_events,
);

pub(crate) async fn send(
    app: &TestApp,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let url = app.url(path);
    let mut req = match method {
        "POST" => app.client.post(&url),
        "DELETE" => app.client.delete(&url),
        "PATCH" => app.client.patch(&url),
        "PUT" => app.client.put(&url),
        _ => app.client.get(&url),
    }
    .bearer_auth(token);
    if let Some(body) = body {
        req = req.json(&body);
    }
    req.send().await.unwrap()
}

pub(crate) async fn json_of(resp: reqwest::Response, expected: StatusCode) -> Value {
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    assert_eq!(status, expected, "{body}");
    body
}

/// `a` asks `b_name` and `b` accepts; returns the request id.
pub(crate) async fn befriend(app: &TestApp, a: &str, b_name: &str, b: &str) -> String {
    let req = send(
        app,
        a,
        "POST",
        "/api/v1/friends/requests",
        Some(json!({ "user": b_name })),
    )
    .await;
    let id = json_of(req, StatusCode::CREATED).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let accepted = send(
        app,
        b,
        "POST",
        &format!("/api/v1/friends/requests/{id}/accept"),
        None,
    )
    .await;
    json_of(accepted, StatusCode::OK).await;
    id
}

fn names(list: &Value, key: &str) -> Vec<String> {
    list[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap().to_string())
        .collect()
}

/// `token` asks `name` to be friends.
async fn ask(app: &TestApp, token: &str, name: &str) -> reqwest::Response {
    let body = json!({ "user": name });
    send(app, token, "POST", "/api/v1/friends/requests", Some(body)).await
}

/// [`ask`], expecting the request to be made; its id.
async fn asked(app: &TestApp, token: &str, name: &str) -> String {
    let made = json_of(ask(app, token, name).await, StatusCode::CREATED).await;
    made["id"].as_str().unwrap().to_string()
}

/// The status of a body-less `method` on `path`.
pub(crate) async fn code(app: &TestApp, token: &str, method: &str, path: &str) -> StatusCode {
    send(app, token, method, path, None).await.status()
}

/// `token` blocks `name`; the status.
async fn blocks(app: &TestApp, token: &str, name: &str) -> StatusCode {
    let body = json!({ "user": name });
    send(app, token, "POST", "/api/v1/blocks", Some(body))
        .await
        .status()
}

/// The usernames listed under `key` by `GET path`.
async fn listed(app: &TestApp, token: Option<&str>, path: &str, key: &str) -> Vec<String> {
    names(
        &json_of(app.get(token, path).await, StatusCode::OK).await,
        key,
    )
}

async fn a_friend_request_lives_until_answered_and_a_block_ends_every_edge(backend: Backend) {
    let app = crate::helpers::spawn_app(backend).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let (no, gone, conflict) = (
        StatusCode::NO_CONTENT,
        StatusCode::NOT_FOUND,
        StatusCode::CONFLICT,
    );

    // Asking: the request shows on both sides, once.
    let body = json!({ "user": "bob", "message": "hi from the lake" });
    let resp = send(&app, &alice, "POST", "/api/v1/friends/requests", Some(body)).await;
    let request = json_of(resp, StatusCode::CREATED).await;
    let id = request["id"].as_str().unwrap().to_string();
    assert_eq!(request["from"]["username"], "alice");
    assert_eq!(request["to"]["username"], "bob");
    assert_eq!(request["message"], "hi from the lake");
    let requests = |token: String, path: &'static str| {
        let app = &app;
        async move {
            let page = json_of(app.get(Some(&token), path).await, StatusCode::OK).await;
            let ids = page["requests"].as_array().unwrap().iter();
            ids.map(|r| r["id"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        requests(bob.clone(), "/api/v1/friends/requests").await,
        [id.as_str()]
    );
    let outgoing = "/api/v1/friends/requests?direction=outgoing";
    assert_eq!(requests(alice.clone(), outgoing).await, [id.as_str()]);
    assert!(requests(alice.clone(), "/api/v1/friends/requests")
        .await
        .is_empty());
    assert_eq!(
        error_code(ask(&app, &alice, "bob").await).await,
        (conflict, "request_exists".into())
    );
    assert_eq!(
        error_code(ask(&app, &bob, "alice").await).await,
        (conflict, "request_incoming".into())
    );
    let me = error_code(ask(&app, &alice, "alice").await).await;
    assert_eq!(me.0, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        error_code(ask(&app, &alice, "nobody").await).await,
        (gone, "not_found".into())
    );
    let sideways = app
        .get(Some(&bob), "/api/v1/friends/requests?direction=sideways")
        .await;
    assert_eq!(error_code(sideways).await.0, StatusCode::BAD_REQUEST);
    // Only the recipient answers, only the sender withdraws; for anyone else it is not there.
    let accept = format!("/api/v1/friends/requests/{id}/accept");
    let decline = format!("/api/v1/friends/requests/{id}/decline");
    for (who, path) in [(&carol, &accept), (&alice, &accept), (&carol, &decline)] {
        assert_eq!(code(&app, who, "POST", path).await, gone, "{path}");
    }
    let withdraw = format!("/api/v1/friends/requests/{id}");
    assert_eq!(code(&app, &bob, "DELETE", &withdraw).await, gone);
    // The recipient was told through the outbox.
    app.wait_for_events(&bob, "types=friend.requested", |seen| {
        seen.iter().any(|e| e["data"]["id"] == id.as_str())
    })
    .await;

    // Accepting makes both friends, once; the request is gone.
    let accepted = json_of(
        send(&app, &bob, "POST", &accept, None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(accepted["username"], "alice");
    assert_eq!(code(&app, &bob, "POST", &accept).await, gone);
    assert_eq!(
        listed(&app, Some(&alice), "/api/v1/friends", "friends").await,
        ["bob"]
    );
    assert_eq!(
        listed(&app, Some(&bob), "/api/v1/friends", "friends").await,
        ["alice"]
    );
    app.wait_for_events(&alice, "types=friend.accepted", |seen| !seen.is_empty())
        .await;
    assert_eq!(
        error_code(ask(&app, &alice, "bob").await).await,
        (conflict, "already_friends".into())
    );

    // Unfriending ends it for both; declining and withdrawing leave no friendship.
    assert_eq!(
        code(&app, &bob, "DELETE", "/api/v1/friends/alice").await,
        no
    );
    assert_eq!(
        code(&app, &bob, "DELETE", "/api/v1/friends/alice").await,
        gone
    );
    assert!(listed(&app, Some(&alice), "/api/v1/friends", "friends")
        .await
        .is_empty());
    let carols = asked(&app, &carol, "alice").await;
    let path = format!("/api/v1/friends/requests/{carols}/decline");
    assert_eq!(code(&app, &alice, "POST", &path).await, no);
    let carols = asked(&app, &carol, "alice").await;
    let path = format!("/api/v1/friends/requests/{carols}");
    assert_eq!(code(&app, &carol, "DELETE", &path).await, no);
    assert!(listed(&app, Some(&carol), "/api/v1/friends", "friends")
        .await
        .is_empty());

    // Follows are one way.
    assert_eq!(
        code(&app, &bob, "POST", "/api/v1/users/alice/follow").await,
        no
    );
    assert_eq!(
        code(&app, &bob, "POST", "/api/v1/users/alice/follow").await,
        no
    );
    let myself = code(&app, &bob, "POST", "/api/v1/users/bob/follow").await;
    assert_eq!(myself, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        listed(&app, None, "/api/v1/users/alice/followers", "users").await,
        ["bob"]
    );
    assert!(listed(&app, None, "/api/v1/users/alice/following", "users")
        .await
        .is_empty());
    app.wait_for_events(&alice, "types=user.followed", |seen| seen.len() == 1)
        .await;

    // A block in the middle of a request and a follow removes both, both ways.
    let pending = asked(&app, &bob, "alice").await;
    let public = app
        .upload_ok(&alice, fixtures::jpeg(40, 30), "visibility=public")
        .await;
    let public_id = public["id"].as_str().unwrap();
    assert_eq!(
        app.get_item(Some(&bob), public_id).await.status(),
        StatusCode::OK
    );

    assert_eq!(blocks(&app, &alice, "bob").await, no);
    assert_eq!(
        blocks(&app, &alice, "alice").await,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(app.count("friend_requests").await, 0);
    assert_eq!(app.count("follows").await, 0);
    let path = format!("/api/v1/friends/requests/{pending}/accept");
    assert_eq!(code(&app, &alice, "POST", &path).await, gone);
    assert_eq!(
        listed(&app, Some(&alice), "/api/v1/blocks", "users").await,
        ["bob"]
    );
    // The blocked one finds nothing of the blocker: profile, items, requests, follows.
    assert_eq!(
        app.get(Some(&bob), "/api/v1/users/alice").await.status(),
        gone
    );
    assert_eq!(app.get_item(Some(&bob), public_id).await.status(), gone);
    let thumb = format!("/img/{public_id}/w_16.jpg");
    assert_eq!(app.get(Some(&bob), &thumb).await.status(), gone);
    assert_eq!(error_code(ask(&app, &bob, "alice").await).await.0, gone);
    assert_eq!(
        code(&app, &bob, "POST", "/api/v1/users/alice/follow").await,
        gone
    );
    // … and the blocker does not see the blocked either, but may unblock.
    assert_eq!(
        app.get(Some(&alice), "/api/v1/users/bob").await.status(),
        gone
    );
    assert!(
        listed(&app, Some(&alice), "/api/v1/users?prefix=b", "users")
            .await
            .is_empty()
    );
    assert!(listed(&app, Some(&bob), "/api/v1/users?prefix=a", "users")
        .await
        .is_empty());
    // Anonymous visitors still see the public item: the block is between two accounts.
    assert_eq!(app.get_item(None, public_id).await.status(), StatusCode::OK);
    assert_eq!(code(&app, &alice, "DELETE", "/api/v1/blocks/bob").await, no);
    assert_eq!(
        app.get_item(Some(&bob), public_id).await.status(),
        StatusCode::OK
    );
    let profile = json_of(
        app.get(Some(&bob), "/api/v1/users/alice").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        profile["standing"]["friends"], false,
        "what the block removed stays gone"
    );
    assert_eq!(profile["standing"]["following"], false);
}

async fn profiles_and_search_show_what_each_viewer_may_see(backend: Backend) {
    let app = crate::helpers::spawn_app(backend).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    app.user("al_ex").await;
    befriend(&app, &alice, "bob", &bob).await;
    sqlx::query("UPDATE users SET email = 'alice@example.com' WHERE username = 'alice'")
        .execute(&app.state.db.pool)
        .await
        .unwrap();

    // Editing one's profile: the avatar must be an open image of one's own.
    let private = app.upload_ok(&alice, fixtures::jpeg(50, 40), "").await;
    let public = app
        .upload_ok(&alice, fixtures::jpeg(600, 400), "visibility=public")
        .await;
    let carols = app
        .upload_ok(&carol, fixtures::jpeg(54, 40), "visibility=public")
        .await;
    for bad in [&private, &carols] {
        let resp = send(
            &app,
            &alice,
            "PATCH",
            "/api/v1/profile",
            Some(json!({ "avatar_id": bad["id"] })),
        )
        .await;
        assert_eq!(
            error_code(resp).await,
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_avatar".into())
        );
    }
    let long = "x".repeat(65);
    let resp = send(
        &app,
        &alice,
        "PATCH",
        "/api/v1/profile",
        Some(json!({ "display_name": long })),
    )
    .await;
    assert_eq!(error_code(resp).await.0, StatusCode::UNPROCESSABLE_ENTITY);
    let resp = send(
        &app,
        &alice,
        "PATCH",
        "/api/v1/profile",
        Some(json!({ "messages_from": "martians" })),
    )
    .await;
    assert_eq!(error_code(resp).await.0, StatusCode::UNPROCESSABLE_ENTITY);
    let patch = json!({ "display_name": "Alice A.", "bio": "Lakes and trains.", "avatar_id": public["id"], "messages_from": "anyone" });
    let own = json_of(
        send(&app, &alice, "PATCH", "/api/v1/profile", Some(patch)).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(own["display_name"], "Alice A.");
    assert_eq!(
        own["avatar_url"],
        format!(
            "/img/{}/w_256,h_256,fit_cover.jpg",
            public["id"].as_str().unwrap()
        )
    );
    let avatar = app.get(None, own["avatar_url"].as_str().unwrap()).await;
    assert_eq!(avatar.status(), StatusCode::OK);
    let png = image::load_from_memory(&avatar.bytes().await.unwrap()).unwrap();
    assert_eq!((png.width(), png.height()), (256, 256));
    assert_eq!(
        json_of(
            app.get(Some(&alice), "/api/v1/profile").await,
            StatusCode::OK
        )
        .await,
        own
    );

    // Everyone sees the public part; a friend also when alice joined and her email.
    let anonymous = json_of(app.get(None, "/api/v1/users/alice").await, StatusCode::OK).await;
    assert_eq!(anonymous["display_name"], "Alice A.");
    assert_eq!(anonymous["bio"], "Lakes and trains.");
    assert_eq!(
        (
            anonymous["friends"].as_i64(),
            anonymous["followers"].as_i64()
        ),
        (Some(1), Some(0))
    );
    assert_eq!(anonymous["email"], Value::Null);
    assert_eq!(anonymous["member_since"], Value::Null);
    assert_eq!(anonymous["standing"], Value::Null);
    let stranger = json_of(
        app.get(Some(&carol), "/api/v1/users/alice").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(stranger["email"], Value::Null);
    assert_eq!(stranger["standing"]["friends"], false);
    let friend = json_of(
        app.get(Some(&bob), "/api/v1/users/alice").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(friend["email"], "alice@example.com");
    assert!(friend["member_since"].is_string());
    assert_eq!(friend["standing"]["friends"], true);
    // A pending request shows on both profiles with its id.
    let resp = send(
        &app,
        &carol,
        "POST",
        "/api/v1/friends/requests",
        Some(json!({ "user": "alice" })),
    )
    .await;
    let id = json_of(resp, StatusCode::CREATED).await["id"].clone();
    let seen = json_of(
        app.get(Some(&alice), "/api/v1/users/carol").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(seen["standing"]["incoming_request"], id);
    let seen = json_of(
        app.get(Some(&carol), "/api/v1/users/alice").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(seen["standing"]["outgoing_request"], id);
    assert_eq!(
        app.get(None, "/api/v1/users/nobody").await.status(),
        StatusCode::NOT_FOUND
    );

    // Search by prefix: `_` is a letter of the name, not a wildcard; paging by name.
    let found = json_of(
        app.get(Some(&carol), "/api/v1/users?prefix=al").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(names(&found, "users"), ["al_ex", "alice"]);
    let found = json_of(
        app.get(Some(&carol), "/api/v1/users?prefix=al_").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(names(&found, "users"), ["al_ex"]);
    let first = json_of(
        app.get(Some(&carol), "/api/v1/users?prefix=al&limit=1")
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(names(&first, "users"), ["al_ex"]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let rest = json_of(
        app.get(
            Some(&carol),
            &format!("/api/v1/users?prefix=al&limit=1&cursor={cursor}"),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(names(&rest, "users"), ["alice"]);
    assert_eq!(rest["users"][0]["display_name"], "Alice A.");
    assert_eq!(
        error_code(app.get(Some(&carol), "/api/v1/users?prefix=").await)
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        app.get(None, "/api/v1/users?prefix=al").await.status(),
        StatusCode::UNAUTHORIZED
    );

    // A deleted account leaves everyone's graph at once, though its row waits for its items.
    let gone = send(
        &app,
        &bob,
        "DELETE",
        "/api/v1/account",
        Some(json!({ "password": "correct horse battery" })),
    )
    .await;
    assert_eq!(gone.status(), StatusCode::NO_CONTENT);
    eventually(
        Duration::from_secs(10),
        "bob's friendship to go",
        || async { app.count("friendships").await == 0 },
    )
    .await;
    assert_eq!(
        json_of(
            app.get(Some(&alice), "/api/v1/friends").await,
            StatusCode::OK
        )
        .await["friends"],
        json!([])
    );
    assert_eq!(
        app.get(None, "/api/v1/users/alice")
            .await
            .json::<Value>()
            .await
            .unwrap()["friends"],
        0
    );
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Who {
    Owner,
    Friend,
    Follower,
    Stranger,
    Blocked,
    Anonymous,
    Admin,
}

const EVERYONE: [Who; 7] = [
    Who::Owner,
    Who::Friend,
    Who::Follower,
    Who::Stranger,
    Who::Blocked,
    Who::Anonymous,
    Who::Admin,
];

/// Whether `who` may read an item of `visibility`: the rule this matrix checks.
fn readable(who: Who, visibility: &str) -> bool {
    match who {
        Who::Owner | Who::Admin => true,
        Who::Blocked => false,
        Who::Friend => visibility != "private",
        Who::Follower | Who::Stranger | Who::Anonymous => {
            matches!(visibility, "public" | "unlisted")
        }
    }
}

async fn status(app: &TestApp, token: Option<&str>, method: &str, path: &str) -> StatusCode {
    let url = app.url(path);
    let mut req = match method {
        "update" => app.client.patch(&url).json(&json!({ "title": "changed" })),
        "delete" => app.client.delete(&url),
        _ => app.client.get(&url),
    };
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap().status()
}

async fn the_access_matrix_holds_for_friends_followers_and_the_blocked(backend: Backend) {
    let app = crate::helpers::spawn_app(backend).await;
    let owner = app.user("owner").await;
    let friend = app.user("friend").await;
    let follower = app.user("follower").await;
    let stranger = app.user("stranger").await;
    let blocked = app.user("blocked").await;
    let admin = app.admin("admin").await;
    befriend(&app, &owner, "friend", &friend).await;
    assert_eq!(
        send(&app, &follower, "POST", "/api/v1/users/owner/follow", None)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    // Blocked after being a friend: the block wins over what was.
    befriend(&app, &blocked, "owner", &owner).await;
    assert_eq!(
        send(
            &app,
            &owner,
            "POST",
            "/api/v1/blocks",
            Some(json!({ "user": "blocked" }))
        )
        .await
        .status(),
        StatusCode::NO_CONTENT
    );
    let token = |who: Who| match who {
        Who::Owner => Some(owner.as_str()),
        Who::Friend => Some(friend.as_str()),
        Who::Follower => Some(follower.as_str()),
        Who::Stranger => Some(stranger.as_str()),
        Who::Blocked => Some(blocked.as_str()),
        Who::Anonymous => None,
        Who::Admin => Some(admin.as_str()),
    };
    let visibilities = ["private", "friends", "unlisted", "public"];

    // The item API: read / update / delete, each on an item of its own.
    let mut n = 0;
    for visibility in visibilities {
        for who in EVERYONE {
            for method in ["read", "update", "delete"] {
                n += 1;
                let item = app
                    .upload_ok(
                        &owner,
                        fixtures::jpeg(20 + n, 16),
                        &format!("visibility={visibility}"),
                    )
                    .await;
                let id = item["id"].as_str().unwrap();
                let got = status(&app, token(who), method, &format!("/api/v1/media/{id}")).await;
                let privileged = matches!(who, Who::Owner | Who::Admin);
                let expected = match (method, who) {
                    (_, Who::Anonymous) if method != "read" => StatusCode::UNAUTHORIZED,
                    _ if !readable(who, visibility) => StatusCode::NOT_FOUND,
                    ("read", _) => StatusCode::OK,
                    ("delete", _) if privileged => StatusCode::NO_CONTENT,
                    _ if privileged => StatusCode::OK,
                    _ => StatusCode::FORBIDDEN,
                };
                assert_eq!(got, expected, "{who:?} {method} a {visibility} item");
            }
        }
    }

    // Every byte-serving route of a processed image, per visibility.
    for visibility in visibilities {
        let item = app
            .upload_ok(
                &owner,
                fixtures::jpeg(200, 120),
                &format!("visibility={visibility}"),
            )
            .await;
        let id = item["id"].as_str().unwrap().to_string();
        let ready = app.wait_processed(&owner, &id).await;
        assert_eq!(ready["status"], "ready", "{ready}");
        let preset = ready["variants"][0]["url"].as_str().unwrap().to_string();
        let routes = [
            format!("/api/v1/media/{id}"),
            preset,
            format!("/media/{id}/original"),
            format!("/img/{id}/w_40,q_70.jpg"),
            format!("/api/v1/media/{id}/similar"),
        ];
        for who in EVERYONE {
            for route in &routes {
                let got = status(&app, token(who), "read", route).await;
                let privileged = matches!(who, Who::Owner | Who::Admin);
                // Originals go to owners and admins only (delivery.public_originals off).
                let open = if route.ends_with("/original") {
                    privileged
                } else {
                    readable(who, visibility)
                };
                let expected = if open {
                    StatusCode::OK
                } else {
                    StatusCode::NOT_FOUND
                };
                assert_eq!(got, expected, "{who:?} GET {route} of a {visibility} item");
            }
            // A playback token minted by a reader opens the item's derivatives for a
            // player without credentials, never the original; nobody else can mint one.
            let mut mint = app
                .client
                .post(app.url(&format!("/api/v1/media/{id}/playback-token")));
            if let Some(t) = token(who) {
                mint = mint.bearer_auth(t);
            }
            let minted = mint.send().await.unwrap();
            if !readable(who, visibility) {
                assert_eq!(
                    minted.status(),
                    StatusCode::NOT_FOUND,
                    "{who:?} mints for a {visibility} item"
                );
                continue;
            }
            let minted = json_of(minted, StatusCode::OK).await;
            let t = minted["token"].as_str().unwrap();
            let with = |route: &str| format!("{route}?token={t}");
            assert_eq!(
                status(&app, None, "read", &with(&routes[1])).await,
                StatusCode::OK,
                "{who:?}'s token"
            );
            let original = status(&app, None, "read", &with(&routes[2])).await;
            assert_eq!(
                original,
                StatusCode::NOT_FOUND,
                "{who:?}'s token opened the original"
            );
        }
    }
    // Similar search lists only what the caller may read: from the friend's side, the
    // friends and open items but not the private one; nothing for the blocked one.
    let probe = app
        .upload_ok(&stranger, fixtures::jpeg(200, 120), "visibility=public")
        .await;
    let probe_id = probe["id"].as_str().unwrap();
    app.wait_processed(&stranger, probe_id).await;
    for (who, expected) in [
        // Unlisted items are never listed, not even to friends.
        (Who::Friend, vec!["friends", "public"]),
        (Who::Stranger, vec!["public"]),
        (Who::Blocked, vec![]),
        (Who::Owner, vec!["friends", "private", "public", "unlisted"]),
    ] {
        let page = json_of(
            app.get(
                token(who),
                &format!("/api/v1/media/{probe_id}/similar?max_distance=4"),
            )
            .await,
            StatusCode::OK,
        )
        .await;
        let mut seen: Vec<String> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| {
                i["item"]["sha256"] == probe["sha256"] && i["item"]["owner_id"] != probe["owner_id"]
            })
            .map(|i| i["item"]["visibility"].as_str().unwrap().to_string())
            .collect();
        seen.sort();
        assert_eq!(seen, expected, "similar items for {who:?}");
    }
}

async fn a_readers_playback_token_ends_with_the_friendship_that_earned_it(backend: Backend) {
    let app = crate::helpers::spawn_app(backend).await;
    let owner = app.user("owner").await;
    let friend = app.user("friend").await;
    befriend(&app, &owner, "friend", &friend).await;
    let item = app
        .upload_ok(&owner, fixtures::jpeg(64, 48), "visibility=friends")
        .await;
    let id = item["id"].as_str().unwrap().to_string();
    app.wait_processed(&owner, &id).await;
    let path = format!("/api/v1/media/{id}/playback-token");
    let minted = json_of(
        send(&app, &friend, "POST", &path, None).await,
        StatusCode::OK,
    )
    .await;
    let token = minted["token"].as_str().unwrap().to_string();
    let thumb = format!("/media/{id}/thumb.webp?token={token}");
    // Signed out, the friend's token opens the rendition while the friendship lasts…
    assert_eq!(app.get(None, &thumb).await.status(), StatusCode::OK);
    // …and not a moment after, although it has hours left.
    let unfriend = send(&app, &owner, "DELETE", "/api/v1/friends/friend", None).await;
    assert_eq!(unfriend.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.get(None, &thumb).await.status(), StatusCode::NOT_FOUND);
    // The owner's own token is the owner's decision and keeps opening it.
    let own = json_of(
        send(&app, &owner, "POST", &path, None).await,
        StatusCode::OK,
    )
    .await;
    let own = format!(
        "/media/{id}/thumb.webp?token={}",
        own["token"].as_str().unwrap()
    );
    assert_eq!(app.get(None, &own).await.status(), StatusCode::OK);
}

async fn an_api_key_without_social_read_sees_no_social_things_and_no_social_events(
    backend: Backend,
) {
    let app = crate::helpers::spawn_app(backend).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let key = |scopes: Value| {
        let body = json!({ "name": "ci", "scopes": scopes });
        let bob = bob.clone();
        let app = &app;
        async move {
            let made = send(app, &bob, "POST", "/api/v1/api-keys", Some(body)).await;
            json_of(made, StatusCode::CREATED).await["key"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    let media_only = key(json!(["media:read"])).await;
    let social = key(json!(["media:read", "social:read"])).await;
    asked(&app, &alice, "bob").await;

    // Optional-viewer social routes: anonymous is fine, a key without the scope is not.
    assert_eq!(
        app.get(None, "/api/v1/users/alice").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        error_code(app.get(Some(&media_only), "/api/v1/users/alice").await).await,
        (StatusCode::FORBIDDEN, "insufficient_scope".into())
    );
    assert_eq!(
        app.get(Some(&social), "/api/v1/users/alice").await.status(),
        StatusCode::OK
    );

    // Events: the request reached bob's events, but only the social key sees it.
    let types = |page: Value| -> Vec<String> {
        (page["events"].as_array().unwrap().iter())
            .map(|e| e["type"].as_str().unwrap().to_string())
            .collect()
    };
    let page = json_of(
        app.get(Some(&social), "/api/v1/events").await,
        StatusCode::OK,
    )
    .await;
    assert!(types(page).contains(&"friend.requested".to_string()));
    let page = json_of(
        app.get(Some(&media_only), "/api/v1/events").await,
        StatusCode::OK,
    )
    .await;
    assert!(
        !types(page.clone()).iter().any(|t| t.starts_with("friend.")),
        "{page}"
    );
    let asked_for = app
        .get(Some(&media_only), "/api/v1/events?types=friend.*")
        .await;
    let page = json_of(asked_for, StatusCode::OK).await;
    assert_eq!(page["events"], json!([]));
}

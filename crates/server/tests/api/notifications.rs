//! Notifications and the feed against the real router: a notification reaches its
//! recipient's open event stream (within a second here) and nobody else's; per-type
//! channels; read markers and the unread count; a friend's uploads; the feed shows
//! friends' and followees' items as each may see them.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::both_backends;
use crate::events::Stream;
use crate::fixtures;
use crate::helpers::{error_code, Backend, TestApp};
use crate::social::{code, json_of, send};

both_backends!(notifications_reach_their_recipient_live_and_the_feed_shows_what_each_may_see);

async fn notifications(app: &TestApp, token: &str) -> Value {
    json_of(
        app.get(Some(token), "/api/v1/notifications").await,
        StatusCode::OK,
    )
    .await
}

fn types(page: &Value) -> Vec<String> {
    let list = page["notifications"].as_array().unwrap();
    list.iter()
        .map(|n| n["type"].as_str().unwrap().to_string())
        .collect()
}

/// Waits until `token` has a notification of `kind`; returns the page.
async fn until_notified(app: &TestApp, token: &str, kind: &str) -> Value {
    app.wait_until_json(token, "/api/v1/notifications", |page| {
        types(page).iter().any(|t| t == kind)
    })
    .await
}

fn feed_ids(page: &Value) -> Vec<String> {
    let items = page["items"].as_array().unwrap();
    items
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

async fn notifications_reach_their_recipient_live_and_the_feed_shows_what_each_may_see(
    backend: Backend,
) {
    let app = crate::helpers::spawn_app(backend).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let dave = app.user("dave").await;

    // Live: bob's open stream hears of alice's request; carol's hears nothing of it.
    let mut bobs = Stream::open(&app, &bob, "types=notification.created", None).await;
    let mut carols = Stream::open(&app, &carol, "", None).await;
    let asked = Instant::now();
    let resp = send(
        &app,
        &alice,
        "POST",
        "/api/v1/friends/requests",
        Some(json!({ "user": "bob" })),
    )
    .await;
    let request = json_of(resp, StatusCode::CREATED).await;
    let (_, kind, event) = bobs.next().await;
    let latency = asked.elapsed();
    println!("notification on the stream {latency:?} after the request");
    assert!(latency < Duration::from_secs(1), "took {latency:?}");
    assert_eq!(kind, "notification.created");
    assert_eq!(event["data"]["type"], "friend.requested");
    assert_eq!(event["data"]["subject_id"], request["id"]);
    assert_eq!(event["data"]["data"]["from"]["username"], "alice");
    // The list: one unread; marking it read clears the count.
    let page = until_notified(&app, &bob, "friend.requested").await;
    assert_eq!(page["unread"], 1);
    let id = page["notifications"][0]["id"].as_str().unwrap().to_string();
    let bad = send(
        &app,
        &bob,
        "POST",
        "/api/v1/notifications/read",
        Some(json!({})),
    )
    .await;
    assert_eq!(error_code(bad).await.0, StatusCode::UNPROCESSABLE_ENTITY);
    let read = send(
        &app,
        &bob,
        "POST",
        "/api/v1/notifications/read",
        Some(json!({ "ids": [id] })),
    )
    .await;
    assert_eq!(json_of(read, StatusCode::OK).await["unread"], 0);
    // carol may not mark bob's read, nor see them.
    let theirs = send(
        &app,
        &carol,
        "POST",
        "/api/v1/notifications/read",
        Some(json!({ "ids": [id] })),
    )
    .await;
    assert_eq!(json_of(theirs, StatusCode::OK).await["unread"], 0);
    assert!(notifications(&app, &bob).await["notifications"][0]["read_at"].is_string());

    // Channels per type: alice turns new followers off; a later event shows it was skipped.
    let bad = send(
        &app,
        &alice,
        "PUT",
        "/api/v1/notifications/settings",
        Some(json!({ "type": "user.followed", "channel": "pigeon" })),
    )
    .await;
    assert_eq!(error_code(bad).await.0, StatusCode::UNPROCESSABLE_ENTITY);
    let set = send(
        &app,
        &alice,
        "PUT",
        "/api/v1/notifications/settings",
        Some(json!({ "type": "user.followed", "channel": "none" })),
    )
    .await;
    let settings = json_of(set, StatusCode::OK).await;
    let followed = settings["settings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["type"] == "user.followed")
        .unwrap()
        .clone();
    assert_eq!(followed["channel"], "none");
    assert_eq!(
        code(&app, &carol, "POST", "/api/v1/users/alice/follow").await,
        StatusCode::NO_CONTENT
    );
    let accept = format!(
        "/api/v1/friends/requests/{}/accept",
        request["id"].as_str().unwrap()
    );
    assert_eq!(code(&app, &bob, "POST", &accept).await, StatusCode::OK);
    let page = until_notified(&app, &alice, "friend.accepted").await;
    assert_eq!(
        types(&page),
        ["friend.accepted"],
        "no user.followed: turned off"
    );
    assert_eq!(page["notifications"][0]["data"]["username"], "bob");

    // A friend's uploads: one unread notification for a burst; private ones say nothing.
    app.upload_ok(&alice, fixtures::jpeg(41, 30), "").await;
    let public = app
        .upload_ok(&alice, fixtures::jpeg(42, 30), "visibility=public")
        .await;
    let friends = app
        .upload_ok(&alice, fixtures::jpeg(43, 30), "visibility=friends")
        .await;
    let unlisted = app
        .upload_ok(&alice, fixtures::jpeg(44, 30), "visibility=unlisted")
        .await;
    for item in [&public, &friends, &unlisted] {
        app.wait_processed(&alice, item["id"].as_str().unwrap())
            .await;
    }
    let page = until_notified(&app, &bob, "friend.uploaded").await;
    // Let every media.ready pass the subscriber: a later event for bob is the barrier.
    assert_eq!(
        code(&app, &dave, "POST", "/api/v1/users/bob/follow").await,
        StatusCode::NO_CONTENT
    );
    until_notified(&app, &bob, "user.followed").await;
    let page_after = notifications(&app, &bob).await;
    let uploads = types(&page_after)
        .iter()
        .filter(|t| *t == "friend.uploaded")
        .count();
    assert_eq!(uploads, 1, "{page_after}");
    assert_eq!(
        page["notifications"][0]["data"]["owner_id"],
        public["owner_id"]
    );
    // Nobody else heard of bob's or alice's notifications.
    assert!(types(&notifications(&app, &carol).await).is_empty());

    // The feed: friends see public and friends items, followers public ones, others none;
    // unlisted and private never; newest first, paged.
    let bobs_feed = json_of(app.get(Some(&bob), "/api/v1/feed").await, StatusCode::OK).await;
    let (p, f) = (
        public["id"].as_str().unwrap(),
        friends["id"].as_str().unwrap(),
    );
    assert_eq!(feed_ids(&bobs_feed), [f, p]);
    let carols_feed = json_of(app.get(Some(&carol), "/api/v1/feed").await, StatusCode::OK).await;
    assert_eq!(feed_ids(&carols_feed), [p]);
    let daves_feed = json_of(app.get(Some(&dave), "/api/v1/feed").await, StatusCode::OK).await;
    assert!(
        feed_ids(&daves_feed).is_empty(),
        "dave follows bob, not alice"
    );
    let first = json_of(
        app.get(Some(&bob), "/api/v1/feed?limit=1").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(feed_ids(&first), [f]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let rest = json_of(
        app.get(Some(&bob), &format!("/api/v1/feed?limit=1&cursor={cursor}"))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(feed_ids(&rest), [p]);
    assert_eq!(
        app.get(None, "/api/v1/feed").await.status(),
        StatusCode::UNAUTHORIZED
    );
    // Unfriended, the friends item leaves bob's feed at once.
    assert_eq!(
        code(&app, &bob, "DELETE", "/api/v1/friends/alice").await,
        StatusCode::NO_CONTENT
    );
    let bobs_feed = json_of(app.get(Some(&bob), "/api/v1/feed").await, StatusCode::OK).await;
    assert!(feed_ids(&bobs_feed).is_empty(), "{bobs_feed}");
    // carol's stream got nothing meant for others all along: the first event on it is
    // the first one for her.
    assert_eq!(
        code(&app, &bob, "POST", "/api/v1/users/carol/follow").await,
        StatusCode::NO_CONTENT
    );
    let (_, kind, event) = carols.next().await;
    assert_eq!(kind, "user.followed");
    assert_eq!(event["data"]["follower"]["username"], "bob");
}

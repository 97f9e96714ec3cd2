//! The inbox against the real router: three friends of one user in two conversations,
//! where nobody ever sees a message or a shared item of a conversation they are not in —
//! through the conversation API, the item API and its bytes, events, notifications or
//! the feed; who may start a conversation; unread counts and read markers; mute, leave,
//! deleting one's own message (which ends what it shared); and blocks.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::both_backends;
use crate::fixtures;
use crate::helpers::{error_code, Backend, TestApp};
use crate::social::{befriend, code, json_of, send};

both_backends!(nobody_sees_a_conversation_they_are_not_in_and_shared_items_end_with_their_message,);

async fn start(app: &TestApp, token: &str, body: Value) -> reqwest::Response {
    send(app, token, "POST", "/api/v1/conversations", Some(body)).await
}

async fn post(app: &TestApp, token: &str, conversation: &str, body: Value) -> reqwest::Response {
    let path = format!("/api/v1/conversations/{conversation}/messages");
    send(app, token, "POST", &path, Some(body)).await
}

/// The ids of what `path` lists under `key` for `token`.
async fn ids(app: &TestApp, token: &str, path: &str, key: &str) -> Vec<String> {
    let page = json_of(app.get(Some(token), path).await, StatusCode::OK).await;
    (page[key].as_array().unwrap().iter())
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect()
}

/// Every event `token`'s events API shows, as (type, aggregate id, payload).
async fn events(app: &TestApp, token: &str) -> Vec<(String, String, Value)> {
    let page = json_of(
        app.get(Some(token), "/api/v1/events?limit=1000").await,
        StatusCode::OK,
    )
    .await;
    (page["events"].as_array().unwrap().iter())
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_string(),
                e["aggregate_id"].as_str().unwrap().to_string(),
                e["data"].clone(),
            )
        })
        .collect()
}

async fn message_notices(app: &TestApp, token: &str) -> Vec<Value> {
    let page = json_of(
        app.get(Some(token), "/api/v1/notifications").await,
        StatusCode::OK,
    )
    .await;
    (page["notifications"].as_array().unwrap().iter())
        .filter(|n| n["type"] == "message.created")
        .cloned()
        .collect()
}

async fn nobody_sees_a_conversation_they_are_not_in_and_shared_items_end_with_their_message(
    backend: Backend,
) {
    let app = crate::helpers::spawn_app(backend).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let dave = app.user("dave").await;
    befriend(&app, &alice, "bob", &bob).await;
    befriend(&app, &alice, "carol", &carol).await;
    let for_bob = app
        .upload_ok(
            &alice,
            fixtures::jpeg(80, 60),
            "visibility=private&title=ForBob",
        )
        .await;
    let for_carol = app
        .upload_ok(
            &alice,
            fixtures::jpeg(60, 80),
            "visibility=private&title=ForCarol",
        )
        .await;
    let (p1, p2) = (
        for_bob["id"].as_str().unwrap().to_string(),
        for_carol["id"].as_str().unwrap().to_string(),
    );
    app.wait_processed(&alice, &p1).await;
    app.wait_processed(&alice, &p2).await;
    let bobs_photo = app
        .upload_ok(&bob, fixtures::jpeg(40, 30), "visibility=friends")
        .await;
    let bobs_photo = bobs_photo["id"].as_str().unwrap().to_string();

    // Two conversations, each with a private photo of alice's.
    let a = json_of(
        start(
            &app,
            &alice,
            json!({ "members": ["bob"], "text": "hi bob", "media_ids": [p1] }),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let a = a["id"].as_str().unwrap().to_string();
    let b = json_of(
        start(
            &app,
            &alice,
            json!({ "members": ["carol"], "text": "hi carol", "media_ids": [p2] }),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let b = b["id"].as_str().unwrap().to_string();
    // Two people alone keep one conversation.
    let again = start(&app, &alice, json!({ "members": ["bob"] })).await;
    assert_eq!(json_of(again, StatusCode::OK).await["id"], a.as_str());

    // Who may start one, and with what.
    let not_friends = start(&app, &bob, json!({ "members": ["carol"], "text": "hey" })).await;
    assert_eq!(
        error_code(not_friends).await,
        (StatusCode::FORBIDDEN, "not_accepting_messages".into())
    );
    let unknown = start(&app, &bob, json!({ "members": ["nobody"] })).await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    for bad in [
        json!({ "members": [] }),
        json!({ "members": ["alice"] }),
        json!({ "members": ["bob"], "text": "x".repeat(5001) }),
    ] {
        let resp = start(&app, &alice, bad.clone()).await;
        assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
    // Someone else's `friends` item is not alice's to pass on, even though she sees it.
    let forwarded = post(&app, &alice, &a, json!({ "media_ids": [bobs_photo] })).await;
    assert_eq!(
        error_code(forwarded).await,
        (StatusCode::UNPROCESSABLE_ENTITY, "not_shareable".into())
    );
    assert_eq!(
        post(&app, &alice, &a, json!({ "text": "   " }))
            .await
            .status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );

    // The conversation API: each sees their own and nothing else.
    assert_eq!(
        ids(&app, &alice, "/api/v1/conversations", "conversations").await,
        vec![b.clone(), a.clone()]
    );
    assert_eq!(
        ids(&app, &bob, "/api/v1/conversations", "conversations").await,
        vec![a.clone()]
    );
    assert_eq!(
        ids(&app, &carol, "/api/v1/conversations", "conversations").await,
        vec![b.clone()]
    );
    assert!(ids(&app, &dave, "/api/v1/conversations", "conversations")
        .await
        .is_empty());
    for (who, theirs, other) in [(&bob, &a, &b), (&carol, &b, &a)] {
        let messages = format!("/api/v1/conversations/{theirs}/messages");
        assert_eq!(ids(&app, who, &messages, "messages").await.len(), 1);
        for path in [
            format!("/api/v1/conversations/{other}"),
            format!("/api/v1/conversations/{other}/messages"),
        ] {
            assert_eq!(
                code(&app, who, "GET", &path).await,
                StatusCode::NOT_FOUND,
                "{path}"
            );
        }
        let write = post(&app, who, other, json!({ "text": "let me in" })).await;
        assert_eq!(write.status(), StatusCode::NOT_FOUND);
        for verb in ["read", "leave"] {
            let path = format!("/api/v1/conversations/{other}/{verb}");
            let body = (verb == "read").then(|| json!({}));
            let resp = send(&app, who, "POST", &path, body).await;
            assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{path}");
        }
    }
    for conversation in [&a, &b] {
        let path = format!("/api/v1/conversations/{conversation}/messages");
        assert_eq!(code(&app, &dave, "GET", &path).await, StatusCode::NOT_FOUND);
    }
    // A member sees the message with its photo, the photo's own page and bytes.
    let page = json_of(
        app.get(Some(&bob), &format!("/api/v1/conversations/{a}/messages"))
            .await,
        StatusCode::OK,
    )
    .await;
    let message = &page["messages"][0];
    assert_eq!(message["text"], "hi bob");
    assert_eq!(message["sender"]["username"], "alice");
    assert_eq!(message["items"][0]["id"], p1.as_str());
    let first_message = message["id"].as_str().unwrap().to_string();

    // The item API and every byte route: only the conversation's members.
    let readable = |token: &str, id: &str| {
        let (token, id) = (token.to_string(), id.to_string());
        let app = &app;
        async move {
            let item = app.get_item(Some(&token), &id).await.status();
            let thumb = app
                .get(Some(&token), &format!("/media/{id}/thumb.webp"))
                .await;
            assert_eq!(item, thumb.status(), "{id}: item API and bytes agree");
            item == StatusCode::OK
        }
    };
    assert!(readable(&bob, &p1).await);
    assert!(!readable(&bob, &p2).await);
    assert!(readable(&carol, &p2).await);
    assert!(!readable(&carol, &p1).await);
    assert!(!readable(&dave, &p1).await && !readable(&dave, &p2).await);
    assert_eq!(
        app.get_item(None, &p1).await.status(),
        StatusCode::NOT_FOUND
    );

    // Events and notifications: each hears of their own conversation only.
    let m_b = ids(
        &app,
        &carol,
        &format!("/api/v1/conversations/{b}/messages"),
        "messages",
    )
    .await
    .remove(0);
    app.wait_until_json(&bob, "/api/v1/notifications", |p| {
        (p["notifications"].as_array().unwrap().iter()).any(|n| n["type"] == "message.created")
    })
    .await;
    app.wait_until_json(&carol, "/api/v1/notifications", |p| {
        (p["notifications"].as_array().unwrap().iter()).any(|n| n["type"] == "message.created")
    })
    .await;
    for (who, mine, theirs, my_conv, their_conv) in [
        (&bob, &first_message, &m_b, &a, &b),
        (&carol, &m_b, &first_message, &b, &a),
    ] {
        let seen = events(&app, who).await;
        assert!(seen
            .iter()
            .any(|(t, id, _)| t == "message.created" && id == mine));
        for (_, id, data) in &seen {
            let text = data.to_string();
            assert!(id != theirs && !text.contains(theirs.as_str()), "{text}");
            assert!(!text.contains(their_conv.as_str()), "{text}");
        }
        let notices = message_notices(&app, who).await;
        assert_eq!(notices.len(), 1);
        assert_eq!(notices[0]["subject_id"], mine.as_str());
        assert_eq!(notices[0]["data"]["conversation_id"], my_conv.as_str());
        let all = json_of(
            app.get(Some(who), "/api/v1/notifications").await,
            StatusCode::OK,
        )
        .await;
        assert!(!all.to_string().contains(their_conv.as_str()));
    }
    for (_, _, data) in events(&app, &dave).await {
        assert!(data["conversation_id"].is_null(), "{data}");
    }
    assert!(message_notices(&app, &dave).await.is_empty());
    // The feed shows no private item, shared or not.
    for who in [&bob, &carol, &dave] {
        let feed = ids(&app, who, "/api/v1/feed", "items").await;
        assert!(!feed.contains(&p1) && !feed.contains(&p2), "{feed:?}");
    }

    // Unread counts and read markers.
    let listed = json_of(
        app.get(Some(&bob), "/api/v1/conversations").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (
            listed["unread"].as_i64(),
            listed["conversations"][0]["unread"].as_i64()
        ),
        (Some(1), Some(1))
    );
    let read = send(
        &app,
        &bob,
        "POST",
        &format!("/api/v1/conversations/{a}/read"),
        Some(json!({})),
    )
    .await;
    assert_eq!(json_of(read, StatusCode::OK).await["unread"], 0);
    let mine = json_of(
        app.get(Some(&alice), "/api/v1/conversations").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(mine["unread"], 0, "one's own messages are read");
    let reply = post(&app, &bob, &a, json!({ "text": "thanks!" })).await;
    let reply = json_of(reply, StatusCode::CREATED).await;
    assert_eq!(reply["mine"], true);
    let mine = json_of(
        app.get(Some(&alice), "/api/v1/conversations").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (
            mine["unread"].as_i64(),
            mine["conversations"][0]["id"].as_str()
        ),
        (Some(1), Some(a.as_str()))
    );

    // Only its sender deletes a message; deleting it ends the grant of what it shared.
    let path = format!("/api/v1/conversations/{a}/messages/{first_message}");
    assert_eq!(
        code(&app, &bob, "DELETE", &path).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        code(&app, &dave, "DELETE", &path).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        code(&app, &alice, "DELETE", &path).await,
        StatusCode::NO_CONTENT
    );
    assert!(!readable(&bob, &p1).await);
    assert_eq!(
        ids(
            &app,
            &bob,
            &format!("/api/v1/conversations/{a}/messages"),
            "messages"
        )
        .await,
        vec![reply["id"].as_str().unwrap().to_string()]
    );
    assert!(
        message_notices(&app, &bob).await.is_empty(),
        "its notice went with it"
    );

    // Muted: no notice; left: nothing more, and what was shared is closed.
    let muted = send(
        &app,
        &bob,
        "PATCH",
        &format!("/api/v1/conversations/{a}"),
        Some(json!({ "muted": true })),
    )
    .await;
    assert_eq!(json_of(muted, StatusCode::OK).await["muted"], true);
    json_of(
        post(&app, &alice, &a, json!({ "text": "muted?" })).await,
        StatusCode::CREATED,
    )
    .await;
    let later = json_of(
        post(&app, &alice, &b, json!({ "text": "after the mute" })).await,
        StatusCode::CREATED,
    )
    .await;
    let later = later["id"].as_str().unwrap().to_string();
    // The notifier goes in order: once carol has heard of the later one, bob's is decided.
    app.wait_until_json(&carol, "/api/v1/notifications", |p| {
        (p["notifications"].as_array().unwrap().iter()).any(|n| n["subject_id"] == later.as_str())
    })
    .await;
    assert!(message_notices(&app, &bob).await.is_empty(), "muted");
    assert_eq!(
        code(
            &app,
            &carol,
            "POST",
            &format!("/api/v1/conversations/{b}/leave")
        )
        .await,
        StatusCode::NO_CONTENT
    );
    assert!(!readable(&carol, &p2).await);
    assert_eq!(
        code(&app, &carol, "GET", &format!("/api/v1/conversations/{b}")).await,
        StatusCode::NOT_FOUND
    );
    assert!(
        message_notices(&app, &carol).await.is_empty(),
        "left with its notices"
    );
    assert!(ids(&app, &alice, "/api/v1/conversations", "conversations")
        .await
        .contains(&b));

    // A group of three; a stranger who takes messages from anyone; a block.
    let group = start(
        &app,
        &alice,
        json!({ "members": ["bob", "carol"], "title": "trip" }),
    )
    .await;
    let group = json_of(group, StatusCode::CREATED).await;
    assert_eq!(group["members"].as_array().unwrap().len(), 3);
    assert_eq!(
        error_code(start(&app, &dave, json!({ "members": ["bob"], "text": "hello" })).await).await,
        (StatusCode::FORBIDDEN, "not_accepting_messages".into())
    );
    let open = send(
        &app,
        &bob,
        "PATCH",
        "/api/v1/profile",
        Some(json!({ "messages_from": "anyone" })),
    )
    .await;
    assert_eq!(open.status(), StatusCode::OK);
    let d = start(&app, &dave, json!({ "members": ["bob"], "text": "hello" })).await;
    let d = json_of(d, StatusCode::CREATED).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let blocked = send(
        &app,
        &bob,
        "POST",
        "/api/v1/blocks",
        Some(json!({ "user": "dave" })),
    )
    .await;
    assert_eq!(blocked.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        error_code(post(&app, &dave, &d, json!({ "text": "still there?" })).await).await,
        (StatusCode::FORBIDDEN, "cannot_message".into())
    );
    assert_eq!(
        start(&app, &dave, json!({ "members": ["bob"] }))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );

    // A deleted account takes its messages and memberships; the others keep talking.
    let bob_id = json_of(app.get(Some(&bob), "/api/v1/account").await, StatusCode::OK).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let gone = send(
        &app,
        &bob,
        "DELETE",
        "/api/v1/account",
        Some(json!({ "password": "correct horse battery" })),
    )
    .await;
    assert_eq!(gone.status(), StatusCode::NO_CONTENT);
    let left = |table: &'static str, column: &'static str| {
        let (app, bob_id) = (&app, bob_id.clone());
        async move {
            let sql = format!("SELECT COUNT(*) FROM {table} WHERE {column} = $1");
            sqlx::query_scalar::<_, i64>(&sql)
                .bind(bob_id)
                .fetch_one(&app.state.db.pool)
                .await
                .unwrap()
        }
    };
    crate::helpers::eventually(
        std::time::Duration::from_secs(10),
        "bob's messages to go",
        || async { left("messages", "sender_id").await == 0 },
    )
    .await;
    assert_eq!(left("conversation_members", "user_id").await, 0);
    let members = json_of(
        app.get(Some(&alice), &format!("/api/v1/conversations/{a}"))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(members["members"].as_array().unwrap().len(), 1);
    assert_eq!(
        ids(
            &app,
            &alice,
            &format!("/api/v1/conversations/{a}/messages"),
            "messages"
        )
        .await
        .len(),
        1,
        "alice's 'muted?' stays, bob's 'thanks!' went"
    );
}

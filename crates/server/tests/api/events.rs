//! The event API and the live stream: per-aggregate order, visibility, filters, and
//! Server-Sent Events that resume exactly after `Last-Event-ID`.

use std::time::Duration;

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::both_backends;
use crate::fixtures;
use crate::helpers::{error_code, spawn_app_with, Backend, TestApp};

async fn events_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |s| s.events.poll_interval_ms = 20).await
}

async fn patch(app: &TestApp, token: &str, id: &str, body: Value) {
    let resp = app
        .client
        .patch(app.url(&format!("/api/v1/media/{id}")))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

fn types_of(events: &[Value], aggregate: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["aggregate_id"] == aggregate)
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect()
}

async fn an_items_events_arrive_in_the_order_of_its_changes(backend: Backend) {
    let app = events_app(backend).await;
    let alice = app.user("alice").await;
    let item = app.upload_ok(&alice, fixtures::jpeg(50, 40), "").await;
    let id = item["id"].as_str().unwrap().to_string();
    app.wait_processed(&alice, &id).await;
    patch(&app, &alice, &id, json!({"title": "one"})).await;
    patch(
        &app,
        &alice,
        &id,
        json!({"title": "two", "visibility": "public"}),
    )
    .await;
    let resp = app
        .client
        .delete(app.url(&format!("/api/v1/media/{id}")))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let events = app
        .wait_for_events(&alice, "types=media.*", |e| {
            types_of(e, &id)
                .last()
                .is_some_and(|t| t == "media.deleted")
        })
        .await;
    assert_eq!(
        types_of(&events, &id),
        [
            "media.created",
            "media.ready",
            "media.updated",
            "media.updated",
            "media.deleted"
        ]
    );
    let updates: Vec<&Value> = (events.iter())
        .filter(|e| e["aggregate_id"] == id.as_str() && e["type"] == "media.updated")
        .collect();
    assert_eq!(updates[0]["data"]["title"], "one");
    assert_eq!(updates[1]["data"]["title"], "two");
    assert_eq!(updates[1]["data"]["visibility"], "public");
    // The account's own creation is there too, and paging continues from `next_after`.
    let first: Value = app
        .get(Some(&alice), "/api/v1/events?limit=1")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(first["events"][0]["type"], "user.created");
    let after = first["next_after"].as_i64().unwrap();
    let rest: Value = app
        .get(Some(&alice), &format!("/api/v1/events?after={after}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(rest["events"][0]["type"], "media.created");
}

async fn nobody_sees_another_users_events_and_admins_may_see_all(backend: Backend) {
    let app = events_app(backend).await;
    let root = app.admin("root").await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let item = app
        .upload_ok(&alice, fixtures::jpeg(44, 44), "visibility=public")
        .await;
    let id = item["id"].as_str().unwrap().to_string();
    app.wait_for_events(&alice, "types=media.ready", |e| !e.is_empty())
        .await;
    let bobs: Value = app
        .get(Some(&bob), "/api/v1/events")
        .await
        .json()
        .await
        .unwrap();
    let seen = bobs["events"].as_array().unwrap();
    assert!(seen
        .iter()
        .all(|e| e["user_id"] == bobs["events"][0]["user_id"]));
    assert!(
        types_of(seen, &id).is_empty(),
        "bob saw alice's item: {seen:?}"
    );
    assert_eq!(
        error_code(app.get(Some(&bob), "/api/v1/events?all=true").await).await,
        (StatusCode::FORBIDDEN, "forbidden".into())
    );
    let all = app
        .wait_for_events(&root, "all=true", |e| types_of(e, &id).len() >= 2)
        .await;
    assert!(all
        .iter()
        .any(|e| e["type"] == "user.created" && e["data"]["username"] == "bob"));
    // Filters and bad input.
    let only: Value = app
        .get(Some(&alice), "/api/v1/events?types=user.*")
        .await
        .json()
        .await
        .unwrap();
    assert!(only["events"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["type"] == "user.created"));
    assert_eq!(
        error_code(app.get(Some(&alice), "/api/v1/events?types=nonsense").await).await,
        (StatusCode::BAD_REQUEST, "invalid_types".into())
    );
    assert_eq!(
        app.get(None, "/api/v1/events").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        error_code(
            app.get(Some(&alice), "/api/v1/events?after=999999999")
                .await
        )
        .await,
        (StatusCode::GONE, "cursor_expired".into())
    );
}

/// An `text/event-stream` reader: frames as `(id, type, data)`.
pub(crate) struct Stream {
    body: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buffer: String,
}

impl Stream {
    pub(crate) async fn open(app: &TestApp, token: &str, query: &str, last: Option<i64>) -> Stream {
        let mut req = app
            .client
            .get(app.url(&format!("/api/v1/events/stream?{query}")))
            .bearer_auth(token);
        if let Some(id) = last {
            req = req.header("last-event-id", id.to_string());
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"));
        Stream {
            body: Box::pin(resp.bytes_stream()),
            buffer: String::new(),
        }
    }

    /// The next event (comment lines — heartbeats — are skipped).
    pub(crate) async fn next(&mut self) -> (i64, String, Value) {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                let (mut id, mut kind, mut data) = (None, None, None);
                for line in frame.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = v.trim().parse().ok();
                    } else if let Some(v) = line.strip_prefix("event:") {
                        kind = Some(v.trim().to_string());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data = serde_json::from_str(v.trim()).ok();
                    }
                }
                if let (Some(id), Some(kind), Some(data)) = (id, kind, data) {
                    return (id, kind, data);
                }
                continue;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(30), self.body.next())
                .await
                .expect("no event within 30 s")
                .expect("the stream ended")
                .unwrap();
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

async fn a_stream_resumed_with_last_event_id_gets_exactly_what_it_missed(backend: Backend) {
    let app = events_app(backend).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let mut live = Stream::open(&app, &alice, "types=media.created", None).await;
    let mut bobs = Stream::open(&app, &bob, "", None).await;
    let mut uploaded = Vec::new();
    for n in 0..3 {
        let item = app.upload_ok(&alice, fixtures::jpeg(60 + n, 60), "").await;
        uploaded.push(item["id"].as_str().unwrap().to_string());
    }
    let mut seen = Vec::new();
    for _ in 0..3 {
        let (id, kind, data) = live.next().await;
        assert_eq!(kind, "media.created");
        assert_eq!(data["type"], "media.created");
        assert_eq!(data["id"], id);
        seen.push((id, data["aggregate_id"].as_str().unwrap().to_string()));
    }
    assert_eq!(
        seen.iter().map(|(_, a)| a.clone()).collect::<Vec<_>>(),
        uploaded
    );
    // Disconnected after the second: what follows is missed, then resumed.
    drop(live);
    let last_seen = seen[1].0;
    for n in 0..2 {
        let item = app.upload_ok(&alice, fixtures::jpeg(70 + n, 60), "").await;
        uploaded.push(item["id"].as_str().unwrap().to_string());
    }
    let mut resumed = Stream::open(&app, &alice, "types=media.created", Some(last_seen)).await;
    let mut after = Vec::new();
    for _ in 0..3 {
        let (_, _, data) = resumed.next().await;
        after.push(data["aggregate_id"].as_str().unwrap().to_string());
    }
    assert_eq!(after, uploaded[2..], "exactly the missed events, in order");
    // Bob's stream carries only bob's events.
    app.upload_ok(&bob, fixtures::jpeg(90, 60), "").await;
    let (_, kind, data) = bobs.next().await;
    assert_eq!(kind, "media.created");
    assert_eq!(data["user_id"], data["data"]["owner_id"]);
    assert!(!uploaded.contains(&data["aggregate_id"].as_str().unwrap().to_string()));
}

async fn a_dead_letter_is_announced_to_the_owner_of_its_item(backend: Backend) {
    let app = events_app(backend).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let item = app.upload_ok(&alice, fixtures::jpeg(45, 45), "").await;
    let id = item["id"].as_str().unwrap();
    // A job for alice's item whose payload no handler can read: dead at once.
    let job = queue::NewJob::new("process_image", json!({ "media_id": id, "blob_id": 42 }));
    let job_id = app.state.queue.enqueue(job).await.unwrap();
    let events = app
        .wait_for_events(&alice, "types=job.dead_lettered", |e| !e.is_empty())
        .await;
    assert_eq!(events[0]["aggregate_id"], job_id.as_str());
    assert_eq!(events[0]["data"]["kind"], "process_image");
    assert_eq!(events[0]["data"]["state"], "dead");
    assert!(events[0]["data"]["last_error"]
        .as_str()
        .unwrap()
        .contains("bad payload"));
    let bobs: Value = app
        .get(Some(&bob), "/api/v1/events?types=job.*")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(bobs["events"].as_array().unwrap().len(), 0);
}

both_backends!(
    a_dead_letter_is_announced_to_the_owner_of_its_item,
    an_items_events_arrive_in_the_order_of_its_changes,
    nobody_sees_another_users_events_and_admins_may_see_all,
    a_stream_resumed_with_last_event_id_gets_exactly_what_it_missed,
);

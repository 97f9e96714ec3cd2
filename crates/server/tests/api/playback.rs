//! Playback heartbeats: resume positions per user, and view counting after real play,
//! once per viewer per window.

use std::time::Duration;

use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

use crate::both_backends;
use crate::fixtures;
use crate::helpers::{error_code, spawn_app, spawn_app_with, Backend, TestApp};

/// Between heartbeats: long enough that one second of position is all real play.
const TICK: Duration = Duration::from_millis(700);

async fn upload(app: &TestApp, token: &str, visibility: &str) -> String {
    let item = app
        .upload_ok(
            token,
            fixtures::jpeg(64, 48),
            &format!("visibility={visibility}"),
        )
        .await;
    item["id"].as_str().unwrap().to_string()
}

async fn post_beat(
    app: &TestApp,
    token: Option<&str>,
    agent: Option<&str>,
    id: &str,
    body: Value,
) -> Response {
    let mut req = app
        .client
        .post(app.url(&format!("/api/v1/media/{id}/playback")))
        .json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(agent) = agent {
        req = req.header("user-agent", agent);
    }
    req.send().await.unwrap()
}

/// Sends a heartbeat at `position` seconds and returns the acknowledgement.
async fn beat(app: &TestApp, token: Option<&str>, id: &str, position: f64) -> Value {
    beat_as(app, token, None, id, position).await
}

async fn beat_as(
    app: &TestApp,
    token: Option<&str>,
    agent: Option<&str>,
    id: &str,
    position: f64,
) -> Value {
    let resp = post_beat(app, token, agent, id, json!({ "position": position })).await;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "heartbeat answered {body}");
    body
}

/// Plays `positions` one tick apart; returns which heartbeats counted a view.
async fn play(
    app: &TestApp,
    token: Option<&str>,
    agent: Option<&str>,
    id: &str,
    positions: &[f64],
) -> Vec<bool> {
    let mut counted = Vec::new();
    for (i, position) in positions.iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(TICK).await;
        }
        let ack = beat_as(app, token, agent, id, *position).await;
        counted.push(ack["view_counted"].as_bool().unwrap());
    }
    counted
}

async fn resume(app: &TestApp, token: &str, id: &str) -> Value {
    let resp = app
        .get(Some(token), &format!("/api/v1/media/{id}/playback"))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.unwrap()
}

async fn views(app: &TestApp, id: &str) -> i64 {
    sqlx::query_scalar("SELECT views FROM media WHERE id = $1")
        .bind(id)
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap()
}

async fn set_duration_ms(app: &TestApp, id: &str, duration_ms: i64) {
    sqlx::query(
        "UPDATE blobs SET duration_ms = $1 WHERE id = (SELECT blob_id FROM media WHERE id = $2)",
    )
    .bind(duration_ms)
    .bind(id)
    .execute(&app.state.db.pool)
    .await
    .unwrap();
}

async fn fast_views(backend: Backend) -> TestApp {
    spawn_app_with(backend, |s| s.playback.view_after_secs = 2.0).await
}

async fn a_heartbeat_stores_the_position_and_get_returns_it_for_resume(backend: Backend) {
    let app = spawn_app(backend).await;
    let owner = app.user("owner").await;
    let other = app.user("other").await;
    let id = upload(&app, &owner, "public").await;

    let fresh = resume(&app, &owner, &id).await;
    assert_eq!(
        fresh,
        json!({ "position": 0.0, "duration": null, "updated_at": null })
    );

    let ack = beat(&app, Some(&owner), &id, 12.5).await;
    assert_eq!(ack["position"], 12.5);
    assert_eq!(ack["views"], 0);
    assert_eq!(ack["view_counted"], false);
    let state = resume(&app, &owner, &id).await;
    assert_eq!(state["position"], 12.5);
    assert!(state["duration"].is_null());
    assert!(state["updated_at"].as_str().unwrap().contains('T'));

    // Another user of the same public item has a position of their own.
    assert_eq!(resume(&app, &other, &id).await["position"], 0.0);
    beat(&app, Some(&other), &id, 3.0).await;
    assert_eq!(resume(&app, &other, &id).await["position"], 3.0);
    assert_eq!(resume(&app, &owner, &id).await["position"], 12.5);

    // Seeking back moves the resume point back.
    beat(&app, Some(&owner), &id, 4.25).await;
    assert_eq!(resume(&app, &owner, &id).await["position"], 4.25);
}

async fn anonymous_heartbeats_on_a_private_item_are_404(backend: Backend) {
    let app = spawn_app(backend).await;
    let owner = app.user("owner").await;
    let other = app.user("other").await;
    let id = upload(&app, &owner, "private").await;
    let path = format!("/api/v1/media/{id}/playback");
    let body = json!({ "position": 1.0 });

    let anonymous = post_beat(&app, None, None, &id, body.clone()).await;
    assert_eq!(
        error_code(anonymous).await,
        (StatusCode::NOT_FOUND, "not_found".into())
    );
    let stranger = post_beat(&app, Some(&other), None, &id, body.clone()).await;
    assert_eq!(
        error_code(stranger).await,
        (StatusCode::NOT_FOUND, "not_found".into())
    );
    let missing = post_beat(&app, Some(&owner), None, "no-such-item", body).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    assert_eq!(
        app.get(None, &path).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get(Some(&other), &path).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(beat(&app, Some(&owner), &id, 1.0).await["position"], 1.0);
    assert_eq!(
        app.count("view_sessions").await,
        1,
        "only the owner's heartbeat was kept"
    );
}

async fn an_anonymous_viewer_of_a_public_item_gets_no_stored_position_but_can_count_a_view(
    backend: Backend,
) {
    let app = fast_views(backend).await;
    let owner = app.user("owner").await;
    let id = upload(&app, &owner, "unlisted").await;

    let counted = play(&app, None, Some("player-a"), &id, &[0.0, 1.0, 2.0, 3.0]).await;
    assert_eq!(counted, [false, false, true, false]);
    assert_eq!(app.count("playback_positions").await, 0);
    let path = format!("/api/v1/media/{id}/playback");
    assert_eq!(
        app.get(None, &path).await.status(),
        StatusCode::UNAUTHORIZED
    );

    // Another browser on the same address is another viewer.
    let counted = play(&app, None, Some("player-b"), &id, &[0.0, 1.0, 2.0]).await;
    assert_eq!(counted, [false, false, true]);
    assert_eq!(views(&app, &id).await, 2);
}

async fn a_view_counts_only_after_real_play_and_once_per_window(backend: Backend) {
    let app = fast_views(backend).await;
    let owner = app.user("owner").await;
    let viewer = app.user("viewer").await;
    let cheat = app.user("cheat").await;
    let id = upload(&app, &owner, "public").await;

    let counted = play(&app, Some(&viewer), None, &id, &[0.0, 1.0, 2.0, 3.0]).await;
    assert_eq!(
        counted,
        [false, false, true, false],
        "counted at 2 s of real play"
    );
    assert_eq!(views(&app, &id).await, 1);

    // Jumping ahead earns only the wall-clock time that passed.
    let counted = play(&app, Some(&cheat), None, &id, &[0.0, 1000.0]).await;
    assert_eq!(counted, [false, false]);
    let ack = beat(&app, Some(&cheat), &id, 1000.0).await;
    assert_eq!(ack["view_counted"], false, "a repeated position is no play");
    assert_eq!(ack["views"], 1);

    // More play inside the window adds nothing.
    let counted = play(&app, Some(&viewer), None, &id, &[4.0, 5.0, 6.0, 7.0, 8.0]).await;
    assert!(counted.iter().all(|c| !c), "{counted:?}");
    assert_eq!(views(&app, &id).await, 1);
}

async fn a_later_session_counts_again_once_the_window_has_passed(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.playback.view_after_secs = 2.0;
        s.playback.view_window_secs = 1;
    })
    .await;
    let owner = app.user("owner").await;
    let id = upload(&app, &owner, "public").await;

    let counted = play(&app, Some(&owner), None, &id, &[0.0, 1.0, 2.0]).await;
    assert_eq!(counted, [false, false, true]);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let counted = play(&app, Some(&owner), None, &id, &[0.0, 1.0, 2.0]).await;
    assert_eq!(counted, [false, false, true], "a new window, new real play");
    assert_eq!(views(&app, &id).await, 2);
}

async fn positions_clamp_to_a_known_duration_and_a_finished_item_resumes_at_zero(backend: Backend) {
    let app = spawn_app(backend).await;
    let owner = app.user("owner").await;
    let id = upload(&app, &owner, "private").await;
    set_duration_ms(&app, &id, 600_000).await;

    beat(&app, Some(&owner), &id, 100.0).await;
    let state = resume(&app, &owner, &id).await;
    assert_eq!(
        (state["position"].as_f64(), state["duration"].as_f64()),
        (Some(100.0), Some(600.0))
    );

    let ack = beat(&app, Some(&owner), &id, 5000.0).await;
    assert_eq!(ack["position"], 600.0, "clamped to the duration");
    assert_eq!(resume(&app, &owner, &id).await["position"], 0.0, "finished");

    beat(&app, Some(&owner), &id, 575.0).await;
    assert_eq!(
        resume(&app, &owner, &id).await["position"],
        0.0,
        "within the last 5 %"
    );
    beat(&app, Some(&owner), &id, 560.0).await;
    assert_eq!(resume(&app, &owner, &id).await["position"], 560.0);
}

async fn a_clip_shorter_than_the_threshold_counts_when_played_through(backend: Backend) {
    let app = spawn_app(backend).await; // the default threshold: 5 s
    let owner = app.user("owner").await;
    let id = upload(&app, &owner, "public").await;
    set_duration_ms(&app, &id, 1500).await;

    beat(&app, Some(&owner), &id, 0.0).await;
    tokio::time::sleep(Duration::from_millis(900)).await;
    let ack = beat(&app, Some(&owner), &id, 1.5).await;
    assert_eq!(
        (ack["view_counted"].as_bool(), ack["views"].as_i64()),
        (Some(true), Some(1))
    );
}

async fn invalid_positions_are_422_with_the_json_error_code(backend: Backend) {
    let app = spawn_app(backend).await;
    let owner = app.user("owner").await;
    let id = upload(&app, &owner, "public").await;
    for body in [
        json!({ "position": -1.0 }),
        json!({ "position": 1e12 }),
        json!({ "position": "NaN" }),
        json!({ "position": null }),
        json!({}),
    ] {
        let resp = post_beat(&app, Some(&owner), None, &id, body.clone()).await;
        let got = error_code(resp).await;
        assert_eq!(
            got,
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_position".into()),
            "{body}"
        );
    }
    let raw_nan = app
        .client
        .post(app.url(&format!("/api/v1/media/{id}/playback")))
        .bearer_auth(&owner)
        .header("content-type", "application/json")
        .body(r#"{"position": NaN}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(raw_nan).await.1,
        "invalid_json",
        "NaN is not JSON"
    );
    assert_eq!(app.count("playback_positions").await, 0);
}

async fn concurrent_heartbeats_from_one_viewer_count_one_view(backend: Backend) {
    let app = fast_views(backend).await;
    let owner = app.user("owner").await;
    // A signed-in viewer, and an anonymous one (whose heartbeats store no position, so
    // only the session row's lock keeps them apart).
    for token in [Some(owner.as_str()), None] {
        let id = upload(&app, &owner, "public").await;
        let agent = Some("player");
        let counted = play(&app, token, agent, &id, &[0.0, 1.0]).await;
        assert_eq!(counted, [false, false]);
        tokio::time::sleep(TICK).await;
        // Each of these alone would pass the threshold.
        let acks = futures::future::join_all(
            (0..10).map(|i| beat_as(&app, token, agent, &id, 2.0 + f64::from(i) / 10.0)),
        )
        .await;
        let counted = acks.iter().filter(|a| a["view_counted"] == true).count();
        assert_eq!(counted, 1, "{acks:?}");
        assert_eq!(views(&app, &id).await, 1);
    }
}

async fn deleting_an_item_removes_its_positions_and_sessions(backend: Backend) {
    let app = spawn_app(backend).await;
    let owner = app.user("owner").await;
    let other = app.user("other").await;
    let id = upload(&app, &owner, "public").await;
    let kept = upload(&app, &owner, "public").await;
    for token in [&owner, &other] {
        beat(&app, Some(token), &id, 7.0).await;
        beat(&app, Some(token), &kept, 7.0).await;
    }
    beat(&app, None, &id, 7.0).await;
    assert_eq!(app.count("playback_positions").await, 4);
    assert_eq!(app.count("view_sessions").await, 5);

    let resp = app
        .client
        .delete(app.url(&format!("/api/v1/media/{id}")))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.count("playback_positions").await, 2);
    assert_eq!(app.count("view_sessions").await, 2);
    let gone = post_beat(&app, Some(&owner), None, &id, json!({ "position": 1.0 })).await;
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
}

async fn the_openapi_document_lists_the_playback_endpoints(backend: Backend) {
    let app = spawn_app(backend).await;
    let doc: Value = app
        .get(None, "/api/v1/openapi.json")
        .await
        .json()
        .await
        .unwrap();
    let path = &doc["paths"]["/api/v1/media/{id}/playback"];
    assert!(
        path["get"].is_object() && path["post"].is_object(),
        "{path}"
    );
    assert!(doc["components"]["schemas"]["HeartbeatAck"].is_object());
}

both_backends!(
    a_heartbeat_stores_the_position_and_get_returns_it_for_resume,
    anonymous_heartbeats_on_a_private_item_are_404,
    an_anonymous_viewer_of_a_public_item_gets_no_stored_position_but_can_count_a_view,
    a_view_counts_only_after_real_play_and_once_per_window,
    a_later_session_counts_again_once_the_window_has_passed,
    positions_clamp_to_a_known_duration_and_a_finished_item_resumes_at_zero,
    a_clip_shorter_than_the_threshold_counts_when_played_through,
    invalid_positions_are_422_with_the_json_error_code,
    concurrent_heartbeats_from_one_viewer_count_one_view,
    deleting_an_item_removes_its_positions_and_sessions,
    the_openapi_document_lists_the_playback_endpoints,
);

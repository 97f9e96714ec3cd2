//! Webhooks against a receiver built on the reference `standardwebhooks` library:
//! signatures, payloads, retries, visibility, SSRF refusals, secret rotation, pings and
//! the disabling of endpoints that only fail.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use server::settings::Settings;

use crate::both_backends;
use crate::fixtures;
use crate::helpers::{error_code, service_env, spawn_app_with, Backend, TestApp};
use crate::receiver::Receiver;

const WAIT: Duration = Duration::from_secs(30);

/// Quick retries and reads, and private targets allowed: the receiver is on loopback.
fn quick(s: &mut Settings) {
    s.webhooks.allow_private_targets = true;
    s.webhooks.backoff_base_secs = 0.05;
    s.webhooks.backoff_max_secs = 0.2;
    s.webhooks.poll_interval_ms = 20;
    s.events.poll_interval_ms = 20;
}

async fn webhook_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, quick).await
}

impl TestApp {
    pub async fn post_json_as(&self, token: &str, path: &str, body: Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Registers `url` for `events` and returns the answer (with the secret).
    pub async fn register_webhook(&self, token: &str, url: &str, events: &[&str]) -> Value {
        let resp = self
            .post_json_as(
                token,
                "/api/v1/webhooks",
                json!({ "url": url, "events": events }),
            )
            .await;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "register answered {body}");
        body
    }
}

/// A receiver holding the secret of a new webhook of `token`'s user.
async fn receiving(app: &TestApp, token: &str, events: &[&str]) -> (Receiver, Value) {
    let receiver = Receiver::start().await;
    let hook = app.register_webhook(token, &receiver.url(), events).await;
    receiver.set_secret(hook["secret"].as_str().unwrap()).await;
    (receiver, hook)
}

fn of_type<'a>(received: &'a [Value], kind: &str, media_id: &str) -> Vec<&'a Value> {
    received
        .iter()
        .filter(|d| d["type"] == kind && d["data"]["id"] == media_id)
        .collect()
}

async fn deliveries_verify_with_the_reference_library_and_carry_the_item_json(backend: Backend) {
    let app = webhook_app(backend).await;
    let alice = app.user("alice").await;
    let (receiver, hook) = receiving(&app, &alice, &["media.*"]).await;
    assert!(hook["secret"].as_str().unwrap().starts_with("whsec_"));
    let listed: Value = app
        .get(Some(&alice), "/api/v1/webhooks")
        .await
        .json()
        .await
        .unwrap();
    assert!(
        listed["webhooks"][0].get("secret").is_none(),
        "the secret is shown once"
    );

    let item = app
        .upload_ok(&alice, fixtures::jpeg(120, 80), "title=Harbour")
        .await;
    let id = item["id"].as_str().unwrap().to_string();
    let received = receiver
        .wait_for(WAIT, |r| !of_type(r, "media.ready", &id).is_empty())
        .await;
    assert!(
        receiver.rejected().await.is_empty(),
        "every signature verifies"
    );
    let created = of_type(&received, "media.created", &id);
    let ready = of_type(&received, "media.ready", &id);
    assert_eq!((created.len(), ready.len()), (1, 1), "{received:?}");
    // The Standard Webhooks shape, `data` being the item exactly as the API shows it.
    let ready = ready[0];
    assert!(ready["id"].as_str().unwrap().starts_with("evt_"));
    assert!(ready["timestamp"].as_str().unwrap().contains('T'));
    let now: Value = app.get_item(Some(&alice), &id).await.json().await.unwrap();
    assert_eq!(ready["data"]["status"], "ready");
    assert_eq!(ready["data"]["title"], "Harbour");
    assert_eq!(ready["data"]["variants"], now["variants"]);
    assert_eq!(ready["data"]["sha256"], now["sha256"]);
    assert_eq!(created[0]["data"]["status"], "processing");
    // Each event is one message, whatever happens to its delivery.
    let ids: std::collections::BTreeSet<&str> =
        received.iter().map(|d| d["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), received.len());
}

async fn a_receiver_that_fails_five_times_gets_the_event_on_a_later_attempt(backend: Backend) {
    let app = webhook_app(backend).await;
    let alice = app.user("alice").await;
    let (receiver, hook) = receiving(&app, &alice, &["media.created"]).await;
    receiver.fail_next(5).await;
    let item = app.upload_ok(&alice, fixtures::png(32, 32), "").await;
    let id = item["id"].as_str().unwrap().to_string();
    receiver
        .wait_for(WAIT, |r| !of_type(r, "media.created", &id).is_empty())
        .await;
    let path = format!(
        "/api/v1/webhooks/{}/deliveries",
        hook["id"].as_str().unwrap()
    );
    // The receiver has it; the sender records the answer right after.
    let page = app
        .wait_until_json(&alice, &path, |p| {
            p["deliveries"][0]["state"] == "succeeded"
        })
        .await;
    let delivery = &page["deliveries"][0];
    assert_eq!(delivery["type"], "media.created");
    assert_eq!(delivery["state"], "succeeded");
    let codes: Vec<i64> = (delivery["attempts"].as_array().unwrap().iter())
        .map(|a| a["status_code"].as_i64().unwrap())
        .collect();
    assert_eq!(codes, [500, 500, 500, 500, 500, 204], "{delivery}");
    let first = &delivery["attempts"][0];
    assert!(first["response"].as_str().unwrap().contains("told to fail"));
    assert!(first["latency_ms"].as_i64().unwrap() >= 0);
}

async fn an_upload_does_not_wait_for_its_deliveries(backend: Backend) {
    let app = webhook_app(backend).await;
    let alice = app.user("alice").await;
    let (receiver, _) = receiving(&app, &alice, &["media.created"]).await;
    // The receiver holds every delivery open: the upload still answers.
    receiver.hold(true).await;
    let item = app.upload_ok(&alice, fixtures::jpeg(40, 40), "").await;
    assert_eq!(item["status"], "processing");
    let deadline = std::time::Instant::now() + WAIT;
    while receiver.attempts().await == 0 {
        assert!(std::time::Instant::now() < deadline, "no delivery started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        receiver.received().await.is_empty(),
        "the delivery is still held"
    );
    receiver.hold(false).await;
    let id = item["id"].as_str().unwrap().to_string();
    receiver
        .wait_for(WAIT, |r| !of_type(r, "media.created", &id).is_empty())
        .await;
}

async fn nobody_receives_another_users_events(backend: Backend) {
    let app = webhook_app(backend).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let (alices, _) = receiving(&app, &alice, &[]).await;
    let (bobs, _) = receiving(&app, &bob, &[]).await;
    let item = app
        .upload_ok(&alice, fixtures::jpeg(30, 30), "visibility=public")
        .await;
    let id = item["id"].as_str().unwrap().to_string();
    let mine = app.upload_ok(&bob, fixtures::jpeg(31, 31), "").await;
    let bobs_id = mine["id"].as_str().unwrap().to_string();
    bobs.wait_for(WAIT, |r| !of_type(r, "media.ready", &bobs_id).is_empty())
        .await;
    alices
        .wait_for(WAIT, |r| !of_type(r, "media.ready", &id).is_empty())
        .await;
    let seen_by_bob = bobs.received().await;
    assert!(
        seen_by_bob
            .iter()
            .all(|d| d["data"]["owner_id"] != item["owner_id"]),
        "bob received alice's events: {seen_by_bob:?}"
    );
    // Only an administrator may ask for everyone's.
    let resp = app
        .post_json_as(
            &bob,
            "/api/v1/webhooks",
            json!({"url": bobs.url(), "all_users": true}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    // Someone else's endpoint does not exist for bob.
    let alices_hooks: Value = app
        .get(Some(&alice), "/api/v1/webhooks")
        .await
        .json()
        .await
        .unwrap();
    let hook_id = alices_hooks["webhooks"][0]["id"].as_str().unwrap();
    let resp = app
        .get(Some(&bob), &format!("/api/v1/webhooks/{hook_id}"))
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

async fn internal_targets_are_refused_by_default_naming_why(backend: Backend) {
    let dns = service_env("FRAMEHOUSE_TEST_DNS");
    let app = spawn_app_with(backend, |s| {
        s.resolver.servers = vec![dns.parse().unwrap()];
    })
    .await;
    let alice = app.user("alice").await;
    let port = app.base.rsplit(':').next().unwrap().to_string();
    for (url, reason) in [
        (format!("http://127.0.0.1:{port}/hook"), "loopback"),
        (
            "http://169.254.169.254/latest/meta-data/".to_string(),
            "metadata",
        ),
        ("http://[::1]/hook".to_string(), "loopback"),
        ("http://[::ffff:10.0.0.1]/".to_string(), "private"),
        ("http://private.framehouse.test/hook".to_string(), "private"),
        ("http://metadata.framehouse.test/".to_string(), "metadata"),
        (
            "http://loopback.framehouse.test:8080/".to_string(),
            "loopback",
        ),
    ] {
        let resp = app
            .post_json_as(&alice, "/api/v1/webhooks", json!({ "url": url }))
            .await;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{url}: {body}");
        assert_eq!(body["error"]["code"], "forbidden_target", "{url}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(&reason.replace('_', "-")),
            "{url}: {message}"
        );
    }
    for url in [
        "ftp://example.org/",
        "http://user:pw@example.org/",
        "not a url",
    ] {
        let resp = app
            .post_json_as(&alice, "/api/v1/webhooks", json!({ "url": url }))
            .await;
        assert_eq!(
            error_code(resp).await,
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_url".into()),
            "{url}"
        );
    }
    let resp = app
        .post_json_as(
            &alice,
            "/api/v1/webhooks",
            json!({ "url": "http://nowhere.framehouse.test/" }),
        )
        .await;
    assert_eq!(
        error_code(resp).await,
        (StatusCode::UNPROCESSABLE_ENTITY, "unresolvable_host".into())
    );
    assert_eq!(app.count("webhooks").await, 0, "nothing refused is stored");
}

async fn a_rotated_secret_overlaps_and_ping_and_retry_send_again(backend: Backend) {
    let app = webhook_app(backend).await;
    let alice = app.user("alice").await;
    let (receiver, hook) = receiving(&app, &alice, &["media.created"]).await;
    let hook_id = hook["id"].as_str().unwrap().to_string();
    let old_secret = hook["secret"].as_str().unwrap().to_string();

    let resp = app
        .post_json_as(
            &alice,
            &format!("/api/v1/webhooks/{hook_id}/ping"),
            json!({}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let ping: Value = resp.json().await.unwrap();
    assert_eq!(ping["type"], "webhook.ping");
    receiver
        .wait_for(WAIT, |r| r.iter().any(|d| d["type"] == "webhook.ping"))
        .await;

    let resp = app
        .post_json_as(
            &alice,
            &format!("/api/v1/webhooks/{hook_id}/rotate-secret"),
            json!({}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let rotated: Value = resp.json().await.unwrap();
    let new_secret = rotated["secret"].as_str().unwrap();
    assert_ne!(new_secret, old_secret);
    // A receiver still on the old secret verifies during the overlap ...
    let item = app.upload_ok(&alice, fixtures::jpeg(20, 20), "").await;
    let id = item["id"].as_str().unwrap().to_string();
    let got = receiver
        .wait_for(WAIT, |r| !of_type(r, "media.created", &id).is_empty())
        .await;
    assert_eq!(
        of_type(&got, "media.created", &id)[0]["signatures"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // ... and one on the new secret too.
    receiver.set_secret(new_secret).await;
    let resp = app
        .post_json_as(
            &alice,
            &format!("/api/v1/webhooks/{hook_id}/ping"),
            json!({}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    receiver
        .wait_for(WAIT, |r| {
            r.iter().filter(|d| d["type"] == "webhook.ping").count() == 2
        })
        .await;

    // A retry sends the same message again: receivers dedupe on its id.
    let page: Value = app
        .get(
            Some(&alice),
            &format!("/api/v1/webhooks/{hook_id}/deliveries?limit=10"),
        )
        .await
        .json()
        .await
        .unwrap();
    let created = (page["deliveries"].as_array().unwrap().iter())
        .find(|d| d["type"] == "media.created")
        .unwrap();
    let path = format!(
        "/api/v1/webhooks/{hook_id}/deliveries/{}/retry",
        created["id"].as_str().unwrap()
    );
    let resp = app.post_json_as(&alice, &path, json!({})).await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let again = receiver
        .wait_for(WAIT, |r| of_type(r, "media.created", &id).len() == 2)
        .await;
    let copies = of_type(&again, "media.created", &id);
    assert_eq!(copies[0]["id"], copies[1]["id"]);
    assert!(receiver.rejected().await.is_empty());
}

async fn an_endpoint_that_only_fails_is_disabled_with_an_event(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        quick(s);
        s.webhooks.disable_after_secs = 1;
    })
    .await;
    let alice = app.user("alice").await;
    let (receiver, hook) = receiving(&app, &alice, &["media.created"]).await;
    receiver.answer_with(503).await;
    app.upload_ok(&alice, fixtures::jpeg(22, 22), "").await;
    let hook_id = hook["id"].as_str().unwrap().to_string();
    let events = app
        .wait_for_events(&alice, "types=webhook.disabled", |e| !e.is_empty())
        .await;
    assert_eq!(events[0]["aggregate_id"], hook_id.as_str());
    assert_eq!(events[0]["data"]["enabled"], false);
    let view: Value = app
        .get(Some(&alice), &format!("/api/v1/webhooks/{hook_id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(view["enabled"], false);
    assert!(view["disabled_reason"].as_str().unwrap().contains("failed"));
    // Enabled again, it starts afresh; a 410 Gone disables it at once.
    let resp = app
        .client
        .patch(app.url(&format!("/api/v1/webhooks/{hook_id}")))
        .bearer_auth(&alice)
        .json(&json!({"enabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    receiver.answer_with(410).await;
    app.upload_ok(&alice, fixtures::jpeg(23, 23), "").await;
    let events = app
        .wait_for_events(&alice, "types=webhook.disabled", |e| e.len() == 2)
        .await;
    assert!(events[1]["data"]["disabled_reason"]
        .as_str()
        .unwrap()
        .contains("410"));
}

async fn a_hung_receiver_costs_an_attempt_its_timeout_and_no_more(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        quick(s);
        s.webhooks.timeout_secs = 1;
    })
    .await;
    let alice = app.user("alice").await;
    let (receiver, hook) = receiving(&app, &alice, &["media.created"]).await;
    receiver.hold(true).await;
    let item = app.upload_ok(&alice, fixtures::jpeg(26, 26), "").await;
    let path = format!(
        "/api/v1/webhooks/{}/deliveries",
        hook["id"].as_str().unwrap()
    );
    let page = app
        .wait_until_json(&alice, &path, |p| {
            (p["deliveries"][0]["attempts"].as_array()).is_some_and(|a| !a.is_empty())
        })
        .await;
    let first = &page["deliveries"][0]["attempts"][0];
    assert!(first["status_code"].is_null(), "{first}");
    assert!(
        first["error"]
            .as_str()
            .unwrap()
            .contains("did not answer in time"),
        "{first}"
    );
    assert!(first["latency_ms"].as_i64().unwrap() < 5_000, "{first}");
    // Once it answers again, the event arrives.
    receiver.hold(false).await;
    let id = item["id"].as_str().unwrap().to_string();
    receiver
        .wait_for(WAIT, |r| !of_type(r, "media.created", &id).is_empty())
        .await;
    app.wait_until_json(&alice, &path, |p| {
        p["deliveries"][0]["state"] == "succeeded"
    })
    .await;
}

async fn a_target_is_checked_again_when_a_delivery_is_sent(backend: Backend) {
    // Registered while private targets were allowed, then the server restarts refusing them.
    let shared = tempfile::tempdir().unwrap();
    let dir = shared.path().join("data");
    let first = spawn_app_with(backend, move |s| {
        quick(s);
        s.data_dir = dir;
    })
    .await;
    let alice = first.user("alice").await;
    let (receiver, hook) = receiving(&first, &alice, &["media.created"]).await;
    let (data_dir, url) = (first.data_dir.clone(), first.state.settings.database_url());
    first.stop().await;
    let app = spawn_app_with(backend, move |s| {
        quick(s);
        s.webhooks.allow_private_targets = false;
        s.data_dir = data_dir;
        s.database.url = Some(server::settings::Secret::new(url));
    })
    .await;
    let alice = app.login("alice", "correct horse battery").await;
    app.upload_ok(&alice, fixtures::jpeg(27, 27), "").await;
    let path = format!(
        "/api/v1/webhooks/{}/deliveries",
        hook["id"].as_str().unwrap()
    );
    let page = app
        .wait_until_json(&alice, &path, |p| {
            (p["deliveries"][0]["attempts"].as_array()).is_some_and(|a| !a.is_empty())
        })
        .await;
    let attempt = &page["deliveries"][0]["attempts"][0];
    assert!(
        attempt["error"].as_str().unwrap().contains("loopback"),
        "{attempt}"
    );
    assert_eq!(receiver.attempts().await, 0, "nothing reached the receiver");
}

both_backends!(@gated [cfg_attr(skip_python, ignore = "FRAMEHOUSE_TEST_SKIP_PYTHON=1")]
    a_hung_receiver_costs_an_attempt_its_timeout_and_no_more,
    a_target_is_checked_again_when_a_delivery_is_sent,
    deliveries_verify_with_the_reference_library_and_carry_the_item_json,
    a_receiver_that_fails_five_times_gets_the_event_on_a_later_attempt,
    an_upload_does_not_wait_for_its_deliveries,
    nobody_receives_another_users_events,
    a_rotated_secret_overlaps_and_ping_and_retry_send_again,
    an_endpoint_that_only_fails_is_disabled_with_an_event,
);

async fn metadata_stays_refused_when_private_targets_are_allowed(backend: Backend) {
    let app = webhook_app(backend).await;
    let alice = app.user("alice").await;
    for url in ["http://169.254.169.254/latest/", "http://[fd00:ec2::254]/"] {
        let resp = app
            .post_json_as(&alice, "/api/v1/webhooks", json!({ "url": url }))
            .await;
        assert_eq!(
            error_code(resp).await,
            (StatusCode::UNPROCESSABLE_ENTITY, "forbidden_target".into()),
            "{url}"
        );
    }
}

both_backends!(@gated [cfg_attr(skip_dns, ignore = "FRAMEHOUSE_TEST_SKIP_DNS=1")]
    internal_targets_are_refused_by_default_naming_why,
);

both_backends!(metadata_stays_refused_when_private_targets_are_allowed);

//! Events published to a real RabbitMQ (its own broker, started for the test), read back
//! with pika — an AMQP client no one here wrote — including across a broker restart.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use server::settings::Secret;

use crate::clients::pika;
use crate::fixtures;
use crate::helpers::{spawn_app_with, Backend};

/// A RabbitMQ kept in one folder (scripts/rabbitmq.sh); stopped on drop.
struct Broker {
    dir: std::path::PathBuf,
    url: String,
}

fn script() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/rabbitmq.sh")
}

impl Broker {
    fn start(dir: &Path) -> Broker {
        let dir = dir.join("rabbitmq");
        let out = Command::new(script())
            .arg("start")
            .arg(&dir)
            .output()
            .expect("running scripts/rabbitmq.sh");
        assert!(
            out.status.success(),
            "RabbitMQ did not start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = String::from_utf8(out.stdout).unwrap().trim().to_string();
        Broker {
            url: format!("amqp://guest:guest@127.0.0.1:{port}/%2f"),
            dir,
        }
    }

    fn stop(&self) {
        let out = Command::new(script())
            .arg("stop")
            .arg(&self.dir)
            .output()
            .unwrap();
        assert!(out.status.success());
    }

    fn restart(&self) {
        let again = Broker::start(self.dir.parent().unwrap());
        assert_eq!(again.url, self.url, "the same port again");
        std::mem::forget(again);
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = Command::new(script()).arg("stop").arg(&self.dir).output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(skip_python, ignore = "FRAMEHOUSE_TEST_SKIP_PYTHON=1")]
#[cfg_attr(skip_rabbitmq, ignore = "FRAMEHOUSE_TEST_SKIP_RABBITMQ=1")]
async fn every_event_reaches_a_bound_queue_once_per_id_across_a_broker_restart() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    let queue = "framehouse-test-events";
    pika(&["bind", &broker.url, "framehouse.events", queue]);
    let url = broker.url.clone();
    let app = spawn_app_with(Backend::Sqlite, move |s| {
        s.broker.amqp_url = Some(Secret::new(url));
        s.events.poll_interval_ms = 50;
    })
    .await;
    let alice = app.user("alice").await;

    let mut received: Vec<Value> = Vec::new();
    let drain_until_all = |received: &mut Vec<Value>| {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            for line in pika(&["drain", &broker.url, queue]).lines() {
                received.push(serde_json::from_str(line).unwrap());
            }
            let ids: BTreeSet<String> = received
                .iter()
                .map(|m| m["message_id"].as_str().unwrap().to_string())
                .collect();
            let wanted = tokio::runtime::Handle::current().block_on(event_ids(&app));
            if wanted.is_subset(&ids) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "missing on the queue: {:?}",
                wanted.difference(&ids).collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };

    for _ in 0..3 {
        let item = app.upload_ok(&alice, fixtures::jpeg(300, 200), "").await;
        app.wait_processed(&alice, item["id"].as_str().unwrap())
            .await;
    }
    tokio::task::block_in_place(|| drain_until_all(&mut received));

    // The broker goes away; events pile up in the outbox and the publisher says why.
    broker.stop();
    for _ in 0..2 {
        let item = app.upload_ok(&alice, fixtures::jpeg(320, 240), "").await;
        app.wait_processed(&alice, item["id"].as_str().unwrap())
            .await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while app
        .scalar("SELECT COUNT(*) FROM event_cursors WHERE subscriber = 'amqp_publish' AND last_error IS NOT NULL")
        .await
        == 0
    {
        assert!(Instant::now() < deadline, "the publisher never noticed the broker was gone");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Back again (same data, so the durable queue and what it held survive).
    broker.restart();
    tokio::task::block_in_place(|| drain_until_all(&mut received));

    // Every event exactly once per id; each message says what it is.
    let wanted = event_ids(&app).await;
    let mut by_id: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for m in &received {
        by_id
            .entry(m["message_id"].as_str().unwrap().to_string())
            .or_default()
            .push(m);
    }
    let ids: BTreeSet<String> = by_id.keys().cloned().collect();
    assert_eq!(ids, wanted, "the queue holds exactly the run's events");
    assert!(
        wanted.len() >= 11,
        "5 uploads created and ready, and the user: {}",
        wanted.len()
    );
    let types: BTreeMap<String, String> =
        sqlx::query_as::<_, (i64, String)>("SELECT id, type FROM events")
            .fetch_all(&app.state.db.pool)
            .await
            .unwrap()
            .into_iter()
            .map(|(id, t)| (id.to_string(), t))
            .collect();
    for (id, copies) in &by_id {
        for m in copies {
            assert_eq!(m["routing_key"], types[id].as_str(), "{m}");
            assert_eq!(m["type"], types[id].as_str(), "{m}");
            assert_eq!(m["content_type"], "application/json");
            assert_eq!(m["persistent"], true);
            assert_eq!(m["body"]["id"].to_string(), *id, "{m}");
            assert_eq!(m["body"]["type"], types[id].as_str());
        }
        // A copy is the same message again (at least once), never a different one.
        assert!(copies.windows(2).all(|w| w[0] == w[1]), "{copies:?}");
    }
    let duplicates = received.len() - ids.len();
    eprintln!(
        "{} events, {} messages ({duplicates} duplicates)",
        ids.len(),
        received.len()
    );
}

async fn event_ids(app: &crate::helpers::TestApp) -> BTreeSet<String> {
    sqlx::query_scalar::<_, i64>("SELECT id FROM events")
        .fetch_all(&app.state.db.pool)
        .await
        .unwrap()
        .into_iter()
        .map(|id| id.to_string())
        .collect()
}

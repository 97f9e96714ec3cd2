//! The cluster test (`make cluster-test`): PostgreSQL, SeaweedFS, Redis, RabbitMQ and nginx
//! on loopback in front of 2 api + 2 worker + 1 scheduler processes of the real binary.
//! 500 images and 5 videos go up through nginx from 32 clients while a worker and an api
//! node are killed with SIGKILL, Redis is killed and started again and the broker is
//! restarted; then every item must be ready, every original must hash as uploaded, every
//! derivative must read the same through nginx and from either api node, the bucket must
//! hold every original (listed with aws-cli), and a queue bound to the event exchange
//! (read with pika) must hold every event exactly once. Last, a rolling restart of every
//! node under load must fail no request through nginx.
//!
//! Built only with `--features cluster-test` (it takes minutes, so `make test` leaves it to
//! its own CI step). The services come from `scripts/with-test-services.sh`
//! (PostgreSQL, SeaweedFS, the pinned Python tools); Redis, RabbitMQ and nginx are
//! started here, since the test stops and starts them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

#[path = "../../server/tests/api/nginx_server.rs"]
mod nginx_server;

const IMAGES: usize = 500;
const VIDEOS: usize = 5;
const CLIENTS: usize = 32;
/// Clients kept busy during the rolling restart.
const RESTART_CLIENTS: usize = 8;

#[path = "../../server/tests/api/clients.rs"]
mod clients;

#[path = "support/cluster.rs"]
mod support;

use clients::*;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_survives_kills_a_redis_outage_a_broker_restart_and_a_rolling_restart() {
    let started = Instant::now();
    let root = tempfile::tempdir().unwrap();
    let root_path = root.path().to_path_buf();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();

    // The engines.
    let db_url = fresh_database().await;
    let prefix = format!("cluster-{}", uuid::Uuid::new_v4().simple());
    let mut redis = Redis::launch(&root_path).await;
    let broker = Broker {
        dir: root_path.join("rabbitmq"),
    };
    let amqp_port = rabbitmq("start", &broker.dir);
    let amqp = format!("amqp://guest:guest@127.0.0.1:{amqp_port}/%2f");
    pika(&["bind", &amqp, "framehouse.events", "cluster-test"]);
    let config = root_path.join("framehouse.toml");
    let redis_url = format!("redis://127.0.0.1:{}/", redis.port);
    write_config(&config, &db_url, &prefix, &redis_url, Some(&amqp), "");

    // The nodes: the scheduler first, so it applies the migrations alone.
    let mut nodes = vec![
        Node::new("scheduler", "scheduler", &root_path, &config),
        Node::new("api-1", "api", &root_path, &config),
        Node::new("api-2", "api", &root_path, &config),
        Node::new("worker-1", "worker", &root_path, &config),
        Node::new("worker-2", "worker", &root_path, &config),
    ];
    for n in nodes.iter_mut() {
        n.start();
    }
    for n in &nodes {
        n.wait_ready(&client).await;
    }
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(2)
        .connect(&db_url)
        .await
        .unwrap();
    let api: Vec<String> = nodes[1..3].iter().map(|n| n.addr()).collect();
    let nginx =
        nginx_server::Nginx::start(&api.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let base = nginx.base.clone();
    let token = sign_up(&client, &base, "loader").await;
    eprintln!("cluster up in {:.1?}", started.elapsed());

    // Phase 1: 500 images and 5 videos from 32 clients, with failures injected.
    let media_dir = root_path.join("media");
    std::fs::create_dir_all(&media_dir).unwrap();
    let mut work: Vec<Vec<u8>> = (0..IMAGES).map(image).collect();
    for v in 0..VIDEOS {
        work.insert(v * 100 + 50, video(v, &media_dir));
    }
    let total = work.len();
    let work = Arc::new(Mutex::new(work));
    let tally = Arc::new(Tally::default());
    let phase = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (client, base, token) = (client.clone(), base.clone(), token.clone());
            let (work, tally) = (work.clone(), tally.clone());
            tokio::spawn(async move {
                loop {
                    let Some(bytes) = work.lock().unwrap().pop() else {
                        return;
                    };
                    upload(&client, &base, &token, bytes, &tally, true).await;
                }
            })
        })
        .collect();

    wait_acked(&tally, 60).await;
    let w1 = node(&nodes, "worker-1");
    nodes[w1].kill9();
    // A worker relays events: those it published but had not yet recorded as relayed
    // when killed go out again. Repeats of later events have other causes (reported).
    let relayed_by_the_killed: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM events")
        .fetch_one(&pool)
        .await
        .unwrap();
    eprintln!(
        "killed worker-1 at {} acknowledged",
        tally.acked_count.load(Ordering::SeqCst)
    );
    wait_acked(&tally, 120).await;
    let a1 = node(&nodes, "api-1");
    nodes[a1].kill9();
    eprintln!(
        "killed api-1 at {} acknowledged",
        tally.acked_count.load(Ordering::SeqCst)
    );
    wait_acked(&tally, 180).await;
    nodes[w1].start();
    nodes[a1].start();
    nodes[w1].wait_ready(&client).await;
    nodes[a1].wait_ready(&client).await;
    wait_acked(&tally, 240).await;
    redis.kill();
    eprintln!(
        "killed redis at {} acknowledged",
        tally.acked_count.load(Ordering::SeqCst)
    );
    let a2 = node(&nodes, "api-2");
    for i in [a1, a2] {
        let n = &nodes[i];
        until(
            Duration::from_secs(30),
            "an api node sees redis down",
            || async { n.redis_status(&client).await == "down" },
        )
        .await;
    }
    wait_acked(&tally, 320).await;
    redis.start();
    for i in [a1, a2] {
        let n = &nodes[i];
        until(
            Duration::from_secs(30),
            "an api node sees redis back",
            || async { n.redis_status(&client).await == "up" },
        )
        .await;
    }
    eprintln!(
        "redis back at {} acknowledged",
        tally.acked_count.load(Ordering::SeqCst)
    );
    wait_acked(&tally, 380).await;
    rabbitmq("stop", &broker.dir);
    rabbitmq("start", &broker.dir);
    eprintln!(
        "restarted RabbitMQ at {} acknowledged",
        tally.acked_count.load(Ordering::SeqCst)
    );
    for c in clients {
        c.await.unwrap();
    }
    let uploaded = phase.elapsed();
    let failures = tally.failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "clients saw hard failures: {failures:?}"
    );
    let acked = tally.acked.lock().unwrap().clone();
    assert_eq!(acked.len(), total, "every upload acknowledged once retried");
    eprintln!(
        "{total} uploads acknowledged in {uploaded:.1?} ({} retried failures, all from killed nodes)",
        tally.retried.load(Ordering::SeqCst)
    );

    // Every item ready.
    let ids: Vec<String> = acked.keys().cloned().collect();
    let ready_by = Instant::now() + Duration::from_secs(900);
    for id in &ids {
        loop {
            let item = item(&client, &base, &token, id).await;
            match item["status"].as_str() {
                Some("ready") => break,
                Some("failed") => panic!("{id} failed: {item}"),
                _ => {}
            }
            assert!(Instant::now() < ready_by, "{id} not ready: {item}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let processed = phase.elapsed();
    eprintln!("all {total} ready {processed:.1?} after the first upload");

    // Originals hash as sent; derivatives read the same through nginx and either node.
    let check = Tally::default();
    let direct: Vec<String> = [a1, a2].iter().map(|i| nodes[*i].base()).collect();
    for (id, sha) in &acked {
        let original = fetch(
            &client,
            &format!("{base}/media/{id}/original"),
            &token,
            &check,
            false,
        )
        .await
        .expect("original readable");
        assert_eq!(&sha256(&original), sha, "original of {id}");
        let thumb = fetch(
            &client,
            &format!("{base}/media/{id}/thumb.webp"),
            &token,
            &check,
            false,
        )
        .await
        .expect("thumb readable");
        for node_base in &direct {
            let again = fetch(
                &client,
                &format!("{node_base}/media/{id}/thumb.webp"),
                &token,
                &check,
                false,
            )
            .await
            .expect("thumb readable from the node");
            assert_eq!(again, thumb, "thumb of {id} from {node_base}");
        }
    }
    assert!(check.failures.lock().unwrap().is_empty());
    // Shared behaviour resumed: the api nodes share item rows through the new Redis.
    let keys = redis.cli(&["--scan", "--pattern", "fh:item:*"]);
    assert!(
        keys.lines().count() > 100,
        "item rows in Redis again: {keys}"
    );

    // The bucket holds every original, as an S3 client we did not write lists it.
    let blobs: Vec<String> = sqlx::query_scalar("SELECT DISTINCT blob_id FROM media")
        .fetch_all(&pool)
        .await
        .unwrap();
    let listing: Value = serde_json::from_slice(&aws(&[
        "s3api",
        "list-objects-v2",
        "--bucket",
        &service_env("FRAMEHOUSE_TEST_S3_BUCKET"),
        "--prefix",
        &format!("{prefix}/originals/"),
    ]))
    .unwrap();
    let in_bucket: BTreeSet<String> = listing["Contents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            o["Key"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    for blob in &blobs {
        assert!(
            in_bucket.contains(blob),
            "original of blob {blob} in the bucket"
        );
    }
    // No job lost or given up: none dead, none left behind.
    let stuck: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM jobs WHERE state = 'dead' OR (state IN ('queued', 'running') AND kind LIKE 'process%')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(stuck, 0, "no processing job dead or left");

    // Phase 2: a rolling restart under load, every node in turn: zero failed requests.
    let stop = Arc::new(AtomicBool::new(false));
    let load = Arc::new(Tally::default());
    let sample: Arc<Vec<String>> = Arc::new(ids.iter().take(64).cloned().collect());
    let next_image = Arc::new(AtomicUsize::new(IMAGES));
    // A connection per request: at a reload nginx's old workers close their idle client
    // connections, and a request racing that close is one clients retry by the rules
    // (RFC 9112 §9.3.1). Without keep-alive every failure counted here is the cluster's.
    let fresh = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let loaders: Vec<_> = (0..RESTART_CLIENTS)
        .map(|c| {
            let (client, base, token) = (fresh.clone(), base.clone(), token.clone());
            let (stop, load, sample, next_image) = (
                stop.clone(),
                load.clone(),
                sample.clone(),
                next_image.clone(),
            );
            tokio::spawn(async move {
                let mut i = c;
                while !stop.load(Ordering::SeqCst) {
                    if i % 5 == 0 {
                        let n = next_image.fetch_add(1, Ordering::SeqCst);
                        upload(&client, &base, &token, image(n), &load, false).await;
                    } else {
                        let id = &sample[i % sample.len()];
                        let url = format!("{base}/media/{id}/thumb.webp");
                        fetch(&client, &url, &token, &load, false).await;
                    }
                    i += 1;
                }
            })
        })
        .collect();
    let restart = Instant::now();
    for name in ["api-1", "api-2", "worker-1", "worker-2", "scheduler"] {
        *load.step.lock().unwrap() = format!("restarting {name}");
        let i = node(&nodes, name);
        let is_api = nodes[i].roles == "api";
        if is_api {
            // Out of rotation first, as a Kubernetes endpoint is removed before SIGTERM.
            let others: Vec<String> = [a1, a2]
                .iter()
                .filter(|j| **j != i)
                .map(|j| nodes[*j].addr())
                .collect();
            nginx
                .reload(&others.iter().map(String::as_str).collect::<Vec<_>>())
                .await;
        }
        nodes[i].terminate().await;
        nodes[i].start();
        nodes[i].wait_ready(&client).await;
        if is_api {
            nginx
                .reload(&api.iter().map(String::as_str).collect::<Vec<_>>())
                .await;
        }
        eprintln!("{name} restarted");
    }
    stop.store(true, Ordering::SeqCst);
    for l in loaders {
        l.await.unwrap();
    }
    let failures = load.failures.lock().unwrap().clone();
    if !failures.is_empty() {
        eprintln!("nginx error log:\n{}", nginx.error_log());
    }
    assert!(
        failures.is_empty(),
        "the rolling restart failed requests: {failures:?}"
    );
    let served = load.acked_count.load(Ordering::SeqCst);
    eprintln!(
        "rolling restart in {:.1?}: {served} uploads and their reads, 0 failed",
        restart.elapsed()
    );
    let restart_ids: Vec<String> = load.acked.lock().unwrap().keys().cloned().collect();
    for id in &restart_ids {
        until(
            Duration::from_secs(300),
            "an upload of the restart ready",
            || async {
                let item = item(&client, &base, &token, id).await;
                item["status"] == "ready"
            },
        )
        .await;
    }

    // Every event of the run on the bound queue, once per id.
    let expected: BTreeSet<i64> = sqlx::query_scalar::<_, i64>("SELECT id FROM events")
        .fetch_all(&pool)
        .await
        .unwrap()
        .into_iter()
        .collect();
    let mut seen: BTreeMap<i64, usize> = BTreeMap::new();
    let drained_by = Instant::now() + Duration::from_secs(120);
    loop {
        for line in pika(&["drain", &amqp, "cluster-test"]).lines() {
            let msg: Value = serde_json::from_str(line).unwrap();
            let id: i64 = msg["message_id"].as_str().unwrap().parse().unwrap();
            *seen.entry(id).or_default() += 1;
        }
        if expected.iter().all(|id| seen.contains_key(id)) {
            break;
        }
        assert!(
            Instant::now() < drained_by,
            "{} of {} events reached the queue",
            seen.len(),
            expected.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Every event at least once. Publishing is at least once: an event published but
    // not yet recorded as relayed when its relay is cut off (the SIGKILLed worker, the
    // broker stopping between storing a message and confirming it) goes out again, so a
    // consumer dedupes on `message_id` — which this test does, and then sees every id
    // exactly once. A repeat is a second copy of one event, never a third.
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.iter().all(|(_, n)| **n == 2),
        "an event delivered more than twice: {twice:?}"
    );
    let after_kill = twice
        .iter()
        .filter(|(id, _)| **id > relayed_by_the_killed)
        .count();
    let unknown: Vec<_> = seen.keys().filter(|id| !expected.contains(id)).collect();
    assert!(
        unknown.is_empty(),
        "messages that are no event: {unknown:?}"
    );
    eprintln!(
        "{} events on the queue, each once by id; {} sent twice ({} of them published after the worker's SIGKILL); whole run {:.1?}",
        expected.len(),
        twice.len(),
        after_kill,
        started.elapsed()
    );
}

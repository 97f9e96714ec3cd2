//! The cluster benchmark (`bench/cluster.sh`, a release build): on PostgreSQL, SeaweedFS
//! and Redis behind nginx, in one run —
//! - processing throughput of a 500-image batch with 1 worker process, then with 2;
//! - a 1 GiB upload through nginx and an api node into SeaweedFS, with the node's peak
//!   RSS growth, against `aws s3 cp` of the same file into the same bucket;
//! - a public derivative through nginx's `proxy_cache` against the api node directly
//!   (wrk, 64 connections).
//!
//! It prints `BENCH` lines; the figures go to BENCHMARKS.md. It asserts only that the work
//! was done (every item ready, the object's size in the bucket), never a speed.

use std::process::Command;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

// Shared with the cluster test, which uses all of them.
#[allow(dead_code)]
#[path = "../../server/tests/api/nginx_server.rs"]
mod nginx_server;

#[allow(dead_code)]
#[path = "../../server/tests/api/clients.rs"]
mod clients;

#[allow(dead_code)]
#[path = "support/cluster.rs"]
mod support;

use clients::*;
use support::*;

const BATCH: usize = 500;
const CLIENTS: usize = 32;

/// Reads a field of `/proc/{pid}/status` in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"))
}

/// Uploads images `from..from + BATCH` through nginx with 32 clients and waits until the
/// database holds `ready_total` ready blobs; the seconds from first upload to last ready.
async fn batch(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    pool: &sqlx::AnyPool,
    from: usize,
    ready_total: i64,
) -> f64 {
    let started = Instant::now();
    let next = Arc::new(Mutex::new(from..from + BATCH));
    let tally = Arc::new(Tally::default());
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (client, base, token) = (client.clone(), base.to_string(), token.to_string());
            let (next, tally) = (next.clone(), tally.clone());
            tokio::spawn(async move {
                loop {
                    let Some(n) = next.lock().unwrap().next() else {
                        return;
                    };
                    upload(&client, &base, &token, image(n), &tally, false).await;
                }
            })
        })
        .collect();
    for c in clients {
        c.await.unwrap();
    }
    assert!(tally.failures.lock().unwrap().is_empty());
    assert_eq!(tally.acked_count.load(Ordering::SeqCst), BATCH);
    until(Duration::from_secs(1800), "the batch ready", || async {
        let ready: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM blobs WHERE status = 'ready'")
            .fetch_one(pool)
            .await
            .unwrap();
        ready >= ready_total
    })
    .await;
    started.elapsed().as_secs_f64()
}

/// wrk's requests per second for `url`.
fn wrk(url: &str) -> f64 {
    let out = Command::new("wrk")
        .args(["-t2", "-c64", "-d10s", "--latency", url])
        .output()
        .expect("wrk runs (scripts/install-deps.sh bench)");
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}");
    assert!(!text.contains("Non-2xx"), "wrk saw errors: {text}");
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("wrk's Requests/sec")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cluster_benchmark() {
    let root = tempfile::tempdir_in("/var/tmp").unwrap();
    let root_path = root.path().to_path_buf();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()
        .unwrap();
    let db_url = fresh_database().await;
    let prefix = format!("bench-{}", uuid::Uuid::new_v4().simple());
    let redis = Redis::launch(&root_path).await;
    let config = root_path.join("framehouse.toml");
    // Room for the 1 GiB WAV (93 minutes of stereo 48 kHz): only its upload is measured.
    let extra = "[limits]\nmax_upload_bytes = 2147483648\n\n[video]\nmax_duration_secs = 7200.0\n";
    let redis_url = format!("redis://127.0.0.1:{}/", redis.port);
    write_config(&config, &db_url, &prefix, &redis_url, None, extra);
    let mut nodes = [
        Node::new("scheduler", "scheduler", &root_path, &config),
        Node::new("api-1", "api", &root_path, &config),
        Node::new("worker-1", "worker", &root_path, &config),
        Node::new("worker-2", "worker", &root_path, &config),
    ];
    // No worker yet: the 1 GiB file's processing is cancelled before any can start it.
    for node in nodes.iter_mut().take(2) {
        node.start();
        node.wait_ready(&client).await;
    }
    let nginx = nginx_server::Nginx::start(&[&nodes[1].addr()]).await;
    let base = nginx.base.clone();
    let token = sign_up(&client, &base, "bench").await;
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(2)
        .connect(&db_url)
        .await
        .unwrap();

    // 1 GiB through nginx into SeaweedFS, against aws-cli into the same bucket.
    let wav = root_path.join("big.wav");
    let made = Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-hide_banner",
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg("sine=frequency=440:sample_rate=48000:duration=5592")
        .args(["-ac", "2", "-c:a", "pcm_s16le"])
        .arg(&wav)
        .status()
        .unwrap();
    assert!(made.success());
    let size = std::fs::metadata(&wav).unwrap().len();
    let api_pid = nodes[1].child.as_ref().unwrap().id();
    // Peak RSS counts from here (writing 5 to clear_refs resets VmHWM).
    std::fs::write(format!("/proc/{api_pid}/clear_refs"), "5").unwrap();
    let rss_before = status_kib(api_pid, "VmRSS:");
    let started = Instant::now();
    let file = tokio::fs::File::open(&wav).await.unwrap();
    let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(
        file,
        256 * 1024,
    ));
    let resp = client
        .post(format!("{base}/api/v1/media"))
        .bearer_auth(&token)
        .header("content-type", "application/octet-stream")
        .header("content-length", size)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let item: Value = resp.json().await.unwrap();
    assert!(status.is_success(), "1 GiB upload: {status} {item}");
    let ours = started.elapsed().as_secs_f64();
    let job = item["job_id"].as_str().expect("a processing job");
    let cancel = client
        .post(format!("{base}/api/v1/jobs/{job}/cancel"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert!(cancel.status().is_success(), "cancel: {}", cancel.status());
    let peak = status_kib(api_pid, "VmHWM:");
    let growth_mib = peak.saturating_sub(rss_before) as f64 / 1024.0;
    let started = Instant::now();
    let bucket = service_env("FRAMEHOUSE_TEST_S3_BUCKET");
    let target = format!("s3://{bucket}/{prefix}/reference/big.wav");
    aws(&[
        "s3",
        "cp",
        "--only-show-errors",
        wav.to_str().unwrap(),
        &target,
    ]);
    let reference = started.elapsed().as_secs_f64();
    let gib = size as f64 / (1u64 << 30) as f64;
    println!(
        "BENCH upload_1gib framehouse_via_nginx_s={ours:.2} ({:.0} MiB/s) api_rss_growth_mib={growth_mib:.1} aws_s3_cp_s={reference:.2} ({:.0} MiB/s) ratio={:.2}",
        gib * 1024.0 / ours,
        gib * 1024.0 / reference,
        ours / reference
    );

    // Processing throughput: one worker process, then two.
    nodes[2].start();
    nodes[2].wait_ready(&client).await;
    let one = batch(&client, &base, &token, &pool, 0, BATCH as i64).await;
    nodes[3].start();
    nodes[3].wait_ready(&client).await;
    let two = batch(&client, &base, &token, &pool, 1_000, 2 * BATCH as i64).await;
    println!(
        "BENCH processing images_per_min_1_worker={:.0} images_per_min_2_workers={:.0} ratio={:.2}",
        BATCH as f64 * 60.0 / one,
        BATCH as f64 * 60.0 / two,
        one / two
    );

    // What the items cost the shared database: rows and bytes per item.
    let scalar = |sql: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    let items = scalar("SELECT COUNT(*) FROM media").await;
    let (mut rows, mut bytes) = (Vec::new(), 0i64);
    for table in [
        "media",
        "blobs",
        "variants",
        "jobs",
        "events",
        "transform_results",
    ] {
        let sql = format!(
            "SELECT COUNT(*), CAST(pg_total_relation_size('{table}') AS BIGINT) FROM {table}"
        );
        let (n, size): (i64, i64) = sqlx::query_as(&sql).fetch_one(&pool).await.unwrap();
        rows.push(format!("{table}={n}/{}KiB", size / 1024));
        bytes += size;
    }
    println!(
        "BENCH postgres items={items} bytes_per_item={} (tables with indexes) rows/size {}",
        bytes / items.max(1),
        rows.join(" ")
    );

    // A public derivative: nginx's cache against the node itself.
    let public = client
        .post(format!("{base}/api/v1/media?visibility=public"))
        .bearer_auth(&token)
        .header("content-type", "application/octet-stream")
        .body(image(9_999))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let id = public["id"].as_str().unwrap().to_string();
    until(Duration::from_secs(60), "the public item ready", || async {
        client
            .get(format!("{base}/media/{id}/thumb.webp"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await;
    let cached = wrk(&format!("{base}/media/{id}/thumb.webp"));
    let direct = wrk(&format!("{}/media/{id}/thumb.webp", nodes[1].base()));
    println!(
        "BENCH delivery nginx_proxy_cache_rps={cached:.0} api_direct_rps={direct:.0} ratio={:.2}",
        cached / direct
    );
}

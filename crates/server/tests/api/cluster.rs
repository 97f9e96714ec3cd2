//! Several nodes on one PostgreSQL: migrations from many nodes at once, jobs woken across
//! nodes by LISTEN/NOTIFY, and the service registry.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use server::kernel::nodes::Registry;
use server::settings::{DatabaseSettings, Role, Secret};

use crate::fixtures;
use crate::helpers::{eventually, fresh_postgres_url, spawn_app_with, Backend, TestApp};

async fn node(
    url: &str,
    roles: Vec<Role>,
    tweak: impl FnOnce(&mut server::settings::Settings),
) -> TestApp {
    let url = url.to_string();
    spawn_app_with(Backend::Sqlite, move |s| {
        s.database = DatabaseSettings {
            url: Some(Secret::new(url)),
            max_connections: 10,
            ..DatabaseSettings::default()
        };
        s.roles = roles;
        s.cluster.heartbeat_secs = 1;
        s.cluster.dead_after_secs = 3;
        tweak(s);
    })
    .await
}

/// Four nodes starting at once on an empty database: each runs the migrator, one applies
/// the migrations under PostgreSQL's advisory lock, the others find them applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(skip_postgres, ignore = "FRAMEHOUSE_TEST_SKIP_POSTGRES=1")]
async fn four_nodes_migrating_one_database_at_once_apply_each_migration_once() {
    let url = fresh_postgres_url().await;
    let nodes =
        futures::future::join_all((0..4).map(|_| node(&url, vec![Role::Api], |_| {}))).await;
    let files = std::fs::read_dir(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../migrations/postgres"
    ))
    .unwrap()
    .count() as i64;
    let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&nodes[0].state.db.pool)
        .await
        .unwrap();
    assert_eq!(applied, files, "every migration applied once");
    for n in &nodes {
        assert_eq!(n.get(None, "/readyz").await.status(), StatusCode::OK);
    }
}

/// An upload on an api-only node is processed by a worker-only node whose poll interval
/// is a minute: the commit's NOTIFY wakes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(skip_postgres, ignore = "FRAMEHOUSE_TEST_SKIP_POSTGRES=1")]
async fn a_job_committed_on_an_api_node_starts_on_a_worker_node_without_waiting_for_its_poll() {
    let url = fresh_postgres_url().await;
    let api = node(&url, vec![Role::Api], |_| {}).await;
    let data_dir = api.data_dir.clone();
    let worker = node(&url, vec![Role::Worker], move |s| {
        s.worker.poll_interval_ms = 60_000;
        // One store for both nodes, as a cluster shares its bucket.
        s.data_dir = data_dir;
    })
    .await;
    // The worker idles on its poll only once it has looked for work and found none.
    let listening = "SELECT COUNT(*) FROM pg_stat_activity \
        WHERE datname = current_database() AND query LIKE 'LISTEN%framehouse_jobs%'";
    eventually(
        Duration::from_secs(10),
        "the worker node listens",
        || async { api.scalar(listening).await >= 1 },
    )
    .await;
    let alice = api.user("alice").await;
    let started = Instant::now();
    let item = api.upload_ok(&alice, fixtures::jpeg(400, 300), "").await;
    let id = item["id"].as_str().unwrap();
    let done = api.wait_processed(&alice, id).await;
    assert_eq!(done["status"], "ready", "{done}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "processed after {:?}; the worker's poll is 60 s",
        started.elapsed()
    );
    // A finished job keeps the name of the worker that ran it.
    let locked_by: Option<String> =
        sqlx::query_scalar("SELECT locked_by FROM jobs WHERE kind = 'process_image'")
            .fetch_one(&api.state.db.pool)
            .await
            .unwrap();
    assert_eq!(locked_by.as_deref(), Some(worker.state.node.id.as_str()));
}

async fn nodes_of(app: &TestApp, token: &str) -> Vec<Value> {
    let resp = app.get(Some(token), "/api/v1/admin/nodes").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    body["nodes"].as_array().unwrap().clone()
}

fn find<'a>(nodes: &'a [Value], id: &str) -> &'a Value {
    nodes
        .iter()
        .find(|n| n["id"] == id)
        .unwrap_or_else(|| panic!("{id} not listed: {nodes:?}"))
}

/// Every node registers with its roles and address and heartbeats; a node that shuts
/// down is `stopped`; one whose heartbeats stop is `dead`. Only admins see the list.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(skip_postgres, ignore = "FRAMEHOUSE_TEST_SKIP_POSTGRES=1")]
async fn the_registry_lists_nodes_with_roles_health_and_work() {
    let url = fresh_postgres_url().await;
    let api = node(&url, vec![Role::Api, Role::Scheduler], |_| {}).await;
    let worker = node(&url, vec![Role::Worker], |_| {}).await;
    let admin = api.admin("root").await;
    let user = api.user("someone").await;
    let resp = api.get(Some(&user), "/api/v1/admin/nodes").await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        api.get(None, "/api/v1/admin/nodes").await.status(),
        StatusCode::UNAUTHORIZED
    );

    let (api_id, worker_id) = (api.state.node.id.clone(), worker.state.node.id.clone());
    let nodes = nodes_of(&api, &admin).await;
    let me = find(&nodes, &api_id);
    assert_eq!(me["roles"], serde_json::json!(["api", "scheduler"]));
    assert_eq!(me["status"], "up");
    assert_eq!(me["this_node"], true);
    assert_eq!(me["address"], api.base);
    assert_eq!(me["version"], env!("CARGO_PKG_VERSION"));
    let w = find(&nodes, &worker_id);
    assert_eq!(w["roles"], serde_json::json!(["worker"]));
    assert_eq!(w["this_node"], false);
    assert_eq!(w["running_jobs"], 0);

    // Heartbeats move forward.
    let first = w["last_heartbeat_at"].as_str().unwrap().to_string();
    eventually(Duration::from_secs(10), "a second heartbeat", || async {
        find(&nodes_of(&api, &admin).await, &worker_id)["last_heartbeat_at"] != first.as_str()
    })
    .await;

    // A clean shutdown deregisters.
    worker.stop().await;
    let nodes = nodes_of(&api, &admin).await;
    assert_eq!(find(&nodes, &worker_id)["status"], "stopped");

    // A node that registers and then falls silent (its process frozen or killed -9): its
    // row ages past `dead_after_secs` (3 s here).
    let ghost_id = "ghost-node".to_string();
    let ghost = Registry::new(
        api.state.db.clone(),
        ghost_id.clone(),
        vec!["worker".into()],
        "http://10.0.0.9:8080".into(),
        &api.state.settings.cluster,
    );
    ghost.register().await.unwrap();
    assert_eq!(
        find(&nodes_of(&api, &admin).await, &ghost_id)["status"],
        "up"
    );
    eventually(
        Duration::from_secs(20),
        "the silent node reported dead",
        || async { find(&nodes_of(&api, &admin).await, &ghost_id)["status"] == "dead" },
    )
    .await;
}

/// The embedded single node registers too (SQLite), and lists itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_single_sqlite_node_lists_itself() {
    let app = spawn_app_with(Backend::Sqlite, |_| {}).await;
    let admin = app.admin("root").await;
    let nodes = nodes_of(&app, &admin).await;
    assert_eq!(nodes.len(), 1, "{nodes:?}");
    let me = find(&nodes, &app.state.node.id);
    assert_eq!(me["status"], "up");
    assert_eq!(
        me["roles"],
        serde_json::json!(["api", "worker", "scheduler"])
    );
}

/// Listings are read from the replica (`database.read_url`), everything else from the
/// primary: with the standby's replay paused, a new item is there by id but not yet in the
/// listing; once replay resumes, the listing catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(skip_postgres, ignore = "FRAMEHOUSE_TEST_SKIP_POSTGRES=1")]
async fn listings_come_from_the_read_replica_and_catch_up_when_it_replays() {
    let url = fresh_postgres_url().await;
    let name = url.rsplit('/').next().unwrap().to_string();
    let replica_admin = crate::helpers::service_env("FRAMEHOUSE_TEST_POSTGRES_REPLICA_URL");
    let (base, _) = replica_admin.rsplit_once('/').unwrap();
    let replica_url = format!("{base}/{name}");
    // The new database reaches the standby a moment later.
    eventually(
        Duration::from_secs(30),
        "the database reaches the replica",
        || async {
            <sqlx::AnyConnection as sqlx::Connection>::connect(&replica_url)
                .await
                .is_ok()
        },
    )
    .await;
    let read_url = replica_url.clone();
    let app = node(&url, vec![Role::Api, Role::Worker], move |s| {
        s.database.read_url = Some(Secret::new(read_url));
    })
    .await;
    let alice = app.user("alice").await;
    let first = app.upload_ok(&alice, fixtures::jpeg(300, 200), "").await;
    let first_id = first["id"].as_str().unwrap().to_string();
    app.wait_processed(&alice, &first_id).await;
    eventually(
        Duration::from_secs(30),
        "the replica shows the item",
        || async { listing(&app, &alice).await.contains(&first_id) },
    )
    .await;

    let mut standby = <sqlx::AnyConnection as sqlx::Connection>::connect(&replica_admin)
        .await
        .unwrap();
    sqlx::query("SELECT pg_wal_replay_pause()")
        .execute(&mut standby)
        .await
        .unwrap();
    let second = app.upload_ok(&alice, fixtures::jpeg(320, 200), "").await;
    let second_id = second["id"].as_str().unwrap().to_string();
    let by_id = app.get_item(Some(&alice), &second_id).await;
    assert_eq!(
        by_id.status(),
        StatusCode::OK,
        "single reads use the primary"
    );
    let stale = listing(&app, &alice).await;
    sqlx::query("SELECT pg_wal_replay_resume()")
        .execute(&mut standby)
        .await
        .unwrap();
    assert!(stale.contains(&first_id), "{stale:?}");
    assert!(
        !stale.contains(&second_id),
        "the listing came from the paused replica: {stale:?}"
    );
    eventually(
        Duration::from_secs(30),
        "the replica catches up",
        || async { listing(&app, &alice).await.contains(&second_id) },
    )
    .await;
}

/// The ids `GET /api/v1/media` lists for `token`.
async fn listing(app: &TestApp, token: &str) -> Vec<String> {
    let resp = app.get(Some(token), "/api/v1/media").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

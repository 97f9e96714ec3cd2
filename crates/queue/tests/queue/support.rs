//! Test databases and small helpers shared by the scenarios.

use std::future::Future;
use std::time::{Duration, Instant};

use queue::{Backend, JobId, JobRecord, JobState, Queue};
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyConnection, AnyPool, Connection, Executor};
use tempfile::TempDir;

/// A fresh, migrated database and a queue on it.
pub struct TestDb {
    pub queue: Queue,
    pub pool: AnyPool,
    /// The database's URL (PostgreSQL), for a second node's pool or a listener.
    pub url: Option<String>,
    /// Keeps the SQLite file alive for the test's duration.
    _dir: Option<TempDir>,
}

impl TestDb {
    pub async fn job(&self, id: &JobId) -> JobRecord {
        self.queue
            .get(id)
            .await
            .expect("reading the job")
            .expect("the job exists")
    }

    pub async fn state(&self, id: &JobId) -> JobState {
        self.job(id).await.state
    }

    /// Runs a query returning one BIGINT, e.g. a `COUNT(*)`.
    pub async fn scalar(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(&self.pool)
            .await
            .expect("scalar query")
    }
}

pub async fn sqlite() -> TestDb {
    sqlx::any::install_default_drivers();
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}/queue.db?mode=rwc", dir.path().display());
    let pool = AnyPoolOptions::new()
        .max_connections(8)
        .after_connect(|conn, _| {
            Box::pin(async move {
                // Writers queue behind each other under the concurrent tests.
                conn.execute("PRAGMA busy_timeout = 30000").await?;
                Ok(())
            })
        })
        .connect(&url)
        .await
        .expect("opening SQLite");
    // WAL as in production, so readers never block the writer.
    pool.execute("PRAGMA journal_mode = WAL")
        .await
        .expect("enabling WAL");
    sqlx::migrate!("../../migrations/sqlite")
        .run(&pool)
        .await
        .expect("migrating SQLite");
    assert_eq!(Backend::of_pool(&pool), Some(Backend::Sqlite));
    TestDb {
        queue: Queue::new(pool.clone(), Backend::Sqlite),
        pool,
        url: None,
        _dir: Some(dir),
    }
}

/// A fresh database on the server of `FRAMEHOUSE_TEST_POSTGRES_URL`.
pub async fn postgres() -> TestDb {
    sqlx::any::install_default_drivers();
    let admin_url = std::env::var("FRAMEHOUSE_TEST_POSTGRES_URL").expect(
        "FRAMEHOUSE_TEST_POSTGRES_URL is not set. Run the tests through \
         `scripts/with-test-services.sh cargo test -p queue`, which starts a throwaway \
         PostgreSQL (or set FRAMEHOUSE_TEST_SKIP_POSTGRES=1 to have its tests ignored)",
    );
    let name = format!("q_{}", uuid::Uuid::new_v4().simple());
    let mut admin = AnyConnection::connect(&admin_url)
        .await
        .expect("connecting to FRAMEHOUSE_TEST_POSTGRES_URL");
    admin
        .execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .expect("creating the test database");
    admin.close().await.ok();
    let url = with_database(&admin_url, &name);
    let pool = AnyPoolOptions::new()
        .max_connections(10)
        .connect(&url)
        .await
        .expect("connecting to the test database");
    sqlx::migrate!("../../migrations/postgres")
        .run(&pool)
        .await
        .expect("migrating PostgreSQL");
    assert_eq!(Backend::of_pool(&pool), Some(Backend::Postgres));
    TestDb {
        queue: Queue::new(pool.clone(), Backend::Postgres),
        pool,
        url: Some(url),
        _dir: None,
    }
}

/// The admin URL with its database name replaced.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{database}", &base[..path_start]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// Polls `condition` every 20 ms until it holds; panics with `what` after `timeout`.
pub async fn wait_until<F, Fut>(timeout: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

#[test]
fn database_name_is_swapped_in_the_admin_url() {
    assert_eq!(
        with_database("postgres://u@127.0.0.1:5432/postgres", "q_1"),
        "postgres://u@127.0.0.1:5432/q_1"
    );
    assert_eq!(
        with_database("postgres://u@h/postgres?sslmode=disable", "q_1"),
        "postgres://u@h/q_1?sslmode=disable"
    );
    assert_eq!(with_database("postgres://u@h", "q_1"), "postgres://u@h/q_1");
}

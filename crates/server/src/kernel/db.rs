//! The metadata database: one `AnyPool` over SQLite (embedded default) or PostgreSQL,
//! the same SQL for both (`$n` placeholders, BIGINT epoch-millisecond timestamps, text ids),
//! and the few dialect helpers where the two differ.

use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor};

use super::secret::Secret;
pub use queue::Backend;

/// The `[database]` section.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `sqlite://…` or `postgres://…`. Default: SQLite at `<data_dir>/framehouse.db`.
    pub url: Option<Secret>,
    /// Connection pool size. Default 16.
    pub max_connections: u32,
    /// A read-only replica (`postgres://…` of a streaming standby) for listings. They may
    /// then lag the primary by the replica's replay delay; single-item reads, writes and
    /// everything transactional stay on the primary. Default none (all on `url`).
    pub read_url: Option<Secret>,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: None,
            max_connections: 16,
            read_url: None,
        }
    }
}

#[derive(Clone)]
pub struct Db {
    pub pool: AnyPool,
    /// The replica's pool when `database.read_url` is set, else `pool` itself.
    read: AnyPool,
    pub backend: Backend,
}

impl Db {
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Db> {
        sqlx::any::install_default_drivers();
        let backend = backend_of(url)?;
        let mut options = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(30));
        if backend == Backend::Sqlite {
            if let Some(path) = sqlite_path(url) {
                if let Some(dir) = std::path::Path::new(path).parent() {
                    std::fs::create_dir_all(dir).ok();
                }
            }
            // WAL lets readers run beside the one writer; synchronous=FULL keeps every
            // commit durable (a 2xx means durable). Writers queue behind each other, so
            // they get a generous busy timeout.
            options = options.after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA synchronous = FULL").await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                    conn.execute("PRAGMA busy_timeout = 30000").await?;
                    Ok(())
                })
            });
        }
        let pool = options
            .connect(url)
            .await
            .context("connecting to the database")?;
        Ok(Db {
            read: pool.clone(),
            pool,
            backend,
        })
    }

    /// Sends [`Db::reader`]'s queries to the replica at `url`.
    pub async fn with_read_replica(
        mut self,
        url: &str,
        max_connections: u32,
    ) -> anyhow::Result<Db> {
        anyhow::ensure!(
            backend_of(url)? == self.backend,
            "database.read_url must be the same kind of database as database.url"
        );
        self.read = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(30))
            .connect(url)
            .await
            .context("connecting to the read replica")?;
        Ok(self)
    }

    /// The database for reads that may lag a little (listings): the replica when there is
    /// one. Never write through it — a standby refuses writes.
    pub fn reader(&self) -> Db {
        Db {
            pool: self.read.clone(),
            read: self.read.clone(),
            backend: self.backend,
        }
    }

    pub async fn migrate(&self) -> anyhow::Result<()> {
        match self.backend {
            Backend::Sqlite => {
                sqlx::migrate!("../../migrations/sqlite")
                    .run(&self.pool)
                    .await
            }
            Backend::Postgres => {
                sqlx::migrate!("../../migrations/postgres")
                    .run(&self.pool)
                    .await
            }
        }
        .context("running database migrations")
    }

    /// Starts a transaction that will write. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`): a deferred transaction that reads first and writes later
    /// fails with SQLITE_BUSY, without waiting, when another writer got in between.
    pub async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
    }

    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    /// What ends a `SELECT` that locks the rows it reads until the transaction ends:
    /// ` FOR UPDATE` on PostgreSQL; nothing on SQLite, whose write transaction
    /// (`begin_write`) is exclusive already.
    pub fn for_update(&self) -> &'static str {
        match self.backend {
            Backend::Postgres => " FOR UPDATE",
            Backend::Sqlite => "",
        }
    }

    /// Like [`Db::for_update`], skipping rows another transaction holds (claim loops).
    pub fn skip_locked(&self) -> &'static str {
        match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        }
    }
}

/// `$first, $first+1, …` for an `IN (…)` list of `n` values.
pub fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs `sql`, whose one `{}` is the `IN (…)` list, with `ids` bound to it, on the pool
/// (`&db.pool`) or a connection.
pub async fn fetch_in<'c>(
    exec: impl sqlx::Executor<'c, Database = sqlx::Any>,
    sql: &str,
    ids: &[&str],
) -> Result<Vec<AnyRow>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = sql.replacen("{}", &placeholders(1, ids.len()), 1);
    let mut query = sqlx::query(&sql);
    for id in ids {
        query = query.bind(*id);
    }
    query.fetch_all(exec).await
}

fn backend_of(url: &str) -> anyhow::Result<Backend> {
    if url.starts_with("sqlite:") {
        Ok(Backend::Sqlite)
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(Backend::Postgres)
    } else {
        anyhow::bail!("unsupported database URL scheme (use sqlite:// or postgres://)")
    }
}

fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    Some(rest.split('?').next().unwrap_or(rest))
}

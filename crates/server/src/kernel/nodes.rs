//! The service registry: each process registers itself in the shared database (id, roles,
//! version, address), heartbeats, says when it starts draining and when it has stopped;
//! a node whose heartbeats stop is reported dead. On Kubernetes the Services and readiness
//! probes route traffic; this registry is what operators and the admin API see of the
//! whole cluster, workers and schedulers included (docs/SCALING.md).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::Row;
use tokio_util::sync::CancellationToken;

use super::db::Db;

/// The `[cluster]` section.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterSettings {
    /// This process's name in the registry and in job leases. Default: the host name (the
    /// pod name on Kubernetes) and a random suffix, new at every start.
    pub node_id: Option<String>,
    /// How other nodes and operators reach this one. Default: `public_url`.
    pub advertise_url: Option<String>,
    /// Heartbeat interval. Default 5.
    pub heartbeat_secs: u64,
    /// A node silent this long is reported `dead`. Default 30.
    pub dead_after_secs: u64,
    /// Stopped and dead nodes are forgotten after this long. Default 86400.
    pub forget_after_secs: u64,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        Self {
            node_id: None,
            advertise_url: None,
            heartbeat_secs: 5,
            dead_after_secs: 30,
            forget_after_secs: 86_400,
        }
    }
}

impl ClusterSettings {
    /// The configured id, or `{hostname}-{random}`.
    pub fn node_id(&self) -> String {
        if let Some(id) = self.node_id.as_deref().filter(|id| !id.is_empty()) {
            return id.to_owned();
        }
        let host = std::env::var("HOSTNAME")
            .ok()
            .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "node".into());
        let suffix = &uuid::Uuid::new_v4().simple().to_string()[..8];
        format!("{host}-{suffix}")
    }
}

/// A node as the registry knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeRow {
    pub id: String,
    pub roles: Vec<String>,
    pub version: String,
    pub address: String,
    pub started_at: i64,
    pub heartbeat_at: i64,
    /// `up`, `draining`, `stopped`, or `dead` (no heartbeat for `dead_after_secs`).
    pub status: String,
}

/// This process's entry in the registry.
#[derive(Clone)]
pub struct Registry {
    db: Db,
    pub id: String,
    roles: Vec<String>,
    address: String,
    settings: ClusterSettings,
}

impl Registry {
    pub fn new(
        db: Db,
        id: String,
        roles: Vec<String>,
        address: String,
        s: &ClusterSettings,
    ) -> Self {
        Registry {
            db,
            id,
            roles,
            address,
            settings: s.clone(),
        }
    }

    fn now(&self) -> &'static str {
        self.db.backend.now_sql()
    }

    /// Writes this node's row (again, after a restart under a fixed `node_id`).
    pub async fn register(&self) -> sqlx::Result<()> {
        let now = self.now();
        let sql = format!(
            "INSERT INTO nodes (id, roles, version, address, started_at, heartbeat_at, state) \
             VALUES ($1, $2, $3, $4, {now}, {now}, 'up') \
             ON CONFLICT (id) DO UPDATE SET roles = excluded.roles, version = excluded.version, \
             address = excluded.address, started_at = excluded.started_at, \
             heartbeat_at = excluded.heartbeat_at, state = 'up'"
        );
        sqlx::query(&sql)
            .bind(&self.id)
            .bind(self.roles.join(","))
            .bind(env!("CARGO_PKG_VERSION"))
            .bind(&self.address)
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }

    /// Records that this node is alive; re-registers when its row was forgotten.
    pub async fn heartbeat(&self) -> sqlx::Result<()> {
        let sql = format!(
            "UPDATE nodes SET heartbeat_at = {} WHERE id = $1 AND state <> 'stopped'",
            self.now()
        );
        let done = sqlx::query(&sql)
            .bind(&self.id)
            .execute(&self.db.pool)
            .await?;
        if done.rows_affected() == 0 {
            self.register().await?;
        }
        Ok(())
    }

    /// `draining` when shutdown starts, `stopped` once drained.
    pub async fn set_state(&self, state: &str) -> sqlx::Result<()> {
        let sql = format!(
            "UPDATE nodes SET state = $2, heartbeat_at = {} WHERE id = $1",
            self.now()
        );
        sqlx::query(&sql)
            .bind(&self.id)
            .bind(state)
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }

    /// Every known node, newest first, with its status as of the database's clock.
    pub async fn list(&self) -> sqlx::Result<Vec<NodeRow>> {
        let dead_ms = (self.settings.dead_after_secs.max(1) * 1000) as i64;
        let sql = format!(
            "SELECT id, roles, version, address, started_at, heartbeat_at, state, \
             CAST(CASE WHEN state <> 'stopped' AND heartbeat_at < {} - $1 THEN 1 ELSE 0 END AS BIGINT) \
             FROM nodes ORDER BY started_at DESC, id",
            self.now()
        );
        let rows = sqlx::query(&sql)
            .bind(dead_ms)
            .fetch_all(&self.db.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let roles: String = r.try_get(1)?;
                let state: String = r.try_get(6)?;
                let dead: i64 = r.try_get(7)?;
                Ok(NodeRow {
                    id: r.try_get(0)?,
                    roles: roles.split(',').map(str::to_owned).collect(),
                    version: r.try_get(2)?,
                    address: r.try_get(3)?,
                    started_at: r.try_get(4)?,
                    heartbeat_at: r.try_get(5)?,
                    status: if dead == 1 { "dead".into() } else { state },
                })
            })
            .collect()
    }

    /// Forgets nodes stopped or silent for `forget_after_secs`.
    pub async fn forget_old(&self) -> sqlx::Result<u64> {
        let sql = format!("DELETE FROM nodes WHERE heartbeat_at < {} - $1", self.now());
        let forget_ms = (self.settings.forget_after_secs.max(60) * 1000) as i64;
        let done = sqlx::query(&sql)
            .bind(forget_ms)
            .execute(&self.db.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Heartbeats until `drained`, marking the node `draining` as soon as `shutdown`
    /// fires (call [`register`] first; the caller marks it `stopped`). A draining node
    /// keeps its heartbeat, so jobs finishing in a long grace period never show as dead.
    /// Errors are logged and retried at the next beat: the registry informs, it never
    /// stops a node from serving.
    ///
    /// [`register`]: Registry::register
    pub async fn run(self, shutdown: CancellationToken, drained: CancellationToken) {
        let every = Duration::from_secs(self.settings.heartbeat_secs.max(1));
        let mut beats = 0u64;
        let mut draining = false;
        loop {
            tokio::select! {
                () = drained.cancelled() => return,
                () = shutdown.cancelled(), if !draining => {
                    draining = true;
                    if let Err(e) = self.set_state("draining").await {
                        tracing::warn!(error = %e, "marking this node draining failed");
                    }
                    continue;
                }
                () = tokio::time::sleep(every) => {}
            }
            if let Err(e) = self.heartbeat().await {
                tracing::warn!(error = %e, "node heartbeat failed");
            }
            beats += 1;
            if beats.is_multiple_of(60) {
                if let Err(e) = self.forget_old().await {
                    tracing::warn!(error = %e, "forgetting old nodes failed");
                }
            }
        }
    }
}

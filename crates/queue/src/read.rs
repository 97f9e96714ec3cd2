//! Reads of the jobs table for the API and metrics: one job, pages of jobs, counts.

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::job::{JobId, JobRecord, JobState};
use crate::store::Queue;
use crate::{QueueError, Result};

const RECORD_COLUMNS: &str = "id, kind, payload, state, priority, attempts, max_attempts, \
    progress, last_error, unique_key, locked_by, lease_until, run_at, created_at, updated_at, \
    finished_at";

impl Queue {
    /// One job, every column.
    pub async fn get(&self, id: &JobId) -> Result<Option<JobRecord>> {
        let sql = format!("SELECT {RECORD_COLUMNS} FROM jobs WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id.as_str())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(record_from_row).transpose()
    }

    /// Running jobs by the worker holding their lease (`WorkerConfig::worker_id`), with
    /// how many of each kind: what each node of a cluster is busy with.
    pub async fn running_by_worker(&self) -> Result<Vec<(String, String, i64)>> {
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT locked_by, kind, COUNT(*) FROM jobs \
             WHERE state = 'running' AND locked_by IS NOT NULL \
             GROUP BY locked_by, kind ORDER BY locked_by, kind",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows)
    }

    /// Jobs oldest first, optionally of one state (e.g. dead letters), paged by the id
    /// of the last job of the previous page. `limit` is clamped to 1–1000.
    pub async fn list(
        &self,
        state: Option<JobState>,
        limit: i64,
        after: Option<&JobId>,
    ) -> Result<Vec<JobRecord>> {
        let mut conditions = Vec::new();
        let mut next_param = 1;
        for (present, column) in [(state.is_some(), "state ="), (after.is_some(), "id >")] {
            if present {
                conditions.push(format!("{column} ${next_param}"));
                next_param += 1;
            }
        }
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let sql = format!(
            "SELECT {RECORD_COLUMNS} FROM jobs {filter} ORDER BY id ASC LIMIT ${next_param}"
        );
        let mut query = sqlx::query(&sql);
        if let Some(state) = state {
            query = query.bind(state.as_str());
        }
        if let Some(after) = after {
            query = query.bind(after.as_str());
        }
        let rows = query
            .bind(limit.clamp(1, 1000))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(record_from_row).collect()
    }

    /// How many jobs are in each state, for metrics. States with no job are omitted.
    pub async fn counts_by_state(&self) -> Result<Vec<(String, i64)>> {
        let rows =
            sqlx::query("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state ORDER BY state")
                .fetch_all(self.pool())
                .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("state")?, row.try_get("n")?)))
            .collect()
    }
}

fn record_from_row(row: &AnyRow) -> Result<JobRecord> {
    let state: String = row.try_get("state")?;
    let payload: String = row.try_get("payload")?;
    Ok(JobRecord {
        id: JobId::from_db(row.try_get("id")?),
        kind: row.try_get("kind")?,
        payload: serde_json::from_str(&payload)?,
        state: JobState::parse(&state).ok_or(QueueError::UnknownState(state))?,
        priority: row.try_get("priority")?,
        attempts: row.try_get("attempts")?,
        max_attempts: row.try_get("max_attempts")?,
        progress: row.try_get("progress")?,
        last_error: row.try_get("last_error")?,
        unique_key: row.try_get("unique_key")?,
        locked_by: row.try_get("locked_by")?,
        lease_until: row.try_get("lease_until")?,
        run_at: row.try_get("run_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        finished_at: row.try_get("finished_at")?,
    })
}

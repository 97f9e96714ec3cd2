//! The job API: poll one job, and (admins) list jobs by state — the dead-letter view.

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use queue::{JobId, JobRecord, JobState};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{AppError, AppQuery, AppResult, ErrorBody};
use crate::identity::{Admin, Caller, Writer};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/jobs", get(list_jobs))
        .route("/api/v1/jobs/{id}", get(get_job))
        .route("/api/v1/jobs/{id}/cancel", post(cancel_job))
}

#[derive(Serialize, ToSchema)]
pub struct JobView {
    pub id: String,
    pub kind: String,
    /// queued, running, succeeded, dead or cancelled.
    pub state: String,
    pub priority: i64,
    pub attempts: i64,
    pub max_attempts: i64,
    /// Percent done, when the job reports it.
    pub progress: Option<i64>,
    pub last_error: Option<String>,
    pub run_at: String,
    pub created_at: String,
    pub updated_at: String,
    pub finished_at: Option<String>,
}

impl From<JobRecord> for JobView {
    fn from(j: JobRecord) -> Self {
        use crate::db::rfc3339;
        JobView {
            id: j.id.to_string(),
            kind: j.kind,
            state: j.state.as_str().into(),
            priority: j.priority,
            attempts: j.attempts,
            max_attempts: j.max_attempts,
            progress: j.progress,
            last_error: j.last_error,
            run_at: rfc3339(j.run_at),
            created_at: rfc3339(j.created_at),
            updated_at: rfc3339(j.updated_at),
            finished_at: j.finished_at.map(rfc3339),
        }
    }
}

/// A job is visible to admins, to the owner of the item whose upload started it, and
/// to the owner of the item a job was requested for (`media_id` in its payload).
async fn may_see(state: &AppState, caller: &Caller, job: &JobRecord) -> AppResult<bool> {
    if caller.is_admin {
        return Ok(true);
    }
    let owns = sqlx::query("SELECT 1 FROM media WHERE job_id = $1 AND owner_id = $2 LIMIT 1")
        .bind(job.id.as_str())
        .bind(&caller.user_id)
        .fetch_optional(&state.db.pool)
        .await?;
    if owns.is_some() {
        return Ok(true);
    }
    let Some(media_id) = job.payload.get("media_id").and_then(|v| v.as_str()) else {
        return Ok(false);
    };
    let owns = sqlx::query("SELECT 1 FROM media WHERE id = $1 AND owner_id = $2")
        .bind(media_id)
        .bind(&caller.user_id)
        .fetch_optional(&state.db.pool)
        .await?;
    Ok(owns.is_some())
}

#[utoipa::path(post, path = "/api/v1/jobs/{id}/cancel", tag = "jobs",
    params(("id" = String, Path, description = "job id")),
    responses((status = 200, body = JobView, description = "cancelled; a running job stops within seconds"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "the job has already finished")))]
pub async fn cancel_job(
    State(state): State<AppState>,
    Writer(caller): Writer,
    Path(id): Path<String>,
) -> AppResult<Json<JobView>> {
    let id = JobId::parse(&id).map_err(|_| AppError::not_found("job"))?;
    let job = match state.queue.get(&id).await? {
        Some(job) if may_see(&state, &caller, &job).await? => job,
        _ => return Err(AppError::not_found("job")),
    };
    if !state.queue.cancel(&id).await? {
        return Err(AppError::new(
            axum::http::StatusCode::CONFLICT,
            "job_finished",
            format!("the job is already {}", job.state.as_str()),
        ));
    }
    // An item whose processing was cancelled before it could be shown says so; one
    // that already plays (a video's first rendition) stays ready.
    if let Some(blob_id) = job.payload.get("blob_id").and_then(|v| v.as_str()) {
        if job.kind == crate::media::PROCESS_IMAGE || job.kind == crate::video::PROCESS_VIDEO {
            sqlx::query(
                "UPDATE blobs SET status = 'failed', error = 'processing was cancelled'
                 WHERE id = $1 AND status = 'processing'",
            )
            .bind(blob_id)
            .execute(&state.db.pool)
            .await?;
        }
    }
    let job = state
        .queue
        .get(&id)
        .await?
        .ok_or_else(|| AppError::not_found("job"))?;
    Ok(Json(job.into()))
}

#[utoipa::path(get, path = "/api/v1/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "job id")),
    responses((status = 200, body = JobView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_job(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> AppResult<Json<JobView>> {
    let id = JobId::parse(&id).map_err(|_| AppError::not_found("job"))?;
    match state.queue.get(&id).await? {
        Some(job) if may_see(&state, &caller, &job).await? => Ok(Json(job.into())),
        _ => Err(AppError::not_found("job")),
    }
}

#[derive(Deserialize, IntoParams)]
pub struct JobListQuery {
    /// queued, running, succeeded, dead or cancelled. Default: dead.
    pub state: Option<String>,
    /// 1–200. Default 50.
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct JobPage {
    pub jobs: Vec<JobView>,
    pub next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/jobs", tag = "jobs", params(JobListQuery),
    responses((status = 200, body = JobPage), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_jobs(
    State(state): State<AppState>,
    Admin(_admin): Admin,
    AppQuery(q): AppQuery<JobListQuery>,
) -> AppResult<Json<JobPage>> {
    let wanted = q.state.as_deref().unwrap_or("dead");
    let job_state = JobState::parse(wanted).ok_or_else(|| {
        AppError::bad_request("invalid_state", format!("unknown job state `{wanted}`"))
    })?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(AppError::bad_request(
            "invalid_limit",
            "limit must be between 1 and 200",
        ));
    }
    let cursor = match q.cursor.as_deref() {
        Some(c) => Some(
            JobId::parse(c).map_err(|_| AppError::bad_request("invalid_cursor", "bad cursor"))?,
        ),
        None => None,
    };
    let jobs = state
        .queue
        .list(Some(job_state), limit, cursor.as_ref())
        .await?;
    let next_cursor = (jobs.len() as i64 == limit)
        .then(|| jobs.last().map(|j| j.id.to_string()))
        .flatten();
    Ok(Json(JobPage {
        jobs: jobs.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}

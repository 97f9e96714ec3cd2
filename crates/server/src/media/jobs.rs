//! The job API: poll one job, cancel it, and (admins) list jobs by state — the
//! dead-letter view — and queue a dead job again. A job is visible through the item it works for. Dead letters are
//! announced as `job.dead_lettered` events, written by the queue's dead-letter hook in the
//! transaction that kills the job.

use axum::extract::{Path, State};
use axum::Json;
use queue::{DeadJob, DeadLetterHook, JobId, JobRecord, JobState};
use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::identity::auth::ClientInfo;
use crate::identity::{Admin, AuditEvent, Caller, Writer};
use crate::kernel::error::{AppError, AppQuery, AppResult, ErrorBody};
use crate::kernel::outbox::Event;
use crate::kernel::paging::Page;
use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_jobs))
        .routes(routes!(get_job))
        .routes(routes!(cancel_job))
        .routes(routes!(retry_job))
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
        use crate::kernel::time::rfc3339;
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

#[utoipa::path(post, path = "/api/v1/jobs/{id}/cancel", tag = "jobs", security(("bearer" = [])),
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
        if state.media.kinds.is_processing_job(&job.kind) {
            let mut tx = state.db.begin_write().await?;
            super::process::fail_blob(&state, &mut tx, blob_id, "processing was cancelled").await?;
            tx.commit().await?;
        }
    }
    let job = state
        .queue
        .get(&id)
        .await?
        .ok_or_else(|| AppError::not_found("job"))?;
    Ok(Json(job.into()))
}

#[utoipa::path(post, path = "/api/v1/jobs/{id}/retry", tag = "jobs", security(("bearer" = [])),
    params(("id" = String, Path, description = "job id")),
    responses((status = 200, body = JobView, description = "queued again with a fresh set of attempts"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "the job is not dead, or a live job with its unique key exists")))]
pub async fn retry_job(
    State(state): State<AppState>,
    Admin(admin): Admin,
    client: ClientInfo,
    Path(id): Path<String>,
) -> AppResult<Json<JobView>> {
    let id = JobId::parse(&id).map_err(|_| AppError::not_found("job"))?;
    let job = state
        .queue
        .get(&id)
        .await?
        .ok_or_else(|| AppError::not_found("job"))?;
    let conflict =
        |message: String| AppError::new(axum::http::StatusCode::CONFLICT, "job_not_dead", message);
    match state.queue.retry_dead(&id).await {
        Ok(true) => {}
        Ok(false) => {
            return Err(conflict(format!(
                "the job is {}, not dead",
                job.state.as_str()
            )))
        }
        Err(queue::QueueError::UniqueKeyTaken(_)) => {
            return Err(conflict(
                "the same work is already queued by another job".into(),
            ))
        }
        Err(e) => return Err(e.into()),
    }
    // A file whose processing died shows as processing again until the job ends.
    if let Some(blob_id) = job.payload.get("blob_id").and_then(|v| v.as_str()) {
        if state.media.kinds.is_processing_job(&job.kind) {
            sqlx::query("UPDATE blobs SET status = 'processing', error = NULL WHERE id = $1 AND status = 'failed'")
                .bind(blob_id)
                .execute(&state.db.pool)
                .await?;
        }
    }
    AuditEvent::new("job_retried")
        .actor(&admin.user_id)
        .client(&client)
        .detail(serde_json::json!({ "job_id": id.as_str(), "kind": job.kind }))
        .record(&state.db)
        .await;
    let job = state
        .queue
        .get(&id)
        .await?
        .ok_or_else(|| AppError::not_found("job"))?;
    Ok(Json(job.into()))
}

#[utoipa::path(get, path = "/api/v1/jobs/{id}", tag = "jobs", security(("bearer" = [])),
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
#[into_params(parameter_in = Query)]
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

#[utoipa::path(get, path = "/api/v1/jobs", tag = "jobs", security(("bearer" = [])), params(JobListQuery),
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
    let limit = Page::parse(q.limit, None)?.limit;
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

/// Writes `job.dead_lettered` in the transaction that dead-letters a job. It concerns the
/// owner of the item the job worked for, when there is one (else admins only).
pub struct DeadLetterEvents;

#[async_trait::async_trait]
impl DeadLetterHook for DeadLetterEvents {
    async fn dead_lettered(
        &self,
        conn: &mut AnyConnection,
        job: &DeadJob<'_>,
    ) -> Result<(), sqlx::Error> {
        let owner = owner_of(conn, job).await?;
        let mut event = Event::new("job.dead_lettered", job.id.as_str()).data(serde_json::json!({
            "id": job.id.as_str(),
            "kind": job.kind,
            "state": "dead",
            "attempts": job.attempts,
            "last_error": job.error,
            "media_id": job.payload.get("media_id"),
            "blob_id": job.payload.get("blob_id"),
        }));
        if let Some(owner) = owner {
            event = event.user(owner);
        }
        event.emit(conn).await
    }
}

/// The owner of the item a job works for: the item whose upload started it, else the
/// item named in its payload.
async fn owner_of(
    conn: &mut AnyConnection,
    job: &DeadJob<'_>,
) -> Result<Option<String>, sqlx::Error> {
    let by_job: Option<String> =
        sqlx::query_scalar("SELECT owner_id FROM media WHERE job_id = $1 LIMIT 1")
            .bind(job.id.as_str())
            .fetch_optional(&mut *conn)
            .await?;
    if by_job.is_some() {
        return Ok(by_job);
    }
    let Some(media_id) = job.payload.get("media_id").and_then(|v| v.as_str()) else {
        return Ok(None);
    };
    sqlx::query_scalar("SELECT owner_id FROM media WHERE id = $1")
        .bind(media_id)
        .fetch_optional(&mut *conn)
        .await
}

//! Imports by URL (pict-rs' `/image/download?url=`): `POST /api/v1/media/import` checks
//! the URL and queues an `import_url` job, which fetches it through the kernel's SSRF
//! guard (only http/https, no loopback, private, link-local or metadata targets unless
//! allowed, each redirect checked again, bounded in time and size) into a temp file and
//! makes the item exactly as an upload would.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use futures::StreamExt;
use queue::{ClaimedJob, JobContext, JobError, JobHandler, NewJob};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::Row;
use tokio::io::AsyncWriteExt;
use utoipa::ToSchema;

use crate::identity::{Caller, Writer};
use crate::kernel::error::{AppError, AppJson, AppResult, ErrorBody};
use crate::kernel::ids::new_id;
use crate::kernel::net::{Guard, Refusal};
use crate::kernel::time::now_ms;
use crate::media::ingest::{self, Allowed, Received, UploadMeta};
use crate::media::Visibility;
use crate::AppState;

pub const IMPORT_URL: &str = "import_url";

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewImport {
    /// An http(s) URL of the file.
    pub url: String,
    pub title: Option<String>,
    pub description: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub visibility: Option<Visibility>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct Import {
    pub id: String,
    pub url: String,
    /// `queued`, `done` or `failed`.
    pub state: String,
    /// The item made, once done.
    pub media_id: Option<String>,
    /// Why it failed: the error an upload of the file would get, or the fetch's.
    #[schema(value_type = Option<Object>)]
    pub error: Option<serde_json::Value>,
    pub created_at: i64,
}

/// The item fields of an import, kept with it until the job runs.
#[derive(Serialize, Deserialize)]
struct ImportMeta {
    title: Option<String>,
    description: Option<String>,
    tags: Vec<String>,
    visibility: Option<Visibility>,
}

fn refused(refusal: Refusal) -> AppError {
    match refusal {
        Refusal::Forbidden { .. } => AppError::unprocessable("forbidden_target", refusal.message()),
        _ => AppError::bad_request("invalid_url", refusal.message()),
    }
}

/// The guard imports fetch through.
pub fn guard(state: &AppState) -> anyhow::Result<Guard> {
    Guard::new(
        &state.settings.resolver,
        state.settings.uploads.import_allow_private_targets,
    )
}

#[utoipa::path(post, path = "/api/v1/media/import", tag = "uploads", security(("bearer" = [])),
    request_body = NewImport,
    responses((status = 202, body = Import, description = "queued; poll `GET /api/v1/media/import/{id}`"),
        (status = 400, body = ErrorBody, description = "not an http(s) URL, or its host does not resolve"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "a loopback, private, link-local or metadata target"),
        (status = 429, body = ErrorBody)))]
pub async fn import_media(
    State(state): State<AppState>,
    Writer(caller): Writer,
    AppJson(body): AppJson<NewImport>,
) -> AppResult<(StatusCode, Json<Import>)> {
    crate::media::validate_meta(
        body.title.as_deref(),
        body.description.as_deref(),
        Some(&body.tags),
    )?;
    let rules = &state.settings.auth.rate_limits;
    crate::identity::rate_limit(
        &state,
        "upload_account",
        &caller.user_id,
        &rules.upload_per_account,
    )
    .await?;
    if body.url.len() > 4096 {
        return Err(AppError::bad_request(
            "invalid_url",
            "the URL is longer than 4096 bytes",
        ));
    }
    guard(&state)
        .map_err(AppError::internal)?
        .check(&body.url)
        .await
        .map_err(refused)?;
    let meta = ImportMeta {
        title: body.title,
        description: body.description,
        tags: body.tags,
        visibility: body.visibility,
    };
    let (id, now) = (new_id(), now_ms());
    let mut tx = state.db.begin_write().await?;
    let job = NewJob::new(IMPORT_URL, serde_json::json!({ "import_id": id }))
        .max_attempts(state.settings.worker.max_attempts);
    let job_id = state.queue.enqueue_in(&mut tx, job).await?;
    sqlx::query(
        "INSERT INTO imports (id, owner_id, url, metadata, state, job_id, created_at, updated_at)
         VALUES ($1, $2, $3, $4, 'queued', $5, $6, $6)",
    )
    .bind(&id)
    .bind(&caller.user_id)
    .bind(&body.url)
    .bind(serde_json::to_string(&meta).map_err(AppError::internal)?)
    .bind(job_id.to_string())
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    state.queue.notify();
    Ok((
        StatusCode::ACCEPTED,
        Json(Import {
            id,
            url: body.url,
            state: "queued".into(),
            media_id: None,
            error: None,
            created_at: now,
        }),
    ))
}

#[utoipa::path(get, path = "/api/v1/media/import/{id}", tag = "uploads", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = Import), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_import(
    State(state): State<AppState>,
    Writer(caller): Writer,
    Path(id): Path<String>,
) -> AppResult<Json<Import>> {
    let row = sqlx::query(
        "SELECT id, url, state, item_id, error, created_at FROM imports
         WHERE id = $1 AND owner_id = $2",
    )
    .bind(&id)
    .bind(&caller.user_id)
    .fetch_optional(&state.db.pool)
    .await?
    .ok_or_else(|| AppError::not_found("import"))?;
    let error: Option<String> = row.try_get("error")?;
    Ok(Json(Import {
        id: row.try_get("id")?,
        url: row.try_get("url")?,
        state: row.try_get("state")?,
        media_id: row.try_get("item_id")?,
        error: error.and_then(|e| serde_json::from_str(&e).ok()),
        created_at: row.try_get("created_at")?,
    }))
}

/// Runs an import: fetch, then the upload path.
pub struct ImportHandler {
    pub state: AppState,
}

#[derive(Deserialize)]
struct Payload {
    import_id: String,
}

/// Why a fetch failed: the error to record, and whether another attempt may succeed.
struct Failure {
    error: AppError,
    retry: bool,
}

#[async_trait::async_trait]
impl JobHandler for ImportHandler {
    async fn run(&self, job: &ClaimedJob, _ctx: &JobContext) -> Result<(), JobError> {
        let payload: Payload = serde_json::from_value(job.payload.clone())
            .map_err(|e| JobError::Permanent(format!("bad payload: {e}")))?;
        let state = &self.state;
        let retry = |e: sqlx::Error| JobError::Retryable(e.to_string());
        let row = sqlx::query("SELECT owner_id, url, metadata, state FROM imports WHERE id = $1")
            .bind(&payload.import_id)
            .fetch_optional(&state.db.pool)
            .await
            .map_err(retry)?;
        let Some(row) = row else {
            return Ok(());
        };
        if row.try_get::<String, _>("state").map_err(retry)? != "queued" {
            return Ok(());
        }
        let owner: String = row.try_get("owner_id").map_err(retry)?;
        let url: String = row.try_get("url").map_err(retry)?;
        let meta: ImportMeta =
            serde_json::from_str(&row.try_get::<String, _>("metadata").map_err(retry)?)
                .map_err(|e| JobError::Permanent(e.to_string()))?;
        let outcome = match fetch(state, &url).await {
            Ok(received) => {
                let caller = Caller::granted(&owner, &payload.import_id);
                let meta = UploadMeta {
                    title: meta.title,
                    description: meta.description,
                    tags: (!meta.tags.is_empty()).then(|| meta.tags.join(",")),
                    visibility: meta.visibility,
                    watermark: None,
                };
                ingest::accept(state, &caller, &meta, received, &Allowed::any(state))
                    .await
                    .map_err(|error| Failure {
                        retry: !matches!(error, AppError::Client { .. }),
                        error,
                    })
            }
            Err(failure) => Err(failure),
        };
        let last = job.attempts >= job.max_attempts;
        match outcome {
            Ok(item) => finish(state, &payload.import_id, "done", Some(&item), None).await,
            Err(Failure { error, retry: true }) if !last => {
                Err(JobError::Retryable(error_json(error).to_string()))
            }
            Err(Failure { error, .. }) => {
                let body = error_json(error);
                finish(state, &payload.import_id, "failed", None, Some(&body)).await?;
                Err(JobError::Permanent(body.to_string()))
            }
        }
        .map_err(|e: JobError| e)
    }
}

async fn finish(
    state: &AppState,
    id: &str,
    outcome: &str,
    item: Option<&str>,
    error: Option<&serde_json::Value>,
) -> Result<(), JobError> {
    sqlx::query(
        "UPDATE imports SET state = $1, item_id = $2, error = $3, updated_at = $4 WHERE id = $5",
    )
    .bind(outcome)
    .bind(item)
    .bind(error.map(|e| e.to_string()))
    .bind(now_ms())
    .bind(id)
    .execute(&state.db.pool)
    .await
    .map_err(|e| JobError::Retryable(e.to_string()))?;
    Ok(())
}

/// The `{"code","message"}` of an error, as its API answer would carry it.
fn error_json(error: AppError) -> serde_json::Value {
    let (code, message) = match error {
        AppError::Client { code, message, .. } => (code.to_string(), message),
        AppError::TooMany { code, message, .. } => (code.to_string(), message),
        AppError::Busy { .. } => ("overloaded".into(), "the server was busy".into()),
        AppError::Internal(e) => {
            tracing::warn!(error = ?e, "an import failed");
            ("internal".into(), "the import failed on the server".into())
        }
    };
    serde_json::json!({ "code": code, "message": message })
}

/// Fetches `url` into a temp file, following at most `import_max_redirects` redirects
/// (each target checked again), within `import_timeout_secs` and `max_upload_bytes`.
async fn fetch(state: &AppState, url: &str) -> Result<Received, Failure> {
    let settings = &state.settings.uploads;
    let timeout = Duration::from_secs(settings.import_timeout_secs.max(1));
    let permanent = |error: AppError| Failure {
        error,
        retry: false,
    };
    let transient = |why: String| Failure {
        error: AppError::new(StatusCode::BAD_GATEWAY, "import_fetch_failed", why),
        retry: true,
    };
    let guard = guard(state).map_err(|e| permanent(AppError::internal(e)))?;
    let client = guard
        .client(timeout)
        .map_err(|e| permanent(AppError::internal(e)))?;
    let limit = state.settings.limits.max_upload_bytes;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut target = guard.check(url).await.map_err(|r| permanent(refused(r)))?;
    let mut redirects = 0;
    let response = loop {
        // One deadline for the whole fetch, redirects included.
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let response = client
            .get(target.clone())
            .timeout(left.max(Duration::from_millis(1)))
            .send()
            .await
            .map_err(|e| transient(format!("fetching {target} failed: {e}")))?;
        if !response.status().is_redirection() {
            break response;
        }
        redirects += 1;
        if redirects > settings.import_max_redirects {
            return Err(permanent(AppError::unprocessable(
                "too_many_redirects",
                format!("more than {} redirects", settings.import_max_redirects),
            )));
        }
        let next = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|l| target.join(l).ok())
            .ok_or_else(|| {
                permanent(AppError::unprocessable(
                    "invalid_redirect",
                    "a redirect without a usable Location",
                ))
            })?;
        target = guard
            .check(next.as_str())
            .await
            .map_err(|r| permanent(refused(r)))?;
    };
    let status = response.status();
    if !status.is_success() {
        let error = AppError::unprocessable(
            "import_fetch_refused",
            format!("the server answered {status}"),
        );
        return Err(Failure {
            error,
            retry: status.is_server_error(),
        });
    }
    if response.content_length().is_some_and(|n| n > limit) {
        return Err(permanent(ingest::too_large(limit)));
    }
    let path = state
        .storage
        .tmp_dir()
        .join(format!("import-{}.part", uuid::Uuid::new_v4()));
    let written = async {
        let mut out = tokio::fs::File::create(&path)
            .await
            .map_err(|e| permanent(AppError::internal(e)))?;
        let (mut hasher, mut size) = (Sha256::new(), 0u64);
        let mut body = response.bytes_stream();
        loop {
            let next = tokio::time::timeout_at(deadline, body.next())
                .await
                .map_err(|_| transient("the fetch took too long".into()))?;
            let Some(chunk) = next else { break };
            let chunk = chunk.map_err(|e| transient(format!("reading the body failed: {e}")))?;
            size += chunk.len() as u64;
            if size > limit {
                return Err(permanent(ingest::too_large(limit)));
            }
            hasher.update(&chunk);
            out.write_all(&chunk)
                .await
                .map_err(|e| permanent(AppError::internal(e)))?;
        }
        out.flush()
            .await
            .map_err(|e| permanent(AppError::internal(e)))?;
        out.sync_all()
            .await
            .map_err(|e| permanent(AppError::internal(e)))?;
        Ok((hex::encode(hasher.finalize()), size))
    }
    .await;
    match written {
        Ok((sha256, size)) => Ok(Received {
            path,
            sha256,
            size,
            placed_blob: None,
        }),
        Err(failure) => {
            tokio::fs::remove_file(&path).await.ok();
            Err(failure)
        }
    }
}

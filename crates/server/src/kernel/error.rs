//! The HTTP edge's one error type: every failure a user can cause maps to a 4xx with a
//! stable snake_case code; anything else is a 500 whose detail goes only to the log.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{message}")]
    Client {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
    #[error("too many requests")]
    Busy { retry_after_secs: u64 },
    /// A 429 for this client (rate limit, lockout) rather than for the server's load.
    #[error("{message}")]
    TooMany {
        code: &'static str,
        message: String,
        retry_after_secs: u64,
    },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// `{"error": {"code": "…", "message": "…"}}`
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable snake_case code.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

impl AppError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        AppError::Client {
            status,
            code,
            message: message.into(),
        }
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    pub fn forbidden_code(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }
    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        AppError::Internal(err.into())
    }
}

pub fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    let body = ErrorBody {
        error: ErrorDetail {
            code: code.into(),
            message: message.into(),
        },
    };
    (status, Json(body)).into_response()
}

fn too_many(code: &str, message: &str, retry_after_secs: u64) -> Response {
    let mut resp = error_response(StatusCode::TOO_MANY_REQUESTS, code, message);
    if let Ok(v) = HeaderValue::from_str(&retry_after_secs.max(1).to_string()) {
        resp.headers_mut()
            .insert(axum::http::header::RETRY_AFTER, v);
    }
    resp
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        match self {
            AppError::Client {
                status,
                code,
                message,
            } => error_response(status, code, &message),
            // 429, not 503: the server is healthy, this request just has to wait.
            AppError::Busy { retry_after_secs } => too_many(
                "overloaded",
                "the server is busy; retry shortly",
                retry_after_secs,
            ),
            AppError::TooMany {
                code,
                message,
                retry_after_secs,
            } => too_many(code, &message, retry_after_secs),
            AppError::Internal(err) => {
                tracing::error!(error = ?err, "internal error");
                error_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal server error",
                )
            }
        }
    }
}

impl From<sqlx::Error> for AppError {
    fn from(err: sqlx::Error) -> Self {
        AppError::Internal(err.into())
    }
}

impl From<object_store::Error> for AppError {
    fn from(err: object_store::Error) -> Self {
        AppError::Internal(err.into())
    }
}

impl From<queue::QueueError> for AppError {
    fn from(err: queue::QueueError) -> Self {
        AppError::Internal(err.into())
    }
}

/// Maps a unique-constraint violation to a 409 with `code`; other errors stay internal.
pub fn unique_violation_to(err: sqlx::Error, code: &'static str, message: &str) -> AppError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => AppError::conflict(code, message),
        _ => AppError::from(err),
    }
}

pub type AppResult<T> = Result<T, AppError>;

/// `axum::Json` whose rejections (bad syntax, wrong content type, bad fields) answer
/// with our JSON error body instead of plain text.
#[derive(axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(AppError))]
pub struct AppJson<T>(pub T);

/// `axum::extract::Query` with JSON error bodies.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(AppError))]
pub struct AppQuery<T>(pub T);

impl From<axum::extract::rejection::JsonRejection> for AppError {
    fn from(r: axum::extract::rejection::JsonRejection) -> Self {
        let status = r.status();
        let code = if status == StatusCode::UNSUPPORTED_MEDIA_TYPE {
            "unsupported_media_type"
        } else {
            "invalid_json"
        };
        AppError::Client {
            status,
            code,
            message: r.body_text(),
        }
    }
}

impl From<axum::extract::rejection::QueryRejection> for AppError {
    fn from(r: axum::extract::rejection::QueryRejection) -> Self {
        AppError::bad_request("invalid_query", r.body_text())
    }
}

/// For `#[serde(default, deserialize_with = "…")]` on an `Option<Option<T>>` field of a
/// JSON patch: tells a field left out (`None`, by `default`) from one sent as `null`
/// (`Some(None)`, "clear it").
pub fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    <Option<T> as serde::Deserialize>::deserialize(d).map(Some)
}

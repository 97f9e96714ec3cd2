//! On-the-fly transforms: `GET /img/{id}/{ops}.{ext}` and the minting of expiring
//! signed URLs for them.

mod eager;
mod engine;
pub mod settings;
pub mod signing;

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::response::Response;
use axum::Json;
use imaging::transform::{TransformFormat, TransformSpec};
use imaging::ImageFormat;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use engine::{Source, TransformEngine, Watermark};

use crate::domain::{Domain, Job};
use crate::identity::{Viewer, Writer};
use crate::kernel::error::{AppError, AppJson, AppResult, ErrorBody};
use crate::kernel::outbox::relay::Subscriber;
use crate::media::repo::ItemRow;
use crate::media::{can_read, delivery};
use crate::settings::Settings;
use crate::AppState;
use queue::{ClaimedJob, JobContext, JobError, JobHandler, NewJob, Periodic, PRIORITY_BATCH};
use std::sync::Arc;
use std::time::Duration;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The transform domain's registration.
pub struct Transform;

const TRANSFORM_GC: &str = "transform_gc";

impl Domain for Transform {
    fn name(&self) -> &'static str {
        "transform"
    }

    fn figures<'a>(
        &self,
        state: &'a AppState,
    ) -> futures::future::BoxFuture<'a, crate::kernel::error::AppResult<Vec<crate::domain::Figure>>>
    {
        use crate::domain::{scalar, Figure};
        Box::pin(async move {
            let d = "transform";
            Ok(vec![
                Figure::count(
                    d,
                    "cached",
                    "Cached transforms",
                    scalar(state, "SELECT COUNT(*) FROM transform_results", &[]).await?,
                ),
                Figure::bytes(
                    d,
                    "bytes.cached",
                    "Transform cache",
                    scalar(
                        state,
                        "SELECT CAST(SUM(size) AS BIGINT) FROM transform_results",
                        &[],
                    )
                    .await?,
                ),
            ])
        })
    }

    fn routes(&self) -> OpenApiRouter<AppState> {
        OpenApiRouter::new().routes(routes!(create_signed_url))
    }

    fn delivery(&self) -> OpenApiRouter<AppState> {
        OpenApiRouter::new().routes(routes!(get_transform))
    }

    fn jobs(&self, state: &AppState) -> Vec<Job> {
        vec![
            (
                TRANSFORM_GC,
                Arc::new(TransformGcHandler {
                    engine: state.transform.clone(),
                }),
            ),
            (
                eager::EAGER_PRESETS,
                Arc::new(eager::EagerPresetsHandler {
                    db: state.db.clone(),
                    engine: state.transform.clone(),
                }),
            ),
        ]
    }

    fn periodic(&self, settings: &Settings) -> Vec<Periodic> {
        let every = Duration::from_secs(settings.gc.sweep_interval_secs.max(1));
        let job = NewJob::new(TRANSFORM_GC, serde_json::json!({})).priority(PRIORITY_BATCH);
        vec![Periodic::new(TRANSFORM_GC, every, job)]
    }

    fn subscribers(&self, state: &AppState) -> Vec<Arc<dyn Subscriber>> {
        let any_eager =
            (state.transform.presets.values()).any(|p| !p.entry.eager_formats().is_empty());
        if !any_eager {
            return Vec::new();
        }
        vec![Arc::new(eager::QueueEagerPresets {
            queue: state.queue.clone(),
        })]
    }
}

/// Removes stored transform results not requested for `transform.unused_days`.
struct TransformGcHandler {
    engine: Arc<TransformEngine>,
}

#[async_trait::async_trait]
impl JobHandler for TransformGcHandler {
    async fn run(&self, _job: &ClaimedJob, _ctx: &JobContext) -> Result<(), JobError> {
        let removed = self
            .engine
            .remove_unused()
            .await
            .map_err(JobError::retryable)?;
        if removed > 0 {
            tracing::info!(removed, "removed unused transform results");
        }
        Ok(())
    }
}

/// A parsed transform request: options expanded and canonical, output format chosen.
struct Request {
    spec: TransformSpec,
    canonical: String,
    format: TransformFormat,
    /// The extension as written (`auto` stays `auto` for the signature).
    ext: String,
    negotiated: bool,
    /// The URL is exactly `p_NAME` of a preset marked public (exempt from signing).
    public_preset: bool,
}

fn parse_request(state: &AppState, file: &str, headers: &HeaderMap) -> AppResult<Request> {
    let engine = &state.transform;
    let (ops, ext) = file.rsplit_once('.').ok_or_else(|| {
        AppError::bad_request("invalid_transform", "expected /img/{id}/{options}.{format}")
    })?;
    let spec = TransformSpec::parse(ops)
        .map_err(|e| AppError::bad_request("invalid_transform", e.to_string()))?;
    let public_preset = spec.preset.as_ref().is_some_and(|name| {
        ops == format!("p_{name}") && engine.presets.get(name).is_some_and(|p| p.entry.public())
    });
    let spec = engine.expand(spec)?;
    let (format, negotiated) = if ext == "auto" {
        (negotiate(headers), true)
    } else {
        let format = TransformFormat::from_extension(ext).ok_or_else(|| {
            AppError::bad_request(
                "invalid_format",
                format!("unknown format `{ext}` (jpg, png, webp, avif, gif or auto)"),
            )
        })?;
        (format, false)
    };
    Ok(Request {
        canonical: spec.canonical(),
        spec,
        format,
        ext: ext.to_string(),
        negotiated,
        public_preset,
    })
}

/// `auto`: the best format the client says it accepts.
fn negotiate(headers: &HeaderMap) -> TransformFormat {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if accept.contains("image/avif") {
        TransformFormat::Avif
    } else if accept.contains("image/webp") {
        TransformFormat::Webp
    } else {
        TransformFormat::Jpeg
    }
}

/// Checks the signature rules; returns whether the URL is a valid expiring capability.
fn check_signature(
    state: &AppState,
    id: &str,
    req: &Request,
    query: Option<&str>,
) -> AppResult<bool> {
    let signer = &state.keyring;
    let sig = signing::parse_query(query)?;
    let valid = match &sig.sig {
        Some(s) => signer.verify(&signing::message(id, &req.canonical, &req.ext, sig.exp), s),
        None => false,
    };
    if sig.sig.is_some() && !valid {
        return Err(signing::invalid_signature());
    }
    if let Some(exp) = sig.exp {
        if !valid {
            return Err(signing::invalid_signature());
        }
        if exp < crate::kernel::time::now_ms() / 1000 {
            return Err(AppError::forbidden_code(
                "signature_expired",
                "this signed URL has expired",
            ));
        }
    }
    if signer.configured && !valid && !req.public_preset {
        return Err(AppError::forbidden_code(
            "signature_required",
            "transform URLs on this server must be signed (`?s=`)",
        ));
    }
    Ok(valid && sig.exp.is_some())
}

#[utoipa::path(get, path = "/img/{id}/{file}", tag = "transforms", security((), ("bearer" = [])),
    params(("id" = String, Path, description = "media item id"),
        ("file" = String, Path, description = "`{options}.{jpg|png|webp|avif|gif|auto}`, options like `w_300,h_200,fit_cover,g_smart` or `p_NAME`"),
        ("exp" = Option<i64>, Query, description = "expiry (Unix seconds) of a minted URL; comes before `s`"),
        ("s" = Option<String>, Query, description = "HMAC-SHA256 signature; the last parameter")),
    responses((status = 200, description = "the transformed image"), (status = 304, description = "not modified"),
        (status = 400, body = ErrorBody, description = "an invalid option, named in the message"),
        (status = 403, body = ErrorBody, description = "signature missing, wrong or expired"),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody, description = "the image cannot be transformed"),
        (status = 429, body = ErrorBody, description = "too many transforms waiting; see Retry-After")))]
pub async fn get_transform(
    State(state): State<AppState>,
    viewer: Viewer,
    method: Method,
    headers: HeaderMap,
    Path((id, file)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> AppResult<Response> {
    let req = parse_request(&state, &file, &headers)?;
    let capability = check_signature(&state, &id, &req, query.as_deref())?;
    let item = match state.media.cache.item(&state.db, &id).await? {
        Some(item) if capability || can_read(&state, &item, &viewer).await? => item,
        _ => return Err(AppError::not_found("media item")),
    };
    let source = source_of(&item)?;
    let watermark = match &req.spec.watermark {
        Some(wm) => Some(
            state
                .transform
                .watermark(&wm.name, async |mid| {
                    readable_source(&state, &viewer, mid).await
                })
                .await?,
        ),
        None => None,
    };
    let (key, etag) =
        TransformEngine::result_key(&source, &req.canonical, req.format, watermark.as_ref());
    let rendered = state
        .transform
        .render(&source, &req.spec, req.format, watermark.as_ref(), &key)
        .await;
    let watermark_public = watermark.as_ref().is_none_or(|w| w.public);
    drop(watermark);
    let bytes = rendered?;
    let cache = if item.visibility == "public" && !capability && watermark_public {
        "public, max-age=31536000, immutable"
    } else {
        "private, no-store"
    };
    let target = delivery::Target {
        key,
        size: bytes.len() as u64,
        etag,
        mime: req.format.mime(),
        bytes: Some(bytes),
    };
    let mut response = delivery::respond(&state, &method, &headers, target, cache).await?;
    if req.negotiated {
        response
            .headers_mut()
            .insert(header::VARY, HeaderValue::from_static("Accept"));
    }
    Ok(response)
}

pub(crate) fn source_of(item: &ItemRow) -> AppResult<Source> {
    let poster_only = item.kind != "image";
    let format = if poster_only {
        ImageFormat::Jpeg
    } else {
        ImageFormat::parse(&item.format).ok_or_else(|| {
            AppError::internal(anyhow::anyhow!("stored format {} unknown", item.format))
        })?
    };
    Ok(Source {
        blob_id: item.blob_id.clone(),
        format,
        frames: if poster_only { 1 } else { item.frames },
        width: item.width.try_into().unwrap_or(0),
        height: item.height.try_into().unwrap_or(0),
        poster_only,
    })
}

/// A media item used as a watermark must be readable by the caller.
async fn readable_source(
    state: &AppState,
    viewer: &Viewer,
    media_id: &str,
) -> AppResult<Option<(Source, bool)>> {
    match state.media.cache.item(&state.db, media_id).await? {
        Some(item) if can_read(state, &item, viewer).await? => {
            Ok(Some((source_of(&item)?, item.visibility == "public")))
        }
        _ => Ok(None),
    }
}

#[derive(Deserialize, ToSchema)]
pub struct SignedUrlRequest {
    /// Transform options, e.g. `w_640,q_70` or `p_avatar`.
    pub ops: String,
    /// jpg, png, webp, avif, gif or auto. Default auto.
    pub format: Option<String>,
    /// Lifetime in seconds, at most `transform.max_url_ttl_secs`. Default 3600.
    pub ttl_secs: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub struct SignedUrl {
    /// Path and query to fetch, valid until `expires_at` for anyone holding it.
    pub url: String,
    pub expires_at: String,
}

#[utoipa::path(post, path = "/api/v1/media/{id}/signed-url", tag = "transforms", security(("bearer" = [])), request_body = SignedUrlRequest,
    params(("id" = String, Path, description = "media item id")),
    responses((status = 200, body = SignedUrl), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn create_signed_url(
    State(state): State<AppState>,
    Writer(caller): Writer,
    Path(id): Path<String>,
    AppJson(body): AppJson<SignedUrlRequest>,
) -> AppResult<Json<SignedUrl>> {
    // A signed URL hands out access to the item: changing who may see it is a write.
    crate::media::writable_item(&state, &id, &Viewer(Some(caller))).await?;
    let ext = body.format.unwrap_or_else(|| "auto".into());
    let req = parse_request(&state, &format!("{}.{ext}", body.ops), &HeaderMap::new())?;
    let ttl = body.ttl_secs.unwrap_or(3600);
    if ttl == 0 || ttl > state.transform.max_url_ttl_secs {
        return Err(AppError::unprocessable(
            "invalid_ttl",
            format!(
                "ttl_secs must be between 1 and {}",
                state.transform.max_url_ttl_secs
            ),
        ));
    }
    let exp = crate::kernel::time::now_ms() / 1000 + ttl as i64;
    let signature = state
        .keyring
        .sign(&signing::message(&id, &req.canonical, &ext, Some(exp)));
    Ok(Json(SignedUrl {
        url: format!("/img/{id}/{}.{ext}?exp={exp}&s={signature}", body.ops),
        expires_at: crate::kernel::time::rfc3339(exp * 1000),
    }))
}

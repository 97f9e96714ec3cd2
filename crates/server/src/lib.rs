//! The Framehouse application: state, HTTP edge and the wiring of the api, worker and
//! scheduler roles. `Application::build` binds the listener (tests pass port 0) and
//! `run_until_stopped` serves until the shutdown token is cancelled.

pub mod db;
pub mod error;
pub mod identity;
mod jobs;
pub mod media;
pub mod ops;
mod playback;
pub mod settings;
pub mod storage;
pub mod transform;
pub mod video;
mod workers;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::http::{HeaderName, Request};
use axum::serve::ListenerExt;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::db::Db;
use crate::identity::JwtKeys;
use crate::settings::{Role, Settings};
use crate::storage::Storage;

/// Everything a request handler or job needs; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub db: Db,
    pub storage: Storage,
    pub queue: queue::Queue,
    pub auth: Arc<identity::Authenticator>,
    pub limiter: identity::ratelimit::Limiter,
    pub notifier: identity::Notifier,
    pub oidc: Arc<identity::OidcProviders>,
    pub presets: Arc<Vec<imaging::PresetSpec>>,
    pub delivery_cache: media::DeliveryCache,
    pub transforms: Arc<transform::TransformEngine>,
    pub similar: Arc<media::SimilarIndex>,
    pub video: Arc<video::VideoEngine>,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
}

impl AppState {
    /// Connects to the database (migrating it) and the object store.
    pub async fn connect(settings: Settings) -> anyhow::Result<AppState> {
        std::fs::create_dir_all(&settings.data_dir)
            .with_context(|| format!("creating data dir {}", settings.data_dir.display()))?;
        imaging::init(settings.worker.concurrency.max(1)).context("starting the image engine")?;
        let db = Db::connect(&settings.database_url(), settings.database.max_connections).await?;
        db.migrate().await?;
        let storage = Storage::from_settings(&settings)?;
        let jwt_key = secret(&settings, "jwt.key", settings.auth.jwt_secret.expose())?;
        let previous: Vec<Vec<u8>> = (settings.auth.jwt_previous_secrets.iter())
            .map(|s| s.expose().as_bytes().to_vec())
            .collect();
        anyhow::ensure!(
            jwt_key.len() >= 32 && previous.iter().all(|k| k.len() >= 32),
            "auth.jwt_secret and auth.jwt_previous_secrets must be at least 32 bytes each"
        );
        let jwt = JwtKeys::new(&jwt_key, &previous, settings.auth.access_token_ttl_secs);
        let auth =
            identity::Authenticator::new(jwt, db.clone(), settings.auth.revocation_check_secs);
        let url_key = secret(&settings, "url.key", "")?;
        let transforms =
            transform::TransformEngine::new(&settings, db.clone(), storage.clone(), url_key)?;
        let queue = queue::Queue::new(db.pool.clone(), db.backend);
        Ok(AppState {
            auth: Arc::new(auth),
            limiter: identity::ratelimit::Limiter::in_memory(),
            notifier: identity::notify_from_settings(&settings)?,
            oidc: Arc::new(identity::OidcProviders::new(&settings)?),
            presets: Arc::new(presets()),
            delivery_cache: media::DeliveryCache::new(settings.delivery.cache_bytes),
            transforms: Arc::new(transforms),
            similar: Arc::default(),
            video: Arc::new(video::VideoEngine::new(&settings, storage.tmp_dir())),
            metrics: ops::prometheus(),
            settings: Arc::new(settings),
            db,
            storage,
            queue,
        })
    }
}

/// The fixed presets every upload gets, plus the proxies transforms start from.
fn presets() -> Vec<imaging::PresetSpec> {
    let mut presets = imaging::default_presets();
    presets.extend(imaging::proxy_presets());
    presets
}

/// The configured key, or one generated on first start and kept in the data dir.
fn secret(settings: &Settings, file: &str, configured: &str) -> anyhow::Result<Vec<u8>> {
    if !configured.is_empty() {
        return Ok(configured.as_bytes().to_vec());
    }
    let dir = settings.data_dir.join("secrets");
    let path = dir.join(file);
    if let Ok(existing) = std::fs::read(&path) {
        if existing.len() >= 32 {
            return Ok(existing);
        }
    }
    std::fs::create_dir_all(&dir)?;
    let key: [u8; 32] = rand::random();
    let hex_key = hex::encode(key).into_bytes();
    write_private(&path, &hex_key)?;
    Ok(hex_key)
}

fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(bytes)
}

/// The whole HTTP surface: the API routes when the `api` role runs, operations always.
pub fn router(state: AppState) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    let mut app = Router::new().merge(ops::router());
    if state.settings.roles.contains(&Role::Api) {
        app = app
            .merge(identity::router())
            .merge(media::router())
            .merge(transform::router())
            .merge(jobs::router())
            .merge(video::router())
            .merge(playback::router());
    }
    app.layer(axum::middleware::from_fn(ops::track_requests))
        .layer(CatchPanicLayer::new())
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
            let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
            tracing::info_span!("request", method = %req.method(), uri = %req.uri().path(), request_id = %id)
        }))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}

pub struct Application {
    listener: TcpListener,
    state: AppState,
}

impl Application {
    pub async fn build(mut settings: Settings) -> anyhow::Result<Application> {
        let listener = TcpListener::bind(&settings.listen)
            .await
            .with_context(|| format!("binding {}", settings.listen))?;
        if settings.public_url.as_deref().is_none_or(str::is_empty) {
            // The bound address, so a port chosen by the OS (`:0`) is the real one.
            settings.public_url = Some(format!("http://{}", listener.local_addr()?));
        }
        let state = AppState::connect(settings).await?;
        Ok(Application { listener, state })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` is cancelled: stops accepting, lets in-flight requests
    /// finish, and gives running jobs `shutdown_grace` before releasing their leases.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let state = self.state;
        let roles = state.settings.roles.clone();
        let grace = Duration::from_secs(state.settings.shutdown_grace_secs);
        let workers = roles
            .contains(&Role::Worker)
            .then(|| workers::start(&state, shutdown.clone()));
        let scheduler = roles
            .contains(&Role::Scheduler)
            .then(|| workers::start_scheduler(&state, shutdown.clone()));
        tracing::info!(addr = %self.listener.local_addr()?, ?roles, "serving");
        let app = router(state);
        let token = shutdown.clone();
        // Without TCP_NODELAY a keep-alive response written as headers + body waits on
        // the peer's delayed ACK (~40 ms per request).
        let listener = self.listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "could not set TCP_NODELAY");
            }
        });
        let server = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { token.cancelled().await });
        // In-flight requests get the same grace as jobs; a client trickling a body
        // must not keep the process alive past it.
        let deadline = async {
            shutdown.cancelled().await;
            tokio::time::sleep(grace).await;
        };
        tokio::select! {
            served = server => served.context("HTTP server")?,
            () = deadline => tracing::warn!("requests still open after the grace period were cut"),
        }
        if let Some(handle) = workers {
            // The pool aborts and releases jobs itself after the grace; this is a backstop.
            let _ = tokio::time::timeout(grace + Duration::from_secs(5), handle).await;
        }
        if let Some(handle) = scheduler {
            let _ = handle.await;
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// Cancels `token` on SIGTERM or SIGINT.
pub fn cancel_on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("installing the SIGTERM handler");
            tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutdown signal received");
        token.cancel();
    });
}

//! The Framehouse application: state, HTTP edge and the wiring of the api, worker and
//! scheduler roles. `Application::build` binds the listener (tests pass port 0) and
//! `run_until_stopped` serves until the shutdown token is cancelled.
//!
//! Domains depend in one direction — kernel ← identity ← media ← {video, transform,
//! playback, uploads} ← {events, webhooks} ← social ← ui — and register themselves in
//! [`DOMAINS`].

pub mod domain;
pub mod events;
pub mod identity;
pub mod kernel;
pub mod media;
pub mod ops;
pub mod playback;
pub mod settings;
pub mod social;
pub mod transform;
pub mod ui;
pub mod uploads;
pub mod video;
pub mod webhooks;
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
use utoipa_axum::router::OpenApiRouter;

use crate::domain::Domain;
use crate::kernel::db::Db;
use crate::kernel::keyring::Keyring;
use crate::kernel::nodes::Registry;
use crate::kernel::outbox::Outbox;
use crate::kernel::storage::Storage;
use crate::settings::{Role, Settings};

/// Every domain, lowest first. Adding a domain means adding its line here.
pub static DOMAINS: &[&dyn Domain] = &[
    &identity::Identity,
    &media::Media,
    &transform::Transform,
    &video::Video,
    &playback::Playback,
    &uploads::Uploads,
    &events::Events,
    &webhooks::Webhooks,
    &social::Social,
    &ui::Ui,
];

/// Everything a request handler or job needs; cheap to clone. The kernel's parts come
/// first, then one part per domain that keeps state.
#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub db: Db,
    pub storage: Storage,
    pub queue: queue::Queue,
    pub outbox: Outbox,
    /// This process in the service registry; its id also names its job leases.
    pub node: Registry,
    /// The shared Redis when `cache.redis_url` is set (else every call answers "not
    /// available" and callers keep to this node).
    pub redis: kernel::cache::Redis,
    /// Signs transform URLs and playback tokens.
    pub keyring: Arc<Keyring>,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    pub identity: identity::IdentityState,
    pub media: media::MediaState,
    pub transform: Arc<transform::TransformEngine>,
    pub video: Arc<video::VideoEngine>,
    pub webhooks: webhooks::WebhookState,
    pub uploads: uploads::UploadState,
}

impl AppState {
    /// Connects to the database (migrating it) and the object store, then builds each
    /// domain's state in order.
    pub async fn connect(settings: Settings) -> anyhow::Result<AppState> {
        std::fs::create_dir_all(&settings.data_dir)
            .with_context(|| format!("creating data dir {}", settings.data_dir.display()))?;
        imaging::init(settings.worker.concurrency.max(1)).context("starting the image engine")?;
        let mut db =
            Db::connect(&settings.database_url(), settings.database.max_connections).await?;
        if let Some(read) = settings
            .database
            .read_url
            .as_ref()
            .filter(|u| !u.expose().is_empty())
        {
            db = db
                .with_read_replica(read.expose(), settings.database.max_connections)
                .await?;
        }
        db.migrate().await?;
        kernel::outbox::rebase_after_restore(&db).await?;
        let storage = Storage::open(&settings.data_dir, &settings.storage)?;
        let redis = kernel::cache::Redis::connect(&settings.cache).await?;
        let queue = queue::Queue::new(db.pool.clone(), db.backend)
            .on_dead_letter(Arc::new(media::jobs::DeadLetterEvents));
        let url_keys = (settings.transform.signing_keys.iter())
            .map(|k| k.expose().as_bytes().to_vec())
            .collect();
        let keyring = Keyring::new(url_keys, secret(&settings, "url.key", "")?);
        let identity = identity::IdentityState::new(
            &settings,
            &db,
            &redis,
            secret(&settings, "jwt.key", settings.auth.jwt_secret.expose())?,
        )?;
        let kinds = DOMAINS.iter().flat_map(|d| d.media_kinds()).collect();
        let relations = DOMAINS.iter().find_map(|d| d.relations());
        let media = media::MediaState::new(&settings, &redis, kinds, relations);
        let transform =
            transform::TransformEngine::new(&settings, db.clone(), storage.clone(), redis.clone())?;
        let video = video::VideoEngine::new(&settings, storage.tmp_dir());
        let webhooks = webhooks::WebhookState::new(&settings)?;
        let roles = settings
            .roles
            .iter()
            .map(|r| r.as_str().to_owned())
            .collect();
        let address = (settings.cluster.advertise_url.clone())
            .or_else(|| settings.public_url.clone())
            .unwrap_or_else(|| format!("http://{}", settings.listen));
        let node = Registry::new(
            db.clone(),
            settings.cluster.node_id(),
            roles,
            address,
            &settings.cluster,
        );
        Ok(AppState {
            node,
            redis,
            keyring: Arc::new(keyring),
            outbox: Outbox::new(
                DOMAINS
                    .iter()
                    .flat_map(|d| d.event_types())
                    .copied()
                    .collect(),
            )
            .with_scopes(
                (DOMAINS.iter())
                    .filter_map(|d| Some((d.event_types(), d.event_scope()?)))
                    .flat_map(|(types, scope)| types.iter().map(move |t| (*t, scope)))
                    .collect(),
            ),
            metrics: ops::prometheus(),
            identity,
            media,
            transform: Arc::new(transform),
            video: Arc::new(video),
            webhooks,
            uploads: uploads::UploadState::default(),
            settings: Arc::new(settings),
            db,
            storage,
            queue,
        })
    }
}

/// The configured key, or one generated on first start and kept in the data dir.
pub(crate) fn secret(settings: &Settings, file: &str, configured: &str) -> anyhow::Result<Vec<u8>> {
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

/// The routes of every domain (the api role) and of operations, with the OpenAPI
/// document they make together. The API answers the origins of `http.cors_origins`;
/// delivery answers every origin (`kernel::cors`).
pub fn routes(settings: &Settings) -> OpenApiRouter<AppState> {
    let mut app = ops::routes();
    if settings.roles.contains(&Role::Api) {
        let mut api = ops::api_routes();
        let mut delivery = OpenApiRouter::new();
        for domain in DOMAINS {
            api = api.merge(domain.routes());
            delivery = delivery.merge(domain.delivery());
        }
        if let Some(cors) = kernel::cors::api(&settings.http) {
            api = api.layer(cors);
        }
        app = app
            .merge(api)
            .merge(delivery.layer(kernel::cors::delivery()));
    }
    app
}

/// The API's HTTP surface: its routes when the `api` role runs, operations always, and
/// the OpenAPI document they make.
pub fn api_router(state: &AppState) -> Router<AppState> {
    let (app, openapi) = routes(&state.settings).split_for_parts();
    app.merge(ops::openapi_router(ops::document(openapi)))
}

/// The whole HTTP surface: the API and, when the `api` role runs, every domain's pages.
pub fn router(state: AppState) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    let mut app = api_router(&state);
    if state.settings.roles.contains(&Role::Api) {
        for domain in DOMAINS {
            app = app.merge(domain.pages(&state));
        }
    }
    app.layer(axum::middleware::from_fn(ops::track_requests))
        .layer(CatchPanicLayer::new())
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
            let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
            tracing::info_span!("request", method = %req.method(), uri = %loggable_path(req.uri().path()), request_id = %id)
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
        kernel::cors::check(&settings.http).map_err(anyhow::Error::msg)?;
        settings.ui.check().map_err(anyhow::Error::msg)?;
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
        match tokio::time::timeout(Duration::from_secs(10), state.node.register()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "registering this node failed; retrying at the next heartbeat")
            }
            Err(_) => {
                tracing::warn!("registering this node timed out; retrying at the next heartbeat")
            }
        }
        let drained = CancellationToken::new();
        let registry = tokio::spawn(state.node.clone().run(shutdown.clone(), drained.clone()));
        let background = workers::start(&state, &roles, shutdown.clone());
        tracing::info!(addr = %self.listener.local_addr()?, ?roles, "serving");
        let state_node = state.node.clone();
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
        // The pools abort and release their work themselves after the grace; this is a
        // backstop.
        let _ = tokio::time::timeout(grace + Duration::from_secs(5), background.wait()).await;
        drained.cancel();
        let _ = registry.await;
        if let Err(e) = state_node.set_state("stopped").await {
            tracing::warn!(error = %e, "marking this node stopped failed");
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

/// A request path as logs may show it: the secret of a direct-upload URL (which lets
/// anyone upload as its owner) is replaced.
fn loggable_path(path: &str) -> std::borrow::Cow<'_, str> {
    match path.strip_prefix("/api/v1/direct-uploads/") {
        Some(rest) => {
            let tail = rest.split_once('/').map_or("", |(_, t)| t);
            let sep = if tail.is_empty() { "" } else { "/" };
            format!("/api/v1/direct-uploads/{{token}}{sep}{tail}").into()
        }
        None => path.into(),
    }
}

//! API integration tests: the real router and workers over real SQLite and PostgreSQL.

mod access;
mod albums;
mod amqp;
mod clients;
mod cluster;
mod comments;
mod delivery;
mod events;
mod fixtures;
mod helpers;
mod identity;
mod inbox;
mod ingest;
mod nginx;
// Its reloads are used by the cluster test (crates/framehouse/tests/cluster.rs).
#[allow(dead_code)]
mod nginx_server;
mod notifications;
mod oidc;
mod ops;
mod outbox;
mod playback;
mod receiver;
mod redis;
mod share_links;
mod social;
mod storage;
mod transform;
mod ui;
mod uploads;
mod video;
mod video_fixtures;
mod webhooks;

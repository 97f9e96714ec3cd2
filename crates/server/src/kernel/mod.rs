//! The kernel: what every domain may use and nothing in it knows a domain — the database
//! and its dialect helpers, the object store, the shared Redis (when configured), errors
//! at the HTTP edge, ids, the object-key layout, the URL-signing keyring, paging, time,
//! secrets, the transactional event outbox, guarded outbound HTTP and cross-origin rules.

pub mod cache;
pub mod cors;
pub mod db;
pub mod error;
pub mod ids;
pub mod keyring;
pub mod keys;
pub mod net;
pub mod netrange;
pub mod nodes;
pub mod outbox;
pub mod paging;
pub mod secret;
pub mod storage;
pub mod time;

//! The media-kind registry: what a kind of media (images here; video and audio in the
//! `video` domain) contributes to uploads, processing, delivery and the item JSON. Media
//! defines the trait and asks the registry; higher domains implement it and register
//! their kinds through the domain list, so media never imports them.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use queue::NewJob;
use sqlx::AnyConnection;

use super::delivery::Target;
use super::ingest::UploadMeta;
use super::repo::ItemRow;
use super::Playback;
use crate::identity::Caller;
use crate::kernel::error::AppResult;
use crate::AppState;

/// A spooled upload being validated.
pub struct Upload<'a> {
    /// The fsynced temp file holding the bytes.
    pub path: &'a Path,
    /// The first bytes, for sniffing.
    pub head: &'a [u8],
    pub sha256: &'a str,
    pub size: u64,
    pub meta: &'a UploadMeta,
    pub caller: &'a Caller,
}

/// What an accepted upload is: the blob columns it fills in.
pub struct Described {
    /// `image`, `video` or `audio`.
    pub kind: &'static str,
    /// Detected from the bytes (`jpeg`, `mp4`, …).
    pub format: &'static str,
    /// As shown on screen (a portrait phone clip is portrait).
    pub width: i64,
    pub height: i64,
    pub frames: i64,
    pub duration_ms: Option<i64>,
    /// What a probe found, as JSON.
    pub media_info: Option<String>,
    /// Something burned into every derivative, such as a watermark.
    pub burn_in: Option<BurnIn>,
}

/// A burned-in addition makes derivatives differ from those of the same bytes without
/// it, so such an upload gets a blob of its own, keyed by content + addition.
pub struct BurnIn {
    /// Stored on the blob for the processing job.
    pub json: String,
    /// Replaces the content hash as the blob's dedup key.
    pub dedup_key: String,
}

/// One kind of media.
#[async_trait::async_trait]
pub trait MediaKind: Send + Sync {
    /// The item kinds (`blobs.kind`) this entry serves.
    fn kinds(&self) -> &'static [&'static str];
    /// Whether the first bytes are one of its formats (and the kind is enabled).
    fn sniff(&self, state: &AppState, head: &[u8]) -> bool;
    /// The formats it accepts, for the message of a 415.
    fn formats(&self) -> &'static str;
    /// Validates the upload (limits, structure, probe); every refusal is a 4xx.
    async fn describe(&self, state: &AppState, upload: &Upload<'_>) -> AppResult<Described>;
    /// The job that processes a new blob of this kind.
    fn process_job(&self, blob_id: &str, max_attempts: u32) -> NewJob;
    /// The job kinds that process its blobs: cancelling one marks the blob failed.
    fn job_kinds(&self) -> &'static [&'static str];
    /// The MIME type of an original in `format`, when the format is one of its own.
    fn mime(&self, format: &str) -> Option<&'static str>;
    /// The names it serves at `/media/{id}/{name}` besides the original and the presets.
    fn files(&self) -> &'static [&'static str] {
        &[]
    }
    /// The file `file` (one of [`MediaKind::files`]) of an item; `Ok(None)` when this item
    /// has no such file.
    async fn file(
        &self,
        _state: &AppState,
        _item: &ItemRow,
        _file: &str,
        _token: Option<&str>,
    ) -> AppResult<Option<Target>> {
        Ok(None)
    }
    /// The `playback` part of the item JSON of these items, by item id, read on `conn`
    /// (inside a transaction, it is the transaction's: no second connection is taken).
    async fn playback(
        &self,
        _state: &AppState,
        _conn: &mut AnyConnection,
        _items: &[&ItemRow],
    ) -> AppResult<HashMap<String, Playback>> {
        Ok(HashMap::new())
    }
}

/// The registered kinds, in the order they are asked (images first).
#[derive(Clone)]
pub struct Kinds(Arc<[Arc<dyn MediaKind>]>);

impl Kinds {
    pub fn new(kinds: Vec<Arc<dyn MediaKind>>) -> Kinds {
        Kinds(kinds.into())
    }

    pub fn all(&self) -> &[Arc<dyn MediaKind>] {
        &self.0
    }

    /// The kind whose format the first bytes are.
    pub fn sniff(&self, state: &AppState, head: &[u8]) -> Option<&dyn MediaKind> {
        self.0
            .iter()
            .find(|k| k.sniff(state, head))
            .map(|k| k.as_ref())
    }

    /// The entry serving items of `kind`.
    pub fn of(&self, kind: &str) -> Option<&dyn MediaKind> {
        self.0
            .iter()
            .find(|k| k.kinds().contains(&kind))
            .map(|k| k.as_ref())
    }

    pub fn mime(&self, format: &str) -> &'static str {
        self.0
            .iter()
            .find_map(|k| k.mime(format))
            .unwrap_or("application/octet-stream")
    }

    /// Whether jobs of `job_kind` process blobs.
    pub fn is_processing_job(&self, job_kind: &str) -> bool {
        self.0.iter().any(|k| k.job_kinds().contains(&job_kind))
    }

    /// Every accepted format, for the message of a 415.
    pub fn formats(&self) -> String {
        let list: Vec<&str> = self.0.iter().map(|k| k.formats()).collect();
        list.join("; ")
    }
}

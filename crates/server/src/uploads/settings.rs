//! The `[uploads]` section: resumable (tus) uploads.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UploadSettings {
    /// Seconds an incomplete upload is kept after its last byte arrived; then the
    /// scheduler removes it (with an `upload.expired` event). Default 86400 (24 h).
    pub expire_after_secs: u64,
    /// Seconds between the scheduler's looks for expired uploads. Default 300.
    pub expire_interval_secs: u64,
    /// On S3, the size of every part but the last, in MiB (at least 5, S3's minimum).
    /// Equal parts suit every S3 implementation; bytes short of a part wait in a tail
    /// object until the next request. Default 8.
    pub part_mib: u64,
    /// Seconds a PATCH's lease on its upload lasts without renewal; after a crash the
    /// upload is writable again this long after the last renewal. Default 10.
    pub lock_ttl_secs: u64,
    /// Seconds a PATCH waits for another PATCH of the same upload to let go (it is asked
    /// to) before answering 423. Default 5.
    pub lock_wait_secs: u64,
    /// Bytes of `Upload-Metadata` accepted. Default 4096.
    pub max_metadata_bytes: usize,
    /// Incomplete uploads one user may have at once. Default 100.
    pub max_pending_per_user: i64,
    /// Let imports by URL fetch from loopback, private or link-local addresses (tests, a
    /// trusted intranet). Cloud metadata addresses stay refused. Default false.
    pub import_allow_private_targets: bool,
    /// Seconds an import's fetch may take in all. Default 600.
    pub import_timeout_secs: u64,
    /// Redirects an import follows, each target checked again. Default 5.
    pub import_max_redirects: usize,
}

impl Default for UploadSettings {
    fn default() -> Self {
        Self {
            expire_after_secs: 86_400,
            expire_interval_secs: 300,
            part_mib: 8,
            lock_ttl_secs: 10,
            lock_wait_secs: 5,
            max_metadata_bytes: 4096,
            max_pending_per_user: 100,
            import_allow_private_targets: false,
            import_timeout_secs: 600,
            import_max_redirects: 5,
        }
    }
}

impl UploadSettings {
    pub fn part_bytes(&self) -> usize {
        (self.part_mib.max(5) as usize) << 20
    }
}

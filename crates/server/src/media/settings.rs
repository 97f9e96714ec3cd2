//! The media domain's settings: upload limits (`[limits]`), delivery (`[delivery]`) and
//! garbage collection (`[gc]`).

use serde::{Deserialize, Serialize};

/// `[limits]`: what an upload may be.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitSettings {
    /// Largest accepted upload body in bytes. Default 100 MiB.
    pub max_upload_bytes: u64,
    /// Largest accepted image area in pixels. Default 50,000,000.
    pub max_pixels: u64,
    /// Largest accepted image width or height. Default 12,000.
    pub max_side: u32,
    /// Most frames accepted in an animated image. Default 500.
    pub max_frames: u32,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            max_upload_bytes: 100 * 1024 * 1024,
            max_pixels: 50_000_000,
            max_side: 12_000,
            max_frames: 500,
        }
    }
}

/// `[delivery]`: how files are served.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliverySettings {
    /// Serve originals to anyone who may read the item, not only to its owner. Default false.
    pub public_originals: bool,
    /// Bytes of small derivatives kept in memory for hot delivery. Default 64 MiB.
    pub cache_bytes: u64,
    /// Lifetime of the playback token carried in a private item's playlist and file
    /// URLs, in seconds (60 s – 7 days). Default 21600.
    pub playback_token_ttl_secs: u64,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            public_originals: false,
            cache_bytes: 64 * 1024 * 1024,
            playback_token_ttl_secs: 6 * 3600,
        }
    }
}

/// `[gc]`: garbage collection of blobs, objects and temp files.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GcSettings {
    /// Seconds between garbage-collection sweeps run by the scheduler. Default 3600.
    pub sweep_interval_secs: u64,
    /// Temp files older than this many seconds are removed by the sweep. Default 86400.
    pub tmp_max_age_secs: u64,
    /// Objects without a blob row are removed once older than this many seconds (an
    /// upload moves its object in just before its transaction commits). Default 3600.
    pub orphan_min_age_secs: u64,
}

impl Default for GcSettings {
    fn default() -> Self {
        Self {
            sweep_interval_secs: 3600,
            tmp_max_age_secs: 86_400,
            orphan_min_age_secs: 3600,
        }
    }
}

//! The `[transform]` section: signing, presets, watermarks and the transform pool.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::kernel::secret::Secret;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TransformSettings {
    /// HMAC-SHA256 keys for `/img` URLs. When any is set, every transform URL must carry
    /// `s=` (public presets excepted); the first key signs, every key verifies (rotation).
    /// Default: none (a generated key still signs the expiring URLs owners mint).
    pub signing_keys: Vec<Secret>,
    /// Named presets usable as `p_NAME`: `avatar = "w_128,h_128,fit_cover,g_smart"` or
    /// `avatar = { ops = "…", eager = true, public = true, formats = ["webp", "jpg"] }`.
    pub presets: std::collections::BTreeMap<String, PresetEntry>,
    /// Watermarks usable as `wm_NAME`: `{ image = "/path.png" }`, `{ media_id = "…" }` or
    /// `{ text = "© Me", font = "DejaVu Sans Bold 32", color = "ffffffcc" }`, each with
    /// optional `opacity` (percent, 100), `width_percent` (25) and `margin` (16 px).
    pub watermarks: std::collections::BTreeMap<String, WatermarkSettings>,
    /// Transforms computed at once. Default: the number of cores.
    pub concurrency: usize,
    /// Requests allowed to wait for a transform slot; beyond it the answer is 429 with
    /// `Retry-After`. Default 64.
    pub queue_limit: usize,
    /// Seconds one transform may run before it is cancelled. Default 15.
    pub timeout_secs: u64,
    /// Stored transform results not requested for this many days are removed. Default 30.
    pub unused_days: u64,
    /// Bytes of hot transform results kept in memory. Default 128 MiB.
    pub cache_bytes: u64,
    /// Longest lifetime of an expiring delivery URL an owner may mint. Default 7 days.
    pub max_url_ttl_secs: u64,
}

impl Default for TransformSettings {
    fn default() -> Self {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        Self {
            signing_keys: Vec::new(),
            presets: Default::default(),
            watermarks: Default::default(),
            concurrency: cores,
            queue_limit: 64,
            timeout_secs: 15,
            unused_days: 30,
            cache_bytes: 128 * 1024 * 1024,
            max_url_ttl_secs: 7 * 86_400,
        }
    }
}

/// A named transform preset: its options, and whether workers make it at upload
/// (`eager`) and whether it may be fetched without a signature (`public`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PresetEntry {
    Ops(String),
    Full {
        ops: String,
        #[serde(default)]
        eager: bool,
        #[serde(default)]
        public: bool,
        /// Formats made eagerly. Default webp and jpg.
        #[serde(default = "default_eager_formats")]
        formats: Vec<String>,
    },
}

fn default_eager_formats() -> Vec<String> {
    vec!["webp".into(), "jpg".into()]
}

impl PresetEntry {
    pub fn ops(&self) -> &str {
        match self {
            PresetEntry::Ops(ops) | PresetEntry::Full { ops, .. } => ops,
        }
    }
    pub fn eager_formats(&self) -> &[String] {
        match self {
            PresetEntry::Full {
                eager: true,
                formats,
                ..
            } => formats,
            _ => &[],
        }
    }
    pub fn public(&self) -> bool {
        matches!(self, PresetEntry::Full { public: true, .. })
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatermarkSettings {
    /// An image file on the server.
    pub image: Option<PathBuf>,
    /// Another media item (the caller must be able to read it).
    pub media_id: Option<String>,
    /// Text rendered with a system font.
    pub text: Option<String>,
    /// Pango font description for text. Default "DejaVu Sans Bold 48".
    #[serde(default = "default_font")]
    pub font: String,
    /// Text colour as RRGGBB or RRGGBBAA. Default "ffffffd9".
    #[serde(default = "default_text_color")]
    pub color: String,
    /// Opacity in percent. Default 100.
    #[serde(default = "default_opacity")]
    pub opacity: u8,
    /// Width as a percent of the output width. Default 25.
    #[serde(default = "default_width_percent")]
    pub width_percent: u8,
    /// Distance from the edges in pixels. Default 16.
    #[serde(default = "default_margin")]
    pub margin: u32,
}

fn default_font() -> String {
    "DejaVu Sans Bold 48".into()
}

fn default_text_color() -> String {
    "ffffffd9".into()
}

fn default_opacity() -> u8 {
    100
}

fn default_width_percent() -> u8 {
    25
}

fn default_margin() -> u32 {
    16
}

//! The `[playback]` section: view counting.

use serde::{Deserialize, Serialize};

/// Playback: resume positions and view counting.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PlaybackSettings {
    /// Seconds of real play before a view counts (or the whole clip, if shorter). Default 5.
    pub view_after_secs: f64,
    /// A viewer adds at most one view per item in this many seconds. Default 3600.
    pub view_window_secs: u64,
}

impl Default for PlaybackSettings {
    fn default() -> Self {
        Self {
            view_after_secs: 5.0,
            view_window_secs: 3600,
        }
    }
}

//! The `[video]` section: what video and audio uploads may contain and how they are
//! transcoded.

use serde::{Deserialize, Serialize};

/// Video and audio: what uploads may contain and how they are transcoded.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VideoSettings {
    /// Accept video and audio uploads at all. Default true.
    pub enabled: bool,
    /// Longest accepted duration, in seconds. Default 14400 (4 h).
    pub max_duration_secs: f64,
    /// Largest accepted frame, long side × short side (either orientation). Default 7680.
    pub max_width: u32,
    /// Default 4320.
    pub max_height: u32,
    /// Highest accepted frame rate. Default 240.
    pub max_fps: f64,
    /// Highest accepted overall bit rate, in bits per second. Default 200000000.
    pub max_bit_rate: u64,
    /// Most streams in one container. Default 16.
    pub max_streams: u32,
    /// Seconds one ffprobe run may take. Default 30.
    pub probe_timeout_secs: u64,
    /// ffprobe runs at once in this process; more uploads wait. Default: number of cores.
    pub probe_concurrency: usize,
    /// ffmpeg transcodes at once in this process (each already uses every core). Default 1.
    pub transcode_concurrency: usize,
    /// Address-space limit of each ffmpeg/ffprobe process, in MiB (0: none). Default 4096.
    pub max_memory_mib: u64,
    /// A transcode step may take `timeout_floor_secs` + this × the media duration. Default 20.
    pub timeout_per_media_second: f64,
    /// Default 300.
    pub timeout_floor_secs: u64,
    /// HLS rendition heights (the short side), never above the source. Default 240,360,480,720,1080.
    pub ladder: Vec<u32>,
    /// libx264 preset for renditions. Default `veryfast`.
    pub x264_preset: String,
    /// Where the poster frame is taken, in seconds (clamped to the clip). Default 1.0.
    pub poster_offset_secs: f64,
    /// Make the sprite sheet + WebVTT track for seek previews. Default true.
    pub storyboard: bool,
    /// Make a progressive MP4 (faststart) for players without HLS. Default true.
    pub mp4_fallback: bool,
}

impl Default for VideoSettings {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            enabled: true,
            max_duration_secs: 4.0 * 3600.0,
            max_width: 7680,
            max_height: 4320,
            max_fps: 240.0,
            max_bit_rate: 200_000_000,
            max_streams: 16,
            probe_timeout_secs: 30,
            probe_concurrency: cores,
            transcode_concurrency: 1,
            max_memory_mib: 4096,
            timeout_per_media_second: 20.0,
            timeout_floor_secs: 300,
            ladder: vec![240, 360, 480, 720, 1080],
            x264_preset: "veryfast".into(),
            poster_offset_secs: 1.0,
            storyboard: true,
            mp4_fallback: true,
        }
    }
}

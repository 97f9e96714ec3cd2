//! Video and audio ingest for Framehouse: recognise a container by its magic
//! bytes, probe it with a locked-down `ffprobe`, and enforce size limits and a
//! codec allow-list before anything else touches the file.
//!
//! Nothing here trusts the file name or the client's content type: the
//! sniffed [`Container`] decides which single demuxer ffprobe may use, so a
//! playlist or concat list dressed up as a video can never make ffmpeg follow
//! a reference to another file or to the network.
//!
//! Processing (posters, storyboards, HLS ladders, MP4 and audio downloads)
//! goes through one [`Runner`], which spawns ffmpeg with the same hardening.

mod audio;
mod hls;
mod ladder;
mod limits;
mod mp4;
mod poster;
mod probe;
mod report;
mod run;
mod sniff;
mod storyboard;
mod watermark;

pub use audio::AudioFormat;
pub use hls::Rendition;
pub use ladder::{plan_ladder, Rung};
pub use limits::{check, LimitError, ProbeLimits};
pub use poster::Poster;
pub use probe::{probe, AudioStream, Probe, VideoStream};
pub use run::{Input, Runner};
pub use sniff::{sniff, Container};
pub use storyboard::Storyboard;
pub use watermark::{Gravity, Watermark};

/// Everything that can go wrong while probing or processing an upload.
#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    /// The bytes are not a container we accept.
    #[error("unsupported media type")]
    Unsupported,
    /// The demuxer rejected the file or its description made no sense.
    #[error("corrupt media: {0}")]
    Corrupt(String),
    /// ffprobe or ffmpeg did not finish within the configured time limit.
    #[error("timed out")]
    Timeout,
    /// A configured limit (or the probe output cap) was exceeded.
    #[error("media too large: {0}")]
    TooLarge(String),
    /// A stream uses a codec outside the allow-list.
    #[error("unsupported codec: {0}")]
    UnsupportedCodec(String),
    /// The caller's cancellation token fired; the ffmpeg child was killed.
    #[error("cancelled")]
    Cancelled,
    /// ffmpeg failed; the message is the end of its stderr, paths redacted.
    #[error("processing failed: {0}")]
    Failed(String),
    /// An audio operation was asked of a file without an audio stream.
    #[error("no audio stream")]
    NoAudio,
    /// ffprobe/ffmpeg could not be started or a file could not be read.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl From<LimitError> for VideoError {
    fn from(e: LimitError) -> Self {
        VideoError::TooLarge(e.to_string())
    }
}

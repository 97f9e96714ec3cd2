//! Video and audio ingest for Framehouse: recognise a container by its magic
//! bytes, probe it with a locked-down `ffprobe`, and enforce size limits and a
//! codec allow-list before anything else touches the file.
//!
//! Nothing here trusts the file name or the client's content type: the
//! sniffed [`Container`] decides which single demuxer ffprobe may use, so a
//! playlist or concat list dressed up as a video can never make ffmpeg follow
//! a reference to another file or to the network.

mod limits;
mod probe;
mod report;
mod sniff;

pub use limits::{check, LimitError, ProbeLimits};
pub use probe::{probe, AudioStream, Probe, VideoStream};
pub use sniff::{sniff, Container};

/// Everything that can go wrong while probing an upload.
#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    /// The bytes are not a container we accept.
    #[error("unsupported media type")]
    Unsupported,
    /// The demuxer rejected the file or its description made no sense.
    #[error("corrupt media: {0}")]
    Corrupt(String),
    /// ffprobe did not finish within the configured time limit.
    #[error("probe timed out")]
    Timeout,
    /// A configured limit (or the probe output cap) was exceeded.
    #[error("media too large: {0}")]
    TooLarge(String),
    /// A stream uses a codec outside the allow-list.
    #[error("unsupported codec: {0}")]
    UnsupportedCodec(String),
    /// ffprobe could not be started or the file could not be read.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl From<LimitError> for VideoError {
    fn from(e: LimitError) -> Self {
        VideoError::TooLarge(e.to_string())
    }
}
